"""Contraction sequence search engine (CSSE) for TTM training steps.

Finds, for one TTM layer, the pairwise contraction orders of every network of a
training step (forward ``y``, input gradient ``dx``, core gradients ``dg1..dgd``; see
``sw_model.ttm.plan.networks``) and emits them as one ``sw_model.ttm.plan.Plan``.

The key structural fact
-----------------------
Add the missing tensor to any network of the step and you get the same *closed*
network ``{x, dy, g1..gd}`` in which every index appears in exactly two tensors
(``z``: x,dy; ``n_k``: x,g_k; ``m_k``: dy,g_k; ``r_k``: g_k,g_{k+1}); each network's
output is the index set of the one tensor it leaves out. So the result of contracting a
subset ``S`` of the leaves is the same tensor in every network that contains ``S``: its
indices are the cut between ``S`` and the rest of the closed network. An intermediate is
identified by its leaf set alone, which makes reuse across networks (forward partial
products reused by core gradients, left/right environments, ``g_i g_j`` products shared by
``y`` and ``dx``) a matter of computing a leaf set once.

Searches
--------
* ``optimal_order``: exact DP over subsets for one network, over *all* pairwise trees
  (outer products included), under a pluggable cost.
* ``joint_search``: minimum total cost of the whole step when every distinct
  intermediate is computed once (its cost counted once). Candidates: the best
  *message-passing* plan (exact DP over all unrooted trees of the closed network: each
  tree vertex does three contractions and the messages into the leaves are the step's
  outputs), greedy sequential sharing, and the independent optima with shared nodes
  counted once (so joint <= sum of independent optima always). A branch and bound over
  *all* shared plans (every set of intermediates with one split each, i.e. every
  combination of per-network trees) then proves the best candidate optimal or improves
  on it, within ``proof_nodes`` expansions; ``plan.meta["joint_search"]["exact_over"]``
  says whether the result is proved over all shared plans or over message-passing plans.
* Memory: ``cost="memory"`` minimizes the largest intermediate (elements) of the step,
  then MACs. ``memory_budget`` (bytes) bounds the plan's peak live bytes (see
  ``peak_bytes``); see ``search`` for the search space under a budget.

Costs of one pairwise step ``(spec, shape_a, shape_b)``:
* ``"macs"``: ``plan.pairwise_macs`` (product of the sizes of all indices of both
  operands);
* ``"memory"``: as above, after capping intermediate size;
* ``"cycles"``: a callable ``cost(spec, shape_a, shape_b) -> cycles``; by default
  ``sw_model.program.compiler.predict_cycles(spec, shape_a, shape_b, config)``, imported lazily.
  Both operand orders are tried for each pairwise step (the compiler may map A and B
  differently); the cheaper is used.

Layouts: leaves keep their ``plan.ttm_tensors`` index order; an intermediate's indices are
in the global order ``z, n_1..n_d, m_1..m_d, r_1..r_{d-1}``; a network output is in the
network's output order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from . import plan as _plan
from .plan import Plan, Step

__all__ = ["COSTS", "StepNetwork", "Tree", "optimal_order", "joint_search", "search",
           "csse_planner", "parse_int_list", "validate_layer", "plan_summary",
           "peak_bytes", "cycles_cost", "dense_macs", "network_orders", "order_cost",
           "message_passing"]

COSTS = ("macs", "memory", "cycles")
MAX_CORES = 8

CostFn = Callable[[str, tuple, tuple], float]


# --------------------------------------------------------------------------- input

def parse_int_list(text, what: str) -> list[int]:
    """``"7,4,2,16"`` (or an iterable of ints) -> ``[7, 4, 2, 16]``; an empty string is
    ``[]``. Raises ``ValueError`` naming ``what`` and the bad value."""
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
    else:
        parts = list(text)
    out = []
    for p in parts:
        if isinstance(p, bool):
            raise ValueError(f"{what} {text!r}: entry {p!r} is not an integer")
        if isinstance(p, int):
            out.append(p)
            continue
        if isinstance(p, float) and p.is_integer():
            out.append(int(p))
            continue
        try:
            out.append(int(str(p)))
        except ValueError:
            raise ValueError(f"{what} {text!r}: entry {p!r} is not an integer") from None
    return out


def validate_layer(in_modes, out_modes, ranks, batch) -> tuple[list[int], list[int],
                                                               list[int], int]:
    """Check a layer description; return it as int lists. One-line ``ValueError``s."""
    in_modes = parse_int_list(in_modes, "in modes")
    out_modes = parse_int_list(out_modes, "out modes")
    ranks = parse_int_list(ranks, "ranks")
    if isinstance(batch, bool) or not isinstance(batch, int):
        try:
            b = int(str(batch))
        except ValueError:
            raise ValueError(f"batch {batch!r} is not an integer") from None
        batch = b
    d = len(in_modes)
    if not 1 <= d <= MAX_CORES:
        raise ValueError(f"in modes {in_modes} give {d} TT cores; allowed 1..{MAX_CORES}")
    if len(out_modes) != d:
        raise ValueError(f"out modes {out_modes} have {len(out_modes)} entries; in modes "
                         f"{in_modes} have {d}; they must match")
    if len(ranks) != d - 1:
        raise ValueError(f"ranks {ranks} have {len(ranks)} entries; allowed exactly "
                         f"{d - 1} (one per inner bond) for {d} cores")
    for name, vals in (("in mode", in_modes), ("out mode", out_modes), ("rank", ranks)):
        for v in vals:
            if v < 1:
                raise ValueError(f"{name} {v} in {vals} invalid; allowed >= 1")
    if batch < 1:
        raise ValueError(f"batch {batch} invalid; allowed >= 1")
    return in_modes, out_modes, ranks, batch


def dense_macs(in_modes, out_modes, batch) -> int:
    """MACs of the dense layer's step: forward, input gradient, weight gradient."""
    return 3 * int(batch) * math.prod(in_modes) * math.prod(out_modes)


