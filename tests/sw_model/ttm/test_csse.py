"""CSSE: exact per-network orders (vs opt_einsum 'optimal' under our MAC definition),
joint plans (never worse than the independent optima, numerically equal to the chain
plan), cost hooks, memory budget, bad input."""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest

from fetta.sw_model.ttm import csse
from fetta.sw_model.ttm.contraction_costs import cycles_cost
from fetta.sw_model.ttm.csse_search import memory_cap
from fetta.sw_model.ttm.step_network import StepNetwork
from fetta.sw_model.ttm.layers import layer_plans
from fetta.sw_model.ttm import plan as P

# REFERENCES.md section 5: (in modes, out modes, ranks).
SECTION5 = {
    "fc1": ((7, 4, 2, 16), (4, 4, 2, 16), (16, 16, 16)),
    "fc2": ((32, 16), (1, 16), (16,)),
    "novikov": ((4, 8, 8, 4), (5, 5, 5, 5), (2, 2, 2)),
    "novikov-r8": ((4, 8, 8, 4), (5, 5, 5, 5), (8, 8, 8)),
    "hawkins": ((7, 4, 7, 4), (5, 5, 5, 5), (20, 20, 20)),
    "bayes": ((4, 7, 4, 7), (4, 4, 8, 4), (20, 20, 20)),
    "comera": ((12, 8, 8), (8, 8, 12), (30, 30)),
}
LAYERS = [(name, b) for name in SECTION5 for b in (1, 32, 64)]


def _oe_path_macs(inputs, out, idx, sizes):
    """opt_einsum's 'optimal' path for one network, costed with OUR MAC definition."""
    oe = pytest.importorskip("opt_einsum")
    terms = [idx[t] for t in inputs]
    expr = ",".join(terms) + "->" + idx[out]
    shapes = [tuple(sizes[c] for c in t) for t in terms]
    path, _ = oe.contract_path(expr, *shapes, shapes=True, optimize="optimal")
    ops = list(terms)
    total = 0
    for pair in path:
        pair = sorted(pair, reverse=True)
        got = [ops.pop(i) for i in pair]
        if len(got) == 1:
            continue
        ia, ib = got
        rest = "".join(ops) + idx[out]
        total += P.pairwise_macs(ia, ib, sizes)
        ops.append("".join(dict.fromkeys(c for c in ia + ib if c in rest)))
    return total


def _inputs(in_modes, out_modes, ranks, batch, seed=0):
    rng = np.random.default_rng(seed)
    shapes = P.ttm_shapes(in_modes, out_modes, ranks, batch)
    return {k: rng.standard_normal(v) for k, v in shapes.items()
            if k in ("x", "dy") or k.startswith("g")}


def _assert_same_results(plan, layer, seed=0):
    tensors = _inputs(*layer, seed=seed)
    got = P.execute_plan(plan, tensors)
    ref = P.execute_plan(P.chain_plan(*layer), tensors)
    for out in ref and plan.outputs:
        scale = np.abs(ref[out]).max()
        assert got[out].shape == ref[out].shape, out
        assert np.abs(got[out] - ref[out]).max() <= 1e-12 * scale, out


@pytest.mark.parametrize("name,batch", LAYERS)
def test_each_network_at_most_opt_einsum_optimal(name, batch):
    layer = (*SECTION5[name], batch)
    net = StepNetwork(*layer)
    orders = csse.network_orders(*layer)
    for out, inputs in P.networks(net.d):
        ours = sum(net.macs(a, b) for a, b in orders[out].splits.values())
        assert ours == orders[out].cost
        assert ours <= _oe_path_macs(inputs, out, net.idx, net.sizes), out


@pytest.mark.parametrize("name,batch", LAYERS)
def test_joint_never_worse_than_independent(name, batch):
    plan = csse.search(*SECTION5[name], batch)
    m = plan.meta
    assert m["total_macs"] == plan.macs <= m["per_network_total_macs"]
    assert m["per_network_total_macs"] == sum(n["macs"] for n in m["networks"])
    assert sum(n["joint_new_macs"] for n in m["networks"]) == m["total_macs"]
    assert m["dense_macs"] == 3 * batch * math.prod(SECTION5[name][0]) * \
        math.prod(SECTION5[name][1])


