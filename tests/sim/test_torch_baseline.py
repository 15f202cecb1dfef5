"""The optional PyTorch CPU baseline (``sim/torch_baseline.py``): its layer is the
reference trainer's TT-matrix layer (the same forward, in float64), and its timed step
reports what ``fetta eval`` reads. The tests that run PyTorch need ``torch``
(``pip install fetta-hdl[torch]``, not a default dependency: the PyPI wheel pulls the
CUDA runtime, GBs); without it they are skipped with that reason."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim import torch_baseline
from fetta.sim.torch_baseline import _equation, torch_available, torch_forward, torch_step
from fetta.sw_model.ttm.layers import init_cores, layer_plans, ttm_forward
from fetta.sw_model.ttm.models import get_model
from fetta.sw_model.ttm.workloads import get_workload

needs_torch = pytest.mark.skipif(not torch_available(),
                                 reason="torch not installed (optional extra "
                                        "fetta-hdl[torch]: the PyPI wheel is GBs)")


def test_the_einsum_equation_of_a_tt_matrix_layer():
    # input z n1 n2, cores r0 m1 n1 r1 and r1 m2 n2 r2, output z m1 m2
    assert _equation(2) == "zab,ecaf,fdbg->zcd"
    assert _equation(3) == "zabc,gdah,hebi,ifcj->zdef"
    with pytest.raises(ValueError, match="9 cores; allowed at most 8"):
        _equation(9)


def test_without_torch_the_step_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(torch_baseline, "torch_available", lambda: False)
    with pytest.raises(FettaError, match=r"needs torch \(pip install fetta-hdl\[torch\]\)"):
        torch_step(get_workload("digits"), batch=4, steps=1)


@needs_torch
@pytest.mark.parametrize("model", ["digits", "mnist-tt"])
def test_the_torch_layer_is_the_reference_layer(model):
    import torch
    rng = np.random.default_rng(5)
    for layer in get_model(model).layers:
        cores = init_cores(layer.in_modes, layer.out_modes, layer.ranks, rng)
        x = rng.standard_normal((6, layer.n_in))
        plan = layer_plans(layer.in_modes, layer.out_modes, layer.ranks, 6,
                           need_dx=True).forward
        want, _ = ttm_forward(cores, x, layer.in_modes, layer.out_modes, plan)
        got = torch_forward([torch.tensor(g) for g in cores], torch.tensor(x),
                            layer.in_modes).numpy()
        assert got.shape == want.shape
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12), np.abs(got - want).max()


@needs_torch
@pytest.mark.parametrize("workload", ["digits", "novikov"])
def test_the_torch_step_reports_what_eval_reads(workload):
    out = torch_step(get_workload(workload), batch=8, threads=1, steps=2)
    assert out["framework"].startswith("torch ") and out["framework"].endswith("float32")
    assert out["steps"] == 2 and out["threads"] == 1
    assert out["samples_per_s"] == pytest.approx(8 / out["seconds_per_step"])
    assert out["joules_per_sample"] == pytest.approx(out["joules_per_step"] / 8)
    assert out["seconds_per_step"] > 0