# --------------------------------------------------------------------------- network

class StepNetwork:
    """The closed network ``{x, dy, g1..gd}`` of one layer, with bitmask helpers.

    Leaves are numbered ``x=0, dy=1, g_k=k+1``; a node is a bitmask of leaves. ``roots``
    maps each step network's output name to the mask of its inputs."""

    def __init__(self, in_modes, out_modes, ranks, batch):
        self.in_modes, self.out_modes, self.ranks, self.batch = validate_layer(
            in_modes, out_modes, ranks, batch)
        d = self.d = len(self.in_modes)
        self.idx = _plan.ttm_tensors(d)
        self.shapes = _plan.ttm_shapes(self.in_modes, self.out_modes, self.ranks, batch)
        self.sizes: dict[str, int] = {}
        for name, letters in self.idx.items():
            self.sizes.update(zip(letters, self.shapes[name]))
        self.leaves = ["x", "dy"] + [f"g{k}" for k in range(1, d + 1)]
        self.n = len(self.leaves)
        self.full = (1 << self.n) - 1
        self.leaf_bit = {name: 1 << i for i, name in enumerate(self.leaves)}
        # Global index order for intermediates.
        self.letters = ("z" + _plan._IN[:d] + _plan._OUT[:d] + _plan._RANK[1:d])
        ibit = {c: 1 << i for i, c in enumerate(self.letters)}
        lmask = [sum(ibit[c] for c in self.idx[t]) for t in self.leaves]
        # Each index is on exactly two leaves, so the cut of S is the XOR of its leaves.
        cut = [0] * (1 << self.n)
        for s in range(1, 1 << self.n):
            low = s & -s
            cut[s] = cut[s ^ low] ^ lmask[low.bit_length() - 1]
        self.cut = cut
        self._isize = [self.sizes[c] for c in self.letters]
        self._prod: dict[int, int] = {}
        self.roots: dict[str, int] = {}
        self.outputs: list[str] = []
        for out, inputs in _plan.networks(d):
            self.roots[out] = sum(self.leaf_bit[t] for t in inputs)
            self.outputs.append(out)
        self.root_out = {m: o for o, m in self.roots.items()}

    # sizes and names -------------------------------------------------------------
    def prod(self, imask: int) -> int:
        p = self._prod.get(imask)
        if p is None:
            p = 1
            i = 0
            m = imask
            while m:
                if m & 1:
                    p *= self._isize[i]
                m >>= 1
                i += 1
            self._prod[imask] = p
        return p

    def elements(self, s: int) -> int:
        """Elements of the tensor a node denotes."""
        return self.prod(self.cut[s])

    def is_leaf(self, s: int) -> bool:
        return s & (s - 1) == 0

    def leaf_names(self, s: int) -> list[str]:
        return [t for i, t in enumerate(self.leaves) if s >> i & 1]

    def node_name(self, s: int) -> str:
        if s in self.root_out:
            return self.root_out[s]
        return ".".join(self.leaf_names(s))

    def indices(self, s: int) -> str:
        """Index letters of node ``s`` in its layout."""
        if self.is_leaf(s):
            return self.idx[self.leaves[s.bit_length() - 1]]
        if s in self.root_out:
            return self.idx[self.root_out[s]]
        m = self.cut[s]
        return "".join(c for i, c in enumerate(self.letters) if m >> i & 1)

    def shape(self, s: int) -> tuple[int, ...]:
        return tuple(self.sizes[c] for c in self.indices(s))

    def spec(self, a: int, b: int) -> str:
        return f"{self.indices(a)},{self.indices(b)}->{self.indices(a | b)}"

    def macs(self, a: int, b: int) -> int:
        return self.prod(self.cut[a] | self.cut[b])

    def tree_str(self, s: int, splits: dict[int, tuple[int, int]]) -> str:
        if self.is_leaf(s):
            return self.leaves[s.bit_length() - 1]
        a, b = splits[s]
        return f"({self.tree_str(a, splits)},{self.tree_str(b, splits)})"


