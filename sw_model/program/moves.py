"""Layout changes on chip: the MOVE instructions that copy one contraction's result
from C, in the layout its producer wrote, into the A or B layout its consumer reads
(``sw_model/accel/move.py``), so intermediates never cross the host bus.

Layouts come from the compiler itself: ``operand_words`` packs the element numbers
of an operand with the consumer's own ``pack_a``/``pack_b`` (so every word of the
operand's footprint is known to hold element ``e`` or padding), ``result_words``
unpacks the C word numbers with the producer's ``unpack_c``. ``relayout`` pairs them
(source word, destination word) per element and ``nests`` cuts the pairs, in
destination order (or source order, whichever needs fewer instructions), into
strided loop nests of at most ``MOVE_LEVELS`` levels, one MOVE each. A layout with
padding (lanes or rows the consumer reads as 0: padded reduction steps, unused
lanes) is cleared first by one ``fill`` MOVE over its rows, since the rows may hold
an earlier tensor.

Cost (``MovePlan.cycles``): the MOVEs' cycles (``timing.move_cycles`` of each MOVE's
loop counts: fetch, payload and a range check whose length grows with the bits of
its counts, plus one cycle per element or cleared row); CSSE counts it when it costs
a plan in cycles (``sw_model.ttm.csse``).

``relayout_dense`` does the same from a tensor the host wrote densely (row-major, one
element per word): the host writes each element once and the MOVEs lay it out,
replicas and padding included.

``relayout_to_dense`` copies a result out of C densely (element ``e`` at word ``e``).

Members: ``operand_words``, ``result_words``, ``nests``, ``MovePlan``, ``relayout``,
``relayout_dense``, ``relayout_to_dense``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..accel.config import AccelConfig
from ..accel.isa import COUNT_MAX
from ..accel.move import MOVE_LEVELS, Move, MoveLevel, buffer_lanes
from ..accel.timing import timing
from .compiler import CompiledContraction

__all__ = ["operand_words", "result_words", "nests", "MovePlan", "relayout",
           "relayout_dense", "relayout_to_dense"]


def operand_words(cc: CompiledContraction, role: str, shape) -> np.ndarray:
    """Element held by every word of operand ``role`` (``"a"``/``"b"``) of ``cc``,
    row-major over its footprint (``a_rows x a_lanes`` words): the flat index into
    the operand's einsum ``shape``, or -1 for padding."""
    ids = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) + 1
    packed = cc.pack_a(ids) if role == "a" else cc.pack_b(ids)
    return packed.reshape(-1) - 1


def result_words(cc: CompiledContraction) -> np.ndarray:
    """C word (relative to the result's first row) of every output element of ``cc``,
    row-major over the output's einsum shape."""
    n = cc.c_rows * cc.config.c_lanes
    return cc.unpack_c(np.arange(n, dtype=np.int64)).reshape(-1)


def _run_length(s: np.ndarray, d: np.ndarray, i: int) -> int:
    """Length of the constant-stride run of (s, d) pairs from ``i`` (at least 1)."""
    n = len(s)
    if i + 1 >= n:
        return 1
    ds = np.diff(s[i:i + COUNT_MAX])
    dd = np.diff(d[i:i + COUNT_MAX])
    same = (ds == ds[0]) & (dd == dd[0])
    bad = np.flatnonzero(~same)
    return int(bad[0]) + 1 if len(bad) else len(ds) + 1


