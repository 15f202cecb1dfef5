"""The trainer: fixed-point recipe pieces, the executor/observer plumbing, determinism,
and (slow tier) the accuracy targets."""

import re
import time

import numpy as np
import pytest

from fetta.sw_model.ttm import plan as plan_mod
from fetta.sw_model.ttm.csse import csse_planner
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.train.data import load_digits_split
from fetta.sw_model.arith.fixedpoint import Pow2Code
from fetta.sw_model.ttm.plan import Plan, Step
from fetta.sw_model.train.quant_train import (FixedAdam, FixedRecipe, ShiftController, derive_seed,
                                  isqrt, softmax_q15, softmax_xent_grad)
from fetta.sw_model.train.executor import default_executor
from fetta.sw_model.train.trainer import TrainConfig, train
from fetta.sw_model.ttm.layers import clear_plan_cache


@pytest.fixture(scope="module")
def small():
    d = load_digits_split()
    d.x_train, d.y_train = d.x_train[:192], d.y_train[:192]
    d.x_test, d.y_test = d.x_test[:100], d.y_test[:100]
    return d


def _is_core(name):
    return re.fullmatch(r"g\d+", name) is not None


def _strip(r):
    return {k: v for k, v in r.items() if k != "wall_seconds"}


# ------------------------------------------------------------ recipe pieces
def test_derive_seed_deterministic_and_in_range():
    s = {derive_seed(7, t, i) for t in range(20) for i in range(20)}
    assert len(s) == 400
    assert all(0 <= v < 2 ** 32 for v in s)
    assert derive_seed(7, 3, 4) == derive_seed(7, 3, 4) != derive_seed(8, 3, 4)


def test_shift_controller_votes():
    rc = FixedRecipe(votes=3)
    c = ShiftController(16, rc)
    c.calibrate(100000)        # 100000 >> 2 = 25000 <= 0.9 * 32767
    assert c.shift == 2
    full = 32767
    for _ in range(2):
        c.observe(full)
    assert c.shift == 2
    c.observe(full)
    assert c.shift == 3
    c.observe(100)
    c.observe(100)
    c.observe(20000)           # in band: resets the count
    c.observe(100)
    c.observe(100)
    assert c.shift == 3
    c.observe(100)
    assert c.shift == 2
    assert ShiftController.from_state(c.state(), rc).state() == c.state()


def test_isqrt_exact():
    v = np.array([0, 1, 2, 3, 4, 15, 16, 17, 2 ** 31 - 1, 2 ** 32 - 1, (2 ** 26 + 1) ** 2,
                  (2 ** 26 + 1) ** 2 - 1], np.int64)
    s = isqrt(v)
    assert np.all(s * s <= v) and np.all((s + 1) * (s + 1) > v)


def test_softmax_fixed_close_to_float():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 16)) * 3
    frac = 10
    zq = np.round(z * 2 ** frac).astype(np.int64)
    p = softmax_q15(zq, frac, 10) / 2 ** 15
    e = np.exp(z[:, :10] - z[:, :10].max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), atol=2e-3)
    labels = rng.integers(0, 10, 8)
    g, fg = softmax_xent_grad(zq, frac, labels, 10)
    ref = e / e.sum(1, keepdims=True)
    ref[np.arange(8), labels] -= 1
    np.testing.assert_allclose(g[:, :10] * 2.0 ** -fg, ref / 8, atol=1e-3)
    assert np.all(g[:, 10:] == 0) and np.abs(g).max() < 2 ** 15


def test_fixed_adam_moves_against_gradient():
    opt = FixedAdam(0.05)
    opt.init([(100,)])
    w = np.zeros(100, np.int64)
    for t in range(5):
        opt.tick()
        w = opt.update(0, w, 7, 8, np.full(100, 300, np.int64), 12, (t, t + 100))
    # five Adam steps of ~lr = 0.05 each -> about -0.25 = -32 codes at frac 7
    assert -40 < w.mean() < -24


# ------------------------------------------------------------ plumbing
def test_fixed_deterministic(small):
    a = train("digits", precision="fixed", epochs=1, data=small, seed=3)
    b = train("digits", precision="fixed", epochs=1, data=small, seed=3)
    c = train("digits", precision="fixed", epochs=1, data=small, seed=4)
    assert _strip(a) == _strip(b)
    assert a["epochs"] != c["epochs"]


@pytest.mark.parametrize("precision", ["fixed", "pow2"])
def test_executor_and_observer(small, precision):
    calls, events = [], []

    def executor(step, a, b, **kw):
        calls.append(step.spec)
        return default_executor(step, a, b, **kw)

    r1 = train("digits", precision=precision, epochs=1, data=small, executor=executor,
               observer=events.append)
    r0 = train("digits", precision=precision, epochs=1, data=small)
    assert _strip(r1) == _strip(r0)
    assert len(calls) == len(events) > 0
    phases = {e.phase for e in events}
    assert phases == {"forward", "backward", "eval"}
    for e in events[:200] + events[-50:]:
        assert e.a.dtype == np.int64 and e.out.dtype == np.int64
        assert np.abs(e.a).max(initial=0) < 2 ** 15
        assert 0 <= e.seed < 2 ** 32
        assert (e.rounding == "stochastic") == (e.phase != "eval")
        kw = dict(shift=e.shift, rounding=e.rounding, out_bits=e.out_bits, seed=e.seed)
        if precision == "pow2":
            if _is_core(e.step.b):
                assert e.b_pow2 == Pow2Code(4)
                Pow2Code(4).check(e.b)
            kw["b_pow2"] = e.b_pow2
        else:
            assert np.abs(e.b).max(initial=0) < 2 ** 15
        assert np.array_equal(reference_contraction(e.step.spec, e.a, e.b, **kw), e.out)
    train_events = [e for e in events if e.phase != "eval"]
    for step in {e.train_step for e in train_events}:
        idx = [e.index for e in train_events if e.train_step == step]
        assert idx == list(range(len(idx)))


