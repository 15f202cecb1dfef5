"""K-chunk accumulation: running a contraction whose reduction is longer than the
buffers hold.

When even one output element's reduction does not fit (its ``ceil(K / gk)`` reduction
steps exceed ``min(bank_depth, COUNT_MAX)`` rows, so output chunking cannot help), the
reduction is split along K and accumulated in the CE array's accumulators:

* the output is cut into **tiles** of one hardware tile each: ``TM = ga*pe_rows``
  values of the lane index ``im``, ``TN = gb*pe_cols`` values of ``in``, one value of
  every other output index;
* the summed indices are cut into **K boxes** (products of index ranges, like
  ``compiler.chunk_plan`` cuts outputs: the first index in ranges as long as fit, or
  fixed to single values and the next one cut) of at most
  ``min(bank_depth, COUNT_MAX) * gk`` elements;
* per tile, one program per K box, each a single one-tile CONTRACT: every box but the
  last sets ``acc_hold`` (the sums stay in the PE accumulators, nothing is written),
  every box but the first sets ``acc_continue`` (its first step adds to them). The
  last box drains the tile through the output stages with the output's own flat
  indices (``idx_strides``), so rounding and the stochastic dither are those of the
  whole contraction.

The accumulators wrap at ``acc_bits`` and addition modulo ``2**acc_bits`` is
associative, so the result is bit-exact under the arithmetic contract. Every program of
a tile uses the same mapping and lane indices (forced), so each partial sum stays in the
same PE. Cycles: the sum of the programs' predicted cycles (``compiler``); the harness
measures the same total.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .compiler import (_choices, _out_strides, chunk_plan, compile_contraction, fits,
                       mappings, predict_cycles)
from ..accel.timing import timing
from ..accel.config import AccelConfig, get_config
from ..arith.einsum_spec import Spec, parse_spec
from ..accel.isa import COUNT_MAX, Mapping

__all__ = ["KChunkPlan", "needs_kchunks", "kchunk_plan", "k_boxes", "predict_total"]


def needs_kchunks(sp: Spec, sizes: dict, cfg: AccelConfig,
                  mapping: Mapping | None = None) -> bool:
    """True when a single output element's contraction does not fit one program (the
    reduction alone is longer than the buffers hold)."""
    one = {**sizes, **{i: 1 for i in sp.out}}
    return _choices(sp, one, cfg, mapping, timing(cfg)) is None


def k_boxes(sp: Spec, sizes: dict, cap: int) -> list[dict]:
    """The summed indices cut into boxes of at most ``cap`` elements: a list of
    ``{index: (start, stop)}`` (indices not named are whole)."""
    ks = list(sp.k)

    def plan(pos):
        rest = math.prod(sizes[i] for i in ks[pos:])
        if rest <= cap:
            return [{}]
        idx = ks[pos]
        inner = rest // sizes[idx]
        step = cap // inner
        if step >= 1:
            n = sizes[idx]
            return [{idx: (s, min(n, s + step))} for s in range(0, n, step)]
        sub = plan(pos + 1)
        return [{idx: (v, v + 1), **r} for v in range(sizes[idx]) for r in sub]

    return plan(0)


@dataclass
class KChunkPlan:
    """How a long-K contraction runs: ``mapping`` and lane indices ``im``/``in_``
    (forced on every program), the output ``tiles`` and ``boxes`` (dicts ``index ->
    (start, stop)``), the full output's flat-index strides ``idx_strides`` and the
    predicted cycles of all ``len(tiles) * len(boxes)`` programs."""
    spec: Spec
    sizes: dict
    mapping: Mapping
    im: str | None
    in_: str | None
    tiles: list
    boxes: list
    idx_strides: dict
    predicted_cycles: int

    @property
    def programs(self) -> int:
        return len(self.tiles) * len(self.boxes)

    def shapes(self, tile: dict, box: dict) -> tuple[list, list]:
        """Operand shapes of the program for ``tile`` and ``box``."""
        r = {**tile, **box}
        sz = {i: (r[i][1] - r[i][0]) if i in r else n for i, n in self.sizes.items()}
        return [sz[i] for i in self.spec.a], [sz[i] for i in self.spec.b]

    def index_offset(self, tile: dict) -> int:
        """Flat output index of the tile's first element."""
        return sum(a * self.idx_strides[i] for i, (a, _) in tile.items())

    def runs(self):
        """``(tile, box, first, last)`` in execution order: tile by tile, every K box of
        a tile in turn (the accumulators hold one tile)."""
        nb = len(self.boxes)
        for tile in self.tiles:
            for j, box in enumerate(self.boxes):
                yield tile, box, j == 0, j == nb - 1


