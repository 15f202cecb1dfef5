"""Exact contraction-order searches over a layer's ``StepNetwork``.

* ``optimal_order``: exact DP over subsets for one network, over *all* pairwise trees
  (outer products included), under the costs of a ``SplitTable``; ``cost="memory"``
  first minimizes the largest intermediate (``memory_cap``), then MACs.
* ``message_passing``: the best plan among message-passing plans (exact DP over all
  unrooted trees of the closed network: each tree vertex does three contractions and
  the messages into the leaves are the step's outputs).
* ``joint_search``: minimum total cost of the whole step when every distinct
  intermediate is computed once (its cost counted once). Candidates: the best
  message-passing plan, greedy sequential sharing, and the independent optima with
  shared nodes counted once (so joint <= sum of independent optima always). A branch
  and bound over *all* shared plans (every set of intermediates with one split each,
  i.e. every combination of per-network trees) then proves the best candidate optimal
  or improves on it, within ``proof_nodes`` expansions; ``info["exact_over"]`` says
  whether the result is proved over all shared plans or over message-passing plans.

A tree is ``splits[node] = (a, b)`` over leaf-set bitmasks; ``tree_nodes`` lists a
tree's inner nodes children first (the larger operand's subtree first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .contraction_costs import CostFn, SplitTable
from .step_network import StepNetwork

__all__ = ["Tree", "tree_nodes", "memory_cap", "optimal_order", "message_passing",
           "joint_search"]


@dataclass(frozen=True)
class Tree:
    """One network's contraction tree: ``splits[node] = (a, b)`` for its inner nodes."""
    root: int
    splits: dict
    cost: float


def tree_nodes(net: StepNetwork, root: int, splits: dict) -> list[int]:
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


def memory_cap(net: StepNetwork, root: int) -> int | None:
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
                  table: SplitTable | None = None) -> Tree:
    """Exact optimal tree of the network producing ``out`` (DP over all subsets and
    all splits). ``cost="memory"`` first minimizes the largest intermediate, then MACs."""
    root = net.roots[out]
    if cost == "memory":
        cap = memory_cap(net, root) if cap is None else max(cap, memory_cap(net, root))
        table = None
    if table is None:
        table = SplitTable(net, cost_fn, cap)
    if root not in table.h:
        raise ValueError(f"no contraction order for '{out}' keeps intermediates within "
                         f"{cap} elements")
    splits = {}
    for s in tree_nodes(net, root, table.hsplit):
        splits[s] = table.hsplit[s]
    return Tree(root, splits, table.h[root])


def message_passing(net: StepNetwork, table: SplitTable
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


def joint_search(net: StepNetwork, table: SplitTable, roots: Iterable[int] | None = None,
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