# --------------------------------------------------------------------------- costs

def cycles_cost(config="tiny") -> CostFn:
    """The accelerator cycle model as a CSSE cost, for preset/config ``config``.

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
    return cost


class _SplitTable:
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
            return None if best[0] == math.inf else best

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


@dataclass(frozen=True)
class Tree:
    """One network's contraction tree: ``splits[node] = (a, b)`` for its inner nodes."""
    root: int
    splits: dict
    cost: float


def _tree_nodes(net: StepNetwork, root: int, splits: dict) -> list[int]:
    """Inner nodes of the tree under ``root``, children before parents."""
    out: list[int] = []

    def walk(s):
        if net.is_leaf(s):
            return
        a, b = splits[s]
        # The larger operand first: its result is held while the smaller one is built.
        for c in sorted((a, b), key=lambda t: -t.bit_count()):
            walk(c)
        out.append(s)
    walk(root)
    return out


def _memory_cap(net: StepNetwork, root: int) -> int | None:
    """Smallest possible largest non-output intermediate (elements) of one network:
    exact minimax DP over all trees."""
    best: dict[int, int] = {}
    for s in sorted(range(1, net.full), key=int.bit_count):
        if net.is_leaf(s) or s & ~root:
            continue
        own = 0 if s == root else net.elements(s)
        m = None
        sub = (s - 1) & s
        while sub:
            o = s ^ sub
            if sub < o:
                v = max(best.get(sub, 0), best.get(o, 0))
                if m is None or v < m:
                    m = v
            sub = (sub - 1) & s
        best[s] = max(own, m)
    return best[root]


def optimal_order(net: StepNetwork, out: str, cost: str = "macs",
                  cost_fn: CostFn | None = None, cap: int | None = None,
                  table: _SplitTable | None = None) -> Tree:
    """Exact optimal tree of the network producing ``out`` (DP over all subsets and
    all splits). ``cost="memory"`` first minimizes the largest intermediate, then MACs."""
    root = net.roots[out]
    if cost == "memory":
        cap = _memory_cap(net, root) if cap is None else max(cap, _memory_cap(net, root))
        table = None
    if table is None:
        table = _SplitTable(net, cost_fn, cap)
    if root not in table.h:
        raise ValueError(f"no contraction order for '{out}' keeps intermediates within "
                         f"{cap} elements")
    splits = {}
    for s in _tree_nodes(net, root, table.hsplit):
        splits[s] = table.hsplit[s]
    return Tree(root, splits, table.h[root])


