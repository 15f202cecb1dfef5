"""Functional (untimed) model of the fabric running a compiled program.

It executes CONFIG/CONTRACT instructions the way the RTL does, with the same switch
settings (``routing.apply_distribution`` / ``apply_reduction``), the same per-CE outer
products, wrap-around accumulators and the shared output stage fed by the flat index
the drain address generator computes. Used to evaluate mappings without RTL and
tested against the RTL (``tests/sw_model/program/test_fabric_model.py``).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ..accel import routing
from ..accel.config import AccelConfig
from ..arith.fixedpoint import Pow2Code, output_stage, wrap
from ..accel.isa import Contract, Op, config_layout, decode_header
from ..accel.move import Move, run_move
from ..accel.shift_slots import SlotFile
from ..accel.vec import Vec, run_vec
from ..accel.xent import XENT_LOSS_BITS, Xent, run_xent
from ..accel.adam import Adam, AdamState, run_adam
from ..accel.step import StepParams, derive

__all__ = ["run_program"]


def _join(words):
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


def run_program(cfg: AccelConfig, program, a_rows, b_rows, c_rows=None,
                state: dict | None = None) -> np.ndarray:
    """Run ``program`` on buffer contents ``a_rows`` (rows x a_lanes) and ``b_rows``;
    returns the C buffer (bank_depth x c_lanes) after the program halts.

    ``state`` (a dict, updated in place) carries the PE accumulators (``"acc"``,
    ``n_ce x pe_rows x pe_cols`` wrap-around sums) from one program to the next, as
    the hardware keeps them: a CONTRACT with ``acc_continue`` starts its tiles from
    them, one with ``acc_hold`` leaves its last tile in them and writes nothing.
    MOVE instructions copy between the buffers (``sw_model.accel.move.run_move``),
    VEC instructions apply the vector ALU along the way (``sw_model.accel.vec.run_vec``);
    ``state["maxlog"]`` lists, per CONTRACT and VEC in order, the largest |word| it
    wrote (a CONTRACT: its rows' result lanes, ``ga*gb*pe_cols``; 0 with ``acc_hold``),
    what the RTL's max log holds (``Reg.MAXLOG``); ``state["slots"]`` (a
    ``shift_slots.SlotFile``, kept from one program to the next like the hardware's)
    gives a CONTRACT or VEC that names a slot its shift and takes its vote at its end;
    an instruction the controller refuses with ``BAD_CONFIG`` raises ValueError;
    XENT instructions run ``sw_model.accel.xent.run_xent`` (``state["xent_correct"]``:
    their rows with argmax == label, ``Reg.XENT_CORRECT``; ``state["xent_loss"]``:
    their loss sum, ``Reg.XENT_LOSS``); ADAM instructions run
    ``sw_model.accel.adam.run_adam`` on ``state["adam"]`` (an ``AdamState``, kept from
    one program to the next like the hardware's state memory); a STEP
    (``sw_model.accel.step``) makes every later seed of the program an index the
    STEP's key derives the seed from, and serves ADAMs with ``lr_step`` its rate;
    after HALT ``state["A"]``, ``state["B"]`` hold the A and B buffers."""
    state = {} if state is None else state
    R, C, n_ce = cfg.pe_rows, cfg.pe_cols, cfg.n_ce
    red_bits = routing.reduction_n_switch_bits(cfg.c_lanes)
    lay = config_layout(cfg, red_bits)
    a_buf = np.zeros((cfg.bank_depth, cfg.a_lanes), dtype=np.int64)
    b_buf = np.zeros((cfg.bank_depth, cfg.b_lanes), dtype=np.int64)
    a_buf[:len(a_rows)] = a_rows
    b_buf[:len(b_rows)] = b_rows
    c_buf = np.zeros((cfg.bank_depth, cfg.c_lanes), dtype=np.int64) if c_rows is None \
        else np.array(c_rows, dtype=np.int64)
    code = Pow2Code(cfg.pow2_bits) if cfg.mac_kind == "shift" else None
    settings = None
    used = cfg.c_lanes
    maxlog = state["maxlog"] = []
    step = None                      # the program's STEP so far (START clears it)
    state["xent_correct"] = 0
    state["xent_loss"] = 0
    slots = state.get("slots")
    if slots is None:
        slots = state["slots"] = SlotFile(cfg)
    pc = 0
    while True:
        op, n = decode_header(program[pc])
        payload = program[pc + 1: pc + 1 + n]
        if op == Op.HALT:
            state["A"], state["B"] = a_buf, b_buf
            return c_buf
        if op == Op.SYNC:
            pc += 1
            continue
        if op == Op.STEP and cfg.move_unit:
            step = StepParams.decode(payload)
            pc += 1 + n
            continue
        if op == Op.CONFIG:
            def field(name):
                first, cnt = lay[name]
                return payload[first:first + cnt]
            settings = dict(
                a=routing.unpack_distribution(cfg.a_lanes, _join(field("a_net"))),
                b=routing.unpack_distribution(cfg.b_lanes, _join(field("b_net"))),
                red=routing.unpack_reduction(cfg.c_lanes, _join(field("red_net"))),
                lane_index=np.array(field("lane_index"), dtype=np.int64))
            mword = int(field("mapping")[0])
            used = (1 << (mword & 0xF)) * (1 << ((mword >> 4) & 0xF)) * C
        elif op == Op.CONTRACT:
            c = Contract.decode(payload)
            largest = 0
            slots.check(c.slot, c.vote, c.shift)
            shift, rnd, out_bits = slots.shift(c.slot, c.shift), c.rounding, c.out_bits
            if shift >= cfg.acc_bits:
                raise ValueError(f"CONTRACT shift {shift} (slot {c.slot}) out of range; "
                                 f"allowed 0..{cfg.acc_bits - 1}")
            cont, hold = c.acc_continue, c.acc_hold
            seed = c.seed if step is None else derive(step.key, c.seed)
            levels = c.levels
            for ctr in itertools.product(*[range(lv.count) for lv in levels]):
                ra = c.base_a + sum(i * lv.stride_a for i, lv in zip(ctr, levels))
                rb = c.base_b + sum(i * lv.stride_b for i, lv in zip(ctr, levels))
                rc = c.base_c + sum(i * lv.stride_c for i, lv in zip(ctr, levels))
                idx0 = c.base_idx + sum(i * lv.stride_idx for i, lv in zip(ctr, levels))
                acc = state.get("acc", np.zeros((n_ce, R, C), dtype=np.int64)).copy() \
                    if cont else np.zeros((n_ce, R, C), dtype=np.int64)
                for k in range(c.k_count):
                    av = routing.apply_distribution(cfg.a_lanes, settings["a"],
                                                    list(a_buf[ra + k * c.k_stride_a]))
                    bv = routing.apply_distribution(cfg.b_lanes, settings["b"],
                                                    list(b_buf[rb + k * c.k_stride_b]))
                    av = wrap(np.array(av, dtype=np.int64), 16)
                    bv = np.array(bv, dtype=np.int64) & 0xFFFF
                    bv = code.decode(bv & ((1 << cfg.pow2_bits) - 1)) if code else \
                        wrap(bv, 16)
                    acc += av.reshape(n_ce, R, 1) * bv.reshape(n_ce, 1, C)
                acc = wrap(acc, cfg.acc_bits)
                state["acc"] = acc
                if hold:
                    continue
                for r in range(R):
                    lanes = acc[:, r, :].reshape(-1)
                    summed = np.array(routing.apply_reduction(
                        cfg.c_lanes, settings["red"], [int(x) for x in lanes],
                        cfg.acc_bits), dtype=np.int64)
                    index = (idx0 + r * c.row_stride_idx + settings["lane_index"]) \
                        & 0xFFFFFFFF
                    c_buf[rc + r] = output_stage(summed, shift=shift,
                                                 rounding=rnd,
                                                 out_bits=out_bits, seed=seed,
                                                 acc_bits=cfg.acc_bits, index=index)
                    largest = max(largest, int(np.abs(c_buf[rc + r][:used]).max()))
            maxlog.append(largest)
            slots.end(c.slot, c.vote, largest, out_bits)
        elif op == Op.XENT and cfg.move_unit:
            written, ok, loss = run_xent(cfg, Xent.decode(payload),
                                         {"A": a_buf, "B": b_buf, "C": c_buf})
            maxlog.append(int(np.abs(written).max()))
            state["xent_correct"] = state.get("xent_correct", 0) + ok
            state["xent_loss"] = (state.get("xent_loss", 0) + loss) % (1 << XENT_LOSS_BITS)
        elif op == Op.ADAM and cfg.adam_entries:
            x = Adam.decode(payload)
            if "adam" not in state:
                state["adam"] = AdamState(cfg)
            slots.check(x.slot, 0, 0)
            run_adam(cfg, x, {"A": a_buf, "B": b_buf, "C": c_buf}, state["adam"],
                     slot_shift=slots.shift(x.slot, 0), step=step)
        elif op == Op.MOVE and cfg.move_unit:
            run_move(cfg, Move.decode(payload), {"A": a_buf, "B": b_buf, "C": c_buf})
        elif op == Op.VEC and cfg.move_unit:
            v = Vec.decode(payload)
            if step is not None:
                v = dataclasses.replace(v, seed=derive(step.key, v.seed))
            slots.check(v.slot, v.vote, v.shift)
            written = run_vec(cfg, v, {"A": a_buf, "B": b_buf, "C": c_buf},
                              shift=slots.shift(v.slot, v.shift))
            maxlog.append(int(np.abs(written).max()))
            slots.end(v.slot, v.vote, maxlog[-1], v.out_bits)
        else:
            raise ValueError(f"illegal opcode {op:#x} at program word {pc}")
        pc += 1 + n
