"""TTM layer maths (float64): plan-based forward equals dense W @ x; input and core
gradients equal central finite differences; plan splitting."""

import numpy as np
import pytest

from fetta.sw_model.ttm import plan as plan_mod
from fetta.sw_model.ttm.models import PRESETS
from fetta.sw_model.ttm.layers import (clear_plan_cache, core_shapes, init_cores, layer_plans,
                          split_plan, to_dense, ttm_backward, ttm_forward)

PRESET_LAYERS = [(m.name, i, l.in_modes, l.out_modes, l.ranks)
                 for m in PRESETS.values() for i, l in enumerate(m.layers)]


def _random_shapes(n, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = int(rng.integers(1, 5))
        im = tuple(int(v) for v in rng.integers(1, 5, d))
        om = tuple(int(v) for v in rng.integers(1, 5, d))
        r = tuple(int(v) for v in rng.integers(1, 5, d - 1))
        out.append((im, om, r))
    return out


SHAPES = [(im, om, r) for _, _, im, om, r in PRESET_LAYERS] + _random_shapes(8)


@pytest.mark.parametrize("im,om,r", SHAPES)
def test_forward_equals_dense(im, om, r):
    rng = np.random.default_rng(0)
    cores = init_cores(im, om, r, rng)
    w = to_dense(cores)
    assert w.shape == (int(np.prod(om)), int(np.prod(im)))
    x = rng.standard_normal((3, w.shape[1]))
    parts = layer_plans(im, om, r, 3)
    y, _ = ttm_forward(cores, x, im, om, parts.forward)
    ref = x @ w.T
    assert np.abs(y - ref).max() <= 1e-12 * np.abs(ref).max()
    y2, _ = ttm_forward(cores, x, im, om, parts.inference)
    assert np.array_equal(y, y2)


@pytest.mark.parametrize("im,om,r", SHAPES)
def test_gradients_match_finite_differences(im, om, r):
    """L = sum(y * R): dL/dx and dL/dG_k against central differences along random
    directions (covering every element of every core) and on single elements."""
    rng = np.random.default_rng(2)
    cores = init_cores(im, om, r, rng)
    bsz = 2
    x = rng.standard_normal((bsz, int(np.prod(im))))
    rr = rng.standard_normal((bsz, int(np.prod(om))))
    parts = layer_plans(im, om, r, bsz)

    def loss(cs, xx):
        return float((ttm_forward(cs, xx, im, om, parts.inference)[0] * rr).sum())

    _, env = ttm_forward(cores, x, im, om, parts.forward)
    dx, dgs = ttm_backward(cores, env, rr, om, parts.backward)
    eps = 1e-5

    def check(analytic, numeric):
        scale = max(abs(analytic), abs(numeric), 1e-12)
        assert abs(analytic - numeric) / scale < 1e-6, (analytic, numeric)

    v = rng.standard_normal(x.shape)
    check(float((dx * v).sum()),
          (loss(cores, x + eps * v) - loss(cores, x - eps * v)) / (2 * eps))
    for k, g in enumerate(cores):
        assert dgs[k].shape == g.shape
        for trial in range(2):
            v = rng.standard_normal(g.shape)
            cp = [c.copy() for c in cores]
            cm = [c.copy() for c in cores]
            cp[k] = g + eps * v
            cm[k] = g - eps * v
            check(float((dgs[k] * v).sum()), (loss(cp, x) - loss(cm, x)) / (2 * eps))
        flat = int(rng.integers(g.size))
        e = np.zeros(g.size)
        e[flat] = 1
        cp = [c.copy() for c in cores]
        cm = [c.copy() for c in cores]
        cp[k] = g + eps * e.reshape(g.shape)
        cm[k] = g - eps * e.reshape(g.shape)
        num = (loss(cp, x) - loss(cm, x)) / (2 * eps)
        if abs(num) > 1e-9:
            check(float(dgs[k].reshape(-1)[flat]), num)


def test_init_variance():
    rng = np.random.default_rng(0)
    w = to_dense(init_cores((4, 4, 4), (4, 8, 4), (8, 8), rng))
    assert 0.5 < w.var() / (2 / 64) < 2


def test_core_shapes():
    assert core_shapes((7, 4), (4, 4), (16,)) == [(1, 4, 7, 16), (16, 4, 4, 1)]


def test_split_plan_without_dx():
    parts = split_plan(plan_mod.chain_plan((4, 4), (4, 4), (3,), 5), 2, need_dx=False)
    outs = {s.out for s in parts.backward.steps}
    assert "dx" not in outs and {"dg1", "dg2"} <= outs
    assert all("dy" not in (s.a, s.b) for s in parts.forward.steps)
    assert parts.saved == ("x",)


def test_split_plan_reuses_forward_intermediates():
    """A planner whose core gradient reuses a forward intermediate: it is computed in
    the forward phase, saved, and not recomputed."""
    from fetta.sw_model.ttm.plan import Plan, Step
    base = plan_mod.chain_plan((2, 3), (3, 2), (2,), 4)
    steps = list(base.steps)
    fwd_t0 = next(s for s in steps if s.out == "y.t0")     # x.g1
    # dg2 = (x.g1) . dy  -- reuse y.t0
    new = [s for s in steps if not s.out.startswith("dg2")]
    ia = fwd_t0.spec.split("->")[1]
    new.append(Step("dg2", "y.t0", "dy", f"{ia},zij->Bjb"))
    p = Plan(new, base.outputs)
    parts = split_plan(p, 2)
    assert "y.t0" in parts.saved
    rng = np.random.default_rng(0)
    cores = init_cores((2, 3), (3, 2), (2,), rng)
    x = rng.standard_normal((4, 6))
    dy = rng.standard_normal((4, 6))
    _, env = ttm_forward(cores, x, (2, 3), (3, 2), parts.forward)
    _, g_new = ttm_backward(cores, {k: env[k] for k in parts.saved}, dy, (3, 2),
                            parts.backward)
    ref = layer_plans((2, 3), (3, 2), (2,), 4)
    _, env = ttm_forward(cores, x, (2, 3), (3, 2), ref.forward)
    _, g_ref = ttm_backward(cores, env, dy, (3, 2), ref.backward)
    for a, b in zip(g_new, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_plans_cached_by_planner_and_shape():
    calls = []

    def spy(*args):
        calls.append(args)
        return plan_mod.chain_plan(*args)

    clear_plan_cache()
    layer_plans((2, 2), (2, 2), (2,), 3, planner=spy)
    layer_plans((2, 2), (2, 2), (2,), 3, planner=spy)
    assert len(calls) == 1                  # cached by shape
    layer_plans((2, 2), (2, 2), (1,), 3, planner=spy)    # new ranks -> new plan
    assert len(calls) == 2
    clear_plan_cache()


def test_backward_phases_attribution():
    """Only-dx work is input_gradient; anything a core gradient needs (even if dx
    needs it too) is core_gradients."""
    from fetta.sw_model.ttm.layers import backward_phases
    steps = [("t1", "dy", "G1"), ("t2", "t1", "G2"), ("dx", "t2", "G3"),
             ("dg1", "t1", "x"), ("t3", "dy", "x"), ("dg2", "t3", "G1")]
    assert backward_phases(steps) == {"t1": "core_gradients", "t2": "input_gradient",
                                      "dx": "input_gradient", "dg1": "core_gradients",
                                      "t3": "core_gradients", "dg2": "core_gradients"}
