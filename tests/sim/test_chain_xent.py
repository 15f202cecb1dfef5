"""The ``xent`` epilogue of a chain step (``sim.chain``): the softmax cross-entropy
gradient of the step's logits computed on chip by the XENT instruction, the labels
written by the host as one word per row, the gradient laid out from its dense home
into every later step that reads it (a training step's backward starts on chip).

Checked against the recipe's own ``quant_train.softmax_xent_grad`` (what the trainer
computes), the chain's golden model, cycles counted = predicted, host words = the
plan's; pysim in the default tier, the compiled backends in the slow tier; bad
``xent`` parameters are refused in one line before anything runs."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import check_chain, reference_chain, run_chain
from fetta.sim.resident import plan_resident
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.train.quant_train import softmax_xent_grad


def _step(rng, batch=8, k=12, n=16, classes=10):
    """Logits y = x w + b of ``batch`` rows of ``n`` (the first ``classes`` are
    classes: the trainer's padded last layer), their xent gradient dy, then the
    backward: dx = dy w2 and dw = x^T dy."""
    tensors = {"x": rng.integers(-100, 100, (batch, k)), "w": rng.integers(-8, 8, (k, n)),
               "b": rng.integers(-500, 500, (n,)), "lab": rng.integers(0, classes, batch),
               "w2": rng.integers(-8, 8, (n, k))}
    steps = [("bk,kn->bn", "x", "w", "y", {"shift": 2, "bias": "b", "rounding": "stochastic",
                                           "xent": {"labels": "lab", "grad": "dy",
                                                    "frac": 6, "classes": classes}}),
             ("bn,nk->bk", "dy", "w2", "dx", {"shift": 4}),
             ("bk,bn->kn", "x", "dy", "dw", {"shift": 3, "rounding": "stochastic"})]
    return steps, tensors


def _check(steps, tensors, res, label, keep=()):
    plan = check_chain(steps, tensors)
    want = reference_chain(plan, tensors, res.config)
    for name, got in res.outputs.items():
        bad = np.argwhere(got != want[name])
        assert not len(bad), (f"{label}: {name} element {tuple(bad[0])}: chip "
                              f"{got[tuple(bad[0])]}, golden {want[name][tuple(bad[0])]}")
    run = res.resident
    assert run.cycles["counted"] == run.cycles["predicted"]
    rp = plan_resident(plan, {k: np.shape(v) for k, v in tensors.items()},
                       get_config(res.config), keep=set(keep))
    assert len(run.segments) == 1
    assert res.host_words == {**rp.host_words, "skipped": 0}
    assert run.cycles["elementwise"] == rp.vec_cycles
    assert run.cycles["vec_elements"] == rp.vec_elements
    # the vector-busy counters by operation: the XENT's rows and the VEC ALU's elements
    busy = run.cycles["vector_busy"]
    assert busy == run.cycles["vector_busy_predicted"], label
    assert busy["xent"] > 0 and busy["vec"] > 0 and busy["adam"] == 0, label
    assert sum(busy.values()) == run.cycles["vec_elements"], label
    return want


def test_golden_xent_is_the_trainers_gradient():
    """The chain's golden model of ``xent`` is the recipe's softmax_xent_grad: the
    first ``classes`` columns, zeros in the padding, the mean over ``bsz`` rows."""
    rng = np.random.default_rng(1)
    steps, tensors = _step(rng)
    plan = check_chain(steps, tensors)
    want = reference_chain(plan, tensors, "tiny")
    g, _ = softmax_xent_grad(want["y"], 6, tensors["lab"], 10, 16)
    assert np.array_equal(want["dy"], g)
    assert (want["dy"][:, 10:] == 0).all() and (want["dy"][:, :10] != 0).any()


def test_training_step_tail_on_chip_pysim():
    rng = np.random.default_rng(2)
    steps, tensors = _step(rng)
    res = run_chain(steps, tensors, resident=True, keep=("dy", "y"))
    assert set(res.outputs) == {"y", "dy", "dx", "dw"}
    want = _check(steps, tensors, res, "pysim", keep=("dy", "y"))
    assert np.array_equal(res.outputs["dy"], softmax_xent_grad(want["y"], 6, tensors["lab"],
                                                               10, 16)[0])
    # the host writes the labels as one word per row, not a one-hot gradient buffer
    rp = res.resident.segments[0].plan
    labels = [h for h in rp.input_homes() if h.tensor == "lab"]
    assert len(labels) == 1 and labels[0].elements == 8


def test_labels_outside_the_classes_give_no_target_and_bsz_scales():
    """A label outside 0..classes-1 (padding rows of a last micro-batch) gives that
    row p with no -1; ``bsz`` sets the mean's divisor independently of the rows."""
    rng = np.random.default_rng(5)
    steps, tensors = _step(rng, batch=6)
    tensors["lab"][[1, 4]] = [-1, 12]
    steps[0][4]["xent"]["bsz"] = 64
    res = run_chain(steps, tensors, resident=True, keep=("dy",))
    want = _check(steps, tensors, res, "no target", keep=("dy",))
    none = want["dy"][[1, 4], :10]                     # p only: nothing negative
    assert (none >= 0).all() and (none.sum(axis=1) > 0).all()
    assert (want["dy"][[0, 2, 3, 5], :10] < 0).any()    # p - 1 at a label


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_compiled_backends(backend):
    rng = np.random.default_rng(3)
    steps, tensors = _step(rng, batch=16, classes=16)
    res = run_chain(steps, tensors, resident=True, backend=backend, keep=("dy",))
    _check(steps, tensors, res, backend, keep=("dy",))


@pytest.mark.parametrize("change, match", [
    (lambda s, t: s[0][4]["xent"].pop("labels"), "xent needs 'labels'"),
    (lambda s, t: s[0][4]["xent"].update(labels="nope"), "labels 'nope' is not an input"),
    (lambda s, t: t.update(lab=np.zeros((8, 2), np.int64)), r"labels 'lab' of shape"),
    (lambda s, t: s[0][4]["xent"].update(classes=17), "classes=17 out of range"),
    (lambda s, t: s[0][4]["xent"].update(grad="x"), "grad name 'x' is not a new"),
    (lambda s, t: s[0][4]["xent"].update(frac=40), "frac=40 out of range"),
    (lambda s, t: s[0][4]["xent"].update(bsz=1), "bsz=1 out of range"),
    (lambda s, t: s[0][4]["xent"].update(seed=3), "xent parameter 'seed' unknown"),
    (lambda s, t: s[0][4]["xent"].update(reshape=(3, 5)), "reshape=.* does not have"),
    (lambda s, t: s[0][4].update(act={"shift": 1}), "xent and act on one step"),
])
def test_bad_xent_is_refused_in_one_line(change, match):
    rng = np.random.default_rng(0)
    steps, tensors = _step(rng)
    change(steps, tensors)
    with pytest.raises(ValueError, match=match) as exc:
        check_chain(steps, tensors)
    assert "\n" not in str(exc.value)


def test_xent_needs_a_resident_chain_and_keep_names_a_result():
    rng = np.random.default_rng(0)
    steps, tensors = _step(rng)
    with pytest.raises(ValueError, match="pass resident=True"):
        run_chain(steps, tensors)
    with pytest.raises(FettaError, match="keep='lab' is not a result"):
        run_chain(steps, tensors, resident=True, keep=("lab",))


def test_staged_inputs_leave_the_gradient_to_the_xent():
    """With ``stage=True`` only inputs are written densely and laid out by MOVEs; the
    gradient, made on chip, is not staged."""
    rng = np.random.default_rng(6)
    steps, tensors = _step(rng, batch=16)
    res = run_chain(steps, tensors, resident=True, stage=True, keep=("dy",))
    rp = res.resident.segments[0].plan
    assert "dy" not in rp.staged and set(rp.staged) <= set(tensors)
    plan = check_chain(steps, tensors)
    want = reference_chain(plan, tensors, res.config)
    for name, got in res.outputs.items():
        assert np.array_equal(got, want[name]), name