def _swapped(planner):
    def swapped(*args):
        return _swap_operands(planner(*args))
    return swapped


def _swap_operands(p):
    steps = []
    for s in p.steps:
        lhs, out = s.spec.split("->")
        a, b = lhs.split(",")
        steps.append(Step(s.out, s.b, s.a, f"{b},{a}->{out}", s.shape, s.macs))
    return Plan(steps, p.outputs, dict(p.free_after), meta={"planner": "swapped"})


@pytest.mark.parametrize("precision", ["float", "fixed", "pow2"])
def test_result_independent_of_operand_order(small, precision):
    """A planner with every step's operands swapped (cores as A) trains identically:
    pow2 codes are always handed to the executor as B."""
    r0 = train("digits", precision=precision, epochs=1, data=small)
    clear_plan_cache()
    events = []
    r1 = train("digits", precision=precision, epochs=1, data=small, observer=events.append,
               planner=_swapped(csse_planner))
    clear_plan_cache()
    if precision == "float":
        assert r1["epochs"][0]["test_accuracy"] == r0["epochs"][0]["test_accuracy"]
        assert abs(r1["epochs"][0]["loss"] - r0["epochs"][0]["loss"]) < 1e-9
    else:
        assert _strip(r1) == _strip(r0)
    if precision == "pow2":
        assert all(_is_core(e.step.b) for e in events if _is_core(e.step.a))


def test_results_schema(small):
    r = train("digits", epochs=2, data=small)
    for key in ("model", "precision", "backend", "seed", "epochs", "test_accuracy",
                "memory", "wall_seconds"):
        assert key in r
    assert r["backend"] == "numpy" and r["model"] == "digits"
    assert [e["epoch"] for e in r["epochs"]] == [1, 2]
    for e in r["epochs"]:
        assert set(e) == {"epoch", "loss", "train_accuracy", "test_accuracy", "ranks",
                          "tt_params"}
        assert 0 <= e["test_accuracy"] <= 1
    assert r["test_accuracy"] == r["epochs"][-1]["test_accuracy"]


def test_sgd_float(small):
    r = train("digits", epochs=1, data=small, optimizer="sgd", lr=0.05)
    assert r["optimizer"] == "sgd"


@pytest.mark.parametrize("kw,msg", [
    ({"precision": "double"}, "precision"), ({"epochs": 0}, "epochs"),
    ({"batch": 0}, "batch"), ({"lr": -1.0}, "lr"), ({"seed": -1}, "seed"),
    ({"optimizer": "sgd", "precision": "fixed"}, "float-only"),
])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kw)


# ------------------------------------------------------------ slow: targets
@pytest.mark.slow
@pytest.mark.parametrize("precision,target", [("float", 0.95), ("fixed", 0.93),
                                              ("pow2", 0.90)])
def test_default_digits_accuracy(precision, target):
    t0 = time.perf_counter()
    r = train("digits", precision=precision)
    assert r["test_accuracy"] >= target
    assert time.perf_counter() - t0 < 120


@pytest.mark.slow
def test_same_seed_identical_json_float():
    a, b = train("digits", epochs=5), train("digits", epochs=5)
    assert _strip(a) == _strip(b)


def _core_merge_planner(in_modes, out_modes, ranks, batch):
    """Chain plan, except that 2-core layers compute y = x . (g1 . g2): a core-core
    contraction, as a joint planner may emit."""
    p = plan_mod.chain_plan(in_modes, out_modes, ranks, batch)
    if len(in_modes) != 2:
        return p
    rest = [s for s in p.steps if not (s.out == "y" or s.out.startswith("y."))]
    merged = Step("y.w", "g1", "g2", "iaB,Bjb->iajb")
    fwd = Step("y", "x", "y.w", "zab,iajb->zij")
    return Plan([merged, fwd] + rest, p.outputs, meta={"planner": "merge"})


@pytest.mark.parametrize("precision", ["fixed", "pow2"])
def test_core_core_contraction(small, precision):
    clear_plan_cache()
    events = []
    r = train("digits", precision=precision, epochs=1, data=small, observer=events.append,
              planner=_core_merge_planner)
    clear_plan_cache()
    merges = [e for e in events if e.step.out == "y.w"]
    assert merges and np.isfinite(r["epochs"][0]["loss"])
    for e in merges[:3]:
        kw = dict(shift=e.shift, rounding=e.rounding, out_bits=e.out_bits, seed=e.seed)
        if precision == "pow2":
            assert e.b_pow2 is not None
            Pow2Code(4).check(e.b)
            assert np.abs(e.a).max() <= 64          # decoded power-of-two weights
            kw["b_pow2"] = e.b_pow2
        assert np.array_equal(reference_contraction(e.step.spec, e.a, e.b, **kw), e.out)
