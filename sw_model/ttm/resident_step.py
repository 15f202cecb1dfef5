"""A training step run as resident chains, costed from the plans alone (no simulation):
what ``fetta eval``, ``scripts/ttm_step_report.py`` and ``scripts/resident_report.py``
report beside the separate-jobs step (``step_events``).

Per layer, the step's contractions (``step_memory.step_contractions``: the CSSE plan's
forward then backward steps) form one chain (``layer_chains``): the host writes the
layer's inputs (``x``, the cores, ``dy``) and reads what no contraction of the layer
consumes (``y``, ``dx``, the core gradients) — the tensors the host-side elementwise
work (bias, ReLU, requantization, loss gradient, optimizer) needs; every
intermediate stays on chip, written to C by its producer and MOVEd into each reader's
layout (``sw_model.program.resident_plan``). A chain that does not fit the banks is cut
into segments (``plan_segments``: tensors crossing a cut go through the host); a step
that does not compile into one program runs as a separate job (its programs as
``contraction_events`` counts them, host words included). ``dy`` is written before
the layer's program here; in training the host computes it between the forward and
the backward (the same words).

``resident_step_events(workload, config, batch)`` returns, like
``step_events.step_events``: ``phases`` (forward, input_gradient, core_gradients:
``Events`` of the programs' CONTRACTs), ``total`` (their sum, with the MOVEs'
``move_cycles``/``move_elements`` and the host words of every segment), and per
layer the segments and cycles by phase (``compute``, ``on_chip_moves``,
``host_transfer``). Cycles are the compiler's model (equal to the RTL's CYCLES
counters: ``sim.resident`` asserts it on every run): a step's cycles less its HALT,
plus one HALT per program, attributed to the phase of the program's last step.

Members: ``layer_chains``, ``resident_step_events``.
"""

from __future__ import annotations

import functools

from ..accel.config import get_config
from ..arith.einsum_spec import parse_spec
from ..program.resident_plan import plan_segments
from .layers import backward_phases
from .step_events import PHASES, Events, contraction_events, elementwise_ops, program_events
from .step_memory import step_contractions
from .workloads import Workload

__all__ = ["layer_chains", "resident_step_events"]

_HALT_CYCLES = 2


def layer_chains(workload: Workload, batch: int, config="tiny",
                 order: str = "cycles") -> dict[int, tuple[list, dict, dict]]:
    """``{layer: (steps, input shapes, phase of each step's output)}`` of one training
    step: ``steps`` are ``(spec, a, b, out, {})`` chain steps (``sim.chain``), the
    names prefixed by layer (``"L0/x"``); ``order`` is the CSSE cost (``"cycles"``,
    as ``step_events``, or ``"macs"``)."""
    cfg = get_config(config)
    contractions, _ = step_contractions(workload, batch, cfg, order)
    out: dict[int, tuple[list, dict, dict]] = {}
    backward: dict[int, list] = {}
    for c in contractions:
        layer = int(c.label.split()[0][1:])
        steps, shapes, phase = out.setdefault(layer, ([], {}, {}))
        produced = {s[3] for s in steps}
        for name, shape in ((c.a, c.shape_a), (c.b, c.shape_b)):
            if name not in produced:
                shapes.setdefault(name, tuple(shape))
        steps.append((c.spec, c.a, c.b, c.out, {}))
        if c.label.endswith("forward"):
            phase[c.out] = "forward"
        else:
            backward.setdefault(layer, []).append(
                tuple(n.split("/", 1)[1] for n in (c.out, c.a, c.b)))
    for layer, rows in backward.items():
        for local, ph in backward_phases(rows).items():
            out[layer][2][f"L{layer}/{local}"] = ph
    return out


def _plan_events(rp, phase_of: list) -> tuple[dict, Events, list]:
    """Events of a resident plan's programs by phase (each step's cycles less its HALT;
    the programs' HALTs in the phase of the plan's last step), the MOVEs and host
    words apart, and each step's own Events."""
    phases = {p: Events() for p in PHASES}
    per_step = []
    for cc, ph in zip(rp.compiled, phase_of):
        ev = program_events(cc)
        ev.cycles -= _HALT_CYCLES
        ev.host_written = ev.host_read = 0
        ev.contractions = 1
        per_step.append(ev)
        phases[ph] = phases[ph] + ev
    phases[phase_of[-1]].cycles += _HALT_CYCLES * len(rp.programs)
    words = rp.host_words
    return phases, Events(move_cycles=rp.move_cycles, move_elements=rp.move_elements,
                          host_written=words["written"], host_read=words["read"]), per_step


