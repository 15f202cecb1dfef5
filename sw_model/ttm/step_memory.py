"""A training step's tensors in the accelerator's buffers: the contractions of every
layer's CSSE plan, in execution order, placed by the allocator
(``sw_model.program.allocator``).

Execution order: the forward part of every layer, input layer first, then the
backward part of every layer, last layer first (``layers.split_plan``: the forward
part includes the dy-free intermediates the backward reuses; a model's input layer
computes no ``dx``). Each layer's forward and each layer's backward is one segment
(program): the host's elementwise work (bias, ReLU, requantization, the loss
gradient) runs between them, so the host writes a layer's inputs and reads its
results at segment boundaries.

Names are ``L{layer}/{plan name}``. Kinds (``memory_model.KINDS``): ``g{k}`` core;
``x`` saved_input (the backward reads it); ``dy`` batch_input (the host computes it:
the loss gradient, or the next layer's dx after the ReLU mask); ``y`` output; ``dx``
and ``dg{k}`` gradient; every other plan tensor intermediate.

Plans: ``order="macs"`` (default) is CSSE's MAC-optimal joint plan, the one the
trainer runs (``csse.csse_planner``; about a second); ``"cycles"`` is CSSE with the
compiler's cycle model on the configuration (as ``step_events`` and ``fetta eval``;
2 minutes for mnist-tt's first layer at batch 64 on ``tiny``). Plans are cached per
layer, batch, order and configuration for the life of the process.

``separate_job_words`` gives the comparison: the host data words of the same step run
as today, every contraction a separate job (``step_events.contraction_events``: each
operand written, each result read, chunked as the harness chunks them; program and
control words left out, as the allocator counts data only).

Members: ``step_contractions``, ``step_allocation``, ``separate_job_words``.
"""

from __future__ import annotations

import functools
from typing import Callable

from ..accel.config import AccelConfig, get_config
from ..program.allocator import StepFit, fit_batch
from ..program.memory_model import Contraction
from . import csse
from .layers import PlanParts, split_plan
from .plan import ttm_shapes
from ..accel.hostmap import CONTROL_READS, CONTROL_WRITES
from .step_events import contraction_events
from .workloads import DEFAULT_BATCH, ORDERS, Workload

__all__ = ["step_contractions", "step_allocation", "separate_job_words"]


@functools.lru_cache(maxsize=256)
def _parts(i: tuple, o: tuple, r: tuple, batch: int, need_dx: bool, order: str,
           cfg: AccelConfig) -> PlanParts:
    plan = csse.layer_plan(i, o, r, batch, order, cfg)
    return split_plan(plan, len(i), need_dx)


def _kind(name: str) -> str:
    if name.startswith("dg") or name == "dx":
        return "gradient"
    if name.startswith("g") and name[1:].isdigit():
        return "core"
    return {"x": "saved_input", "dy": "batch_input", "y": "output"}.get(name,
                                                                         "intermediate")


def step_contractions(workload: Workload, batch: int, config="tiny",
                      order: str = "macs") -> tuple[list[Contraction], dict[str, str]]:
    """The contractions of one training step of ``workload`` at ``batch`` samples, in
    execution order with their segments, and every tensor's kind."""
    cfg = get_config(config)
    if order not in ORDERS:
        raise ValueError(f"order {order!r} unknown; allowed {', '.join(ORDERS)}")
    fwd, bwd, kinds = [], [], {}
    n_layers = len(workload.layers)
    for l, layer in enumerate(workload.layers):
        i, o, r = layer.in_modes, layer.out_modes, layer.ranks
        parts = _parts(tuple(i), tuple(o), tuple(r), int(batch), workload.need_dx(l),
                       order, cfg)
        env = dict(ttm_shapes(i, o, r, batch))
        env.update({st.out: st.shape for st in parts.full.steps})
        for steps, seg, label, into in ((parts.forward.steps, l, "forward", fwd),
                                        (parts.backward.steps, 2 * n_layers - 1 - l,
                                         "backward", bwd)):
            for st in steps:
                into.append((seg, Contraction(
                    st.spec, f"L{l}/{st.a}", f"L{l}/{st.b}", f"L{l}/{st.out}",
                    tuple(env[st.a]), tuple(env[st.b]), seg, f"L{l} {label}")))
                for name in (st.a, st.b, st.out):
                    kinds[f"L{l}/{name}"] = _kind(name)
    ordered = [c for _, c in fwd] + [c for _, c in sorted(bwd, key=lambda e: e[0])]
    return ordered, kinds


def step_allocation(workload: Workload, config="tiny", batch: int = DEFAULT_BATCH,
                    order: str = "macs", strategy: str = "first",
                    policy: str = "micro-batch",
                    progress: Callable[[str], None] | None = None) -> StepFit:
    """Place one training step of ``workload`` at ``batch`` on ``config``: micro-batches
    or spills when it does not fit (``allocator.fit_batch``, ``policy``)."""
    cfg = get_config(config)

    def build(b: int):
        if progress:
            progress(f"planning {workload.name} at micro-batch {b} ({order})")
        return step_contractions(workload, b, cfg, order)

    return fit_batch(build, batch, cfg, strategy=strategy, policy=policy,
                     progress=progress)


def separate_job_words(workload: Workload, config="tiny", batch: int = DEFAULT_BATCH,
                       order: str = "macs") -> int:
    """Host data words of one training step at ``batch`` when every contraction is a
    separate job (see the module docstring). Raises ValueError when a contraction
    needs K chunks (``step_events`` does not count those)."""
    cfg = get_config(config)
    words = 0
    for c in step_contractions(workload, batch, cfg, order)[0]:
        ev, _ = contraction_events(c.spec, c.shape_a, c.shape_b, cfg)
        words += (ev.host_words - ev.program_words -
                  ev.chunks * (CONTROL_WRITES + CONTROL_READS))
    return words