def message_passing(net: StepNetwork, table: _SplitTable
                    ) -> tuple[float, dict[int, tuple[int, int]]] | None:
    """Optimal plan among message-passing plans: pick an unrooted binary tree over the
    closed network's leaves; every directed edge carries the contraction of the leaves
    behind it, computed at its source vertex from the two other incoming messages, so
    each internal vertex with sides (A, B, C) does three contractions A.B, A.C, B.C and
    the messages into the leaves are exactly the step's outputs. Rooting the tree at
    ``x`` makes the total a sum over the inner nodes of a rooted tree over the other
    leaves, so an exact DP over subsets finds the best tree. None if a cap leaves no tree.
    """
    pair = table.pair
    full = net.full
    rest = full ^ 1
    f: dict[int, float] = {}
    arg: dict[int, tuple[int, int]] = {}
    for s in sorted((s for s in range(1, full) if s & 1 == 0), key=int.bit_count):
        if net.is_leaf(s):
            f[s] = 0
            continue
        best = None
        sub = (s - 1) & s
        while sub:
            o = s ^ sub
            if sub < o and sub in f and o in f:
                c = full ^ s
                w = 0
                for p, q in ((sub, o), (sub, c), (o, c)):
                    t = pair.get((p, q) if p < q else (q, p))
                    if t is None:
                        w = None
                        break
                    w += t[0]
                if w is not None:
                    v = f[sub] + f[o] + w
                    if best is None or v < best[0]:
                        best = (v, sub, o)
            sub = (sub - 1) & s
        if best is not None:
            f[s] = best[0]
            arg[s] = (best[1], best[2])
    if rest not in f:
        return None
    chosen: dict[int, tuple[int, int]] = {}

    def walk(s):
        if net.is_leaf(s):
            return
        a, b = arg[s]
        c = full ^ s
        for p, q in ((a, b), (a, c), (b, c)):
            t = pair[(p, q) if p < q else (q, p)]
            chosen[p | q] = (t[1], t[2])
        walk(a)
        walk(b)
    walk(rest)
    return f[rest], chosen


def _greedy_orders(roots: list[int]) -> list[list[int]]:
    rev = roots[::-1]
    mid = roots[2:] + roots[:2]
    return [roots, rev, mid]


def _greedy_sequential(net: StepNetwork, splits: dict, order: list[int]
                       ) -> tuple[float, dict[int, tuple[int, int]]]:
    """Each root in turn, by exact DP where nodes already computed are free. A feasible
    plan (an upper bound for the joint search); with one root, the exact optimum."""
    chosen: dict[int, tuple[int, int]] = {}
    total = 0
    for root in order:
        best: dict[int, tuple[float, tuple | None]] = {}
        for s in sorted((s for s in splits if s & root == s), key=int.bit_count):
            if s in chosen:
                best[s] = (0, None)
                continue
            b = None
            for c, a, o in splits[s]:
                ca = 0 if net.is_leaf(a) else best.get(a, (None,))[0]
                co = 0 if net.is_leaf(o) else best.get(o, (None,))[0]
                if ca is None or co is None:
                    continue
                v = c + ca + co
                if b is None or v < b[0]:
                    b = (v, (a, o))
            if b is not None:
                best[s] = b
        total += best[root][0]

        def take(s):
            if net.is_leaf(s) or s in chosen:
                return
            chosen[s] = best[s][1]
            for c in chosen[s]:
                take(c)
        take(root)
    return total, chosen


class _ProofAborted(Exception):
    pass