def _tiles(sp: Spec, sizes: dict, im, in_, TM: int, TN: int) -> list[dict]:
    axes = []
    for i in sp.out:
        step = TM if i == im else TN if i == in_ else 1
        axes.append([(i, (s, min(sizes[i], s + step))) for s in range(0, sizes[i], step)])
    return [dict(combo) for combo in itertools.product(*axes)]


def _plan_for(sp, sizes, cfg, mp, im, in_, cost_memo) -> KChunkPlan:
    cap = min(cfg.bank_depth, COUNT_MAX) * mp.gk
    boxes = k_boxes(sp, sizes, cap)
    tiles = _tiles(sp, sizes, im, in_, mp.ga * cfg.pe_rows, mp.gb * cfg.pe_cols)
    plan = KChunkPlan(sp, sizes, mp, im, in_, tiles, boxes, _out_strides(sp, sizes), 0)

    def shape_key(r):
        return tuple((i, b - a) for i, (a, b) in sorted(r.items()))

    tile_counts: dict = {}
    for t in tiles:
        k = shape_key({i: t[i] for i in (im, in_) if i is not None})
        tile_counts[k] = (tile_counts.get(k, (0, t))[0] + 1, t)
    total = 0
    for count, t in tile_counts.values():
        for box in boxes:
            sa, sb = plan.shapes(t, box)
            key = (mp, im, in_, tuple(sa), tuple(sb))
            if key not in cost_memo:
                cost_memo[key] = compile_contraction(sp, sa, sb, cfg, mapping=mp,
                                                     lanes=(im, in_),
                                                     plan_only=True).predicted_cycles
            total += count * cost_memo[key]
    plan.predicted_cycles = total
    return plan


def kchunk_plan(spec, shape_a, shape_b, config="tiny",
                mapping: Mapping | None = None) -> KChunkPlan:
    """The K-chunk plan with the fewest predicted cycles over every mapping (or the
    given one) and every choice of lane indices."""
    cfg = get_config(config)
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    sizes = sp.sizes(shape_a, shape_b)
    maps = [mapping.check(cfg)] if mapping is not None else list(mappings(cfg))
    memo: dict = {}
    best = None
    for mp, im, in_ in itertools.product(maps, list(sp.m) or [None], list(sp.n) or [None]):
        p = _plan_for(sp, sizes, cfg, mp, im, in_, memo)
        if best is None or p.predicted_cycles < best.predicted_cycles:
            best = p
    return best


def predict_total(spec, shape_a, shape_b, config="tiny", mapping: Mapping | None = None):
    """(predicted cycles, number of programs) for any size, split as the harness does:
    one program when it fits, output chunks (``compiler.chunk_plan``) when it does not,
    K chunks (``kchunk_plan``) when the reduction alone does not fit."""
    cfg = get_config(config)
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    sizes = sp.sizes(shape_a, shape_b)
    if fits(sp, shape_a, shape_b, cfg, mapping):
        return predict_cycles(sp, shape_a, shape_b, cfg, mapping), 1
    if needs_kchunks(sp, sizes, cfg, mapping):
        kp = kchunk_plan(sp, shape_a, shape_b, cfg, mapping)
        return kp.predicted_cycles, kp.programs
    total, chunks = 0, chunk_plan(sp, shape_a, shape_b, cfg, mapping)
    memo = {}             # chunks come in a few distinct shapes: predict each once
    for ranges, _ in chunks:
        sa = tuple(ranges[i][1] - ranges[i][0] if i in ranges else sizes[i] for i in sp.a)
        sb = tuple(ranges[i][1] - ranges[i][0] if i in ranges else sizes[i] for i in sp.b)
        if (sa, sb) not in memo:
            memo[sa, sb] = predict_cycles(sp, sa, sb, cfg, mapping)
        total += memo[sa, sb]
    return total, len(chunks)
