"""Model presets, validation, custom JSON models and whole-model gradients."""

import json

import numpy as np
import pytest

from fetta.sw_model.ttm.models import (PRESETS, LayerSpec, get_model, model_from_dict,
                             model_from_json, resolve_model)
from fetta.sw_model.train.paths import softmax_xent
from fetta.sw_model.train.trainer import TrainConfig, Trainer


def test_mnist_tt_is_the_papers_model():
    m = get_model("mnist-tt")
    assert m.n_features == 896 and m.n_classes == 10
    assert [l.in_modes for l in m.layers] == [(7, 4, 2, 16), (32, 16)]
    assert [l.out_modes for l in m.layers] == [(4, 4, 2, 16), (1, 16)]
    assert m.ranks == [[16, 16, 16], [16]]
    assert m.tt_params == 14272
    assert m.bias_params == 528


def test_digits_preset():
    m = get_model("digits")
    assert m.n_features == 64 and m.layers[-1].n_out == 16
    assert max(r for rl in m.ranks for r in rl) <= 8
    assert m.layers[0].relu and not m.layers[-1].relu


@pytest.mark.parametrize("bad,msg", [
    ({"dataset": "digits", "layers": [{"in_modes": [4, 4, 2], "out_modes": [4, 4, 1],
                                       "ranks": [2, 2]}]}, "multiply to 32"),
    ({"dataset": "digits", "layers": [{"in_modes": [8, 8], "out_modes": [4, 4],
                                       "ranks": [0]}]}, "rank 0 invalid"),
    ({"dataset": "digits", "layers": [{"in_modes": [8, 8], "out_modes": [4, 4],
                                       "ranks": [2, 2]}]}, "allowed exactly 1"),
    ({"dataset": "digits", "layers": [{"in_modes": [8, 8], "out_modes": [2, 4],
                                       "ranks": [2]}]}, "allowed >= 10"),
    ({"dataset": "digits", "layers": [{"in_modes": [8, 8], "out_modes": [4, 8], "ranks": [2]},
                                      {"in_modes": [4, 4], "out_modes": [4, 4], "ranks": [2]}]},
     "must be equal"),
    ({"dataset": "cifar", "layers": [{"in_modes": [8, 8], "out_modes": [4, 4],
                                      "ranks": [2]}]}, "unknown"),
    ({"layers": []}, "lacks 'dataset'"),
])
def test_validation_errors(bad, msg):
    with pytest.raises(ValueError, match=msg) as exc:
        model_from_dict(bad)
    assert "\n" not in str(exc.value)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown"):
        get_model("resnet")
    with pytest.raises(ValueError, match="unknown"):
        resolve_model("resnet")


def test_json_model_file(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"name": "tiny", "dataset": "digits", "layers": [
        {"in_modes": [8, 8], "out_modes": [4, 4], "ranks": [3]}]}))
    m = resolve_model(str(p))
    assert m.name == "tiny" and m.tt_params == 4 * 8 * 3 + 3 * 4 * 8
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        model_from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not found"):
        model_from_json(tmp_path / "missing.json")


def test_layer_spec_rejects_non_integers():
    with pytest.raises(ValueError):
        LayerSpec((4.5, 2), (2, 2), (2,))


@pytest.mark.parametrize("name", list(PRESETS))
def test_model_gradients_match_finite_differences(name):
    """Whole model (TTM layers, bias, ReLU, softmax cross-entropy): directional
    derivatives along random directions for every core and bias."""
    m = PRESETS[name]
    tr = Trainer(m, TrainConfig(precision="float", seed=3), n_train=100)
    rng = np.random.default_rng(4)
    x = rng.random((3, m.n_features))
    y = rng.integers(0, m.n_classes, 3)
    loss0, _, grads = tr.float_gradients(x, y)
    params = [g for cl in tr.params for g in cl] + tr.bias
    eps = 1e-6

    def loss():
        return softmax_xent(tr.predict_logits(x)[:, :m.n_classes], y)[0]

    assert loss() == pytest.approx(loss0, rel=1e-12)
    for p, g in zip(params, grads):
        assert g.shape == p.shape
        v = rng.standard_normal(p.shape)
        p += eps * v
        lp = loss()
        p -= 2 * eps * v
        lm = loss()
        p += eps * v
        num = (lp - lm) / (2 * eps)
        ana = float((g * v).sum())
        assert abs(ana - num) / max(abs(ana), abs(num), 1e-12) < 1e-6, (ana, num)
