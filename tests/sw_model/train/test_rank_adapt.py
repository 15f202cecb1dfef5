"""Rank adaptation: EM update, prior gradient, pruning that physically shrinks cores."""

import numpy as np
import pytest

from fetta.sw_model.train.data import load_digits_split
from fetta.sw_model.train.rank_adapt import RankAdapter, shrink_layer
from fetta.sw_model.train.trainer import train
from fetta.sw_model.ttm.layers import init_cores, to_dense


def _cores(seed=0):
    return init_cores((3, 4, 2), (2, 3, 4), (5, 4), np.random.default_rng(seed))


def test_initial_lambda_and_em_update():
    cores = _cores()
    ra = RankAdapter([cores])
    left, right = cores[0], cores[1]
    m = (left[..., 2] ** 2).sum() + (right[2] ** 2).sum()
    d = left[..., 2].size + right[2].size
    assert ra.lam[0][0][2] == pytest.approx(m / (d + 1))
    lam0 = ra.lam[0][0].copy()
    cores[0] = cores[0] * 0.0
    cores[1] = cores[1] * 0.0
    ra.update([cores])
    np.testing.assert_allclose(ra.lam[0][0], lam0 * 0.9)


def test_prior_gradient():
    cores = _cores()
    ra = RankAdapter([cores])
    g = ra.prior_grads([cores], 0.5)[0]
    lam1, lam2 = ra.lam[0]
    np.testing.assert_allclose(g[0], 0.5 * cores[0] / lam1[None, None, None, :])
    np.testing.assert_allclose(
        g[1], 0.5 * cores[1] * (1 / lam1[:, None, None, None] + 1 / lam2[None, None, None, :]))
    np.testing.assert_allclose(g[2], 0.5 * cores[2] / lam2[:, None, None, None])


def test_pruning_shrinks_and_keeps_function_of_zeroed_slices():
    cores = _cores()
    cores[0][..., 1] = 0
    cores[1][1] = 0
    cores[1][..., 3] = 0
    cores[2][3] = 0
    w = to_dense(cores)
    ra = RankAdapter([cores], threshold=1e-12)
    masks = ra.keep_masks()
    assert [m.tolist() for m in masks[0]] == [[True, False, True, True, True],
                                              [True, True, True, False]]
    small = shrink_layer(cores, masks[0])
    assert [g.shape for g in small] == [(1, 2, 3, 4), (4, 3, 4, 3), (3, 4, 2, 1)]
    np.testing.assert_allclose(to_dense(small), w, atol=1e-15)
    ra.apply(masks)
    assert [len(l) for l in ra.lam[0]] == [4, 3]


def test_keeps_at_least_one_rank():
    cores = [g * 0 for g in _cores()]
    ra = RankAdapter([cores])
    masks = ra.keep_masks()
    assert all(m.sum() == 1 for m in masks[0])


def test_threshold_validation():
    with pytest.raises(ValueError, match="threshold"):
        RankAdapter([_cores()], threshold=0)


def test_trainer_prunes_and_records_history():
    """A large threshold forces pruning in a short run; ranks shrink physically and the
    history records them."""
    data = load_digits_split()
    data.x_train, data.y_train = data.x_train[:512], data.y_train[:512]
    r = train("digits", epochs=3, data=data, rank_adapt=True, rank_threshold=0.05)
    hist = [e["ranks"] for e in r["epochs"]]
    assert r["tt_params"] < r["initial_tt_params"]
    assert r["epochs"][-1]["tt_params"] == r["tt_params"]
    assert hist[0] != [[8, 8], [8]] or hist[-1] != [[8, 8], [8]]
    assert r["memory"]["tt_params"] == r["tt_params"]


def test_fixed_trainer_prunes():
    data = load_digits_split()
    data.x_train, data.y_train = data.x_train[:256], data.y_train[:256]
    r = train("digits", precision="fixed", epochs=2, data=data, rank_adapt=True,
              rank_threshold=0.05)
    assert r["tt_params"] < r["initial_tt_params"]


@pytest.mark.slow
def test_rank_adapt_accuracy_target():
    """Default digits run: >= 30% fewer TT params at <= 1 point accuracy cost."""
    base = train("digits")
    ra = train("digits", rank_adapt=True)
    assert ra["tt_params"] <= 0.7 * ra["initial_tt_params"]
    assert ra["test_accuracy"] >= base["test_accuracy"] - 0.01
