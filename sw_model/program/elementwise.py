"""Elementwise work on chip: the VEC instructions (``sw_model/accel/vec.py``) that apply
one op of the training recipe to a tensor where it lives, in flight between
contractions — bias add and ReLU's backward mask in place on a result in C, ReLU with
the activation requantization straight from C into the next contraction's operand
layout.

A tensor's elements are numbered row-major over its shape (``e``), the numbering the
recipe's ``requantize`` feeds the stochastic dither. Every element (and every replica
of it, when the destination layout holds several) is one VEC element; the VECs walk
each replica set in element order, so element ``e``'s dither index is ``e`` (the
VEC's ``index_base`` plus its issue count) and all replicas of it get the same word.
``vec_map`` cuts the (source word, destination word) pairs into strided nests
(``moves.nests``), one VEC each, cut where the element numbers stop being
consecutive.

Placement helpers: ``to_operand`` (op from a source layout into operand ``role`` of a
compiled contraction, its padding rows cleared first by a ``fill`` MOVE, as
``moves.relayout`` does), ``in_place`` (a binary op whose ``b`` is the destination
itself).

Cost (``VecPlan.cycles``): ``timing.vec_cycles`` of every VEC plus the fill MOVEs'
``timing.move_cycles``; exact (the RTL's CYCLES).

Members: ``VecPlan``, ``vec_map``, ``to_operand``, ``in_place``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..accel.config import AccelConfig
from ..accel.isa import COUNT_MAX
from ..accel.move import Move, MoveLevel, buffer_lanes
from ..accel.timing import timing
from ..accel.vec import Vec
from .compiler import CompiledContraction
from .moves import nests, operand_words

__all__ = ["VecPlan", "vec_map", "to_operand", "in_place"]


@dataclass(frozen=True)
class VecPlan:
    """Instructions of one elementwise op (``Move`` fills first, then ``Vec``s),
    ``elements`` VEC elements, ``cycles`` their exact cost."""
    instructions: tuple
    elements: int
    cycles: int

    def program(self) -> list[int]:
        return [w for ins in self.instructions for w in ins.encode()]


def _runs(e: np.ndarray):
    """Slices of ``e`` where it counts up by exactly 1."""
    cut = np.flatnonzero(np.diff(e) != 1) + 1
    bounds = [0, *cut.tolist(), len(e)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def vec_map(cfg: AccelConfig, op, elem, src_word, dst_word, *, src: str, dst: str,
            src_row: int = 0, dst_row: int = 0, fill_rows: int = 0, shift: int = 0,
            rounding: str = "floor", out_bits: int = 16, seed: int = 0) -> VecPlan:
    """VECs applying ``op`` to element ``elem[i]``: source word ``src_word[i]`` of bank
    ``src`` (relative to row ``src_row``), result to word ``dst_word[i]`` of ``dst``
    (relative to ``dst_row``). An element may appear several times (replicas); each
    replica set is walked in element order (module docstring). ``fill_rows``: rows of
    ``dst`` from ``dst_row`` cleared first (a layout's padding)."""
    if not cfg.move_unit:
        raise ValueError(f"config '{cfg.name}' has no MOVE unit (move_unit=False); "
                         f"elementwise work runs on the host")
    elem = np.asarray(elem, dtype=np.int64)
    s = np.asarray(src_word, dtype=np.int64)
    d = np.asarray(dst_word, dtype=np.int64)
    if not len(elem) == len(s) == len(d):
        raise ValueError(f"elem, src_word, dst_word of lengths {len(elem)}, {len(s)}, "
                         f"{len(d)}; they must be equal")
    tm = timing(cfg)
    dl = buffer_lanes(cfg, dst)
    s_off, d_off = src_row * buffer_lanes(cfg, src), dst_row * dl
    out, cycles = [], 0
    for first in range(0, fill_rows, COUNT_MAX):
        rows = min(COUNT_MAX, fill_rows - first)
        mv = Move(src, dst, 0, d_off + first * dl, (MoveLevel(rows, 0, dl),), fill=True)
        out.append(mv)
        cycles += tm.move_cycles(mv.counts)
    # replica rank of each pair (0 for an element's first word, 1 for its second...)
    order = np.argsort(elem, kind="stable")
    rank = np.empty_like(elem)
    se = elem[order]
    starts = np.r_[0, np.flatnonzero(np.diff(se)) + 1]
    rank[order] = np.arange(len(se)) - np.repeat(starts, np.diff(np.r_[starts, len(se)]))
    order = np.lexsort((elem, rank))
    elem, s, d = elem[order], s[order], d[order]
    kw = dict(shift=shift, rounding=rounding, out_bits=out_bits, seed=seed)
    for run in _runs(elem):
        at = run.start
        for s0, d0, levels in nests(s[run], d[run]):
            v = Vec(Move(src, dst, s0 + s_off, d0 + d_off,
                         tuple(MoveLevel(c, ss, sd) for c, ss, sd in levels)), op,
                    index_base=int(elem[at]) & 0xFFFFFFFF, **kw)
            out.append(v)
            cycles += tm.vec_cycles(v.counts, v.op)
            at += v.elements
    return VecPlan(tuple(out), len(elem), cycles)


def to_operand(cfg: AccelConfig, op, src_word, consumer: CompiledContraction, role: str,
               shape, *, src: str = "C", src_row: int = 0, dst_row: int = 0,
               **kw) -> VecPlan:
    """``op`` on a tensor of einsum ``shape`` whose element ``e`` is at word
    ``src_word[e]`` of ``src`` (from ``src_row``), written as operand ``role`` of
    ``consumer`` reads it from row ``dst_row`` of bank A (``role="a"``) or B: every
    replica, padding rows cleared first."""
    held = operand_words(consumer, role, shape)     # dst word -> element or -1
    lanes = cfg.a_lanes if role == "a" else cfg.b_lanes
    dw = np.flatnonzero(held >= 0)
    e = held[dw]
    fill_rows = held.size // lanes if (held < 0).any() else 0
    return vec_map(cfg, op, e, np.asarray(src_word, np.int64)[e], dw, src=src,
                   dst=role.upper(), src_row=src_row, dst_row=dst_row,
                   fill_rows=fill_rows, **kw)


def in_place(cfg: AccelConfig, op, a_word, dst_word, *, src: str, dst: str,
             src_row: int = 0, dst_row: int = 0, **kw) -> VecPlan:
    """A binary ``op`` (ADD, MASK) on element ``e``: ``a`` at word ``a_word[e]`` of
    ``src``, ``b`` and the result at word ``dst_word[e]`` of ``dst`` (a broadcast
    operand repeats its words in ``a_word``)."""
    n = len(dst_word)
    return vec_map(cfg, op, np.arange(n, dtype=np.int64), a_word, dst_word, src=src,
                   dst=dst, src_row=src_row, dst_row=dst_row, **kw)
