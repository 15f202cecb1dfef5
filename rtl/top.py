"""The accelerator top: host bus, program memory, buffers, controller and fabric."""

import hashlib
import json

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.config import AccelConfig, get_config
from fetta.sw_model.accel.xent import N_MAX as XENT_N_MAX, XENT_FIELD, XENT_LOSS_BITS
from fetta.sw_model.accel.hostmap import (ADAM_BASE, BUF_BASE, BUSY_WRITE_HALTS, MAGIC,
                                         PROG_BASE, REG_BASE, MAXLOG_DEPTH, READ_LATENCY,
                                         START_PC_LSB, Ctrl, Reg, Status)

from .adam_unit import AdamUnit
from .dither import add_dither_hash
from .buffers import WORD_BITS, BankedBuffer
from .ce_array import CEArray
from .controller import Controller
from .host_bus import HostBusSignature
from .max_abs import MaxAbs
from .max_log import MaxLog
from .shift_slots import ShiftSlots
from .xent_unit import XentRow
from .vector_alu import VectorAlu

__all__ = ["Accelerator", "config_hash"]


def config_hash(config: AccelConfig) -> int:
    """32-bit hash of the configuration, readable at ``Reg.CONFIG_HASH``."""
    blob = json.dumps(config.to_dict(), sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


class Accelerator(wiring.Component):
    """The whole accelerator behind one host bus (``sw_model/accel/hostmap.py``).

    Contents: program memory (``prog_depth`` x 32 bit); buffers A (``a_lanes`` banks),
    B (``b_lanes``) and C (``c_lanes``), each ``bank_depth`` rows of 16-bit words;
    the controller (``rtl/controller.py``) with its address generators and counters;
    the CE array with its networks and output stages (``rtl/ce_array.py``); with the
    MOVE unit, on its path the vector ALU (``rtl/vector_alu.py``, VEC), the XENT unit
    (``rtl/xent_unit.py``, with the row's destination addresses and the XENT_CORRECT
    count), the max log (``rtl/max_log.py``), the shift slots
    (``rtl/shift_slots.py``, ``shift_slots`` > 0) and the update unit with its state
    memory (``rtl/adam_unit.py``, ``adam_entries`` > 0; ADAM, the state memory on the
    bus at ``hostmap.ADAM_BASE``).

    Host bus: writes land the cycle they are strobed; reads return after
    ``READ_LATENCY`` = 2 cycles. Program and buffer writes while a program runs are
    dropped and recorded (STATUS bit 3, sticky until CLEAR; error code
    ``BUS_WHILE_BUSY``; the run goes on: the rule of ``sw_model/accel/hostmap.py``). CTRL:
    START (at the program word in bits 31..16), CLEAR (both idle only), ABORT. Buffer word ``j`` of a buffer is bank
    ``j % lanes``, row ``j // lanes``.

    Members:
        bus:   In(HostBusSignature()).
        busy:  a program is running.
        done:  the last program halted normally.
        error: the last program halted with an error (code in STATUS).
    """

    def __init__(self, config="tiny", *, probes: bool = False):
        self.config = cfg = get_config(config)
        self.probes = probes
        self.fabric = CEArray(cfg)
        self.controller = Controller(cfg, self.fabric.timing)
        self.buffers = {name: BankedBuffer(lanes, cfg.bank_depth,
                                           lane_collision=cfg.move_unit) for name, lanes in
                        (("a", cfg.a_lanes), ("b", cfg.b_lanes), ("c", cfg.c_lanes))}
        # no read in a write cycle (below): no collisions, so a bare block RAM
        self.prog = Memory(shape=32, depth=cfg.prog_depth, init=[],
                           attrs={"no_rw_check": 1})
        super().__init__({
            "bus": In(HostBusSignature()),
            "busy": Out(1), "done": Out(1), "error": Out(1),
        })
        # probes=True (formal checks only, rtl/controller_props.py): ``prog_write``, the
        # program memory's write enable (not a port; off by default so that the
        # simulated and synthesized design is unchanged)
        self.prog_write = Signal() if probes else None

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ctl, fab = self.controller, self.fabric
        m.submodules.controller = ctl
        m.submodules.fabric = fab
        bufs = self.buffers
        for name, buf in bufs.items():
            m.submodules[f"buf_{name}"] = buf
        prog = self.prog
        m.submodules.prog = prog
        prog_rd = prog.read_port()
        prog_wr = prog.write_port()
        running = ctl.busy

        # Controller <-> fabric: one interface (rtl/fabric_control.py).
        wiring.connect(m, ctl.fabric, fab.ctl)
        for i in range(cfg.a_lanes):
            m.d.comb += fab.a_vec[i].eq(bufs["a"].rd_data[i])
        for i in range(cfg.b_lanes):
            m.d.comb += fab.b_vec[i].eq(bufs["b"].rd_data[i])

        # Largest |result| of the program's CONTRACTs (Reg.MAX_ABS; rtl/max_abs.py):
        # with the MOVE unit only (the resident flow's vote input; reads 0 without)
        max_abs = max_log = None
        x_correct = Signal(32)      # XENT rows whose first maximum is the target
        x_loss = Signal(XENT_LOSS_BITS)  # their cross-entropy, bits Q16 (wraps)
        if cfg.move_unit:
            m.submodules.max_abs = max_abs = MaxAbs(cfg.c_lanes)
            m.submodules.max_log = max_log = MaxLog()
            m.d.comb += [max_abs.valid.eq(fab.out_valid & running),
                         max_abs.mask.eq(fab.out_mask), max_abs.used.eq(ctl.used_c_lanes)]
            for d in range(cfg.c_lanes):
                m.d.comb += max_abs.data[d].eq(fab.out[d])

        # Host bus decode.
        bus = self.bus
        addr = bus.addr
        is_reg = addr < PROG_BASE
        is_prog = (addr >= PROG_BASE) & (addr < PROG_BASE + cfg.prog_depth)
        buf_sel = (addr - BUF_BASE)[20:22]
        is_buf = (addr >= BUF_BASE) & (buf_sel < 3)
        word = (addr - BUF_BASE)[0:20]
        bus_violation = Signal()

        assert (Ctrl.START, Ctrl.CLEAR, Ctrl.ABORT) == (1, 2, 4)
        assert not BUSY_WRITE_HALTS         # the run goes on after a dropped write
        m.d.comb += [ctl.start.eq(0), ctl.clear.eq(0), ctl.abort.eq(0)]
        with m.If(bus.write & is_reg & (addr == Reg.CTRL)):
            m.d.comb += [ctl.start.eq(bus.wdata[0]), ctl.clear.eq(bus.wdata[1]),
                         ctl.start_pc.eq(bus.wdata[START_PC_LSB:]),
                         ctl.abort.eq(bus.wdata[2])]
            with m.If(bus.wdata[1] & ~running):
                m.d.sync += bus_violation.eq(0)
            if max_abs is not None:
                # a START the controller takes (idle, no CLEAR or ABORT with it)
                taken = bus.wdata[0] & ~bus.wdata[1] & ~bus.wdata[2] & ~running
                m.d.comb += [max_abs.clear.eq(taken), max_log.clear.eq(taken)]
                with m.If(taken):
                    m.d.sync += [x_correct.eq(0), x_loss.eq(0)]
        is_slot = C(0, 1)
        if cfg.shift_slots:
            is_slot = (addr >= REG_BASE + Reg.SLOT) & (addr < REG_BASE + Reg.SLOT +
                                                        cfg.shift_slots)
        is_adam = C(0, 1)
        if cfg.adam_entries:
            is_adam = (addr >= ADAM_BASE) & (addr < ADAM_BASE + 4 * cfg.adam_entries)
        is_moved = C(0, 1)
        if cfg.shift_slots:
            is_moved = addr == REG_BASE + Reg.SLOT_MOVED
        dropped = bus.write & (is_prog | is_buf | is_slot | is_moved | is_adam) & running
        m.d.comb += ctl.bus_error.eq(dropped)
        with m.If(dropped):
            m.d.sync += bus_violation.eq(1)

        m.d.comb += [prog_rd.en.eq(~prog_wr.en), prog_wr.data.eq(bus.wdata),
                     prog_wr.addr.eq(addr - PROG_BASE),
                     prog_wr.en.eq(bus.write & is_prog & ~running)]
        if self.probes:
            m.d.comb += self.prog_write.eq(prog_wr.en)
        with m.If(running):
            m.d.comb += prog_rd.addr.eq(ctl.prog_addr)
        with m.Else():
            m.d.comb += prog_rd.addr.eq(addr - PROG_BASE)
        m.d.comb += ctl.prog_data.eq(prog_rd.data)

        # MOVE's read data: the source word of the element read the previous cycle;
        # VEC's: also the destination's old word (ops that read it), both into the
        # vector ALU (rtl/vector_alu.py), whose result is written instead of the copy
        mv = ctl.mv
        mv_src_lane, mv_dst_lane = {}, {}
        mv_src_buf, mv_dst_buf = Signal(2), Signal(2)
        mv_word, mv_dst_word = Signal(WORD_BITS), Signal(WORD_BITS)
        with m.If(mv.rd_en):
            m.d.sync += mv_src_buf.eq(mv.rd_buf)
        with m.If(mv.rd2_en):
            m.d.sync += mv_dst_buf.eq(mv.wr_buf)
        alu = au = None
        w_en, w_buf, w_addr, w_data = mv.wr_en, mv.wr_buf, mv.wr_addr, mv_word
        if cfg.move_unit:
            m.submodules.vector_alu = alu = VectorAlu(len(mv.wr_addr))
            last_out = Signal(WORD_BITS)        # the word written the previous cycle
            m.d.sync += last_out.eq(alu.out)
            m.d.comb += [alu.valid.eq(mv.wr_en & mv.vec & ~ctl.xent & ~ctl.adam),
                         alu.a.eq(mv_word),
                         alu.b.eq(Mux(mv.fwd, last_out, mv_dst_word)),
                         alu.addr.eq(mv.wr_addr), alu.buf.eq(mv.wr_buf),
                         alu.index.eq(mv.index)]
            for name in ("op", "shift", "rounding", "out_bits"):
                m.d.comb += getattr(alu, name).eq(getattr(mv, name))
            # the VEC's seed: its SEED word, or after a STEP the seed derived from it
            # (registered: steady from the cycle after the word loads, well before
            # the VEC's first element)
            vec_seed = Signal(32)
            m.d.sync += vec_seed.eq(Mux(ctl.step_on, add_dither_hash(
                m, ctl.step_key, mv.seed, name="vec_seed_derive"), mv.seed))
            m.d.comb += alu.seed.eq(vec_seed)
            # XENT (rtl/xent_unit.py): the unit requests the reads of a row (source:
            # the logits, destination: the targets), keeps the row's destination
            # addresses and writes each class's gradient when it is done
            m.submodules.xent_unit = xu = XentRow()
            x_dst = Array(Signal(len(mv.wr_addr), name=f"x_dst{j}") for j in range(XENT_N_MAX))
            m.d.comb += [xu.go.eq(ctl.x_go & ctl.xent), xu.n.eq(mv.classes),
                         xu.s.eq(mv.seed[XENT_FIELD["s"].lsb:][:XENT_FIELD["s"].width]),
                         xu.bsz.eq(mv.seed[XENT_FIELD["bsz"].lsb:][:XENT_FIELD["bsz"].width]),
                         xu.out_bits.eq(mv.out_bits), xu.labels.eq(mv.labels),
                         xu.in_valid.eq(mv.wr_en & ctl.xent),
                         xu.in_z.eq(mv_word), xu.in_y.eq(mv_dst_word)]
            with m.If(mv.wr_en & ctl.xent):
                m.d.sync += x_dst[xu.ld_index].eq(mv.wr_addr)
            with m.If(xu.done & xu.correct):
                m.d.sync += x_correct.eq(x_correct + 1)
            with m.If(xu.done):
                m.d.sync += x_loss.eq(x_loss + xu.loss)
            w_en = Mux(ctl.xent, xu.out_valid, Mux(mv.vec, alu.out_valid, mv.wr_en))
            w_buf = Mux(ctl.xent, mv.wr_buf, Mux(mv.vec, alu.out_buf, mv.wr_buf))
            w_addr = Mux(ctl.xent, x_dst[xu.out_index], Mux(mv.vec, alu.out_addr, mv.wr_addr))
            w_data = Mux(ctl.xent, xu.out_g, Mux(mv.vec, alu.out, mv_word))
            step_req, unit_busy = xu.step_req, xu.busy
            # ADAM (rtl/adam_unit.py): the unit requests each gradient read, keeps the
            # element's destination address (its last point's) and writes the
            # updated weight word when the element is done
            if cfg.adam_entries:
                m.submodules.adam_unit = au = AdamUnit(cfg)
                a_dst = Signal(len(mv.wr_addr))
                m.d.comb += [au.load.eq(ctl.ld), au.load_word.eq(ctl.ld_word),
                             au.data.eq(prog_rd.data), ctl.a_bad.eq(au.bad),
                             ctl.a_range_bad.eq(au.range_bad), au.go.eq(ctl.x_go & ctl.adam),
                             au.in_valid.eq(mv.wr_en & ctl.adam), au.in_g.eq(mv_word),
                             au.running.eq(running), au.step_on.eq(ctl.step_on),
                             au.step_key.eq(ctl.step_key), au.step_lr.eq(ctl.step_lr),
                             au.host_addr.eq((addr - ADAM_BASE)[2:2 + len(au.host_addr)]),
                             au.host_k.eq(addr[:2]), au.host_wdata.eq(bus.wdata),
                             au.host_we.eq(bus.write & is_adam & ~running)]
                with m.If(mv.wr_en & ctl.adam):
                    m.d.sync += a_dst.eq(mv.wr_addr)
                w_en = Mux(ctl.adam, au.out_valid, w_en)
                w_addr = Mux(ctl.adam, a_dst, w_addr)
                w_data = Mux(ctl.adam, au.out_word, w_data)
                step_req = Mux(ctl.adam, au.step_req, step_req)
                unit_busy = Mux(ctl.adam, au.busy, unit_busy)
            m.d.comb += [ctl.x_step_req.eq(step_req), ctl.x_busy.eq(unit_busy)]
            # the max log: a C row's lane maximum or a VEC's word magnitude, one cycle
            # after the write (as MaxAbs's); closed MaxAbs.LATENCY cycles after the
            # instruction's last cycle, when its last word is in
            vec_mag = Signal(WORD_BITS)
            out_s = Mux(ctl.xent, xu.out_g, alu.out).as_signed()
            m.d.sync += vec_mag.eq(Mux(Mux(ctl.xent, xu.out_valid, alu.out_valid & mv.vec),
                                       Mux(out_s < 0, -out_s, out_s), 0))
            end_q = Signal(MaxAbs.LATENCY)
            m.d.sync += end_q.eq(Cat(ctl.logged_end, end_q[:-1]))
            m.d.comb += [max_log.valid.eq(1),
                         max_log.mag.eq(Mux(max_abs.row_max > vec_mag, max_abs.row_max,
                                            vec_mag)),
                         max_log.close.eq(end_q[-1])]
        # Shift slots (rtl/shift_slots.py): the CONTRACT's and the VEC's shift; the
        # vote of a logged instruction with its max log entry, at the entry's close
        # (its slot, vote and out_bits captured at its end: the next instruction loads
        # its own after the close)
        slots = None
        if cfg.shift_slots:
            m.submodules.shift_slots = slots = ShiftSlots(cfg)
            e_slot, e_vote, e_bits = (Signal.like(ctl.end_slot), Signal.like(ctl.end_vote),
                                      Signal.like(ctl.end_bits))
            with m.If(ctl.logged_end):
                m.d.sync += [e_slot.eq(ctl.end_slot), e_vote.eq(ctl.end_vote),
                             e_bits.eq(ctl.end_bits)]
            m.d.comb += [slots.c_slot.eq(ctl.c_slot), ctl.c_slot_shift.eq(slots.c_shift),
                         slots.v_slot.eq(ctl.v_slot), ctl.v_slot_shift.eq(slots.v_shift),
                         slots.end.eq(end_q[-1]), slots.end_slot.eq(e_slot),
                         slots.end_vote.eq(e_vote), slots.end_bits.eq(e_bits),
                         slots.end_max.eq(max_log.closing)]
            assert MaxAbs.LATENCY >= 1      # e_* is registered before the close reads it
            if au is not None:              # an ADAM's slot: its gradient's shift
                m.d.comb += au.slot_shift.eq(slots.v_shift)
        for i, name in enumerate("abc"):
            buf = bufs[name]
            lanes = buf.lanes
            lane_bits = (lanes - 1).bit_length()
            host_row = word >> lane_bits
            host_lane = word[:lane_bits] if lane_bits else C(0, 1)
            host_wr = bus.write & is_buf & (buf_sel == i) & ~running
            # MOVE (rtl/move_unit.py): a word address is row (high bits) and lane
            mv_rd = mv.rd_en & (mv.rd_buf == i)
            mv_rd2 = mv.rd2_en & (mv.wr_buf == i)
            mv_wr = w_en & (w_buf == i)
            mv_wr_row = w_addr >> lane_bits
            mv_wr_lane = w_addr[:lane_bits] if lane_bits else C(0, 1)
            mv_src_lane[name] = Signal(max(1, lane_bits), name=f"mv_src_lane_{name}")
            mv_dst_lane[name] = Signal(max(1, lane_bits), name=f"mv_dst_lane_{name}")
            with m.If(mv_rd):
                m.d.sync += mv_src_lane[name].eq(mv.rd_addr[:lane_bits] if lane_bits else 0)
            with m.If(mv_rd2):
                m.d.sync += mv_dst_lane[name].eq(mv.rd2_addr[:lane_bits] if lane_bits else 0)
            with m.If(mv_wr):
                m.d.comb += [buf.wr_en.eq(1), buf.wr_addr.eq(mv_wr_row),
                             buf.wr_mask.eq(Mux(mv.wr_fill, (1 << lanes) - 1,
                                                1 << mv_wr_lane))]
                for d in range(lanes):
                    m.d.comb += buf.wr_data[d].eq(Mux(mv.wr_fill, 0, w_data))
            if name == "c":         # C: the output stages' writes while running
                with m.Elif(running):
                    m.d.comb += [buf.wr_en.eq(fab.out_valid), buf.wr_addr.eq(fab.out_addr),
                                 buf.wr_mask.eq(fab.out_mask)]
                    for d in range(lanes):
                        m.d.comb += buf.wr_data[d].eq(fab.out[d])
            with m.Else():
                m.d.comb += [buf.wr_en.eq(host_wr), buf.wr_addr.eq(host_row),
                             buf.wr_mask.eq(1 << host_lane)]
                for d in range(lanes):
                    m.d.comb += buf.wr_data[d].eq(bus.wdata[:WORD_BITS])
            with m.If(mv_rd):
                m.d.comb += [buf.rd_addr.eq(mv.rd_addr >> lane_bits), buf.rd_en.eq(1)]
            with m.Elif(mv_rd2):
                m.d.comb += [buf.rd_addr.eq(mv.rd2_addr >> lane_bits), buf.rd_en.eq(1)]
            if name != "c":         # A and B: the CONTRACT's row reads while running
                with m.Elif(running):
                    m.d.comb += [buf.rd_addr.eq(ctl.a_addr if name == "a" else ctl.b_addr),
                                 buf.rd_en.eq(ctl.rd_en)]
            with m.Else():
                m.d.comb += [buf.rd_addr.eq(host_row), buf.rd_en.eq(1)]

        with m.Switch(mv_src_buf):
            for i, name in enumerate("abc"):
                with m.Case(i):
                    m.d.comb += mv_word.eq(Array(bufs[name].rd_data)[mv_src_lane[name]])
        with m.Switch(mv_dst_buf):
            for i, name in enumerate("abc"):
                with m.Case(i):
                    m.d.comb += mv_dst_word.eq(Array(bufs[name].rd_data)[mv_dst_lane[name]])

        # Read pipeline: cycle 1 memories answer, cycle 2 rdata/rvalid.
        r_valid1 = Signal()
        r_addr1 = Signal.like(addr)
        m.d.sync += [r_valid1.eq(bus.read), r_addr1.eq(addr)]
        r_word1 = (r_addr1 - BUF_BASE)[0:20]
        r_sel1 = (r_addr1 - BUF_BASE)[20:22]
        regs = {
            Reg.ID: MAGIC,
            Reg.STATUS: Cat(running, ctl.done, ctl.error != 0, bus_violation, C(0, 4),
                            ctl.error),
            Reg.PC: ctl.pc, Reg.ERR_PC: ctl.err_pc,
            Reg.CONFIG_HASH: config_hash(cfg),
            Reg.MAX_ABS: max_abs.max if max_abs is not None else C(0, 16),
            Reg.MAXLOG_COUNT: max_log.count if max_log is not None else C(0, 8),
            Reg.XENT_CORRECT: x_correct if cfg.move_unit else C(0, 32),
            Reg.XENT_LOSS: x_loss[:32] if cfg.move_unit else C(0, 32),
            Reg.XENT_LOSS + 1: x_loss[32:] if cfg.move_unit else C(0, 16),
        }
        for k in range(MAXLOG_DEPTH):
            regs[int(Reg.MAXLOG) + k] = max_log.log[k] if max_log is not None else C(0, 16)
        if slots is not None:
            for k in range(cfg.shift_slots):
                regs[int(Reg.SLOT) + k] = slots.word[k]
            m.d.comb += [slots.wr_en.eq(bus.write & is_slot & ~running),
                         slots.wr_slot.eq((addr - (REG_BASE + Reg.SLOT))[:len(slots.wr_slot)]),
                         slots.wr_data.eq(bus.wdata),
                         # SLOT_MOVED: write 1s to clear (idle only, like a slot write)
                         slots.clr_en.eq(bus.write & (addr == REG_BASE + Reg.SLOT_MOVED) &
                                         ~running),
                         slots.clr_mask.eq(bus.wdata[:cfg.shift_slots])]
            regs[Reg.SLOT_MOVED] = slots.moved
        for reg, sig in ((Reg.CYCLES, ctl.cnt_cycles), (Reg.BUSY, ctl.cnt_busy),
                         (Reg.MAC_ACTIVE, ctl.cnt_mac_active),
                         (Reg.STALL_DRAIN, ctl.cnt_stall_drain),
                         (Reg.STALL_FILL, ctl.cnt_stall_fill),
                         (Reg.STALL_CONFIG, ctl.cnt_stall_config),
                         (Reg.INSTRUCTIONS, ctl.cnt_instructions),
                         (Reg.MOVE, ctl.cnt_move), (Reg.VEC, ctl.cnt_vec),
                         (Reg.XENT_CYCLES, ctl.cnt_xent), (Reg.ADAM_CYCLES, ctl.cnt_adam)):
            regs[reg] = sig[:32]
            if cfg.counter_bits > 32:
                regs[reg + 1] = sig[32:]
        rdata = Signal(32)
        reg_bits = max(int(r) for r in regs).bit_length()
        with m.If(r_addr1 < PROG_BASE):
            # registers sit at the low addresses; the rest of the space reads 0
            with m.If(r_addr1[reg_bits:] == 0):
                with m.Switch(r_addr1[:reg_bits]):
                    for reg, val in regs.items():
                        with m.Case(int(reg)):
                            m.d.comb += rdata.eq(val)
        with m.Elif(r_addr1 < PROG_BASE + cfg.prog_depth):
            m.d.comb += rdata.eq(prog_rd.data)
        if au is not None:
            with m.Elif((r_addr1 >= ADAM_BASE) & (r_addr1 < ADAM_BASE + 4 * cfg.adam_entries)):
                m.d.comb += rdata.eq(au.host_rdata)
        with m.Elif(r_addr1 >= BUF_BASE):
            for i, name in enumerate("abc"):
                buf = bufs[name]
                lane_bits = (buf.lanes - 1).bit_length()
                with m.If(r_sel1 == i):
                    lane = r_word1[:lane_bits] if lane_bits else C(0, 1)
                    with m.Switch(lane):
                        for d in range(buf.lanes):
                            with m.Case(d):
                                m.d.comb += rdata.eq(buf.rd_data[d].as_signed())
        m.d.sync += [bus.rdata.eq(rdata), bus.rvalid.eq(r_valid1)]
        assert READ_LATENCY == 2
        m.d.comb += [self.busy.eq(running), self.done.eq(ctl.done),
                     self.error.eq(ctl.error != 0)]
        return m