def test_fc1_batch64_numbers():
    """The mnist-tt fc1 step at batch 64: the joint optimum is proved over all shared
    plans and halves the independent total; it stays above the dense step (1.084x)."""
    plan = csse.search((7, 4, 2, 16), (4, 4, 2, 16), (16, 16, 16), 64)
    m = plan.meta
    assert m["per_network_total_macs"] == 191_004_672
    assert m["total_macs"] == 95_502_336
    assert m["dense_macs"] == 88_080_384
    assert m["joint_search"]["exact_over"] == "all shared plans"


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6])
def test_plan_matches_chain_numerically(d):
    rng = np.random.default_rng(d)
    for trial in range(2):
        in_modes = tuple(int(v) for v in rng.integers(1, 4, d))
        out_modes = tuple(int(v) for v in rng.integers(1, 4, d))
        ranks = tuple(int(v) for v in rng.integers(1, 4, d - 1))
        batch = int(rng.integers(1, 5))
        layer = (in_modes, out_modes, ranks, batch)
        for kw in ({}, {"share": False}, {"cost": "memory"}):
            plan = csse.search(*layer, **kw)
            _assert_same_results(plan, layer, seed=trial)


@pytest.mark.parametrize("name", ["fc1", "fc2", "comera"])
def test_section5_plans_match_chain_numerically(name):
    layer = (*SECTION5[name], 3)
    _assert_same_results(csse.search(*layer), layer)


def test_plan_format():
    layer = ((7, 4, 2, 16), (4, 4, 2, 16), (16, 16, 16), 8)
    plan = csse.search(*layer)
    idx = P.ttm_tensors(4)
    shapes = P.ttm_shapes(*layer)
    names = [s.out for s in plan.steps]
    assert len(names) == len(set(names))
    assert plan.outputs == tuple(o for o, _ in P.networks(4))
    sizes = {}
    for t, letters in idx.items():
        sizes.update(zip(letters, shapes[t]))
    made = {}
    for i, s in enumerate(plan.steps):
        ia, rest = s.spec.split(",")
        ib, out = rest.split("->")
        assert s.macs == P.pairwise_macs(ia, ib, sizes)
        assert s.shape == tuple(sizes[c] for c in out)
        if s.out in plan.outputs:
            assert out == idx[s.out]
            assert s.shape == shapes[s.out]
        made[s.out] = i
    for name, last in plan.free_after.items():
        assert name not in plan.outputs
        assert made[name] <= last
        assert any(st.a == name or st.b == name for st in plan.steps[last:last + 1])
        assert not any(st.a == name or st.b == name for st in plan.steps[last + 1:])
    assert plan.meta["kept"]
    assert plan.meta["peak_bytes"] == csse.peak_bytes(plan, 2)


def _all_trees(leaves):
    """Every binary contraction tree over the leaf bitmasks, as {node: (a, b)}."""
    if len(leaves) == 1:
        yield {}
        return
    full = sum(leaves)
    first, rest = leaves[0], leaves[1:]
    for r in range(0, len(rest)):
        for combo in itertools.combinations(rest, r):
            a_leaves = [first, *combo]
            b_leaves = [x for x in rest if x not in combo]
            for ta in _all_trees(a_leaves):
                for tb in _all_trees(b_leaves):
                    yield {full: (sum(a_leaves), sum(b_leaves)), **ta, **tb}


@pytest.mark.parametrize("seed", range(6))
def test_joint_is_exact_by_brute_force_d2(seed):
    """d = 2: every combination of per-network trees (3^4), shared nodes counted once."""
    rng = np.random.default_rng(seed)
    layer = (tuple(int(v) for v in rng.integers(1, 9, 2)),
             tuple(int(v) for v in rng.integers(1, 9, 2)),
             (int(rng.integers(1, 9)),), int(rng.integers(1, 65)))
    net = StepNetwork(*layer)
    per_root = []
    for out in net.outputs:
        root = net.roots[out]
        leaves = [1 << i for i in range(net.n) if root >> i & 1]
        per_root.append(list(_all_trees(leaves)))
    best = None
    for combo in itertools.product(*per_root):
        nodes = {}
        for t in combo:
            nodes.update(t)
        cost = sum(net.macs(a, b) for a, b in nodes.values())
        best = cost if best is None else min(best, cost)
    plan = csse.search(*layer)
    assert plan.macs == best
    assert plan.meta["joint_search"]["exact_over"] == "all shared plans"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_joint_is_exact_by_brute_force_d3(seed):
    """d = 3: all 15^5 combinations of per-network trees."""
    rng = np.random.default_rng(100 + seed)
    layer = (tuple(int(v) for v in rng.integers(1, 9, 3)),
             tuple(int(v) for v in rng.integers(1, 9, 3)),
             tuple(int(v) for v in rng.integers(1, 9, 2)), int(rng.integers(1, 65)))
    net = StepNetwork(*layer)
    per_root = []
    for out in net.outputs:
        root = net.roots[out]
        leaves = [1 << i for i in range(net.n) if root >> i & 1]
        per_root.append(list(_all_trees(leaves)))
    best = None
    for combo in itertools.product(*per_root):
        nodes = {}
        for t in combo:
            nodes.update(t)
        cost = sum(net.macs(a, b) for a, b in nodes.values())
        best = cost if best is None else min(best, cost)
    plan = csse.search(*layer, proof_nodes=10**7)
    assert plan.macs == best
    assert plan.meta["joint_search"]["exact_over"] == "all shared plans"


