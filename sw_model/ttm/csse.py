"""Contraction sequence search engine (CSSE) for TTM training steps: the entry points.

Finds, for one TTM layer, the pairwise contraction orders of every network of a
training step (forward ``y``, input gradient ``dx``, core gradients ``dg1..dgd``; see
``sw_model.ttm.plan.networks``) and emits them as one ``sw_model.ttm.plan.Plan``.

Where the parts live
--------------------
* ``sw_model.ttm.step_network``: the closed network ``{x, dy, g1..gd}`` of the step
  (every index on exactly two tensors), in which an intermediate is identified by its
  leaf set alone; reuse across networks (forward partial products reused by core
  gradients, left/right environments, ``g_i g_j`` products shared by ``y`` and ``dx``)
  is then a matter of computing a leaf set once. Layer validation, ``dense_macs``.
* ``sw_model.ttm.contraction_costs``: the cost of one pairwise step and the per-node
  table of admissible splits (``SplitTable``); ``cycles_cost``.
* ``sw_model.ttm.csse_search``: the exact searches (``optimal_order`` per network,
  ``message_passing``, ``joint_search`` over all shared plans).
* this module: ``search`` (the whole step under a cost and a memory budget, scheduled
  into a Plan with lifetimes), ``csse_planner`` (the layers' default planner),
  ``network_orders``, ``order_cost``, ``peak_bytes``, ``plan_summary``.

Costs (``COSTS``) of one pairwise step ``(spec, shape_a, shape_b)``:
* ``"macs"``: ``plan.pairwise_macs`` (product of the sizes of all indices of both
  operands);
* ``"memory"``: minimizes the largest intermediate (elements) of the step, then MACs;
  ``memory_budget`` (bytes) bounds the plan's peak live bytes (``peak_bytes``); see
  ``search`` for the search space under a budget;
* ``"cycles"``: a callable ``cost(spec, shape_a, shape_b) -> cycles``; by default
  ``sw_model.program.compiler.predict_cycles(spec, shape_a, shape_b, config)``, imported
  lazily (``contraction_costs.cycles_cost``). Both operand orders are tried for each
  pairwise step (the compiler may map A and B differently); the cheaper is used.

``plan.meta["joint_search"]["exact_over"]`` says whether the joint plan is proved
optimal over all shared plans or over message-passing plans (``csse_search``).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Callable

from .contraction_costs import CostFn, SplitTable, cycles_cost
from .csse_search import Tree, joint_search, memory_cap, optimal_order, tree_nodes
from .plan import Plan, Step
from .step_network import StepNetwork, dense_macs

__all__ = ["COSTS", "search", "layer_plan", "csse_planner", "plan_summary", "peak_bytes",
           "network_orders", "order_cost"]

COSTS = ("macs", "memory", "cycles")


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
        for s in tree_nodes(net, root, splits):
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


@functools.lru_cache(maxsize=256)
def layer_plan(in_modes: tuple, out_modes: tuple, ranks: tuple, batch: int,
               cost: str = "macs", config="tiny") -> Plan:
    """``search(list(in_modes), list(out_modes), list(ranks), batch, cost, config)``
    with the other options at their defaults, cached per process: the step event
    counts, the step memory model, the resident step and the workload tables plan the
    same layers again and again (a ``"cycles"`` search of an mnist-tt layer takes
    minutes). The plan returned is shared: do not change it."""
    return search(list(in_modes), list(out_modes), list(ranks), batch, cost=cost,
                  config=config if cost == "cycles" else "tiny")


def search(in_modes, out_modes, ranks, batch, cost: str = "macs", config="tiny",
           cycle_cost: CostFn | None = None, memory_budget: int | None = None,
           elem_bytes: int = 2, share: bool = True, proof_nodes: int = 4000,
           resident: bool = False) -> Plan:
    """Search contraction orders for one layer's training step; return the joint Plan.

    ``cost``: ``"macs"``, ``"memory"`` (smallest largest-intermediate of the step, then
    MACs) or ``"cycles"`` (``cycle_cost(spec, shape_a, shape_b)``, default the compiler's
    ``predict_cycles`` on preset/config ``config``). ``share=False`` gives the independent
    per-network optima with nothing kept across networks. ``resident=True`` (with
    ``"cycles"``) adds each intermediate's on-chip MOVE into its consumer's layout to
    the cost (``contraction_costs.cycles_cost``), the resident dataflow's cost.

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
        cost_fn = cycle_cost if cycle_cost is not None else cycles_cost(config, resident)
    cache: dict = {}

    # Independent optima, one network at a time.
    indep: dict[str, Tree] = {}
    caps: dict[str, int] = {}
    base_table = None if cost == "memory" else SplitTable(net, cost_fn, None, cache)
    for out in net.outputs:
        if cost == "memory":
            caps[out] = memory_cap(net, net.roots[out])
            indep[out] = optimal_order(net, out, table=SplitTable(net, None, caps[out]))
        else:
            indep[out] = optimal_order(net, out, table=base_table)
    step_cap = max(caps.values()) if cost == "memory" else None

    def joint_candidate(cap):
        table = base_table if (cap is None and base_table is not None) else \
            SplitTable(net, cost_fn, cap, cache)
        total, splits, info = joint_search(net, table, proof_nodes=proof_nodes)
        trees = {out: {s: splits[s] for s in tree_nodes(net, net.roots[out], splits)}
                 for out in net.outputs}
        cand = _finish(net, trees, True, table)
        cand.meta["joint_search"] = info
        return cand, total

    def indep_candidate(cap):
        table = SplitTable(net, cost_fn, cap, cache)
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


def _finish(net: StepNetwork, trees, share: bool, table: SplitTable | None) -> Plan:
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
    table = SplitTable(net, cost_fn)
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
