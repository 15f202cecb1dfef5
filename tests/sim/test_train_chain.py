"""A whole fixed-point training step as one chain (``sim.train_chain``): forward,
biases, activations, the XENT loss gradient, ReLU masks and backward. The chain's
golden model equals the trainer's own step (``FixedPath.gradients``) with the same
seeds drawn; on the RTL (``RtlTraining(step_chains=True)``) a short training equals
the NumPy fixed trainer's loss and accuracy with every chain step verified, and a
wrong result is reported naming the tensor and element."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import check_chain, reference_chain
from fetta.sim.rtl_training import ContractionMismatch, RtlTraining
from fetta.sim.train_chain import plan_step_chain, step_gradients, step_keys
from fetta.sw_model.train.data import Dataset, load_dataset
from fetta.sw_model.train.quant_train import FixedRecipe
from fetta.sw_model.train.trainer import TrainConfig, Trainer, train
from fetta.sw_model.ttm.models import resolve_model

from rtl_train_runs import BATCH, small_digits, train_on_rtl


@pytest.fixture(scope="module")
def digits():
    return load_dataset(resolve_model("digits").dataset, None)


def _batch(data, i):
    return data.x_train[i * BATCH:(i + 1) * BATCH], data.y_train[i * BATCH:(i + 1) * BATCH]


def test_the_chain_is_the_trainers_step(digits):
    model = resolve_model("digits")
    # one vote moves a shift (votes=1): the activation's shift moves within a few steps
    tr = Trainer(model, TrainConfig(precision="fixed", batch=BATCH, seed=3,
                                    recipe=FixedRecipe(votes=1)),
                 n_train=len(digits.x_train))
    x, y = _batch(digits, 0)
    xq, wc = tr.path.quantize_input(x), tr.path.contraction_weights()
    before = tr.step_state()
    assert plan_step_chain(tr, xq, wc, y) is None       # not calibrated: no seed drawn
    assert tr.step_state() == before
    tr.train_step(x, y)                                 # the trainer calibrates
    assert set(step_keys(tr, BATCH)) <= set(tr.shifts)
    moved = 0               # steps whose activation vote moved the shift
    for i in range(1, 40):
        x, y = _batch(digits, i)
        tr._seed_index, tr.contraction_index = 0, 0
        xq, wc = tr.path.quantize_input(x), tr.path.contraction_weights()
        start = tr.step_state()
        want = tr.path.gradients(xq, wc, y)
        drawn = tr.step_state()[0]
        tr.restore_step_state(start)
        sc = plan_step_chain(tr, xq, wc, y)
        assert tr.step_state()[0] == drawn                # the same seeds, in order
        vals = reference_chain(check_chain(sc.steps, sc.tensors), sc.tensors, "large")
        z, fz, gcores, gbias = step_gradients(sc, vals)
        assert fz == want[1] and np.array_equal(z, want[0])
        for l in range(len(gcores)):
            for (g, f), (wg, wf) in zip(gcores[l], want[2][l]):
                assert f == wf and np.array_equal(g, wg), f"step {i} layer {l}"
            assert gbias[l][1] == want[3][l][1]
            assert np.array_equal(gbias[l][0], want[3][l][0]), f"step {i} bias {l}"
        assert any("xent" in p for *_, p in sc.steps)
        assert sum("mask" in p for *_, p in sc.steps) == len(model.layers) - 1
        tr.restore_step_state(start)
        act = tr.shifts["L0:act"].shift
        tr.train_step(x, y)
        moved += tr.shifts["L0:act"].shift != act
        if moved >= 2 and i >= 3:
            break
    # the logits' frac follows the shift the activation was requantized with, also
    # when that step's vote moves it
    assert moved >= 2


_small = small_digits


def test_training_on_the_rtl_with_step_chains_equals_the_numpy_trainer(digits):
    data = _small(digits, 3)
    r = train_on_rtl(data, verify="all")
    ref = train("digits", precision="fixed", epochs=1, batch=BATCH, seed=0, data=data)
    assert r["mismatches"] == 0
    assert {k: r["step_chains"][k] for k in ("on", "steps", "verified", "fallback")} == \
        {"on": True, "steps": 2, "verified": 2, "fallback": None}
    assert r["test_accuracy"] == ref["test_accuracy"]
    assert r["epochs"][-1]["loss"] == ref["epochs"][-1]["loss"]
    steps = r["cycles_per_step"]
    assert steps[0]["elementwise"] == 0 and steps[1]["elementwise"] > 0   # step 0: host
    # a slot per controller of the step: 14 contractions and the activation
    assert r["shift_slots"]["slots_used"] == 15
    assert r["mac_utilization_all_cycles"] > 0
    occ = r["peak_buffer_occupancy"]
    assert all(0 < occ[k] <= 1 for k in "abc")


def test_a_wrong_gradient_is_reported_with_tensor_and_element(digits, monkeypatch):
    import fetta.sim.train_chain as tc
    real = tc.step_gradients

    def broken(sc, outputs):
        z, fz, gcores, gbias = real(sc, outputs)
        g, f = gcores[1][0]
        g = g.copy()
        g.flat[5] += 1
        gcores[1][0] = (g, f)
        return z, fz, gcores, gbias

    monkeypatch.setattr(tc, "step_gradients", broken)
    rt = RtlTraining("tiny", sim="verilator", verify="all", resident=True,
                     shift_slots=True, step_chains=True)
    try:
        with pytest.raises(ContractionMismatch, match=r"step 1 step chain layer 1 L1/dg1 "
                                                      r"element \(0, 0, 0, 5\): "
                                                      r"accelerator -?\d+ != reference") as e:
            train("digits", precision="fixed", epochs=1, batch=BATCH, seed=0,
                  data=_small(digits, 2), executor=rt.executor, observer=rt.observer,
                  step_chain=rt.step_chain, backend="rtl")
    finally:
        rt.close()
    # the chip itself was right: the rerun reading every intermediate says so
    assert "equals the chain's golden model at every step" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_chip_fault_is_located_at_its_chain_step(digits):
    """A fault on the chip's side (here every long host write into buffer B, the
    weights, has one bit flipped from the second step on) is found at the step's
    outputs, then located by the rerun that reads every intermediate: the first chain
    step whose result differs from the chain's golden model, with its operation."""
    from fetta.sw_model.accel.hostmap import buffer_base
    rt = RtlTraining("tiny", sim="verilator", verify="all", resident=True,
                     shift_slots=True, step_chains=True)
    on = []
    real = rt.session.backend.write

    def faulty(addr, words):
        words = list(words)
        if on and buffer_base(1) <= addr < buffer_base(2) and len(words) > 32:
            words[0] ^= 0x4
        return real(addr, words)

    rt.session.backend.write = faulty
    try:
        tr = Trainer(resolve_model("digits"),
                     TrainConfig(precision="fixed", batch=BATCH, seed=0,
                                 recipe=FixedRecipe()),
                     n_train=len(digits.x_train), executor=rt.executor,
                     observer=rt.observer, step_chain=rt.step_chain)
        for i in range(2):
            tr.train_step(*_batch(digits, i))
        on.append(1)
        with pytest.raises(ContractionMismatch) as e:
            tr.train_step(*_batch(digits, 2))
    finally:
        rt.close()
    where = e.value.report["first_difference"]
    assert "first difference on chip: chain step" in str(e.value)
    assert where["tensor"].startswith("L") and where["operation"].startswith("contraction")
    assert where["accelerator"] != where["reference"]
    assert "\n" not in str(e.value)