# ---- cycles cost -----------------------------------------------------------------

def gemm_cycles_standin(rows=4, cols=4):
    """Stand-in cycle model for tests (NOT the accelerator's): a rows x cols output-
    stationary array computes a GEMM of (batch x M x N x K) in
    batch * ceil(M/rows) * ceil(N/cols) * (K + rows + cols) cycles (fill + K + drain
    per tile), with M, N, K the products of the A-free, B-free and summed indices."""
    from fetta.sw_model.arith.einsum_spec import parse_spec

    def cost(spec, shape_a, shape_b):
        sp = parse_spec(spec)
        sz = sp.sizes(shape_a, shape_b)
        prod = lambda ix: math.prod(sz[i] for i in ix)  # noqa: E731
        return prod(sp.batch) * math.ceil(prod(sp.m) / rows) * \
            math.ceil(prod(sp.n) / cols) * (prod(sp.k) + rows + cols)
    return cost


def _cycles_vs_macs_optimal(layer, cost_fn):
    net = StepNetwork(*layer)
    by_cycles = csse.network_orders(*layer, cost="cycles", cost_fn=cost_fn)
    by_macs = csse.network_orders(*layer)
    for out in net.outputs:
        c_cyc = csse.order_cost(net, by_cycles[out].splits, cost_fn)
        c_mac = csse.order_cost(net, by_macs[out].splits, cost_fn)
        assert c_cyc == by_cycles[out].cost
        assert c_cyc <= c_mac, out
    plan = csse.search(*layer, cost="cycles", cycle_cost=cost_fn)
    assert plan.meta["total_cost"] <= plan.meta["per_network_total_cost"]
    mac_plan = csse.search(*layer)
    mac_plan_cycles = csse.order_cost(
        net, {net.roots.get(s.out) or _node(net, s.out): _split(net, s)
              for s in mac_plan.steps}, cost_fn)
    assert plan.meta["total_cost"] <= mac_plan_cycles
    return plan


def _node(net, name):
    return sum(net.leaf_bit[t] for t in name.split("."))


def _split(net, step):
    def node(name):
        return net.leaf_bit.get(name) or net.roots.get(name) or _node(net, name)
    return node(step.a), node(step.b)


@pytest.mark.parametrize("name", ["fc1", "fc2", "comera"])
def test_cycles_standin_never_worse_than_mac_optimal(name):
    plan = _cycles_vs_macs_optimal((*SECTION5[name], 32), gemm_cycles_standin())
    _assert_same_results(plan, (*SECTION5[name], 32))




@pytest.mark.parametrize("config", ["tiny", "large"])
@pytest.mark.parametrize("layer", [((32, 16), (1, 16), (16,), 16),
                                   ((4, 4, 2), (2, 4, 4), (4, 4), 8)])
def test_cycles_compiler_never_worse_than_mac_optimal(config, layer):
    _cycles_vs_macs_optimal(layer, cycles_cost(config))


@pytest.mark.slow
@pytest.mark.parametrize("config", ["tiny", "large"])
def test_cycles_compiler_fc1(config):
    _cycles_vs_macs_optimal((*SECTION5["fc1"], 64), cycles_cost(config))


def test_cycles_cost_matches_predict_total():
    from fetta.sw_model.program import kchunk
    net = StepNetwork((7, 4, 2, 16), (4, 4, 2, 16), (16, 16, 16), 8)
    f = cycles_cost("tiny")
    for a, b in [(1, 4), (4, 8), (1 | 4 | 8, 16 | 32)]:
        spec = net.spec(a, b)
        assert f(spec, net.shape(a), net.shape(b)) == \
            kchunk.predict_total(spec, net.shape(a), net.shape(b), "tiny")[0]


