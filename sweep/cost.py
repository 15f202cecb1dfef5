"""Cost of one accelerator configuration on one workload of the TTM suite: cycles from
the compiler's exact cycle model (no simulation), energy from the energy model.

``cost_workload(cfg, name, order)`` plans the layer's training step for ``cfg``
(``sw_model.workloads.scaled_plan``: the largest batch whose every step fits the
buffers) and counts every pairwise contraction with
``sw_model.ttm.step_events.contraction_events``: its programs as the harness runs them
(one program; output chunks, ``compiler.chunk_plan``; or K chunks,
``kchunk.kchunk_plan``, when the reduction alone does not fit), grouped by shape and
K-chunk flags, each distinct program compiled once; a program's predicted cycles times
its count make the contraction's cycles (what the compiler's public cycle model
``kchunk.predict_total`` computes: ``check=True`` also calls it and raises
``ValueError`` naming the contraction and both values on a difference — the tests do,
a sweep does not, as it would plan every contraction twice), its buffer rows, program
words, host-bus words and event counts the rest of the cost.

Result (JSON-serialisable dict):

* ``batch``, ``contractions``, ``chunks``, ``macs`` (useful MACs of the step);
* ``cycles``: ``forward``, ``input_gradient``, ``core_gradients`` (the trainer's
  phases, ``workloads.step_phases``), ``compute`` (their sum), ``host_transfer`` (host
  words at one word per cycle, ``sim.harness``), ``total``;
* ``cycles_per_sample`` = total / batch;
* ``mac_utilization`` (useful MACs / (array MACs x compute cycles)),
  ``mac_utilization_mean`` (mean over contractions), ``mac_utilization_with_transfer``;
* ``peak_rows`` (A, B, C buffer rows, program words) and ``occupancy`` (each as a
  fraction of ``bank_depth`` / ``prog_depth``);
* ``host_words``: ``written``/``read`` with nothing resident between contractions
  (``step_events.program_events``, the words of ``sim.harness.transfer_words``; a
  ``Session`` skips rows that are already resident, so measured training runs move at
  most this);
* ``events``: the step's event counts (``step_events.Events.to_dict``; its cycles are
  the compute cycles above), ``elementwise_ops`` (``step_events.elementwise_ops`` of
  the layer as a one-layer workload, ``workloads.layer_workload``);
* ``energy``: the ASIC model's energy of the step (``asic_point``); ``--report``
  replaces it by the FPGA model's (``fpga_point``) when the point has a fitting
  ``--synth`` build.

Energy: the step's events priced by ``sw_model.accel.energy`` as ``fetta eval``
prices a training step (``sim.evaluation``): the step's elementwise work included, and
for the FPGA model a step time that includes its *estimated* elementwise cycles
(``step_events.elementwise_cycles``; the ``cycles`` above leave them out, as the
elementwise work runs on the host today). A record: ``model`` (``asic`` | ``fpga``),
``pj_per_sample``, ``pj_per_step`` (the model's components and ``total``), ``basis``
(one line: which model, from what).

* ``asic_point(events, cfg, elementwise_ops, batch)``: the ASIC model (Horowitz 45 nm,
  ``energy.asic_energy``), what every cost row stores; for a configuration that names
  an FPGA device the basis says that the point has no synthesis results;
* ``fpga_point(cost, cfg, synth)``: the FPGA model (``energy.fpga_energy``) from the
  point's own ``--synth`` build (``tasks.synth_task``): its used LUTs (iCE40: logic
  cells, one LUT4 each; ``measured.used_resources``), FFs, DSPs and block RAMs and its
  achieved Fmax, as ``fetta eval`` prices an FPGA preset from its stored build;
  ``--report`` computes it, joining a point's cost and synthesis rows. The model's
  coefficients are stated for the ECP5-85F (``docs/energy.md``); on another device the
  basis says so.

Latency (CPU, ``scripts/sweep_point_cost.py``): about 0.2 s for all 8 workloads of a
point of the presets' neighbourhood once the plans are cached, plus about 0.3 s of CSSE
plan searches per process (``order="macs"``: one search per layer and batch serves
every configuration); ``order="cycles"`` adds a CSSE search per configuration (tens of
seconds to minutes per layer).
"""

from __future__ import annotations

from fetta.sw_model.program.kchunk import predict_total
from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.energy import ASIC_TECH, asic_energy, fpga_energy
from fetta.sw_model.accel.measured import used_resources
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.ttm.step_events import (Events, contraction_events,
                                            elementwise_cycles, elementwise_ops)
from fetta.sw_model.ttm.workloads import (get_layer, layer_workload, scaled_plan,
                                          step_phases, steps_of)

__all__ = ["cost_workload", "asic_point", "fpga_point", "PHASES", "MODEL_DEVICE"]

PHASES = ("forward", "input_gradient", "core_gradients")

