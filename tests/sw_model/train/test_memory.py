"""Memory accounting: hand-derived numbers for mnist-tt and digits."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fetta.sw_model.train.memory import CATEGORIES, dense_mlp_memory, memory_report
from fetta.sw_model.ttm import plan as plan_mod
from fetta.sw_model.ttm.models import get_model
from fetta.sw_model.ttm.layers import layer_plans

ROOT = Path(__file__).resolve().parents[3]


def test_mnist_tt_fixed_by_hand():
    r = memory_report(get_model("mnist-tt"), "fixed", 64, planner=plan_mod.chain_plan)
    tt = r["tt"]
    assert r["tt_params"] == 14272 and r["bias_params"] == 528
    assert tt["weights"] == 14272 * 4 // 8                       # 4-bit cores
    assert tt["master_weights"] == 14272 + 528 * 2                # 8-bit cores, 16-bit bias
    assert tt["optimizer_state"] == 14800 * 8                     # two 32-bit moments
    assert tt["gradients"] == 14800 * 2                           # 16-bit gradients
    # chain plan saves only layer inputs: 896 8-bit pixels, 512 8-bit activations, and
    # one ReLU mask bit per hidden unit, per sample
    assert tt["activations"] == 64 * (896 + 512) + 64 * 512 // 8
    assert tt["total"] == sum(tt[c] for c in CATEGORIES)
    paper = r["dense_paper_fp32"]
    assert paper["params"] == 407050
    assert paper["weights"] == 4 * 407050
    assert r["reduction_weights_vs_paper_dense"] == pytest.approx(407050 * 4 / 7136)
    assert r["reduction_total_vs_paper_dense"] > 20


def test_dense_baseline_by_hand():
    d = dense_mlp_memory([64, 128, 16], 10)
    p = 64 * 128 + 128 + 128 * 16 + 16
    assert d["params"] == p
    assert d["optimizer_state"] == 8 * p and d["gradients"] == 4 * p
    assert d["activations"] == 4 * 10 * (64 + 128 + 128)


def test_float_and_pow2():
    m = get_model("digits")
    f = memory_report(m, "float", 32)
    assert f["tt"]["weights"] == 3072 * 4
    p = memory_report(m, "pow2", 32)
    assert p["tt"]["weights"] == 3072 * 4 // 8
    assert f["tt"]["total"] > p["tt"]["total"]
    assert "dense_paper_fp32" not in f


def test_memory_table_script():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "memory_table.py")],
                         capture_output=True, text=True, check=True).stdout
    assert "mnist-tt" in out and "784-512-10 FP32 / TT fixed" in out
    assert "7,136" in out


def test_saved_intermediates_counted_for_any_planner():
    """Activations = layer inputs + the forward intermediates the current planner's
    backward reuses (16-bit) + ReLU mask bits."""
    m = get_model("digits")
    r = memory_report(m, "fixed", 32)
    want = 0
    for l, layer in enumerate(m.layers):
        parts = layer_plans(layer.in_modes, layer.out_modes, layer.ranks, 32, l > 0)
        want += 32 * layer.n_in * 8
        for name in parts.saved:
            if name != "x":
                shape = next(s.shape for s in parts.forward.steps if s.out == name)
                want += int(np.prod(shape)) * 16
        if l == 0:
            want += 32 * layer.n_out
    assert r["tt"]["activations"] == want // 8