def joint_search(net: StepNetwork, table: _SplitTable, roots: Iterable[int] | None = None,
                 proof_nodes: int = 4000) -> tuple[float, dict[int, tuple], dict]:
    """Minimum total cost of deriving all ``roots`` when each distinct node (leaf set) is
    computed once; returns (cost, splits of the chosen nodes, info).

    Candidates, all exact for their space: the best message-passing plan (exact DP over
    all unrooted trees, see ``message_passing``), greedy sequential sharing, and the
    independent optima. Then a branch and bound over *all* shared plans (every set of
    intermediates with one split each) either proves the best candidate optimal or
    improves it; it is cut off after ``proof_nodes`` expansions, in which case the plan
    is optimal over the candidate spaces only. ``info["exact_over"]`` says which:
    ``"all shared plans"`` or ``"message-passing plans"``.

    Branch and bound over the set of open (required, not yet expanded) nodes, expanding
    the largest first: a node's parents are all larger, so once it is expanded no later
    choice can require it again, and the open set is a complete state (memoized).
    Lower bound of an open set O: for any u in O, h(u) (its independent optimum, paid
    by its own subtree) plus the cheapest split of every other node of O that is not a
    subset of u (those are outside u's subtree)."""
    roots = list(net.roots.values()) if roots is None else list(roots)
    for r in roots:
        if r not in table.h:
            raise ValueError(f"no contraction order for '{net.node_name(r)}' within the "
                             f"intermediate cap of {table.cap} elements")
    h = table.h
    # Dominance: a split dearer than the node's whole independent optimum h(v) is never
    # needed (computing v from scratch instead costs <= h(v) and frees nothing the rest
    # of the plan relies on), so only splits cheaper than h(v), and v's own optimal split,
    # are searched.
    splits = {}
    for s, lst in table.splits.items():
        if s not in h:
            continue
        hs = table.hsplit[s]
        splits[s] = [t for t in lst if (t[0] < h[s] or (t[1], t[2]) == hs)
                     and (net.is_leaf(t[1]) or t[1] in h)
                     and (net.is_leaf(t[2]) or t[2] in h)]
    minsplit = {s: lst[0][0] for s, lst in splits.items()}
    cost_of = {}
    for s in splits:
        for c, a, b in splits[s]:
            cost_of[(s, a, b)] = c
    # Upper bound: the best of greedy sequential sharing in a few network orders and
    # the optimal message-passing plan.
    ub, seed = None, None
    for order in _greedy_orders(roots):
        total, chosen = _greedy_sequential(net, splits, order)
        if ub is None or total < ub:
            ub, seed = total, chosen
    if set(roots) == set(net.roots.values()) and net.n >= 3:
        mp = message_passing(net, table)
        if mp is not None and mp[0] < ub:
            ub, seed = mp

    def order_key(s):
        return (-s.bit_count(), s)

    lb_cache: dict[frozenset, float] = {}

    def lower_bound(o: frozenset) -> float:
        # = sum of cheapest splits + max over u of (h(u) - cheapest splits inside u).
        v = lb_cache.get(o)
        if v is not None:
            return v
        total = 0
        extra = 0
        for u in o:
            mu = minsplit[u]
            total += mu
            gain = h[u] - mu
            if gain > extra:
                for w in o:
                    if w != u and w & u == w:
                        gain -= minsplit[w]
                if gain > extra:
                    extra = gain
        lb_cache[o] = v = total + extra
        return v

    memo: dict[frozenset, tuple[float, bool, tuple | None]] = {}

    def solve(o: frozenset, beta: float) -> float:
        """Min completion cost of open set ``o`` if < beta (exact), else a value >= beta."""
        if not o:
            return 0
        hit = memo.get(o)
        if hit is not None and (hit[1] or hit[0] >= beta):
            return hit[0]
        v = min(o, key=order_key)
        rest = o - {v}
        lb_rest = sum(minsplit[u] for u in rest)
        best = None
        for c, a, b in splits[v]:
            if c + lb_rest >= beta:
                break
            nxt = set(rest)
            if a & (a - 1):
                nxt.add(a)
            if b & (b - 1):
                nxt.add(b)
            nxt = frozenset(nxt)
            if c + lower_bound(nxt) >= beta:
                continue
            count[0] += 1
            if count[0] > proof_nodes:
                raise _ProofAborted
            r = solve(nxt, beta - c)
            if r + c < beta:
                beta = r + c
                best = (a, b)
        if best is None:
            memo[o] = (beta, False, None)
            return beta
        memo[o] = (beta, True, best)
        return beta

    count = [0]
    info = {"candidate_cost": ub, "proof_nodes": proof_nodes}
    start = frozenset(r for r in roots if not net.is_leaf(r))
    try:
        total = solve(start, ub + 1 if isinstance(ub, int) else ub * (1 + 1e-12) + 1e-9)
    except _ProofAborted:
        info.update(expanded=count[0], exact_over="message-passing plans")
        return ub, seed, info
    info.update(expanded=count[0], exact_over="all shared plans")
    if total >= ub:
        return ub, seed, info
    # Reconstruct the choices along the optimal path.
    chosen: dict[int, tuple[int, int]] = {}
    o = start
    while o:
        v = min(o, key=order_key)
        _, exact, choice = memo[o]
        assert exact and choice is not None
        chosen[v] = choice
        nxt = set(o - {v})
        for c in choice:
            if c & (c - 1):
                nxt.add(c)
        o = frozenset(nxt)
    return total, chosen, info