# The device the FPGA model's coefficients are stated for (energy.COEFFICIENTS, fpga_*):
# the ECP5-85F, as nextpnr names it in a synthesis result.
MODEL_DEVICE = "LFE5U-85F"


def cost_workload(cfg: AccelConfig, name: str, order: str = "macs",
                  check: bool = False) -> dict:
    """Cost of workload ``name`` (a ``workloads.LAYERS`` key) on ``cfg``; see the module
    docstring. Raises ``ValueError`` (one line) when a contraction cannot run at all,
    or, with ``check``, when a contraction's programs do not add up to
    ``kchunk.predict_total``."""
    i, o, r = get_layer(name)
    batch, plan, shapes = scaled_plan(i, o, r, cfg, order)
    phase_of = step_phases(plan, len(i))
    cycles = dict.fromkeys(PHASES, 0)
    peak = {"a": 0, "b": 0, "c": 0, "program": 0}
    events = Events()
    utils = []
    for st, sa, sb in steps_of(plan, shapes):
        sp = parse_spec(st.spec)
        ev, pk = contraction_events(sp, sa, sb, cfg)
        if check:
            want, programs = predict_total(sp, sa, sb, cfg)
            if (ev.cycles, ev.chunks) != (want, programs):
                raise ValueError(f"cycle model disagrees with itself on '{st.spec}' "
                                 f"{tuple(sa)} x {tuple(sb)}: predict_total {want} in "
                                 f"{programs} programs, compiled {ev.cycles} in "
                                 f"{ev.chunks}")
        events = events + ev
        for k in peak:
            peak[k] = max(peak[k], pk[k])
        cycles[phase_of[st.out]] += ev.cycles
        utils.append(st.macs / (cfg.macs * ev.cycles))
    macs = sum(st.macs for st in plan.steps)
    compute = sum(cycles[p] for p in PHASES)
    host = events.host_words
    cycles.update(compute=compute, host_transfer=host, total=compute + host)
    ew = elementwise_ops(layer_workload(name), batch)
    ev_dict = events.to_dict()
    return {
        "batch": batch, "contractions": events.contractions, "chunks": events.chunks,
        "macs": macs, "cycles": cycles, "cycles_per_sample": (compute + host) / batch,
        "mac_utilization": macs / (cfg.macs * compute),
        "mac_utilization_mean": sum(utils) / len(utils),
        "mac_utilization_with_transfer": macs / (cfg.macs * (compute + host)),
        "peak_rows": peak,
        "occupancy": {"a": peak["a"] / cfg.bank_depth, "b": peak["b"] / cfg.bank_depth,
                      "c": peak["c"] / cfg.bank_depth,
                      "program": peak["program"] / cfg.prog_depth},
        "host_words": {"written": events.host_written, "read": events.host_read},
        "events": ev_dict,
        "elementwise_ops": ew,
        "energy": asic_point(ev_dict, cfg, ew, batch),
    }


def asic_point(events: dict, cfg: AccelConfig, elementwise_ops: int, batch: int) -> dict:
    """The ASIC model's energy of a step's ``events`` (``Events.to_dict``) and
    ``elementwise_ops`` at ``batch`` samples on ``cfg``."""
    e = asic_energy(events, cfg, elementwise_ops)
    basis = (f"ASIC model ({ASIC_TECH['node_nm']:g} nm, Horowitz ISSCC 2014; "
             f"sw_model/accel/energy.py)")
    if cfg.device is not None:
        basis += (f"; no synthesis results for this point (its device is "
                  f"{cfg.device}: --synth gives the FPGA model)")
    return {"model": "asic", "pj_per_sample": e["total"] / batch, "pj_per_step": e,
            "basis": basis}


def fpga_point(cost: dict, cfg: AccelConfig, synth: dict) -> dict:
    """The FPGA model's energy of the cost row ``cost`` (``cost_workload``'s result) on
    the point's synthesized build ``synth`` (``synth_task``'s result, ``fits``)."""
    used = used_resources(synth["resources"])
    ew = cost["elementwise_ops"]
    cycles = cost["cycles"]["total"] + elementwise_cycles(ew, cfg)
    e = fpga_energy(cost["events"], cfg, synth["fmax_mhz"], used, cycles, ew)
    used = {k: used.get(k, 0) for k in ("LUTs", "FFs", "DSPs", "BRAMs")}
    device = synth.get("device") or synth.get("board")
    basis = (f"FPGA model: this point's {synth.get('board')} build ({used['LUTs']} LUTs, "
             f"{used['FFs']} FFs, {used['DSPs']} DSPs, {used['BRAMs']} BRAMs, "
             f"{synth['fmax_mhz']:g} MHz)")
    if device != MODEL_DEVICE:
        basis += (f"; coefficients stated for the {MODEL_DEVICE}, applied to {device} "
                  f"as is")
    return {"model": "fpga", "pj_per_sample": e["total"] / cost["batch"],
            "pj_per_step": e, "resources": used, "fmax_mhz": synth["fmax_mhz"],
            "basis": basis}