@functools.lru_cache(maxsize=64)
def resident_step_events(workload: Workload, config="tiny", batch: int = 64,
                         order: str = "cycles", stage: bool = False) -> dict:
    """Events of one training step of ``workload`` at ``batch`` on ``config`` with every
    layer's contractions run as a resident chain (module docstring); ``stage``: the
    host writes every input densely and MOVEs lay it out (``plan_resident``). Raises
    ValueError for a configuration without the MOVE unit."""
    cfg = get_config(config)
    phases = {p: Events() for p in PHASES}
    extra = Events()
    layers, rows_out = [], []
    peak = {"a": 0, "b": 0, "c": 0, "program": 0}
    for layer, (steps, shapes, phase) in sorted(layer_chains(workload, batch, cfg,
                                                             order).items()):
        segs = plan_segments(steps, shapes, cfg, stage=stage)
        lay = {p: Events() for p in PHASES}
        lay_extra = Events()
        all_shapes = dict(shapes)
        for spec, a, b, o, _ in steps:
            all_shapes[o] = parse_spec(spec).output_shape(all_shapes[a], all_shapes[b])
        rows = []
        for seg in segs:
            ph = [phase[steps[i][3]] for i in range(seg.lo, seg.hi + 1)]
            if seg.plan is None:
                spec, a, b, o, _ = steps[seg.lo]
                ev, pk = contraction_events(spec, all_shapes[a], all_shapes[b], cfg)
                lay[ph[0]] = lay[ph[0]] + ev
                peak = {k: max(peak[k], pk[k]) for k in peak}
                rows_out.append(_row(layer, ph[0], steps[seg.lo], all_shapes, ev, cfg))
                rows.append({"steps": [seg.lo, seg.hi], "resident": False,
                             "programs": ev.chunks})
                continue
            p, x, per_step = _plan_events(seg.plan, ph)
            rp = seg.plan
            for k in ("a", "b", "c"):
                peak[k] = max(peak[k], rp.peak_rows[k.upper()])
            peak["program"] = max([peak["program"]] + [len(w) for w in rp.programs])
            for i, ev in enumerate(per_step):
                rows_out.append(_row(layer, ph[i], steps[seg.lo + i], all_shapes, ev, cfg))
            for k in PHASES:
                lay[k] = lay[k] + p[k]
            lay_extra = lay_extra + x
            rows.append({"steps": [seg.lo, seg.hi], "resident": True,
                         "programs": len(seg.plan.programs)})
        compute = sum(lay[p].cycles for p in PHASES)
        words = sum(lay[p].host_words for p in PHASES) + lay_extra.host_words
        layers.append({
            "layer": layer, "contractions": len(steps), "segments": rows,
            "move_elements": lay_extra.move_elements,
            "cycles": {"compute": compute, "on_chip_moves": lay_extra.move_cycles,
                       "host_transfer": words,
                       "total": compute + lay_extra.move_cycles + words},
            "host_words": {"written": sum(lay[p].host_written for p in PHASES) +
                           lay_extra.host_written,
                           "read": sum(lay[p].host_read for p in PHASES) +
                           lay_extra.host_read},
            "useful_macs": sum(lay[p].useful_macs for p in PHASES)})
        for k in PHASES:
            phases[k] = phases[k] + lay[k]
        extra = extra + lay_extra
    total = extra
    for ev in phases.values():
        total = total + ev
    return {"phases": phases, "total": total, "layers": layers, "peak": peak,
            "contractions": rows_out,
            "elementwise_ops": elementwise_ops(workload, batch)}


def _row(layer: int, phase: str, step, shapes: dict, ev: Events, cfg) -> dict:
    """One contraction's line, as ``step_events`` lists them."""
    spec, a, b, _, _ = step
    return {"layer": layer, "phase": phase, "spec": spec, "shape_a": list(shapes[a]),
            "shape_b": list(shapes[b]), "cycles": ev.cycles, "useful_macs": ev.useful_macs,
            "chunks": ev.chunks, "utilization": ev.useful_macs / (cfg.macs * ev.cycles)}
