"""The trainer's number formats as strategies (``sw_model.train.paths``): each precision
gets its path, the path owns the optimizer state the checkpoint carries, and
``float_gradients`` is float-only."""

import numpy as np
import pytest

from fetta.sw_model.train.paths import PATHS, FixedPath, FloatPath, softmax_xent
from fetta.sw_model.train.trainer import PRECISIONS, TrainConfig, Trainer
from fetta.sw_model.ttm.models import get_model


def _trainer(precision):
    return Trainer(get_model("digits"), TrainConfig(precision=precision, seed=1),
                   n_train=100)


def test_every_precision_has_its_path():
    assert set(PATHS) == set(PRECISIONS)
    assert isinstance(_trainer("float").path, FloatPath)
    fixed, pow2 = _trainer("fixed").path, _trainer("pow2").path
    assert isinstance(fixed, FixedPath) and fixed.pow2 is None
    assert isinstance(pow2, FixedPath) and pow2.pow2 is not None


@pytest.mark.parametrize("precision", PRECISIONS)
def test_optimizer_state_is_the_paths(precision):
    """The path's moments are one per core and bias, shaped like them, in the state's
    ``opt.m*``/``opt.v*`` arrays; parameters are integer codes except in float."""
    tr = _trainer(precision)
    flat = [g for cl in tr.params for g in cl] + tr.bias
    m, v, meta = tr.path.optimizer_state()
    assert [a.shape for a in m] == [a.shape for a in v] == [a.shape for a in flat]
    arrays, state_meta = tr.state()
    assert state_meta["opt"] == meta
    assert all(arrays[f"opt.m{i}"] is m[i] for i in range(len(flat)))
    assert all(np.issubdtype(a.dtype, np.integer) == (precision != "float") for a in flat)


@pytest.mark.parametrize("precision", ["fixed", "pow2"])
def test_float_gradients_is_float_only(precision):
    x = np.zeros((2, 64))
    with pytest.raises(ValueError, match=f"needs precision float; this trainer is "
                                         f"{precision}"):
        _trainer(precision).float_gradients(x, np.array([0, 1]))


def test_softmax_xent():
    loss, p = softmax_xent(np.array([[0.0, np.log(3.0)]]), np.array([1]))
    assert loss == pytest.approx(np.log(4 / 3))
    np.testing.assert_allclose(p, [[0.25, 0.75]])
