"""The TTM workload suite: the layer shapes of REFERENCES.md §5 plus the digits model,
and how one layer's training step is planned and scaled to an accelerator.

Members:

* ``LAYERS``: name -> (input modes, output modes, inner TT ranks); the suite behind the
  README's training-step table (``scripts/ttm_step_report.py``) and ``fetta sweep``.
* ``ORDERS``: how a step's contraction order is chosen: ``"cycles"`` is CSSE with the
  compiler's cycle model for the configuration (hardware-aware, what the README table
  uses; a search per configuration, tens of seconds to minutes per layer), ``"macs"``
  is CSSE on MAC counts (independent of the configuration, so one search per layer and
  batch serves every configuration; about a second per layer).
* ``scaled_plan(i, o, r, cfg, order)``: the largest batch in 64, 32, ... 1 whose every
  pairwise step fits the buffers in one program (batch 1, chunked, when none does),
  with its plan and tensor shapes.
* ``steps_of(plan, shapes)``: each plan step with its operand shapes.
* ``step_phases(plan, d)``: each step's training phase: ``forward`` (run by the
  trainer's forward pass), ``input_gradient`` (backward steps only ``dx`` needs) or
  ``core_gradients`` (every other backward step, including ones the joint plan shares
  between ``dx`` and the ``dg``); the same attribution as
  ``fetta train --backend rtl``'s per-phase cycles.
* ``workload_key(name, order)``: a stable description of a workload (its shapes, the
  batch policy and the order), which ``fetta sweep`` hashes to detect stale results.
* ``layer_workload(key)``: a suite layer as a one-layer ``Workload`` (what ``fetta
  sweep`` prices the elementwise work of with ``step_events.elementwise_ops``).
* ``WORKLOADS`` (``Workload``, ``get_workload``): what ``fetta eval`` measures, one
  training step each at ``DEFAULT_BATCH``: the ``digits`` and ``mnist-tt`` models of
  ``models`` (every layer's forward and core gradients, the input gradient for every
  layer but the first, as the trainer runs them) and the Novikov, Hawkins, Bayesian and
  CoMERA layers of ``LAYERS`` as layers inside a network (forward, input gradient,
  every core gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..accel.config import AccelConfig
from ..program.compiler import fits
from . import csse
from .layers import backward_phases, split_plan
from .models import PRESETS as MODEL_PRESETS
from .models import LayerSpec
from .plan import ttm_shapes

__all__ = ["LAYERS", "ORDERS", "BATCHES", "scaled_plan", "steps_of", "step_phases",
           "workload_key", "get_layer", "Workload", "WORKLOADS", "get_workload",
           "layer_workload", "DEFAULT_BATCH"]

LAYERS = {
    "fc1 (on-FPGA 896->512)": ([7, 4, 2, 16], [4, 4, 2, 16], [16, 16, 16]),
    "fc2 (on-FPGA 512->16)": ([32, 16], [1, 16], [16]),
    "Novikov 1024->625": ([4, 8, 8, 4], [5, 5, 5, 5], [2, 2, 2]),
    "Hawkins 784->625": ([7, 4, 7, 4], [5, 5, 5, 5], [20, 20, 20]),
    "Bayesian 784->512": ([4, 7, 4, 7], [4, 4, 8, 4], [20, 20, 20]),
    "CoMERA 768->768": ([12, 8, 8], [8, 8, 12], [30, 30]),
    "digits L1 64->128": ([4, 4, 4], [4, 8, 4], [8, 8]),
    "digits L2 128->16": ([4, 8, 4], [1, 4, 4], [8, 8]),
}

ORDERS = ("cycles", "macs")
BATCHES = (64, 32, 16, 8, 4, 2, 1)


def get_layer(name: str):
    """(input modes, output modes, ranks) of a suite layer; ValueError naming the
    allowed names otherwise."""
    if name not in LAYERS:
        raise ValueError(f"workload {name!r} unknown; allowed {', '.join(LAYERS)}")
    return LAYERS[name]


def steps_of(plan, shapes):
    """(step, shape of A, shape of B) for every step of ``plan``, in order."""
    env = dict(shapes)
    for st in plan.steps:
        sa, sb = env[st.a], env[st.b]
        env[st.out] = st.shape
        yield st, sa, sb


def _plan(i, o, r, batch, cfg, order):
    return csse.layer_plan(tuple(i), tuple(o), tuple(r), batch, order, cfg)


def scaled_plan(i, o, r, cfg: AccelConfig, order: str = "cycles"):
    """(batch, plan, shapes) of layer ``(i, o, r)`` scaled to ``cfg``: the largest batch
    in ``BATCHES`` whose every step fits the buffers in one program, else batch 1
    (chunked by the harness)."""
    if order not in ORDERS:
        raise ValueError(f"order {order!r} unknown; allowed {', '.join(ORDERS)}")
    for batch in BATCHES:
        plan = _plan(i, o, r, batch, cfg, order)
        shapes = ttm_shapes(i, o, r, batch)
        if all(fits(st.spec, sa, sb, cfg) for st, sa, sb in steps_of(plan, shapes)):
            return batch, plan, shapes
    return batch, plan, shapes      # batch 1, chunked


def step_phases(plan, d: int) -> dict[str, str]:
    """Output name -> training phase of every step of ``plan`` (a ``d``-core layer's
    step plan): the forward steps are the trainer's (``layers.split_plan``: what ``y``
    needs and what the backward reuses without depending on ``dy``); of the backward
    steps, those only ``dx`` needs are ``input_gradient``, the others
    ``core_gradients``."""
    parts = split_plan(plan, d)
    phases = {st.out: "forward" for st in parts.forward.steps}
    phases.update(backward_phases((st.out, st.a, st.b) for st in parts.backward.steps))
    return phases


def workload_key(name: str, order: str) -> dict:
    """What defines workload ``name`` planned with ``order`` (JSON-serialisable)."""
    i, o, r = get_layer(name)
    return {"layer": name, "in_modes": list(i), "out_modes": list(o), "ranks": list(r),
            "batches": list(BATCHES), "order": order}


# Batch of an evaluated training step: the trainer's default and the paper's batch.
DEFAULT_BATCH = 64


@dataclass(frozen=True)
class Workload:
    """One training step to evaluate.

    Fields:
        name:      workload name (``fetta eval --workloads``).
        title:     what it is, with its source.
        layers:    the TTM layers, input first.
        dx_first:  whether the first layer computes its input gradient (a layer inside
                   a network: yes; a model's input layer: no).
        model:     the ``models.PRESETS`` name the step comes from, or None (a layer).
    """

    name: str
    title: str
    layers: tuple[LayerSpec, ...]
    dx_first: bool
    model: str | None = None

    def need_dx(self, layer: int) -> bool:
        return layer > 0 or self.dx_first

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def tt_params(self) -> int:
        from .models import tt_params
        return sum(tt_params(l) for l in self.layers)

    @property
    def bias_params(self) -> int:
        return sum(l.n_out for l in self.layers)

    @property
    def dense_params(self) -> int:
        return sum(l.n_in * l.n_out + l.n_out for l in self.layers)


def layer_workload(key: str, name: str | None = None,
                   title: str | None = None) -> "Workload":
    """Suite layer ``key`` (a ``LAYERS`` name) as a one-layer workload inside a network
    (its input gradient computed, as ``step_phases`` attributes it)."""
    i, o, r = get_layer(key)
    return Workload(name or key, title or f"TTM suite layer {key}",
                    (LayerSpec(i, o, r),), dx_first=True)


def _model(name: str, title: str) -> Workload:
    m = MODEL_PRESETS[name]
    return Workload(name, title, m.layers, dx_first=False, model=name)


WORKLOADS = {
    "digits": _model("digits", "digits TTM MLP 64-128-16 (sw_model.models)"),
    "mnist-tt": _model("mnist-tt", "on-FPGA paper's fc1 896->512 + fc2 512->16 "
                                   "(REFERENCES.md §2)"),
    "novikov": layer_workload("Novikov 1024->625", "novikov",
                              "Novikov et al. 2015 MNIST layer, 1024->625, ranks 2"),
    "hawkins": layer_workload("Hawkins 784->625", "hawkins",
                              "Hawkins & Zhang layer, 784->625, ranks 20"),
    "bayesian": layer_workload("Bayesian 784->512", "bayesian",
                               "Bayesian rank determination layer, 784->512, ranks 20"),
    "comera": layer_workload("CoMERA 768->768", "comera",
                             "CoMERA-style transformer layer, 768->768, ranks 30"),
}


def get_workload(name: str) -> Workload:
    if name not in WORKLOADS:
        raise ValueError(f"workload {name!r} unknown; allowed {', '.join(WORKLOADS)}")
    return WORKLOADS[name]
