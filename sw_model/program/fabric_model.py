"""Functional (untimed) model of the fabric running a compiled program.

It executes CONFIG/CONTRACT instructions the way the RTL does, with the same switch
settings (``routing.apply_distribution`` / ``apply_reduction``), the same per-CE outer
products, wrap-around accumulators and the shared output stage fed by the flat index
the drain address generator computes. Used to evaluate mappings without RTL and
tested against the RTL (``tests/sw_model/program/test_fabric_model.py``).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..accel import routing
from ..accel.config import AccelConfig
from ..arith.fixedpoint import ROUNDING_MODES, Pow2Code, output_stage, wrap
from ..accel.isa import (CONTRACT_WORDS, CW, MODE_CONTINUE, MODE_HOLD, N_LEVELS, Op,
                         config_layout, decode_header)

__all__ = ["run_program"]


def _s16(v):
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def _join(words):
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


def run_program(cfg: AccelConfig, program, a_rows, b_rows, c_rows=None,
                state: dict | None = None) -> np.ndarray:
    """Run ``program`` on buffer contents ``a_rows`` (rows x a_lanes) and ``b_rows``;
    returns the C buffer (bank_depth x c_lanes) after the program halts.

    ``state`` (a dict, updated in place) carries the PE accumulators (``"acc"``,
    ``n_ce x pe_rows x pe_cols`` wrap-around sums) from one program to the next, as
    the hardware keeps them: a CONTRACT with ``acc_continue`` starts its tiles from
    them, one with ``acc_hold`` leaves its last tile in them and writes nothing."""
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
    pc = 0
    while True:
        op, n = decode_header(program[pc])
        payload = program[pc + 1: pc + 1 + n]
        if op == Op.HALT:
            return c_buf
        if op == Op.SYNC:
            pc += 1
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
        elif op == Op.CONTRACT:
            assert n == CONTRACT_WORDS
            w = payload
            mode = w[CW.MODE]
            shift, rnd, out_bits = mode & 0x3F, (mode >> 6) & 3, (mode >> 8) & 0x1F
            cont, hold = bool(mode & MODE_CONTINUE), bool(mode & MODE_HOLD)
            seed = w[CW.SEED]
            base_a, base_b = w[CW.BASE_AB] & 0xFFFF, w[CW.BASE_AB] >> 16
            base_c, k_count = w[CW.BASE_C_KCOUNT] & 0xFFFF, w[CW.BASE_C_KCOUNT] >> 16
            k_sa, k_sb = _s16(w[CW.KSTRIDE]), _s16(w[CW.KSTRIDE] >> 16)
            levels = []
            for i in range(N_LEVELS):
                w0, w1, w2 = w[CW.LEVELS + 3 * i: CW.LEVELS + 3 * i + 3]
                levels.append((w0 & 0xFFFF, _s16(w0 >> 16), _s16(w1), _s16(w1 >> 16), w2))
            for ctr in itertools.product(*[range(lv[0]) for lv in levels]):
                ra = base_a + sum(c * lv[1] for c, lv in zip(ctr, levels))
                rb = base_b + sum(c * lv[2] for c, lv in zip(ctr, levels))
                rc = base_c + sum(c * lv[3] for c, lv in zip(ctr, levels))
                idx0 = w[CW.BASE_IDX] + sum(c * lv[4] for c, lv in zip(ctr, levels))
                acc = state.get("acc", np.zeros((n_ce, R, C), dtype=np.int64)).copy() \
                    if cont else np.zeros((n_ce, R, C), dtype=np.int64)
                for k in range(k_count):
                    av = routing.apply_distribution(cfg.a_lanes, settings["a"],
                                                    list(a_buf[ra + k * k_sa]))
                    bv = routing.apply_distribution(cfg.b_lanes, settings["b"],
                                                    list(b_buf[rb + k * k_sb]))
                    av = np.array([_s16(int(x)) for x in av], dtype=np.int64)
                    bv = np.array(bv, dtype=np.int64) & 0xFFFF
                    bv = code.decode(bv & ((1 << cfg.pow2_bits) - 1)) if code else \
                        np.array([_s16(int(x)) for x in bv], dtype=np.int64)
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
                    index = (idx0 + r * w[CW.ROW_STRIDE_IDX] + settings["lane_index"]) \
                        & 0xFFFFFFFF
                    c_buf[rc + r] = output_stage(summed, shift=shift,
                                                 rounding=ROUNDING_MODES[rnd],
                                                 out_bits=out_bits, seed=seed,
                                                 acc_bits=cfg.acc_bits, index=index)
        else:
            raise ValueError(f"illegal opcode {op:#x} at program word {pc}")
        pc += 1 + n