def test_resident_cycles_cost_adds_one_move_per_intermediate():
    """With the resident cost every non-root node's splits cost one MOVE of its
    elements more; roots (read by the host) cost nothing more."""
    from fetta.sw_model.accel.timing import timing
    from fetta.sw_model.ttm.contraction_costs import SplitTable
    net = StepNetwork((4, 4, 2), (2, 4, 4), (4, 4), 8)
    plain = SplitTable(net, cycles_cost("tiny"), None)
    res = SplitTable(net, cycles_cost("tiny", resident=True), None)
    roots = set(net.roots.values())
    from fetta.sw_model.accel.config import get_config
    tm = timing(get_config("tiny"))
    checked = 0
    for s, lst in plain.splits.items():
        extra = 0 if s in roots else tm.move_cycles((net.elements(s),))
        assert [c + extra for c, _, _ in lst] == sorted(c for c, _, _ in res.splits[s])
        checked += s not in roots
    assert checked > 0
    with pytest.raises(ValueError, match="move_unit=False"):
        cycles_cost("ice40", resident=True)


# ---- memory ------------------------------------------------------------------------

def test_memory_cost_minimizes_largest_intermediate():
    layer = (*SECTION5["fc1"], 64)
    mem = csse.search(*layer, cost="memory")
    mac = csse.search(*layer)
    assert mem.meta["largest_intermediate"] <= mac.meta["largest_intermediate"]
    net = StepNetwork(*layer)
    floor = max(memory_cap(net, r) for r in net.roots.values())
    assert mem.meta["largest_intermediate"] == floor


def test_memory_budget_respected_and_costs_macs():
    layer = (*SECTION5["fc1"], 64)
    free = csse.search(*layer)
    budget = csse.search(*layer, cost="memory").meta["peak_bytes"]
    assert budget < free.meta["peak_bytes"]
    tight = csse.search(*layer, memory_budget=budget)
    assert tight.meta["peak_bytes"] <= budget
    assert tight.macs >= free.macs
    small = (*SECTION5["fc1"], 2)
    p = csse.search(*small, memory_budget=csse.search(*small).meta["peak_bytes"] - 1)
    _assert_same_results(p, small)


def test_budget_too_small_is_one_line_error():
    with pytest.raises(ValueError, match=r"memory budget 100 bytes too small") as e:
        csse.search(*SECTION5["fc1"], 64, memory_budget=100)
    assert "\n" not in str(e.value)


# ---- input validation ------------------------------------------------------------------

@pytest.mark.parametrize("args,match", [
    (("7,4", "4,4,2", "16", 64), r"out modes \[4, 4, 2\]"),
    (("7,4", "4,4", "16,16", 64), r"ranks \[16, 16\]"),
    (("7,0", "4,4", "16", 64), r"in mode 0"),
    (("7,4", "4,4", "0", 64), r"rank 0"),
    (("7,4", "4,4", "16", 0), r"batch 0"),
    (("7,x", "4,4", "16", 64), r"in modes '7,x': entry 'x'"),
    (("7,4", "4,4.5", "16", 64), r"out modes '4,4.5': entry '4.5'"),
    (("", "", "", 64), r"0 TT cores"),
])
def test_bad_layer_is_one_line_value_error(args, match):
    with pytest.raises(ValueError, match=match) as e:
        csse.search(*args)
    assert "\n" not in str(e.value)


def test_bad_cost_and_budget():
    with pytest.raises(ValueError, match="cost 'flops' unknown"):
        csse.search("2,2", "2,2", "2", 4, cost="flops")
    with pytest.raises(ValueError, match="memory budget -5"):
        csse.search("2,2", "2,2", "2", 4, memory_budget=-5)


def test_csse_planner_is_the_default_planner():
    """``csse.csse_planner`` is the planner the layers use unless told otherwise, and
    gives the joint plan."""
    assert inspect.signature(layer_plans).parameters["planner"].default is csse.csse_planner
    plan = csse.csse_planner([7, 4, 2, 16], [4, 4, 2, 16], [16, 16, 16], 64)
    assert plan.meta["planner"] == "csse" and plan.macs == 95_502_336
