"""The CPU baseline of ``fetta eval``: the same training step in NumPy float64 on this
machine, on one core and on all cores, timed in the running process.

* model workloads (``digits``, ``mnist-tt``): ``sw_model.train.trainer.Trainer`` in float
  mode (forward, softmax cross-entropy, backward, Adam) — the reference trainer's own
  step;
* layer workloads: the layer's float step with the trainer's functions —
  ``ttm_forward`` + bias, an upstream gradient, ``ttm_backward`` (input gradient and
  every core gradient), the bias gradient and Adam on cores and bias.

Both run the trainer's MAC-optimal contraction plan (``ttm.layer_plans``: the CSSE's
joint plan, pairwise ``np.einsum`` on BLAS), the CPU's best order rather than the
accelerator's cycle-optimal one. BLAS threads are set with ``threadpoolctl`` (1, or
``os.cpu_count()``). Time per step, over ``steps`` timed steps after one warm-up step
(plan search and caches): on one core the shortest *CPU time* of the process (robust on
a machine shared with other jobs: time spent descheduled is not counted); on all cores
the shortest *wall time* (the only measure of a parallel step; it is inflated when
other jobs hold the cores — the JSON records the load average before and after). The
median wall time is recorded beside it.

Energy: RAPL package energy (``/sys/class/powercap/intel-rapl:0/energy_uj``) over the
timed steps when readable; otherwise the measured time x the stated package power
``CPU_CORE_W`` x cores used (``cpu_power_source`` says which).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from fetta.sw_model.accel.energy import coeff
from fetta.sw_model.ttm.models import get_model
from fetta.sw_model.train.trainer import Trainer, TrainConfig
from fetta.sw_model.ttm.layers import init_cores, layer_plans, ttm_backward, ttm_forward
from fetta.sw_model.ttm.workloads import Workload

__all__ = ["cpu_step", "cpu_info", "time_steps", "RAPL"]

RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


def cpu_info() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rapl = RAPL.exists() and os.access(RAPL, os.R_OK)
    return {"model": model, "cpus": os.cpu_count(), "numpy": np.__version__,
            "rapl_readable": rapl,
            "power_source": "RAPL package energy" if rapl else
            f"assumed {coeff('cpu_core_w'):g} W per busy core "
            f"(sw_model/accel/energy.py cpu_core_w)"}


class _LayerStep:
    """Float training step of one TTM layer inside a network (see module doc)."""

    def __init__(self, wl: Workload, batch: int, rng):
        (self.layer,) = wl.layers
        l = self.layer
        self.cores = init_cores(l.in_modes, l.out_modes, l.ranks, rng)
        self.bias = np.zeros(l.n_out)
        self.parts = layer_plans(l.in_modes, l.out_modes, l.ranks, batch, need_dx=True)
        params = self.cores + [self.bias]
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def __call__(self, x, dy):
        l = self.layer
        y, env = ttm_forward(self.cores, x, l.in_modes, l.out_modes, self.parts.forward)
        y = y + self.bias
        saved = {k: env[k] for k in self.parts.saved}
        _, grads = ttm_backward(self.cores, saved, dy, l.out_modes, self.parts.backward,
                                need_dx=True)
        grads.append(dy.sum(0))
        self.t += 1
        b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for i, (w, g) in enumerate(zip(self.cores + [self.bias], grads)):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            w -= lr * (self.m[i] / c1) / (np.sqrt(self.v[i] / c2) + eps)
        return y


def _runner(wl: Workload, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    if wl.model is not None:
        model = get_model(wl.model)
        tr = Trainer(model, TrainConfig(precision="float", batch=batch), n_train=1000)

        def data():
            return (rng.random((batch, model.n_features)),
                    rng.integers(0, model.n_classes, batch))
        return lambda args: tr.train_step(*args), data
    step = _LayerStep(wl, batch, rng)
    n_out = wl.layers[0].n_out

    def data():
        return rng.random((batch, wl.n_in)), rng.standard_normal((batch, n_out)) / batch
    return lambda args: step(*args), data


def _rapl_uj() -> int | None:
    try:
        return int(RAPL.read_text())
    except (OSError, ValueError):
        return None


def cpu_step(wl: Workload, batch: int = 64, threads: int = 1, steps: int = 5,
             seed: int = 0) -> dict:
    """Time ``steps`` float training steps of ``wl`` with ``threads`` BLAS threads."""
    run, data = _runner(wl, batch, seed)
    inputs = [data() for _ in range(steps + 1)]
    return dict(time_steps(run, inputs, threads, batch),
                framework=f"numpy {np.__version__} float64")


def time_steps(run, inputs, threads: int, batch: int) -> dict:
    """Run ``run(inputs[0])`` (warm-up), then time ``run`` on each further input with
    ``threads`` BLAS threads (module docstring: the basis of the time and the energy)."""
    from threadpoolctl import threadpool_limits
    steps = len(inputs) - 1
    l0 = os.getloadavg()[0]
    with threadpool_limits(limits=threads):
        run(inputs[0])                              # warm-up: plans, caches
        walls, cpus = [], []
        e0 = _rapl_uj()
        for args in inputs[1:]:
            w0, c0 = time.perf_counter(), time.process_time()
            run(args)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        e1 = _rapl_uj()
    wall = min(cpus) if threads == 1 else min(walls)
    if e0 is not None and e1 is not None and e1 > e0:
        joules = (e1 - e0) * 1e-6 / steps
        source = "rapl"
    else:
        joules = wall * coeff("cpu_core_w") * threads
        source = "assumed"
    return {"threads": threads, "steps": steps, "seconds_per_step": wall,
            "basis": "cpu time (min)" if threads == 1 else "wall time (min)",
            "load_average": [l0, os.getloadavg()[0]],
            "seconds_per_step_median": statistics.median(walls), "cpu_seconds_per_step":
            statistics.median(cpus), "samples_per_s": batch / wall,
            "joules_per_step": joules, "joules_per_sample": joules / batch,
            "energy_source": source}