# --------------------------------------------------------------------------- plans

def peak_bytes(plan: Plan, elem_bytes: int = 2) -> int:
    """Peak live bytes of the tensors a plan computes (inputs excluded: they are resident
    anyway). A tensor is live from the step that makes it through its last use
    (``free_after``); network outputs stay live to the end."""
    made = {s.out: i for i, s in enumerate(plan.steps)}
    size = {s.out: math.prod(s.shape) * elem_bytes for s in plan.steps}
    end = len(plan.steps) - 1
    last = {name: (end if name in plan.outputs else plan.free_after.get(name, made[name]))
            for name in made}
    delta = [0] * (len(plan.steps) + 1)
    for name, i in made.items():
        delta[i] += size[name]
        delta[last[name] + 1] -= size[name]
    peak = cur = 0
    for i in range(len(plan.steps)):
        cur += delta[i]
        peak = max(peak, cur)
    return peak


def _build_plan(net: StepNetwork, trees: dict[str, dict[int, tuple[int, int]]],
                share: bool, cost_of: Callable[[int, int], float]) -> Plan:
    """Schedule network trees (networks in ``plan.networks`` order, each tree post-order)
    into a Plan. With ``share`` a node already computed by an earlier network is reused
    (kept until its last use); without, each network computes and frees its own."""
    steps: list[Step] = []
    made: dict[int, str] = {}
    maker: dict[str, str] = {}
    users: dict[str, list[str]] = {}
    last_use: dict[str, int] = {}
    per_net = []
    for out in net.outputs:
        root = net.roots[out]
        splits = trees[out]
        local: dict[int, str] = made if share else {}
        new_macs = new_cost = 0
        for s in _tree_nodes(net, root, splits):
            if s in local:
                continue
            a, b = splits[s]
            names = []
            for c in (a, b):
                if net.is_leaf(c):
                    names.append(net.leaves[c.bit_length() - 1])
                else:
                    names.append(local[c])
            for nm in names:
                if nm in maker:
                    last_use[nm] = len(steps)
                    if out not in users[nm]:
                        users[nm].append(out)
            name = net.node_name(s)
            if not share and s != root:
                name = f"{out}:{name}"
            m = net.macs(a, b)
            steps.append(Step(name, names[0], names[1], net.spec(a, b), net.shape(s), m))
            new_macs += m
            new_cost += cost_of(a, b)
            local[s] = name
            maker[name] = out
            users[name] = []
        per_net.append({"name": out, "joint_order": net.tree_str(root, splits),
                        "joint_new_macs": int(new_macs), "joint_new_cost": new_cost})
    outputs = tuple(net.outputs)
    free_after = {nm: i for nm, i in last_use.items() if nm not in outputs}
    kept = {}
    for nm, us in users.items():
        if nm in outputs:
            continue
        if len(us) > 1 or (us and us[0] != maker[nm]):
            made_at = next(i for i, st in enumerate(steps) if st.out == nm)
            kept[nm] = {"made_by": maker[nm], "used_by": us, "made_at_step": made_at,
                        "free_after": free_after[nm]}
    return Plan(steps, outputs, free_after, {"networks_joint": per_net, "kept": kept})


def _distinct_caps(net: StepNetwork, below: int) -> list[int]:
    roots = set(net.roots.values())
    sizes = {net.elements(s) for s in range(1, net.full)
             if not net.is_leaf(s) and s not in roots}
    return sorted((c for c in sizes if c < below), reverse=True)


def _largest_intermediate(net: StepNetwork, plan: Plan) -> int:
    vals = [math.prod(s.shape) for s in plan.steps if s.out not in plan.outputs]
    return max(vals, default=0)


