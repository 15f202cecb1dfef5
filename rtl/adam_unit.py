"""The update unit: fixed-point Adam on chip (the ADAM instruction,
``sw_model/accel/adam.py``), bit-exact with ``sw_model.arith.adam.adam_update``, with
its state memory."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.adam import (ADAM_FIELD, ADAM_FIELDS, ADAM_PIPE, AW, BETA_MAX,
                                       DIV_BITS, DIV_PER_CYCLE, GSHIFT_MAX, OUT_SHIFT_MAX, SQRT_BITS,
                                       SQRT_PER_CYCLE, STEP_SHIFT_MAX, adam_element_cycles,
                                       div_cycles)
from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.isa import COUNT_BITS, used_bits
from fetta.sw_model.accel.move import MOVE_LEVELS, MOVE_FIELD
from fetta.sw_model.accel.shift_slots import SLOT_SHIFT_BITS
from fetta.sw_model.arith.adam import B_SHIFT, R_MAX, STEP_SEED_XOR

from .dither import add_dither_hash
from .divider import SeqDivider

__all__ = ["AdamUnit"]

_E_BITS = 17            # element counts saturate at 2**17 (> the largest state memory)


class AdamUnit(wiring.Component):
    """One Adam update per element (``sw_model.arith.adam``, the recipe's arithmetic)
    and the state memory (``adam_entries`` entries of ``m`` 32 bits, ``v`` 32 bits,
    ``w`` 16 bits).

    Payload: while the controller loads a MOVE-path payload (``load``, ``load_word``,
    ``data``) the unit keeps the ADAM words (``sw_model.accel.adam.AW``) and, from the
    MOVE's level counts, the element count (a running product, saturating at 2**17;
    with ``reduce`` without the innermost level). ``bad``: a field out of range or a
    reserved bit set (with the slot's shift ``slot_shift``: the adjusted ``gshift``
    outside -31..31, a slot above ``shift_slots``); ``range_bad``: entries past the
    state memory. Both are meaningful once the payload has loaded.

    Run: while ``go`` is high the unit updates element after element. An element:
    one start cycle (its state entry ``state_base + e`` is read, ``e`` counting from 0
    while ``go`` is low); ``r`` read requests (``step_req``, one per cycle; the
    caller issues the read, whose gradient word comes back the next cycle with
    ``in_valid`` on ``in_g``), summed; then ``ADAM_PIPE`` = 4 pipeline cycles (align;
    the square and the first product; the first moment and the second product; the
    second moment), the square root (``SQRT_PER_CYCLE`` = 4 root bits per cycle), one
    division setup cycle (the quotient's high part only decides the clip to 2**20, so
    the divider finds the low ``DIV_BITS`` bits from the partial remainder), the
    division (``rtl/divider.py``), the product with the learning rate, and the write
    cycle: the new ``m``, ``v``, ``w`` into the state entry and ``out_valid`` with
    ``out_word`` (the destination word: ``align(w, out_shift, 0, out_bits)``) the next
    cycle (not with ``nowrite``). With ``load`` the reads go straight to the write cycle, which writes no
    state and aligns the stored ``w``. ``adam_element_cycles(r, load)`` cycles per
    element; ``busy`` while an element is in flight.

    Host port (idle only; the top decodes ``hostmap.ADAM_BASE``): ``host_addr`` (entry),
    ``host_k`` (0 m, 1 v, 2 w), ``host_we``, ``host_wdata``; ``host_rdata`` the word
    ``host_k`` of the entry addressed the cycle before (``running`` low).

    STEP (``sw_model/accel/step.py``): with ``step_on`` the seeds are derived from
    SEED0/SEED1 by ``step_key``, and ``lr_step`` takes ``step_lr`` (refused, ``bad``,
    without ``step_on``).

    Members: ``step_on``, ``step_key``, ``step_lr``, ``load``, ``load_word``, ``data``,
    ``slot_shift``, ``bad``, ``range_bad``,
    ``slot``, ``go``, ``step_req``, ``in_valid``, ``in_g``, ``out_valid``,
    ``out_word``, ``busy``, ``running``, ``host_addr``, ``host_k``, ``host_we``,
    ``host_wdata``, ``host_rdata``.
    """

    def __init__(self, config: AccelConfig):
        self.config = cfg = config
        if not cfg.adam_entries:
            raise ValueError(f"config {cfg.name} has no update unit (adam_entries 0)")
        self.entries = cfg.adam_entries
        ab = (self.entries - 1).bit_length()
        super().__init__({
            "load": In(1), "load_word": In(6), "data": In(32),
            "slot_shift": In(SLOT_SHIFT_BITS), "bad": Out(1), "range_bad": Out(1),
            "slot": Out(5),
            "go": In(1), "step_req": Out(1), "in_valid": In(1), "in_g": In(signed(16)),
            "out_valid": Out(1), "out_word": Out(signed(16)), "busy": Out(1),
            "running": In(1),
            "step_on": In(1), "step_key": In(32), "step_lr": In(32),
            "host_addr": In(ab), "host_k": In(2), "host_we": In(1), "host_wdata": In(32),
            "host_rdata": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ab = len(self.host_addr)

        # -- payload fields -----------------------------------------------------------
        words = {w: Signal(32, name=f"aw_{w.name.lower()}") for w in AW}
        with m.If(self.load):
            for w in AW:
                with m.If(self.load_word == int(w)):
                    m.d.sync += words[w].eq(self.data)

        def field(name):
            f = ADAM_FIELD[name]
            v = words[f.word][f.lsb:f.lsb + f.width]
            return v.as_signed() if f.kind == "signed" else v

        reduce_, out_shift, out_bits = field("reduce"), field("out_shift"), field("out_bits")
        load_mode, nowrite = field("load"), field("nowrite")
        w_bits, step_shift = field("w_bits"), field("step_shift")
        gshift, state_base = field("gshift"), field("state_base")
        b1, b2, lr = field("b1"), field("b2"), field("lr")
        index_base = field("index_base")
        # the seeds: SEED0/SEED1, or after a STEP the seeds its key derives from them
        # (registered: steady from the cycle after the words load); the learning
        # rate: LR, or with lr_step the STEP's (refused before any STEP)
        seed0, seed1 = Signal(32), Signal(32)
        for sd, name in ((seed0, "seed0"), (seed1, "seed1")):
            raw = field(name)
            m.d.sync += sd.eq(Mux(self.step_on, add_dither_hash(
                m, self.step_key, raw, name=f"adam_{name}_derive"), raw))
        lr_step = field("lr_step")
        lr = Mux(lr_step, self.step_lr, lr)
        m.d.comb += self.slot.eq(field("slot"))

        # element count: running products of the MOVE's level counts as they load
        p_outer = Signal(_E_BITS + 1)         # levels 0..L-2
        p_all = Signal(_E_BITS + 1)           # all levels
        count_last = Signal(COUNT_BITS + 1)   # the innermost count (``reduce``)
        sat = 1 << _E_BITS
        for i in range(MOVE_LEVELS):
            f = MOVE_FIELD[f"level{i}.count"]
            with m.If(self.load & (self.load_word == f.word)):
                c = self.data[f.lsb:f.lsb + f.width]
                base = C(1, _E_BITS + 1) if i == 0 else p_all
                prod = Signal(_E_BITS + 1 + f.width, name=f"count_prod{i}")
                m.d.comb += prod.eq(base * c)
                new = Mux(prod >= sat, sat, prod)
                m.d.sync += p_all.eq(new)
                if i < MOVE_LEVELS - 1:
                    m.d.sync += p_outer.eq(new)
                else:
                    m.d.sync += count_last.eq(c)
        elements = Mux(reduce_, p_outer, p_all)
        m.d.comb += self.range_bad.eq(state_base + elements > self.entries)

        used = used_bits(ADAM_FIELDS, AW)
        reserved = Cat(*((words[w] & ~used[w] & 0xFFFFFFFF) != 0 for w in AW)).any()
        k_eff = Signal(signed(8))
        m.d.comb += k_eff.eq(gshift + Mux(self.slot != 0, self.slot_shift, 0))
        m.d.comb += self.bad.eq(
            reserved | (out_shift < -OUT_SHIFT_MAX) | (out_bits < 2) | (out_bits > 16) |
            (w_bits < 2) | (w_bits > 16) | (step_shift > STEP_SHIFT_MAX) |
            (gshift < -GSHIFT_MAX) | (b1 > BETA_MAX) | (b2 > BETA_MAX) |
            (self.slot > cfg.shift_slots) | (k_eff < -GSHIFT_MAX) | (k_eff > GSHIFT_MAX) |
            (lr_step & ~self.step_on))

        # -- state memory -------------------------------------------------------------
        mems = {}
        for name, width in (("m", 32), ("v", 32), ("w", 16)):
            mem = Memory(shape=width, depth=self.entries, init=[],
                         attrs={"no_rw_check": 1})
            m.submodules[f"adam_{name}"] = mem
            mems[name] = (mem.read_port(), mem.write_port())
        st_addr = Signal(ab)                  # the element's entry
        idx = Signal(32)                      # the element's dither index
        e = Signal(_E_BITS)
        rd_data = {n: rp.data for n, (rp, _) in mems.items()}
        for n, (rp, _) in mems.items():
            m.d.comb += rp.addr.eq(Mux(self.running, st_addr, self.host_addr))
        host_k = Signal(2)
        m.d.sync += host_k.eq(self.host_k)
        with m.Switch(host_k):
            with m.Case(0):
                m.d.comb += self.host_rdata.eq(rd_data["m"])
            with m.Case(1):
                m.d.comb += self.host_rdata.eq(rd_data["v"])
            with m.Case(2):
                m.d.comb += self.host_rdata.eq(rd_data["w"].as_signed())

        # -- the element datapath -----------------------------------------------------
        R = Signal(COUNT_BITS + 1)            # gradient words per element
        req = Signal(COUNT_BITS + 1)
        got = Signal(COUNT_BITS + 1)
        acc = Signal(signed(33))
        mr, vr, wr = Signal(signed(32)), Signal(33), Signal(signed(16))
        gm = Signal(signed(32))
        g2 = Signal(33)
        pm = Signal(signed(60))
        pv = Signal(signed(62))
        m_new, v_new, w_new = Signal(signed(32)), Signal(33), Signal(signed(16))
        # the three dithers of the element (registered: steady after the start)
        h = [Signal(32, name=f"hash{i}") for i in range(3)]
        for i, sd in enumerate((seed0, seed1, seed1 ^ STEP_SEED_XOR)):
            m.d.sync += h[i].eq(add_dither_hash(m, sd, idx, name=f"adam_dither{i}"))

        # align: gm = sat32(acc << k) or nearest-even acc / 2**-k
        k = Signal(signed(8))
        up = Signal(signed(72))
        m.d.comb += up.eq(acc << k.as_unsigned()[:5])
        s = Signal(6)
        m.d.comb += s.eq((-k).as_unsigned()[:6])
        down = Signal(signed(34))
        q_lsb = (acc >> s)[0]
        m.d.comb += down.eq((acc + ((C(1, 34) << s) >> 1) - (s != 0) + Mux(s != 0, q_lsb, 0))
                            >> s)
        lim = (1 << 31)

        def sat32(x):
            return Mux(x > lim - 1, lim - 1, Mux(x < -lim, -lim, x))

        aligned = Mux(k >= 0, sat32(up), sat32(down))

        # square root: SQRT_PER_CYCLE root bits per cycle (restoring, digit by digit)
        sq_v = Signal(32)
        sq_rem = Signal(19)
        sq_root = Signal(SQRT_BITS)
        sq_n = Signal(range(SQRT_BITS // SQRT_PER_CYCLE + 1))
        rem_c, root_c, vv = sq_rem, sq_root, sq_v
        for j in range(SQRT_PER_CYCLE):
            pair = vv[32 - 2 * (j + 1):32 - 2 * j]
            r_sh = Signal(19, name=f"sq_sh{j}")
            m.d.comb += r_sh.eq(Cat(pair, rem_c[:17]))
            trial = Signal(19, name=f"sq_trial{j}")
            m.d.comb += trial.eq(Cat(C(1, 1), C(0, 1), root_c[:SQRT_BITS]))   # 4 root + 1
            ge = r_sh >= trial
            r_n = Signal(19, name=f"sq_rem{j}")
            root_n = Signal(SQRT_BITS, name=f"sq_root{j}")
            m.d.comb += [r_n.eq(Mux(ge, r_sh - trial, r_sh)),
                         root_n.eq(Cat(ge, root_c[:SQRT_BITS - 1]))]
            rem_c, root_c = r_n, root_n

        # division: q = (|m| << 8 + d // 2) // d, d = root + 1; only q < 2**21 matters
        m.submodules.div = div = SeqDivider(DIV_BITS, 17, DIV_PER_CYCLE)
        assert SeqDivider.LATENCY(DIV_BITS, DIV_PER_CYCLE) == div_cycles(DIV_BITS)
        assert DIV_BITS % DIV_PER_CYCLE == 0 and (1 << DIV_BITS) > R_MAX
        dden = Signal(17)
        m.d.comb += dden.eq(sq_root + 1)
        mag = Signal(32)
        m.d.comb += mag.eq(Mux(m_new < 0, -m_new, m_new))
        num = Signal(42)
        m.d.comb += num.eq((mag << 8) + (dden >> 1))
        hi_part = num[DIV_BITS:]
        ovf = Signal()
        neg = Signal()
        m.d.comb += [div.a.eq(num[:DIV_BITS]), div.d.eq(dden),
                     div.r0.eq(Mux(hi_part >= dden, 0, hi_part))]
        ratio = Signal(signed(23))
        q_mag = Mux(ovf | (div.q > R_MAX), R_MAX, div.q)
        m.d.comb += ratio.eq(Mux(neg, -q_mag, q_mag))
        prod = Signal(signed(56))

        # the step: round_s(prod, step_shift; hash2), w' = sat(w - step)
        sh = step_shift
        dith = Signal(64)
        with m.If(sh == 0):
            m.d.comb += dith.eq(0)
        with m.Elif(sh <= 32):
            m.d.comb += dith.eq(h[2] >> (32 - sh)[:6])
        with m.Else():
            m.d.comb += dith.eq(h[2] << (sh - 32)[:5])
        stepv = Signal(signed(66))
        m.d.comb += stepv.eq((prod + dith) >> sh)
        wdiff = Signal(signed(68))
        m.d.comb += wdiff.eq(wr - stepv)
        whi = Signal(signed(17))
        m.d.comb += whi.eq((C(1, 17) << (w_bits - 1)[:4]) - 1)
        w_sat = Mux(wdiff > whi, whi, Mux(wdiff < -whi - 1, -whi - 1, wdiff))
        m.d.comb += w_new.eq(w_sat)
        # the destination word: align(w, out_shift, 0, out_bits): nearest-even
        # w / 2**out_shift, or w << -out_shift; saturated to out_bits (with ``load``
        # the stored w)
        w_out = Signal(signed(16))
        m.d.comb += w_out.eq(Mux(load_mode, rd_data["w"].as_signed(), w_new))
        os_ = out_shift.as_unsigned()[:4]
        ls_ = (-out_shift).as_unsigned()[:4]
        o_lsb = (w_out >> os_)[0]
        o_r = Signal(signed(34))
        with m.If(out_shift >= 0):
            m.d.comb += o_r.eq((w_out + ((C(1, 17) << os_) >> 1) - (os_ != 0)
                                + Mux(os_ != 0, o_lsb, 0)) >> os_)
        with m.Else():
            m.d.comb += o_r.eq(w_out << ls_)
        ohi = Signal(signed(17))
        m.d.comb += ohi.eq((C(1, 17) << (out_bits - 1)[:4]) - 1)
        o_sat = Mux(o_r > ohi, ohi, Mux(o_r < -ohi - 1, -ohi - 1, o_r))

        for n, (_, wp) in mems.items():
            m.d.comb += [wp.addr.eq(Mux(self.running, st_addr, self.host_addr))]
        m.d.comb += [mems["m"][1].data.eq(Mux(self.running, m_new, self.host_wdata)),
                     mems["v"][1].data.eq(Mux(self.running, v_new, self.host_wdata)),
                     mems["w"][1].data.eq(Mux(self.running, w_new, self.host_wdata))]
        host_en = self.host_we & ~self.running
        m.d.comb += [mems["m"][1].en.eq(host_en & (self.host_k == 0)),
                     mems["v"][1].en.eq(host_en & (self.host_k == 1)),
                     mems["w"][1].en.eq(host_en & (self.host_k == 2))]

        with m.If(~self.go & ~self.busy):
            m.d.sync += e.eq(0)
        m.d.sync += self.out_valid.eq(0)
        vmax = (1 << 32) - 1
        with m.FSM(name="adam"):
            m.d.comb += self.busy.eq(1)
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.go):
                    m.d.sync += [st_addr.eq(state_base + e), idx.eq(index_base + e),
                                 e.eq(e + 1), R.eq(Mux(reduce_, count_last, 1)),
                                 req.eq(0), got.eq(0), acc.eq(0), k.eq(k_eff)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.step_req.eq(req < R)
                with m.If(req < R):
                    m.d.sync += req.eq(req + 1)
                with m.If(self.in_valid):
                    m.d.sync += [acc.eq(acc + self.in_g), got.eq(got + 1)]
                    with m.If(got == R - 1):
                        m.next = "ALIGN"
                        with m.If(load_mode):
                            m.next = "WRITE"
            with m.State("ALIGN"):
                m.d.sync += [gm.eq(aligned), mr.eq(rd_data["m"].as_signed()),
                             vr.eq(rd_data["v"]), wr.eq(rd_data["w"].as_signed())]
                m.next = "SQ"
            with m.State("SQ"):
                sq = Signal(64)
                m.d.comb += sq.eq(gm * gm)
                m.d.sync += [g2.eq(Mux(sq[16:] > vmax, vmax, sq[16:])),
                             pm.eq((gm - mr) * b1)]
                m.next = "MV"
            with m.State("MV"):
                mv_ = Signal(signed(40))
                m.d.comb += mv_.eq(mr + ((pm + (h[0] >> (32 - B_SHIFT))) >> B_SHIFT))
                m.d.sync += [m_new.eq(sat32(mv_)),
                             pv.eq((g2.as_signed() - vr.as_signed()) * b2)]
                m.next = "V"
            with m.State("V"):
                vv_ = Signal(signed(40))
                m.d.comb += vv_.eq(vr.as_signed() + ((pv + (h[1] >> (32 - B_SHIFT)))
                                                     >> B_SHIFT))
                v_c = Mux(vv_ < 0, 0, Mux(vv_ > vmax, vmax, vv_))
                m.d.sync += [v_new.eq(v_c), sq_v.eq(v_c), sq_rem.eq(0), sq_root.eq(0),
                             sq_n.eq(0)]
                m.next = "SQRT"
            with m.State("SQRT"):
                m.d.sync += [sq_rem.eq(rem_c), sq_root.eq(root_c),
                             sq_v.eq(sq_v << (2 * SQRT_PER_CYCLE)), sq_n.eq(sq_n + 1)]
                with m.If(sq_n == SQRT_BITS // SQRT_PER_CYCLE - 1):
                    m.next = "DIVSET"
            with m.State("DIVSET"):
                m.d.comb += div.start.eq(1)
                m.d.sync += [ovf.eq(hi_part >= dden), neg.eq(m_new < 0)]
                m.next = "DIV"
            with m.State("DIV"):
                with m.If(div.done):
                    m.next = "STEP"
            with m.State("STEP"):
                m.d.sync += prod.eq(ratio * lr)
                m.next = "WRITE"
            with m.State("WRITE"):
                for n in ("m", "v", "w"):
                    m.d.comb += mems[n][1].en.eq(~load_mode)
                m.d.sync += [self.out_valid.eq(~nowrite), self.out_word.eq(o_sat)]
                m.next = "IDLE"
        assert adam_element_cycles(1) == 1 + 2 + ADAM_PIPE + SQRT_BITS // SQRT_PER_CYCLE \
            + 1 + div_cycles(DIV_BITS) + 2
        assert adam_element_cycles(1, load=True) == 1 + 2 + 1
        return m
