"""The digits model's fixed-point inference forward pass as one resident chain
(``sim.forward_chain``): contractions, biases, ReLU + activation requantization and
the reshape between layers on chip, the logits equal to the trainer's own
(``FixedPath.forward``) bit for bit; the chain's ``reshape`` parameter on both
paths."""

import numpy as np
import pytest

from fetta.sim.chain import check_chain, reference_chain, run_chain
from fetta.sim.forward_chain import inference_chain
from fetta.sw_model.train.data import load_digits_split
from fetta.sw_model.train.trainer import TrainConfig, Trainer
from fetta.sw_model.ttm.models import get_model


@pytest.fixture(scope="module")
def trained():
    d = load_digits_split()
    tr = Trainer(get_model("digits"), TrainConfig(precision="fixed", seed=0),
                 n_train=len(d.x_train))
    for i in range(3):
        tr.train_step(d.x_train[i * 64:(i + 1) * 64], d.y_train[i * 64:(i + 1) * 64])
    return tr, d


def test_the_chain_is_the_trainers_pass(trained):
    tr, d = trained
    steps, tensors, z = inference_chain(tr, d.x_test[:8])
    ref = reference_chain(check_chain(steps, tensors), tensors, "tiny")
    assert np.array_equal(ref["L1/y"], z)
    # not vacuous: another activation shift gives other logits
    steps[2][4]["act"]["shift"] += 1
    assert not np.array_equal(reference_chain(check_chain(steps, tensors), tensors,
                                              "tiny")["L1/y"], z)


def test_inference_on_chip_equals_the_trainer(trained):
    """Verilator (the default RTL backend of training): one batch of 8."""
    tr, d = trained
    steps, tensors, z = inference_chain(tr, d.x_test[:8])
    res = run_chain(steps, tensors, resident=True, backend="verilator")
    got = res.outputs["L1/y"]
    bad = np.argwhere(got != z)
    assert not len(bad), (f"logits element {tuple(bad[0])}: chip {got[tuple(bad[0])]}, "
                          f"trainer {z[tuple(bad[0])]}")
    run = res.resident
    assert run.cycles["counted"] == run.cycles["predicted"]
    assert res.cycles["elementwise"] > 0
    assert set(res.outputs) == {"L0/z", "L1/y"}


def test_reshape_on_both_paths():
    rng = np.random.default_rng(2)
    tensors = {"x": rng.integers(-50, 50, (4, 6)), "w": rng.integers(-8, 8, (6, 8)),
               "v": rng.integers(-8, 8, (2, 4, 3))}
    steps = [("bk,kn->bn", "x", "w", "h", {"shift": 2, "reshape": (4, 2, 4)}),
             ("bij,ijm->bm", "h", "v", "y", {"shift": 1})]
    ref = reference_chain(check_chain(steps, tensors), tensors, "tiny")
    for resident in (False, True):
        res = run_chain(steps, tensors, resident=resident)
        assert np.array_equal(res.outputs["y"], ref["y"]), resident
    with pytest.raises(ValueError, match=r"reshape=\(4, 3\) does not have the output's 32"):
        check_chain([("bk,kn->bn", "x", "w", "h", {"reshape": (4, 3)})], tensors)