def search(in_modes, out_modes, ranks, batch, cost: str = "macs", config="tiny",
           cycle_cost: CostFn | None = None, memory_budget: int | None = None,
           elem_bytes: int = 2, share: bool = True, proof_nodes: int = 4000) -> Plan:
    """Search contraction orders for one layer's training step; return the joint Plan.

    ``cost``: ``"macs"``, ``"memory"`` (smallest largest-intermediate of the step, then
    MACs) or ``"cycles"`` (``cycle_cost(spec, shape_a, shape_b)``, default the compiler's
    ``predict_cycles`` on preset/config ``config``). ``share=False`` gives the independent
    per-network optima with nothing kept across networks.

    ``memory_budget`` (bytes, ``elem_bytes`` per element) bounds ``peak_bytes`` of the
    plan. Search space under a budget: for each cap L on intermediate size (descending
    over the distinct intermediate sizes), the exact joint optimum with intermediates
    <= L, and the independent optima with intermediates <= L (recompute, keep nothing
    across networks). As the optimum cost is monotone in L, the first candidate of each
    kind that fits is that kind's best; the cheaper of the two is returned. Exact over
    that space, not over all schedules.

    ``plan.meta`` holds the per-network and joint costs (see ``plan_summary``)."""
    t0 = time.perf_counter()
    if cost not in COSTS:
        raise ValueError(f"cost {cost!r} unknown; allowed {', '.join(COSTS)}")
    if isinstance(elem_bytes, bool) or not isinstance(elem_bytes, int) or not 1 <= elem_bytes <= 16:
        raise ValueError(f"element size {elem_bytes!r} bytes invalid; allowed 1..16")
    if memory_budget is not None:
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) \
                or memory_budget < 1:
            raise ValueError(f"memory budget {memory_budget!r} bytes invalid; allowed an "
                             f"integer >= 1")
    net = StepNetwork(in_modes, out_modes, ranks, batch)
    cost_fn = None
    if cost == "cycles":
        cost_fn = cycle_cost if cycle_cost is not None else cycles_cost(config)
    cache: dict = {}

    # Independent optima, one network at a time.
    indep: dict[str, Tree] = {}
    caps: dict[str, int] = {}
    base_table = None if cost == "memory" else _SplitTable(net, cost_fn, None, cache)
    for out in net.outputs:
        if cost == "memory":
            caps[out] = _memory_cap(net, net.roots[out])
            indep[out] = optimal_order(net, out, table=_SplitTable(net, None, caps[out]))
        else:
            indep[out] = optimal_order(net, out, table=base_table)
    step_cap = max(caps.values()) if cost == "memory" else None

    def joint_candidate(cap):
        table = base_table if (cap is None and base_table is not None) else \
            _SplitTable(net, cost_fn, cap, cache)
        total, splits, info = joint_search(net, table, proof_nodes=proof_nodes)
        trees = {out: {s: splits[s] for s in _tree_nodes(net, net.roots[out], splits)}
                 for out in net.outputs}
        cand = _finish(net, trees, True, table)
        cand.meta["joint_search"] = info
        return cand, total

    def indep_candidate(cap):
        table = _SplitTable(net, cost_fn, cap, cache)
        trees = {out: optimal_order(net, out, table=table).splits for out in net.outputs}
        return _finish(net, trees, False, table), None

    if share:
        plan, _ = joint_candidate(step_cap)
    elif cost == "memory":
        trees = {out: indep[out].splits for out in net.outputs}
        plan = _finish(net, trees, False, None)
    else:
        plan, _ = indep_candidate(None)
    plan.meta["peak_bytes"] = peak_bytes(plan, elem_bytes)

    if memory_budget is not None and plan.meta["peak_bytes"] > memory_budget:
        found = []
        smallest = plan.meta["peak_bytes"]
        kinds = [joint_candidate, indep_candidate] if share else [indep_candidate]
        for make in kinds:
            first_cap = step_cap if step_cap is not None else _largest_intermediate(net, plan) + 1
            for cap in [first_cap] + _distinct_caps(net, first_cap):
                try:
                    cand, _ = make(cap)
                except ValueError:
                    break
                cand.meta["peak_bytes"] = peak_bytes(cand, elem_bytes)
                smallest = min(smallest, cand.meta["peak_bytes"])
                if cand.meta["peak_bytes"] <= memory_budget:
                    found.append(cand)
                    break
        if not found:
            raise ValueError(f"memory budget {memory_budget} bytes too small for any plan "
                             f"in the search space; the smallest peak found is {smallest} "
                             f"bytes ({elem_bytes}-byte elements)")
        plan = min(found, key=lambda p: (p.meta["total_cost"], p.meta["peak_bytes"]))

    nets = []
    for row in plan.meta["networks_joint"]:
        t = indep[row["name"]]
        m = sum(net.macs(a, b) for a, b in t.splits.values())
        nets.append({"name": row["name"], "order": net.tree_str(t.root, t.splits),
                     "macs": int(m), "cost": t.cost, **row})
    plan.meta.update({
        "planner": "csse",
        "cost": cost,
        "config": (config if isinstance(config, str) else getattr(config, "name", None))
        if cost == "cycles" else None,
        "layer": {"in_modes": net.in_modes, "out_modes": net.out_modes,
                  "ranks": net.ranks, "batch": net.batch},
        "networks": nets,
        "per_network_total_macs": int(sum(r["macs"] for r in nets)),
        "per_network_total_cost": sum(r["cost"] for r in nets),
        "total_macs": int(plan.macs),
        "dense_macs": dense_macs(net.in_modes, net.out_modes, net.batch),
        "largest_intermediate": _largest_intermediate(net, plan),
        "elem_bytes": elem_bytes,
        "memory_budget": memory_budget,
        "shared": share,
        "search_seconds": time.perf_counter() - t0,
    })
    del plan.meta["networks_joint"]
    return plan