def test_step_chains_need_resident_and_shift_slots():
    with pytest.raises(FettaError, match="--step-chains needs --resident and --shift-slots"):
        RtlTraining("tiny", sim="verilator", resident=True, step_chains=True)


def test_an_activation_shift_moved_on_the_host_is_written_to_its_slot(digits):
    """A step the trainer runs itself (a batch whose plan needs a new controller)
    votes the activation's shift on the host; the next chain step rewrites that slot
    first, so the chip requantizes with the trainer's shift."""
    model = resolve_model("digits")
    rt = RtlTraining("tiny", sim="verilator", verify="all", resident=True,
                     shift_slots=True, step_chains=True)
    try:
        tr = Trainer(model, TrainConfig(precision="fixed", batch=BATCH, seed=0,
                                        recipe=FixedRecipe()),
                     n_train=len(digits.x_train), executor=rt.executor,
                     observer=rt.observer, step_chain=rt.step_chain)
        for i in range(2):                      # calibration, then a chain step
            tr.train_step(*_batch(digits, i))
        assert rt.chain_steps == 1
        act = tr.shifts["L0:act"]
        act.shift, act.pending = act.shift + 1, 0   # as a host-side vote would
        writes = rt.slot_writes
        tr.train_step(*_batch(digits, 2))
        assert rt.chain_steps == 2 and rt.mismatches == 0
        assert rt.slot_writes == writes + 1
        # the session still knows program memory: the next chain rewrites only the
        # words that changed (its seeds)
        assert rt.session._resident["prog"].valid.any()
    finally:
        rt.close()


def test_a_step_that_does_not_fit_falls_back_and_says_why(digits):
    """digits at batch 64 does not fit `tiny` as resident segments: the trainer runs
    its own steps (one program per contraction), the results are unchanged and the
    report names the reason."""
    data = Dataset(digits.name, digits.x_train[:128], digits.y_train[:128],
                   digits.x_test[:32], digits.y_test[:32])
    rt = RtlTraining("tiny", sim="verilator", verify="all", resident=True,
                     shift_slots=True, step_chains=True)
    try:
        r = rt.finish(train("digits", precision="fixed", epochs=1, batch=64, seed=0,
                            data=data, executor=rt.executor, observer=rt.observer,
                            step_chain=rt.step_chain, backend="rtl"))
    finally:
        rt.close()
    ref = train("digits", precision="fixed", epochs=1, batch=64, seed=0, data=data)
    assert r["step_chains"]["steps"] == 0 and r["mismatches"] == 0
    assert "does not fit 'tiny' as a resident segment" in r["step_chains"]["fallback"]
    assert r["epochs"][-1]["loss"] == ref["epochs"][-1]["loss"]
