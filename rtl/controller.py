"""The controller: fetches and executes the program, drives the address generators and
the fabric, keeps the performance counters and the error register."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.hostmap import START_PC_BITS, ErrorCode
from fetta.sw_model.accel.isa import (CHECK_STREAMS, COUNT_BITS, COUNT_MAX, CW, FIELD,
                          N_LEVELS, Op,
                          config_layout, config_words)
from fetta.sw_model.accel.move import MOVE_WORDS
from fetta.sw_model.accel.vec import VEC_FIELD, VEC_SHIFT_MAX, VEC_WORDS, VecOp, vec_tail
from fetta.sw_model.accel.xent import XENT_FIELD, XENT_WORDS
from fetta.sw_model.accel.adam import ADAM_WORDS
from fetta.sw_model.accel.routing import reduction_n_switch_bits
from fetta.sw_model.accel.shift_slots import SLOT_BITS, SLOT_SHIFT_BITS, VOTE_BITS
from fetta.sw_model.accel.timing import Timing

from fetta.sw_model.accel.step import STEP_WORDS

from .bound_check import BoundCheck
from .dither import add_dither_hash
from .fabric_control import FabricControlSignature
from .isa_layout import word_layout, word_view
from .loop_nest import LoopNest
from .move_unit import MoveUnit

__all__ = ["Controller", "CONTROLLER_STATES"]

# Encoding of ``ctrl_state_code`` in waveforms (asserted equal to the FSM's own).
# (Amaranth numbers states by first mention: every busy state can abort into TAIL.)
CONTROLLER_STATES = ("IDLE", "FETCH", "DECODE", "TAIL", "LOAD_CONFIG", "LOAD_CONTRACT",
                     "LOAD_MOVE", "LOAD_STEP", "CHECK_CONFIG", "VALIDATE", "CHECK", "RUN",
                     "MOVE_VALIDATE", "MOVE_CHECK", "MOVE_RUN", "MOVE_TAIL")


class Controller(wiring.Component):
    """Executes a program from program memory (``sw_model/accel/isa.py``).

    Per instruction (cycles, all known from the instruction so the compiler's cycle
    model predicts them; the costs come from ``timing``,
    ``sw_model.accel.timing.timing(config)``):

    * fetch + decode: 2 cycles; a payload of ``n`` words loads in ``n`` more cycles;
    * CONFIG: the payload goes straight into the configuration registers;
    * STEP (with the MOVE unit): the key and learning rate into ``step_key`` and
      ``step_lr``, ``step_on`` set (START clears it); from then on the output stages'
      seed is ``dither_hash(step_key, SEED)`` (``sw_model/accel/step.py``);
    * CONTRACT: the payload's MODE, bases, loop counts (as ``count - 1``) and row
      index stride go into registers as the words load (the strides, SEED and
      BASE_IDX stay in program memory: the address generator starts from BASE_IDX on
      the read port, and during RUN the read port holds SEED, which a register takes
      in every RUN cycle and holds until the next CONTRACT's RUN: the output stages'
      ``seed``); 1 validation cycle; ``timing.check_cycles(counts)`` (one
      pass per stride of ``bit_length(count - 1)`` Horner steps + 1) in which the bound
      check reads the strides back, proves every A/B read and C write in range (else
      halt, nothing written) and leaves the address generator's deltas; then one issue
      per cycle: each issue reads one A row and one B row; a tile's last step waits
      until ``drain_cycles`` (``pe_rows * out_share``) cycles have passed since the
      previous tile's last step (the shadow accumulators must have drained; counted
      as ``stall_drain``); after the final issue a fixed tail of ``tail_cycles`` lets
      the last tile drain;
      MODE's K-chunk flags only mask ``in_first`` (continue: the accumulators keep
      their sums) and ``in_last`` (hold: no capture, no drain, nothing written);
      the timing is unchanged;
    * MOVE (configurations with ``move_unit``; otherwise an illegal opcode): the
      payload goes into the move unit (``rtl.move_unit.MoveUnit``) as it loads; 1
      validation cycle; the unit's range check (``move.move_check_cycles(counts)``;
      halt with ``ADDRESS_RANGE``, nothing written, when it fails); one element per cycle
      (counted as ``move``); ``MOVE_TAIL`` cycle for the last write;
    * VEC (with ``move_unit``): a MOVE with ``VEC_WORDS`` payload words whose elements
      pass through the top's vector ALU (``rtl.vector_alu``); its element cycles count
      as ``vec``; its tail is ``vec.vec_tail(op)`` cycles (the unit's ``tail``);
    * XENT (with ``move_unit``): loads and checks like a VEC (``xent.XENT_WORDS``
      payload words; ``xent`` tells the move unit), then runs rows while ``x_go``: the
      walk steps only on the XENT unit's read requests (``x_step_req``, in the top),
      and the instruction ends when the walk is done and the unit idle
      (``xent.xent_cycles``); its run cycles count as ``vec``;
    * ADAM (with ``adam_entries``): loads like a VEC (``adam.ADAM_WORDS`` payload
      words, also handed to the top's update unit, ``ld``/``ld_word``), the unit's
      refusals (``a_bad``: BAD_CONFIG at validation; ``a_range_bad``: ADDRESS_RANGE
      with the range check), then runs like an XENT, element after element
      (``adam.adam_cycles``); its run cycles count as ``vec``; it logs nothing;
    * SYNC: nothing is in flight after a CONTRACT, so it costs its fetch only;
    * HALT: sets DONE and returns to idle.

    CONFIG is validated before it is committed: the mapping word (payload word 0) is
    checked as it loads; when it is invalid no configuration register is written (the
    previous configuration stays) and CHECK_CONFIG halts with ``BAD_CONFIG`` at the same
    cycle as before.

    ``abort`` (``Ctrl.ABORT``) stops a program at any cycle: the state of that cycle
    completes (an issue in it still happens), then nothing more is issued; the bound
    check is cancelled, the fixed ``tail_cycles`` of TAIL drain whatever is in the
    fabric, and the controller returns to IDLE with ``error = ABORTED`` and DONE clear
    (counted like TAIL, so the counters still add up). ``abort`` while idle does
    nothing. ``clear`` acts only while idle. ``bus_error`` (the top's "host wrote a
    memory while busy"; the write itself is dropped there) sets ``BUS_WHILE_BUSY``
    during a run unless an error is already recorded; the run goes on
    (``sw_model/accel/hostmap.py``).

    Errors halt at once with ``error`` set and ``err_pc`` the instruction's address:
    illegal opcode; a payload length or field the array cannot run (``BAD_CONFIG``:
    wrong CONFIG/CONTRACT length, mapping that does not cover the CEs, out_bits outside
    2..16, shift >= acc_bits, rounding code 3, a loop count of 0 or > COUNT_MAX);
    ``ADDRESS_RANGE`` from the bound check; ``PROGRAM_RANGE`` running off program memory.

    Members (to the top): ``start``/``clear``/``abort``/``bus_error`` strobes, with
    ``start_pc`` the program word a start begins at (CTRL bits 31..16; one at or past
    ``prog_depth`` halts in the first FETCH with ``PROGRAM_RANGE``); ``busy``, ``done``, ``error``
    (code), ``used_c_lanes`` (result lanes of the configured mapping, ``ga*gb*pe_cols``);
    (code), ``pc``, ``err_pc``; program-memory read port ``prog_addr``/``prog_data``;
    ``logged_end``, high in the last cycle of a CONTRACT, VEC or XENT that completes
    (the max log's close, ``rtl/max_log.py``), with ``end_slot``/``end_vote``/
    ``end_bits`` (the shift slots' vote, ``rtl/shift_slots.py``); ``c_slot``/
    ``v_slot`` out and ``c_slot_shift``/``v_slot_shift`` in (the slots' shifts);
    ``xent``, ``x_go`` out and ``x_step_req``, ``x_busy`` in (the XENT unit);
    buffer reads ``rd_en``/``a_addr``/``b_addr``; ``fabric``, the CE array's control
    (``rtl.fabric_control.FabricControlSignature``: issue steps, network and output
    stage settings, the C row and flat index of each tile, ``pe_active`` back); counters
    (``config.counter_bits`` wide).

    One address generator (``LoopNest``, 5 levels: 4 outer + the reduction) walks
    all four streams with one adder each: A and B rows at every issue, the C row and
    flat index once per tile (their reduction-level delta is 0).
    """

    def __init__(self, config: AccelConfig, timing: Timing):
        self.config = cfg = config
        self.timing = timing
        self.red_bits = reduction_n_switch_bits(cfg.c_lanes)
        self.layout = config_layout(cfg, self.red_bits)
        self.n_config = config_words(cfg, self.red_bits)
        assert self.n_config == timing.config_words
        self.tail_cycles = timing.tail
        lay = self.layout
        cb = cfg.counter_bits
        super().__init__({
            "start": In(1), "start_pc": In(START_PC_BITS), "clear": In(1), "abort": In(1), "bus_error": In(1),
            "busy": Out(1), "done": Out(1), "error": Out(8),
            "pc": Out(16), "err_pc": Out(16),
            "prog_addr": Out(16), "prog_data": In(32),
            "rd_en": Out(1), "a_addr": Out(16), "b_addr": Out(16),
            "fabric": Out(FabricControlSignature(cfg)),
            "cnt_cycles": Out(cb), "cnt_busy": Out(cb),
            "cnt_mac_active": Out(cb), "cnt_stall_drain": Out(cb),
            "cnt_stall_fill": Out(cb), "cnt_stall_config": Out(cb),
            "cnt_instructions": Out(cb), "cnt_move": Out(cb), "cnt_vec": Out(cb),
            "cnt_xent": Out(cb), "cnt_adam": Out(cb),
            # the program's STEP (sw_model/accel/step.py): seeds derived from its key
            # from then on, its learning rate for ADAMs with lr_step (START clears)
            "step_on": Out(1), "step_key": Out(32), "step_lr": Out(32),
            "used_c_lanes": Out(range(cfg.c_lanes + 1)),
            "logged_end": Out(1),
            # shift slots (rtl/shift_slots.py): the slot a CONTRACT / VEC names and
            # that slot's shift back; the slot, vote and out_bits of the instruction
            # ending with logged_end
            "c_slot": Out(SLOT_BITS), "c_slot_shift": In(SLOT_SHIFT_BITS),
            "v_slot": Out(SLOT_BITS), "v_slot_shift": In(SLOT_SHIFT_BITS),
            "end_slot": Out(SLOT_BITS), "end_vote": Out(VOTE_BITS), "end_bits": Out(5),
            # XENT (rtl/xent_unit.py, in the top): this MOVE-path instruction is an
            # XENT; run rows while x_go; the unit's read requests and busy
            "xent": Out(1), "x_go": Out(1), "x_step_req": In(1), "x_busy": In(1),
            # ADAM (rtl/adam_unit.py, in the top): this MOVE-path instruction is an
            # ADAM; the payload words as they load (the unit keeps its own), its
            # refusals; it runs like an XENT (x_go, x_step_req, x_busy: the top
            # connects the unit of the instruction)
            "adam": Out(1), "ld": Out(1), "ld_word": Out(6), "a_bad": In(1),
            "a_range_bad": In(1),
            "mv": Out(wiring.Signature({
                "rd_en": Out(1), "rd_buf": Out(2), "rd_addr": Out(32),
                "wr_en": Out(1), "wr_buf": Out(2), "wr_addr": Out(32), "wr_fill": Out(1),
                "rd2_en": Out(1), "rd2_addr": Out(32), "fwd": Out(1), "index": Out(32),
                "vec": Out(1), "op": Out(4), "shift": Out(range(VEC_SHIFT_MAX + 1)),
                "rounding": Out(2), "out_bits": Out(5), "seed": Out(32),
                "classes": Out(5), "labels": Out(1)})),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        D = self.timing.drain
        AB = cfg.addr_bits
        K = N_LEVELS

        cfg_regs = Array(Signal(32, name=f"cfg{i}") for i in range(self.n_config))

        def cfg_field(name):
            first, n = self.layout[name]
            return Cat(*[cfg_regs[first + i] for i in range(n)])

        m.d.comb += [self.fabric.a_net_cfg.eq(cfg_field("a_net")),
                     self.fabric.b_net_cfg.eq(cfg_field("b_net")),
                     self.fabric.red_cfg.eq(cfg_field("red_net"))]
        # result lanes of the configured mapping: ga * gb * pe_cols (rtl/max_abs.py)
        mapping = cfg_regs[0]
        m.d.comb += self.used_c_lanes.eq(
            (Const(cfg.pe_cols, range(cfg.c_lanes + 1)) << (mapping[0:4] + mapping[4:8]))
            [:len(self.used_c_lanes)])
        li_first = self.layout["lane_index"][0]
        for d in range(cfg.c_lanes):
            m.d.comb += self.fabric.lane_index[d].eq(cfg_regs[li_first + d])
        assert self.layout["mapping"] == (0, 1)     # validated as payload word 0
        # every loop level's words have the same layout (one decoder for all levels)
        assert all(word_layout(CW.LEVELS + 3 * i + j) == word_layout(CW.LEVELS + j)
                   for i in range(K) for j in range(3))
        assert FIELD["k_count"].width == FIELD["level0.count"].width == 16

        # CONTRACT fields kept in registers (everything else is read from program
        # memory by the bound check, which turns the strides into deltas).
        # BASE_IDX is not kept: the program memory's read port shows it in the cycle
        # the address generator starts. The read port holds the SEED word during RUN
        # and ``seed`` takes it there (from RUN's second cycle on it is this CONTRACT's
        # SEED; the first result reaches the output stages several cycles later, and
        # it stays until the next CONTRACT's RUN, after TAIL has drained the fabric).
        # The output stages read the register, not the memory's read data: the read
        # data into the dither hash's first stage was the ecp5 preset's critical path.
        seed = Signal(32)
        seed_raw = Signal(32)       # the SEED word as the read port shows it in RUN
        mode = Signal(word_layout(CW.MODE))       # the MODE word's fields
        row_stride_idx = Signal(32)
        base = {s: Signal(AB, name=f"base_{s}") for s in "abc"}
        n = [Signal(COUNT_BITS, name=f"n{i}") for i in range(K + 1)]   # count - 1
        bad_count = Signal()        # a loop count of 0 or > COUNT_MAX
        base_oob = Signal()         # a base row >= bank_depth
        rounding, out_bits = mode.rounding, mode.out_bits
        # the output shift: the named shift slot's, or the MODE word's (slot 0)
        shift = Signal(SLOT_SHIFT_BITS)
        assert len(mode.shift) == SLOT_SHIFT_BITS
        m.d.comb += [self.c_slot.eq(mode.slot),
                     shift.eq(Mux(mode.slot != 0, self.c_slot_shift, mode.shift)),
                     self.end_slot.eq(mode.slot), self.end_vote.eq(mode.vote),
                     self.end_bits.eq(out_bits)]
        # a vote code 3, a vote without a slot, a slot the config lacks, a shift
        # field beside a slot (sw_model/accel/shift_slots.py)
        slot_bad = (mode.vote == 3) | ((mode.vote != 0) & (mode.slot == 0)) | \
            (mode.slot > cfg.shift_slots) | ((mode.slot != 0) & (mode.shift != 0))
        # K-chunk accumulation flags: continue (a tile's first step does not clear the
        # accumulators), hold (a tile's last step does not reach the drain)
        acc_continue, acc_hold = mode.acc_continue, mode.acc_hold
        m.d.comb += [self.fabric.shift.eq(shift), self.fabric.rounding.eq(rounding),
                     self.fabric.out_bits.eq(out_bits), self.fabric.seed.eq(seed),
                     self.fabric.row_stride_idx.eq(row_stride_idx)]

        # Range check + deltas, then one address generator for all four streams:
        # A and B rows step every issue; the C row and the flat index per tile.
        check = BoundCheck(COUNT_BITS, AB, cfg.bank_depth, cfg.pe_rows - 1,
                           then_word=CW.BASE_IDX)
        m.submodules.bound_check = check
        issue = LoopNest(K + 1, {"a": AB, "b": AB, "c": AB, "idx": 32},
                         count_bits=COUNT_BITS, still={"c": [K], "idx": [K]})
        assert tuple(issue.streams) == CHECK_STREAMS
        m.submodules.issue_agu = issue
        m.d.comb += [check.cancel.eq(self.abort), check.base_a.eq(base["a"]), check.base_b.eq(base["b"]),
                     check.base_c.eq(base["c"]), check.data.eq(self.prog_data),
                     issue.wr_en.eq(check.delta_wr), issue.wr_stream.eq(check.delta_stream),
                     issue.wr_level.eq(check.delta_level), issue.wr_data.eq(check.delta_data)]
        for i in range(K + 1):
            m.d.comb += [check.n[i].eq(n[i]), issue.n[i].eq(n[i])]
        m.d.comb += [issue.base_a.eq(base["a"]), issue.base_b.eq(base["b"]),
                     issue.base_c.eq(base["c"]), issue.base_idx.eq(self.prog_data),
                     self.a_addr.eq(issue.addr_a), self.b_addr.eq(issue.addr_b)]

        # pc never exceeds prog_depth (DECODE proves each payload fits); payload
        # lengths other than the two valid ones halt in DECODE.
        pc = Signal(range(cfg.prog_depth + 1))
        err_pc = Signal.like(pc)
        error = Signal(8)
        done = Signal()
        length = Signal(range(max(self.n_config, self.timing.contract_words,
                                  MOVE_WORDS, VEC_WORDS, XENT_WORDS, ADAM_WORDS) + 1))
        widx = Signal.like(length)
        tail = Signal(range(self.tail_cycles + 1))
        since_last = Signal(range(D + 1))
        aborting = Signal()         # TAIL drains an aborted run, then IDLE
        cfg_bad = Signal()          # the CONFIG being loaded has an invalid mapping
        have_prev = Signal()
        tile_start = Signal()
        m.d.comb += [self.pc.eq(pc), self.err_pc.eq(err_pc), self.error.eq(error),
                     self.done.eq(done)]

        counters = {name: getattr(self, f"cnt_{name}") for name in
                    ("cycles", "busy", "mac_active", "stall_drain", "stall_fill",
                     "stall_config", "instructions", "move", "vec", "xent", "adam")}
        inc = {name: Signal(name=f"inc_{name}") for name in counters}
        clear = Signal()
        m.d.comb += clear.eq(self.clear & ~self.busy)
        for name, c in counters.items():
            with m.If(clear):
                m.d.sync += c.eq(0)
            with m.Elif(inc[name]):
                m.d.sync += c.eq(c + 1)
        m.d.comb += inc["mac_active"].eq(self.fabric.pe_active)
        with m.If(clear):
            m.d.sync += [error.eq(0), done.eq(0)]
        with m.If(self.bus_error & self.busy & (error == 0)):
            m.d.sync += [error.eq(ErrorCode.BUS_WHILE_BUSY), err_pc.eq(pc)]

        def fail(code):
            return [error.eq(code), err_pc.eq(pc)]

        # room = prog_depth - 1 - pc, kept in step with pc, so DECODE's "payload runs
        # off program memory" test is one compare against the memory's read data.
        room = Signal(signed(len(pc) + 2))

        def set_pc(value):
            return [pc.eq(value), room.eq(cfg.prog_depth - 1 - value)]

        xent = Signal()             # the MOVE-path instruction being run is an XENT
        adam = Signal()             # ... an ADAM
        unit_walk = xent | adam     # the walk steps on a unit's read requests
        # MOVE: the move unit checks and walks; the controller sequences it.
        mv = None
        if cfg.move_unit:
            mv = MoveUnit(cfg)
            m.submodules.move_unit = mv
            assert mv.W <= 32
            m.d.comb += [mv.data.eq(self.prog_data), mv.check_cancel.eq(self.abort),
                         self.mv.rd_en.eq(mv.rd_en), self.mv.rd_buf.eq(mv.rd_buf),
                         self.mv.rd_addr.eq(mv.rd_addr), self.mv.wr_en.eq(mv.wr_en),
                         self.mv.wr_buf.eq(mv.wr_buf), self.mv.wr_addr.eq(mv.wr_addr),
                         self.mv.wr_fill.eq(mv.wr_fill)]
            for name in ("rd2_en", "rd2_addr", "fwd", "index", "vec", "op",
                         "rounding", "out_bits", "seed"):
                m.d.comb += getattr(self.mv, name).eq(getattr(mv, name))
            # a VEC naming a shift slot takes its shift (above VEC_SHIFT_MAX: refused)
            # XENT: the classes, and its labels bit (OP bit 16: the VEC slot field's
            # low bit, which the move unit latches)
            assert XENT_FIELD["labels"].lsb == VEC_FIELD["slot"].lsb
            m.d.comb += [self.mv.classes.eq(mv.classes[:5]), self.mv.labels.eq(mv.slot[0])]
            m.d.comb += [self.v_slot.eq(mv.slot),
                         self.mv.shift.eq(Mux(mv.slot != 0, self.v_slot_shift, mv.shift))]
            vec_slot_bad = mv.vec & ~xent & ~adam & (mv.slot != 0) & \
                (self.v_slot_shift > VEC_SHIFT_MAX)
        move_wait = Signal(range(vec_tail(VecOp.REQUANT) + 1))
        walked = Signal()           # XENT: the walk's last element has been issued
        m.d.comb += [self.xent.eq(xent), self.adam.eq(adam)]
        if mv is not None:
            m.d.comb += [mv.xent.eq(xent), mv.adam.eq(adam)]

        opcode = self.prog_data[0:8]
        plen = self.prog_data[16:32]
        lg = (cfg.n_ce - 1).bit_length()

        def mapping_ok(word):       # ga * gb * gk == n_ce
            return (word[0:4] + word[4:8] + word[8:12]) == lg

        def payload_instruction(words, load_state):
            """DECODE of an instruction with a payload: a length other than ``words``
            halts with BAD_CONFIG, one past program memory with PROGRAM_RANGE; else
            the payload loads in ``load_state``."""
            with m.If(plen != words):
                m.d.sync += fail(ErrorCode.BAD_CONFIG)
                m.next = "IDLE"
            with m.Elif(plen > room):
                m.d.sync += fail(ErrorCode.PROGRAM_RANGE)
                m.next = "IDLE"
            with m.Else():
                m.next = load_state

        def on_abort():
            """At the end of every busy state but TAIL: abort -> drain in TAIL."""
            with m.If(self.abort):
                m.d.sync += [tail.eq(0), aborting.eq(1), done.eq(0),
                             error.eq(ErrorCode.ABORTED), err_pc.eq(pc)]
                m.next = "TAIL"

        with m.FSM(name="ctrl") as fsm:
            m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
            with m.State("IDLE"):
                with m.If(self.start & ~self.clear & ~self.abort):
                    # a start word past the program: pc = prog_depth, FETCH halts with
                    # PROGRAM_RANGE (err_pc = prog_depth)
                    first = Mux(self.start_pc >= cfg.prog_depth, cfg.prog_depth,
                                self.start_pc)
                    m.d.sync += set_pc(first) + [error.eq(0), done.eq(0), self.step_on.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [self.prog_addr.eq(pc), inc["cycles"].eq(1),
                             inc["stall_config"].eq(1)]
                with m.If(pc >= cfg.prog_depth):
                    m.d.sync += fail(ErrorCode.PROGRAM_RANGE)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "DECODE"
                on_abort()
            with m.State("DECODE"):
                m.d.comb += [self.prog_addr.eq(pc + 1), inc["cycles"].eq(1),
                             inc["stall_config"].eq(1), inc["instructions"].eq(1)]
                m.d.sync += [length.eq(plen), widx.eq(0)]
                with m.Switch(opcode):
                    with m.Case(Op.HALT):
                        m.d.sync += done.eq(1)
                        m.next = "IDLE"
                    with m.Case(Op.SYNC):
                        m.d.sync += set_pc(pc + 1)
                        m.next = "FETCH"
                    with m.Case(Op.CONFIG):
                        payload_instruction(self.n_config, "LOAD_CONFIG")
                    with m.Case(Op.CONTRACT):
                        payload_instruction(self.timing.contract_words, "LOAD_CONTRACT")
                    if mv is not None:
                        with m.Case(Op.MOVE):
                            m.d.sync += [xent.eq(0), adam.eq(0)]
                            payload_instruction(MOVE_WORDS, "LOAD_MOVE")
                        with m.Case(Op.VEC):
                            m.d.sync += [xent.eq(0), adam.eq(0)]
                            payload_instruction(VEC_WORDS, "LOAD_MOVE")
                        with m.Case(Op.XENT):
                            m.d.sync += [xent.eq(1), adam.eq(0)]
                            payload_instruction(XENT_WORDS, "LOAD_MOVE")
                        with m.Case(Op.STEP):
                            payload_instruction(STEP_WORDS, "LOAD_STEP")
                        if cfg.adam_entries:
                            with m.Case(Op.ADAM):
                                m.d.sync += [xent.eq(0), adam.eq(1)]
                                payload_instruction(ADAM_WORDS, "LOAD_MOVE")
                    with m.Default():
                        m.d.sync += fail(ErrorCode.ILLEGAL_OPCODE)
                        m.next = "IDLE"
                on_abort()
            with m.State("LOAD_CONFIG"):
                m.d.comb += [self.prog_addr.eq(pc + 2 + widx), inc["cycles"].eq(1),
                             inc["stall_config"].eq(1)]
                m.d.sync += widx.eq(widx + 1)
                # validated before committed: word 0 (the mapping) as it loads
                bad = Mux(widx == 0, ~mapping_ok(self.prog_data), cfg_bad)
                m.d.sync += cfg_bad.eq(bad)
                with m.If(~bad):
                    m.d.sync += cfg_regs[widx].eq(self.prog_data)
                with m.If(widx == length - 1):
                    m.next = "CHECK_CONFIG"
                on_abort()
            with m.State("CHECK_CONFIG"):
                m.d.comb += [inc["cycles"].eq(1), inc["stall_config"].eq(1)]
                with m.If(cfg_bad):
                    m.d.sync += fail(ErrorCode.BAD_CONFIG)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += set_pc(pc + 1 + length)
                    m.next = "FETCH"
                on_abort()
            if mv is not None:         # STEP: with the MOVE unit only
                with m.State("LOAD_STEP"):
                    m.d.comb += [self.prog_addr.eq(pc + 2 + widx), inc["cycles"].eq(1),
                                 inc["stall_config"].eq(1)]
                    m.d.sync += widx.eq(widx + 1)
                    with m.If(widx == 0):
                        m.d.sync += self.step_key.eq(self.prog_data)
                    with m.Else():
                        m.d.sync += self.step_lr.eq(self.prog_data)
                    with m.If(widx == length - 1):
                        m.d.sync += [self.step_on.eq(1)] + set_pc(pc + 1 + length)
                        m.next = "FETCH"
                    on_abort()
            with m.State("LOAD_CONTRACT"):
                m.d.comb += [self.prog_addr.eq(pc + 2 + widx), inc["cycles"].eq(1),
                             inc["stall_config"].eq(1)]
                m.d.sync += widx.eq(widx + 1)
                data = self.prog_data
                # the count field of this word (level words: bits 15..0; the
                # BASE_C_KCOUNT word: k_count in bits 31..16), checked and as n
                bc, ab = word_view(CW.BASE_C_KCOUNT, data), word_view(CW.BASE_AB, data)
                count = Mux(widx == CW.BASE_C_KCOUNT, bc.k_count, word_view(CW.LEVELS, data).count)
                count_bad = (count == 0) | (count > COUNT_MAX)

                def high_bits(v):       # bits of a 16-bit base at or above bank_depth
                    return v[AB:16].any() if AB < 16 else Const(0)

                with m.Switch(widx):
                    with m.Case(CW.MODE):
                        m.d.sync += [mode.eq(word_view(CW.MODE, data)), bad_count.eq(0),
                                     base_oob.eq(0)]
                    with m.Case(CW.BASE_AB):
                        m.d.sync += [base["a"].eq(ab.base_a[0:AB]), base["b"].eq(ab.base_b[0:AB])]
                        with m.If(high_bits(ab.base_a) | high_bits(ab.base_b)):
                            m.d.sync += base_oob.eq(1)
                    with m.Case(CW.BASE_C_KCOUNT):
                        m.d.sync += [base["c"].eq(bc.base_c[0:AB]), n[K].eq(count - 1)]
                        with m.If(high_bits(bc.base_c)):
                            m.d.sync += base_oob.eq(1)
                        with m.If(count_bad):
                            m.d.sync += bad_count.eq(1)
                    with m.Case(CW.ROW_STRIDE_IDX):
                        m.d.sync += row_stride_idx.eq(
                            word_view(CW.ROW_STRIDE_IDX, data).row_stride_idx)
                    for i in range(K):
                        with m.Case(CW.LEVELS + 3 * i):
                            m.d.sync += n[i].eq(count - 1)
                            with m.If(count_bad):
                                m.d.sync += bad_count.eq(1)
                with m.If(widx == length - 1):
                    m.next = "VALIDATE"
                on_abort()
            with m.State("VALIDATE"):
                m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1), inc["stall_fill"].eq(1),
                             self.prog_addr.eq(pc + 1 + check.word)]
                bad = (out_bits < 2) | (out_bits > 16) | (shift >= cfg.acc_bits) | \
                    (rounding == 3) | bad_count | slot_bad
                with m.If(bad):
                    m.d.sync += fail(ErrorCode.BAD_CONFIG)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += check.start.eq(~self.abort)
                    m.next = "CHECK"
                on_abort()
            with m.State("CHECK"):
                m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1), inc["stall_fill"].eq(1),
                             self.prog_addr.eq(pc + 1 + check.word)]
                with m.If(check.done):
                    # prog_data: BASE_IDX (the check's then_word) -> issue.base_idx
                    m.d.comb += self.prog_addr.eq(pc + 1 + CW.SEED)
                    with m.If(check.ok & ~base_oob):
                        m.d.comb += issue.start.eq(1)
                        m.d.sync += [have_prev.eq(0), tile_start.eq(1), since_last.eq(0)]
                        m.next = "RUN"
                    with m.Else():
                        m.d.sync += fail(ErrorCode.ADDRESS_RANGE)
                        m.next = "IDLE"
                on_abort()
            with m.State("RUN"):
                m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1),
                             self.prog_addr.eq(pc + 1 + CW.SEED)]
                tile_last = issue.at_max[K]
                stall = tile_last & have_prev & (since_last < D - 1)
                with m.If(since_last < D):
                    m.d.sync += since_last.eq(since_last + 1)
                with m.If(stall):
                    m.d.comb += inc["stall_drain"].eq(1)
                with m.Else():
                    m.d.comb += [self.rd_en.eq(1), issue.step.eq(1)]
                    m.d.sync += [self.fabric.in_valid.eq(1),
                                 self.fabric.in_first.eq(tile_start & ~acc_continue),
                                 self.fabric.in_last.eq(tile_last & ~acc_hold),
                                 tile_start.eq(tile_last)]
                    with m.If(tile_last):
                        # the tile's C row and flat index travel with its last step
                        m.d.sync += [since_last.eq(0), have_prev.eq(1),
                                     self.fabric.tile_addr.eq(issue.addr_c),
                                     self.fabric.tile_idx.eq(issue.addr_idx)]
                    with m.If(issue.last):
                        m.d.sync += tail.eq(0)
                        m.next = "TAIL"
                on_abort()
            if mv is not None:
                with m.State("LOAD_MOVE"):
                    m.d.comb += [self.prog_addr.eq(pc + 2 + widx), inc["cycles"].eq(1),
                                 inc["stall_config"].eq(1), mv.load.eq(1),
                                 mv.load_word.eq(widx), self.ld.eq(1),
                                 self.ld_word.eq(widx)]
                    m.d.sync += widx.eq(widx + 1)
                    with m.If(widx == length - 1):
                        m.next = "MOVE_VALIDATE"
                    on_abort()
                with m.State("MOVE_VALIDATE"):
                    m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1),
                                 inc["stall_fill"].eq(1), self.prog_addr.eq(pc + 1 + mv.word)]
                    with m.If(mv.bad | vec_slot_bad | (adam & self.a_bad)):
                        m.d.sync += fail(ErrorCode.BAD_CONFIG)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += mv.check_start.eq(~self.abort)
                        m.next = "MOVE_CHECK"
                    on_abort()
                with m.State("MOVE_CHECK"):
                    m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1),
                                 inc["stall_fill"].eq(1), self.prog_addr.eq(pc + 1 + mv.word)]
                    with m.If(mv.check_done):
                        with m.If(mv.check_ok & ~(adam & self.a_range_bad)):
                            m.d.comb += mv.run_start.eq(1)
                            m.d.sync += walked.eq(0)
                            m.next = "MOVE_RUN"
                        with m.Else():
                            m.d.sync += fail(ErrorCode.ADDRESS_RANGE)
                            m.next = "IDLE"
                    on_abort()
                with m.State("MOVE_RUN"):
                    m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1),
                                 inc["move"].eq(~mv.vec), inc["vec"].eq(mv.vec),
                                 inc["xent"].eq(mv.vec & xent), inc["adam"].eq(mv.vec & adam)]
                    with m.If(unit_walk):
                        # the unit requests each read; rows until the walk is done
                        m.d.comb += [mv.step.eq(self.x_step_req & ~walked),
                                     self.x_go.eq(~walked)]
                        with m.If(self.x_step_req & mv.last):
                            m.d.sync += walked.eq(1)
                        with m.If(walked & ~self.x_busy):
                            m.d.sync += move_wait.eq(0)
                            m.next = "MOVE_TAIL"
                    with m.Else():
                        m.d.comb += mv.step.eq(1)
                        with m.If(mv.last):
                            m.d.sync += move_wait.eq(0)
                            m.next = "MOVE_TAIL"
                    on_abort()
                with m.State("MOVE_TAIL"):
                    m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1),
                                 inc["stall_fill"].eq(1)]
                    m.d.sync += move_wait.eq(move_wait + 1)
                    m.d.comb += [self.end_slot.eq(mv.slot), self.end_vote.eq(mv.vote),
                                 self.end_bits.eq(mv.out_bits)]
                    with m.If(move_wait == mv.tail - 1):
                        m.d.comb += self.logged_end.eq(mv.vec & ~adam & ~self.abort)
                        m.d.sync += set_pc(pc + 1 + length)
                        m.next = "FETCH"
                    on_abort()
            with m.State("TAIL"):
                m.d.comb += [inc["cycles"].eq(1), inc["busy"].eq(1), inc["stall_fill"].eq(1),
                             self.prog_addr.eq(pc + 1 + CW.SEED)]
                m.d.sync += tail.eq(tail + 1)
                with m.If(self.abort & ~aborting):
                    m.d.sync += [aborting.eq(1), done.eq(0),
                                 error.eq(ErrorCode.ABORTED), err_pc.eq(pc)]
                with m.If(tail == self.tail_cycles - 1):
                    with m.If(aborting | self.abort):
                        m.d.sync += aborting.eq(0)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.logged_end.eq(1)       # a CONTRACT's last cycle
                        m.d.sync += set_pc(pc + 1 + length)
                        m.next = "FETCH"
        # A plain copy of the state register for waveforms (the FSM's own signal is
        # dumped as a string, which VCD readers such as vcdvcd skip).
        self.fsm_state = Signal(len(fsm.state), name="ctrl_state_code")
        self.state_names = dict(fsm.decoding)
        m.d.comb += self.fsm_state.eq(fsm.state)
        # the output stages' seed: the SEED word, or after a STEP the seed its key
        # derives from it (dither_hash(key, word)), a cycle after the word is read
        with m.If(fsm.ongoing("RUN")):
            m.d.sync += seed_raw.eq(self.prog_data)
        if mv is not None:
            derived = add_dither_hash(m, self.step_key, seed_raw, name="seed_derive")
            m.d.sync += seed.eq(Mux(self.step_on, derived, seed_raw))
        else:                       # no STEP (ice40): the word itself, the same cycle
            m.d.sync += seed.eq(seed_raw)
        # in_valid/first/last are registered: aligned with the buffer read data.
        with m.If(~(fsm.ongoing("RUN") & self.rd_en)):
            m.d.sync += [self.fabric.in_valid.eq(0), self.fabric.in_first.eq(0), self.fabric.in_last.eq(0)]
        return m