def _finish(net: StepNetwork, trees, share: bool, table: _SplitTable | None) -> Plan:
    if table is None:
        def cost_of(a, b):
            return net.macs(a, b)
    else:
        lookup = {}
        for s, lst in table.splits.items():
            for c, a, b in lst:
                lookup[(a, b)] = c

        def cost_of(a, b):
            return lookup[(a, b)]
    plan = _build_plan(net, trees, share, cost_of)
    plan.meta["total_cost"] = sum(r["joint_new_cost"] for r in plan.meta["networks_joint"])
    return plan


def network_orders(in_modes, out_modes, ranks, batch, cost: str = "macs",
                   cost_fn: CostFn | None = None) -> dict[str, Tree]:
    """The exact independent optimum of every network of the step."""
    net = StepNetwork(in_modes, out_modes, ranks, batch)
    if cost == "memory":
        return {o: optimal_order(net, o, cost="memory") for o in net.outputs}
    table = _SplitTable(net, cost_fn)
    return {o: optimal_order(net, o, table=table) for o in net.outputs}


def csse_planner(in_modes, out_modes, ranks, batch) -> Plan:
    """The planner signature ``(in_modes, out_modes, ranks, batch) -> Plan`` (the
    default of ``layers.get_plan``): the exact joint MAC-optimal plan."""
    return search(in_modes, out_modes, ranks, batch, cost="macs")


def plan_summary(plan: Plan) -> dict:
    """JSON-ready dict of a CSSE plan: costs, networks, steps, lifetimes."""
    m = plan.meta
    keys = ("planner", "cost", "config", "layer", "networks", "per_network_total_macs",
            "per_network_total_cost", "total_macs", "total_cost", "dense_macs",
            "peak_bytes", "largest_intermediate", "elem_bytes", "memory_budget", "shared",
            "search_seconds", "joint_search", "kept")
    out = {k: m.get(k) for k in keys}
    out["steps"] = [{"out": s.out, "a": s.a, "b": s.b, "spec": s.spec,
                     "shape": list(s.shape), "macs": int(s.macs)} for s in plan.steps]
    out["outputs"] = list(plan.outputs)
    out["free_after"] = dict(plan.free_after)
    return out


def order_cost(net: StepNetwork, splits: dict[int, tuple[int, int]],
               cost_fn: CostFn | None = None) -> float:
    """Cost of a set of pairwise steps (``splits[node] = (a, b)``) under ``cost_fn``
    (MACs when None), each step in its cheaper operand order, as the search counts it."""
    total = 0
    for s, (a, b) in splits.items():
        if cost_fn is None:
            total += net.macs(a, b)
        else:
            total += min(cost_fn(net.spec(p, q), net.shape(p), net.shape(q))
                         for p, q in ((a, b), (b, a)))
    return total