def nests(s, d, max_levels: int = MOVE_LEVELS) -> list[tuple[int, int, list]]:
    """Cut the pair sequence ``(s[e], d[e])`` into strided loop nests, greedily from
    the front: each nest is ``(s0, d0, levels)`` with ``levels`` ``(count,
    src_stride, dst_stride)`` outermost first, and walks a prefix of what is left in
    order. Exact: the nests together visit exactly the given pairs, in order."""
    s = np.asarray(s, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    out, i, n = [], 0, len(s)
    while i < n:
        c0 = _run_length(s, d, i)
        levels = []
        size = 1
        if c0 > 1:
            levels.append((c0, int(s[i + 1] - s[i]), int(d[i + 1] - d[i])))
            size = c0
        while len(levels) < max_levels and size > 1 and i + 2 * size <= n:
            blk_s, blk_d = s[i:i + size] - s[i], d[i:i + size] - d[i]
            ss, sd = int(s[i + size] - s[i]), int(d[i + size] - d[i])
            c = 1
            while c < COUNT_MAX and i + (c + 1) * size <= n:
                j = i + c * size
                if (s[j] - s[i] != c * ss or d[j] - d[i] != c * sd or
                        not np.array_equal(s[j:j + size] - s[j], blk_s) or
                        not np.array_equal(d[j:j + size] - d[j], blk_d)):
                    break
                c += 1
            if c == 1:
                break
            levels.append((c, ss, sd))
            size *= c
        out.append((int(s[i]), int(d[i]), list(reversed(levels))))
        i += size
    return out


@dataclass(frozen=True)
class MovePlan:
    """The MOVEs of one layout change: ``moves`` in order (a ``fill`` first when the
    destination layout has padding), ``elements`` words copied, ``cycles`` their
    cost on the configuration."""
    moves: tuple
    elements: int
    cycles: int

    def program(self) -> list[int]:
        return [w for mv in self.moves for w in mv.encode()]


def relayout(producer: CompiledContraction, consumer: CompiledContraction, role: str,
             shape, *, src: str = "C", dst: str | None = None, src_row: int = 0,
             dst_row: int = 0) -> MovePlan:
    """MOVEs that copy ``producer``'s result, held in bank ``src`` from row
    ``src_row`` in the producer's C layout, into operand ``role`` of ``consumer``
    (einsum ``shape``), laid out as the consumer reads it from row ``dst_row`` of
    bank ``dst`` (default: A for ``role="a"``, B for ``"b"``)."""
    key = (str(producer.spec), tuple(producer.sizes.items()), producer.mapping,
           producer.im, producer.in_)
    return _moves(key, lambda: result_words(producer), consumer, role, shape, src, dst,
                  src_row, dst_row)


def relayout_dense(consumer: CompiledContraction, role: str, shape, *, src: str = "C",
                   dst: str | None = None, src_row: int = 0,
                   dst_row: int = 0) -> MovePlan:
    """MOVEs that lay out an operand the host wrote densely (element ``e`` of its
    einsum ``shape``, row-major, at word ``e`` of bank ``src`` from row ``src_row``)
    as operand ``role`` of ``consumer`` reads it from row ``dst_row`` of bank ``dst``
    (every replica of an element its layout holds, padding cleared)."""
    n = int(np.prod(shape))
    return _moves(("dense", n), lambda: np.arange(n, dtype=np.int64), consumer, role,
                  shape, src, dst, src_row, dst_row)


def relayout_to_dense(producer: CompiledContraction, *, dst: str, src: str = "C",
                      src_row: int = 0, dst_row: int = 0) -> MovePlan:
    """MOVEs that copy ``producer``'s result, held in bank ``src`` from row ``src_row``
    in the producer's C layout, densely into bank ``dst`` from row ``dst_row``: element
    ``e`` (row-major over the output) at word ``e`` (the layout a VEC reads an operand
    in element order from, e.g. ReLU's mask)."""
    cfg = producer.config
    if not cfg.move_unit:
        raise ValueError(f"config '{cfg.name}' has no MOVE unit (move_unit=False); "
                         f"results travel through the host")
    sw = result_words(producer)
    sl, dl = buffer_lanes(cfg, src), buffer_lanes(cfg, dst)
    tm = timing(cfg)
    moves = tuple(Move(src, dst, s0 + src_row * sl, d0 + dst_row * dl,
                       tuple(MoveLevel(c, ss, sd) for c, ss, sd in levels))
                  for s0, d0, levels in nests(sw, np.arange(sw.size, dtype=np.int64)))
    return MovePlan(moves, int(sw.size), sum(tm.move_cycles(mv.counts) for mv in moves))


def _moves(src_key, src_words, consumer, role, shape, src, dst, src_row,
           dst_row) -> MovePlan:
    """The MOVEs of one layout change: ``src_words()`` gives the source word (relative
    to the source row) of every element, ``src_key`` names that layout for the
    cache."""
    cfg: AccelConfig = consumer.config
    dst = dst or role.upper()
    if not cfg.move_unit:
        raise ValueError(f"config '{cfg.name}' has no MOVE unit (move_unit=False); "
                         f"results travel through the host")
    key = (src_key, str(consumer.spec), tuple(consumer.sizes.items()),
           consumer.mapping, consumer.im, consumer.in_, role,
           tuple(int(x) for x in shape), cfg)
    plan = _CACHE.get(key)
    if plan is None:
        plan = _CACHE[key] = _relayout(src_words(), consumer, role, key[-2], cfg)
    sl, dl = buffer_lanes(cfg, src), buffer_lanes(cfg, dst)
    s_off, d_off = src_row * sl, dst_row * dl
    moves = []
    fill_rows, pairs = plan
    for first in range(0, fill_rows, COUNT_MAX):
        rows = min(COUNT_MAX, fill_rows - first)
        moves.append(Move(src, dst, 0, d_off + first * dl, (MoveLevel(rows, 0, dl),),
                          fill=True))
    tm = timing(cfg)
    n_el = 0
    for s0, d0, levels in pairs:
        lv = tuple(MoveLevel(c, ss, sd) for c, ss, sd in levels)
        mv = Move(src, dst, s0 + s_off, d0 + d_off, lv)
        n_el += mv.elements
        moves.append(mv)
    cycles = sum(tm.move_cycles(mv.counts) for mv in moves)
    return MovePlan(tuple(moves), n_el, cycles)


_CACHE: dict = {}      # layout change at row 0 -> (rows to clear, nests)


def _relayout(src_of, consumer, role, shape, cfg):
    """(rows to clear or 0, nests) of a layout change at row 0 of both banks;
    ``src_of``: element -> source word."""
    held = operand_words(consumer, role, shape)     # dst word -> element or -1
    lanes = cfg.a_lanes if role == "a" else cfg.b_lanes
    dw = np.flatnonzero(held >= 0)
    sw = src_of[held[dw]]
    fill_rows = held.size // lanes if (held < 0).any() else 0
    best = nests(sw, dw)
    order = np.argsort(sw, kind="stable")
    by_src = nests(sw[order], dw[order])
    if len(by_src) < len(best):
        best = by_src
    return fill_rows, tuple((a, b, tuple(c)) for a, b, c in best)
