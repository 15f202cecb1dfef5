"""Costs of pairwise contraction steps and the per-node table of admissible splits.

A cost is a callable ``cost(spec, shape_a, shape_b)`` for one pairwise step, or None
for MACs (``plan.pairwise_macs``: the product of the sizes of all indices of both
operands). ``cycles_cost(config)`` is the accelerator's cycle model as a cost
(``sw_model.program.compiler.predict_cycles``, imported lazily), costing a contraction
that does not fit the buffers as the harness splits it into chunks.

``SplitTable`` holds, for every node (leaf-set bitmask) of a ``StepNetwork``, its
admissible splits ``(cost, a, b)`` sorted by cost (both operand orders tried under a
callable cost; the cheaper is kept), each node's independent optimum ``h`` and its
split ``hsplit`` (exact DP over all splits), the cheapest split ``minsplit`` and the
cost of every pair ``pair``. ``cap`` (elements) excludes non-output intermediates
larger than it.
"""

from __future__ import annotations

import math
from typing import Callable

from .step_network import StepNetwork

__all__ = ["CostFn", "cycles_cost", "SplitTable"]

CostFn = Callable[[str, tuple, tuple], float]


def cycles_cost(config="tiny", resident: bool = False) -> CostFn:
    """The accelerator cycle model as a CSSE cost, for preset/config ``config``.

    ``resident=True`` costs the resident dataflow: every intermediate (a node that is
    not a network's root) is moved on chip from C into its consumer's layout, costed
    as one MOVE of its elements in one loop level (``cost.move_cost(elements)``:
    ``timing.move_cycles((elements,))``; a lower bound: the range check of any nest
    of that many elements takes at least as many Horner steps, and the exact relayout
    may take more MOVEs and a fill of the padding, ``sw_model.program.moves``), added
    by ``SplitTable``, so the search weighs a plan's moves against its compute.

    Calls ``sw_model.program.compiler.predict_cycles(spec, shape_a, shape_b, config)`` (imported
    lazily; ValueError if the compiler is not importable). A contraction that does not
    fit the buffers in one program is costed as the harness runs it: split along output
    indices exactly like ``compiler.chunk_plan`` (bisection on the first output index,
    then recursing with it fixed), summing ``predict_cycles`` over the chunks. Chunks of
    one shape have one cost, so the sum is taken over distinct shapes times their count
    (``kchunk.predict_total`` gives the same number by enumerating every chunk, which
    is far too slow for a search). A contraction whose single output element does not
    fit is costed as K chunks (``kchunk.kchunk_plan``)."""
    try:
        from ..program.compiler import fits, predict_cycles
    except ImportError as exc:
        raise ValueError(f"cost 'cycles' needs sw_model.program.compiler.predict_cycles, which is "
                         f"not importable ({exc}); pass cycle_cost=<callable>") from None
    from ..accel.config import get_config
    from ..arith.einsum_spec import parse_spec
    cfg = get_config(config)

    def cost(spec, shape_a, shape_b):
        sp = parse_spec(spec)
        sizes = sp.sizes(shape_a, shape_b)
        memo: dict = {}

        def shapes(sz):
            return [sz[i] for i in sp.a], [sz[i] for i in sp.b]

        def fit(sz):
            key = tuple(sorted(sz.items()))
            if key not in memo:
                memo[key] = fits(sp, *shapes(sz), cfg)
            return memo[key]

        def cyc(sz):
            return predict_cycles(sp, *shapes(sz), cfg)

        def total(sz, pos):
            if fit(sz):
                return cyc(sz)
            if pos >= len(sp.out):
                return math.inf           # unreachable: K chunks are costed first
            idx = sp.out[pos]
            n = sz[idx]
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fit({**sz, idx: mid}):
                    lo = mid
                else:
                    hi = mid - 1
            if lo >= 1:
                whole, rem = divmod(n, lo)
                c = whole * cyc({**sz, idx: lo})
                return c + (cyc({**sz, idx: rem}) if rem else 0)
            return n * total({**sz, idx: 1}, pos + 1)

        if not fit({**sizes, **{i: 1 for i in sp.out}}):
            # the reduction alone does not fit: K chunks (kchunk.kchunk_plan)
            from ..program.kchunk import kchunk_plan
            return kchunk_plan(sp, *shapes(sizes), cfg).predicted_cycles
        return total(sizes, 0)
    if resident:
        if not cfg.move_unit:
            raise ValueError(f"cost 'cycles' with resident=True needs a MOVE unit; config "
                             f"'{cfg.name}' has move_unit=False")
        from ..accel.timing import timing
        tm = timing(cfg)
        cost.move_cost = lambda elements: tm.move_cycles((elements,))
    return cost


class SplitTable:
    """Per node: its admissible splits ``(cost, a, b)`` sorted by cost, ``a`` the first
    operand. ``cap`` (elements) excludes non-output intermediates larger than it."""

    def __init__(self, net: StepNetwork, cost_fn: CostFn | None, cap: int | None = None,
                 cache: dict | None = None):
        self.net = net
        self.cap = cap
        roots = set(net.roots.values())
        self.allowed = [False] * (1 << net.n)
        for s in range(1, net.full):
            self.allowed[s] = (net.is_leaf(s) or s in roots or cap is None
                               or net.elements(s) <= cap)
        cache = {} if cache is None else cache

        def pair_cost(a, b):
            """(cost, first operand, second operand) of contracting nodes a and b."""
            if cost_fn is None:
                return (net.macs(a, b), a, b)
            best = None
            for p, q in ((a, b), (b, a)):
                key = (net.spec(p, q), net.shape(p), net.shape(q))
                c = cache.get(key)
                if c is None:
                    c = cache[key] = cost_fn(*key)
                if best is None or c < best[0]:
                    best = (c, p, q)
            if best[0] == math.inf:
                return None
            move = getattr(cost_fn, "move_cost", None)
            if move is not None and (a | b) not in roots:
                best = (best[0] + move(net.elements(a | b)), best[1], best[2])
            return best

        self.splits: dict[int, list[tuple[float, int, int]]] = {}
        for s in range(1, net.full):
            if net.is_leaf(s) or not self.allowed[s]:
                continue
            lst = []
            sub = (s - 1) & s
            while sub:
                o = s ^ sub
                if sub < o and self.allowed[sub] and self.allowed[o]:
                    # First operand: the side holding the lowest-numbered leaf.
                    a, b = (sub, o) if (sub & -sub) < (o & -o) else (o, sub)
                    t = pair_cost(a, b)
                    if t is not None:
                        lst.append(t)
                sub = (sub - 1) & s
            lst.sort(key=lambda t: (t[0], -max(t[1], t[2]).bit_count()))
            self.splits[s] = lst
        # Independent optimum of every node (exact DP over all splits).
        self.h: dict[int, float] = {}
        self.hsplit: dict[int, tuple[int, int]] = {}
        for s in sorted(self.splits, key=int.bit_count):
            best = None
            for c, a, b in self.splits[s]:
                ca = 0 if net.is_leaf(a) else self.h.get(a)
                cb = 0 if net.is_leaf(b) else self.h.get(b)
                if ca is None or cb is None:
                    continue
                v = c + ca + cb
                if best is None or v < best[0]:
                    best = (v, a, b)
            if best is not None:
                self.h[s] = best[0]
                self.hsplit[s] = (best[1], best[2])
        self.minsplit = {s: lst[0][0] for s, lst in self.splits.items() if lst}
        self.pair = {}
        for lst in self.splits.values():
            for t in lst:
                self.pair[(t[1], t[2]) if t[1] < t[2] else (t[2], t[1])] = t
