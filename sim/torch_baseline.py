"""The optional PyTorch CPU baseline of ``fetta eval``: the same float training step as
``sim.cpu_baseline`` written the way a PyTorch user writes it, timed the same way.

Used when ``torch`` is importable (``pip install fetta-hdl[torch]``; the PyPI wheel is
large, so it is not a default dependency); ``torch_available()`` says whether it is.

The step, float32 (PyTorch's default dtype):

* a TT-matrix layer is one ``torch.einsum`` over the input (``(B, n_1, ..., n_d)``) and
  its ``d`` cores (``(r_{k-1}, m_k, n_k, r_k)``, the trainer's stored layout), the
  contraction order left to PyTorch (its ``opt_einsum`` path search when the package is
  installed), plus the bias;
* model workloads (``digits``, ``mnist-tt``): the layers with ReLU between them,
  ``cross_entropy`` on the first ``n_classes`` outputs, ``backward()``, ``Adam``
  (lr 1e-3, as ``sim.cpu_baseline``);
* layer workloads: the layer, ``y.backward(dy)`` with an upstream gradient, ``Adam`` on
  cores and bias.

``torch_forward`` is the layer's forward alone (a test compares it, in float64, with the
reference trainer's ``ttm_forward``). Timing (``cpu_baseline.time_steps``): threads set
with ``torch.set_num_threads`` (1, or ``os.cpu_count()``); on one core the shortest CPU
time over the timed steps, on all cores the shortest wall time, after one warm-up step.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from fetta.errors import FettaError
from fetta.sw_model.ttm.layers import init_cores
from fetta.sw_model.ttm.models import get_model
from fetta.sw_model.ttm.workloads import Workload

__all__ = ["torch_available", "torch_version", "torch_forward", "torch_step"]

_LETTERS = "abcdefghijklmnopqrstuvwxy"


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_version() -> str | None:
    if not torch_available():
        return None
    import torch
    return torch.__version__


def _equation(d: int) -> str:
    """``torch.einsum`` equation of a ``d``-core TT-matrix layer: input ``z n_1..n_d``,
    core ``k`` ``r_{k-1} m_k n_k r_k`` (the stored layout: output mode, then input
    mode), output ``z m_1..m_d`` (boundary ranks of size 1 are summed over)."""
    n, mo, r = _LETTERS[:d], _LETTERS[d:2 * d], _LETTERS[2 * d:3 * d + 1]
    if 3 * d + 1 > len(_LETTERS):
        raise ValueError(f"{d} cores; allowed at most {(len(_LETTERS) - 1) // 3}")
    cores = [f"{r[k]}{mo[k]}{n[k]}{r[k + 1]}" for k in range(d)]
    return f"z{n}," + ",".join(cores) + f"->z{mo}"


def torch_forward(cores, x, in_modes):
    """``x (B, N) -> y (B, M)`` through the TT-matrix ``cores`` (torch tensors)."""
    import torch
    eq = _equation(len(cores))
    y = torch.einsum(eq, x.reshape(x.shape[0], *in_modes), *cores)
    return y.reshape(x.shape[0], -1)


class _Net:
    def __init__(self, layers, rng, dtype):
        import torch
        self.layers = layers
        self.cores = [[torch.tensor(g, dtype=dtype, requires_grad=True)
                       for g in init_cores(l.in_modes, l.out_modes, l.ranks, rng)]
                      for l in layers]
        self.bias = [torch.zeros(l.n_out, dtype=dtype, requires_grad=True) for l in layers]
        params = [g for cl in self.cores for g in cl] + self.bias
        self.opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

    def forward(self, x):
        import torch
        h = x
        for i, (l, cl, b) in enumerate(zip(self.layers, self.cores, self.bias)):
            h = torch_forward(cl, h, l.in_modes) + b
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h


def _runner(wl: Workload, batch: int, seed: int, dtype):
    import torch
    rng = np.random.default_rng(seed)
    if wl.model is not None:
        model = get_model(wl.model)
        net, nc = _Net(model.layers, rng, dtype), model.n_classes

        def step(args):
            x, labels = args
            net.opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net.forward(x)[:, :nc], labels)
            loss.backward()
            net.opt.step()

        def data():
            return (torch.tensor(rng.random((batch, model.n_features)), dtype=dtype),
                    torch.tensor(rng.integers(0, nc, batch)))
        return step, data
    net = _Net(list(wl.layers), rng, dtype)
    n_out = wl.layers[0].n_out

    def step(args):
        x, dy = args
        net.opt.zero_grad(set_to_none=True)
        net.forward(x).backward(dy)
        net.opt.step()

    def data():
        return (torch.tensor(rng.random((batch, wl.n_in)), dtype=dtype),
                torch.tensor(rng.standard_normal((batch, n_out)) / batch, dtype=dtype))
    return step, data


def torch_step(wl: Workload, batch: int = 64, threads: int = 1, steps: int = 5,
               seed: int = 0) -> dict:
    """Time ``steps`` PyTorch float32 training steps of ``wl`` with ``threads`` threads
    (the fields of ``cpu_baseline.cpu_step``, plus ``framework``)."""
    if not torch_available():
        raise FettaError("the PyTorch baseline needs torch (pip install fetta-hdl[torch])")
    import torch
    from .cpu_baseline import time_steps
    run, data = _runner(wl, batch, seed, torch.float32)
    inputs = [data() for _ in range(steps + 1)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = time_steps(run, inputs, threads, batch)
    finally:
        torch.set_num_threads(before)
    return dict(out, framework=f"torch {torch.__version__} float32")
