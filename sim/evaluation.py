"""``fetta eval``: the papers' evaluation reproduced — one training step per workload
and accelerator preset against the same step measured on this machine's CPU.

For each workload (``sw_model.ttm.workloads.WORKLOADS``) and preset:

* accelerator: the step's event counts from the compiler (``sw_model.ttm.step_events``;
  cycles equal the RTL's, checked by ``sim.step_confirm`` in the same run on the
  presets named by ``confirm``, separate jobs and resident chains); cycles by phase (forward, input gradient, core
  gradients, host transfer at one 32-bit word per cycle, and the elementwise work's
  *estimated* cycles, one operation per output lane per cycle, since it runs on the
  host today); latency at the preset's clock; samples/s; energy per sample from
  ``sw_model.accel.energy`` (ASIC model, or the FPGA model for presets with a device);
  energy-delay product (energy per step x step latency); on-chip memory used and
  available;
* the same step with resident chains (``DATAFLOWS``; presets with the MOVE unit):
  ``sw_model.ttm.resident_step.resident_step_events``, every layer's contractions one
  chain whose intermediates stay on chip (on-chip MOVE cycles a phase of their own,
  host words only the layer's inputs and results; cut into segments where the banks
  are too small, a step that does not compile into one program a separate job); and
  the same with staged inputs (the host writes each input densely, MOVEs lay it out);
* CPU: ``sim.cpu_baseline.cpu_step`` (NumPy float64) on one core and on all cores,
  measured now, and when ``torch`` is installed ``sim.torch_baseline.torch_step`` (the
  same step in PyTorch float32) likewise;
* ratios accelerator/CPU: speedup (samples/s) and energy per sample (against NumPy on
  one core, the goals' baseline; against PyTorch on one core when it ran).

Clocks: a preset with an FPGA device runs at its measured Fmax
(``sw_model.accel.measured``, from the synthesis report); the others at the stated ASIC
clock (``sw_model.accel.energy.ASIC_TECH``).

Also in the JSON: the memory accounting of the on-FPGA paper's model beside the
paper's 292x (``sw_model.memory``), and the papers' reported ratios, quoted.
"""

from __future__ import annotations

import os
import time

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.energy import asic_energy, fpga_energy
from fetta.sim.jsonio import source_commit
from fetta.sw_model.accel.measured import preset_clock, synth_report
from fetta.sw_model.train.memory import memory_report
from fetta.sw_model.ttm.models import get_model
from fetta.sw_model.ttm.resident_step import resident_step_events
from fetta.sw_model.ttm.step_events import PHASES, elementwise_cycles, step_events
from fetta.sw_model.ttm.workloads import DEFAULT_BATCH, WORKLOADS, get_workload

from .cpu_baseline import cpu_info, cpu_step
from .torch_baseline import torch_available, torch_step, torch_version

__all__ = ["evaluate", "DEFAULT_PRESETS", "DATAFLOWS", "confirmation_lines", "REPORTED", "preset_clock", "markdown",
           "plot"]

DEFAULT_PRESETS = ("tiny", "large", "asic")
# How a step's contractions run: "separate" jobs (every operand written and every
# result read by the host, ``step_events``) and, on presets with the MOVE unit,
# "resident" chains (intermediates kept on chip, ``resident_step_events``) and
# "staged" resident chains (the host writes each input densely, MOVEs lay it out).
DATAFLOWS = ("separate", "resident", "staged")

# Quoted from the papers as reported (REFERENCES.md §1, §2); not measured here.
REPORTED = {
    "fetta_vs_gpu": {"latency": 20.5, "energy": 567.5, "edp": 11609.7},
    "fetta_vs_tpu": {"latency": 100.9, "energy": 45.03, "edp": 4544.8},
    "fetta_vs_tensorized_accelerators": {"speedup": [3.87, 14.63],
                                         "energy_efficiency": [1.41, 2.73]},
    "on_fpga_vs_embedded_cpu": {"speedup": 59.0, "energy": 123.0, "memory": 292.0},
}


def _accel_row(wl, cfg, batch, dataflow: str = "separate") -> dict:
    clock, clock_src = preset_clock(cfg)
    if dataflow in ("resident", "staged"):
        st = resident_step_events(wl, cfg, batch, stage=dataflow == "staged")
    else:
        st = step_events(wl, cfg, batch)
    tot = st["total"].to_dict()
    cyc = {p: st["phases"][p].cycles for p in PHASES}
    cyc["on_chip_moves"] = tot["move_cycles"]
    cyc["host_transfer"] = tot["host_words"]
    cyc["elementwise_estimate"] = elementwise_cycles(st["elementwise_ops"], cfg)
    compute = sum(cyc[p] for p in PHASES)
    cyc["total"] = (compute + cyc["on_chip_moves"] + cyc["host_transfer"] +
                    cyc["elementwise_estimate"])
    latency = cyc["total"] / (clock * 1e6)
    if cfg.device is not None:
        rep = synth_report(cfg.name)
        e = fpga_energy(tot, cfg, clock, rep["resources"], cyc["total"],
                        st["elementwise_ops"])
        model = "fpga"
    else:
        e = asic_energy(tot, cfg, st["elementwise_ops"])
        model = "asic"
    joules = e["total"] * 1e-12
    lanes = cfg.a_lanes + cfg.b_lanes + cfg.c_lanes
    pk = st["peak"]
    used = {"a": pk["a"] * cfg.a_lanes * 2, "b": pk["b"] * cfg.b_lanes * 2,
            "c": pk["c"] * cfg.c_lanes * 2, "program": pk["program"] * 4}
    return {
        "workload": wl.name, "preset": cfg.name, "dataflow": dataflow, "batch": batch,
        "macs": cfg.macs,
        "clock_mhz": clock, "clock_source": clock_src, "cycles": cyc,
        "compute_cycles": compute, "latency_s": latency,
        "samples_per_s": batch / latency,
        "samples_per_s_compute_only": batch / (compute / (clock * 1e6)),
        "energy_model": model, "energy_pj": e, "joules_per_step": joules,
        "joules_per_sample": joules / batch, "edp_js": joules * latency,
        "mac_utilization": tot["useful_macs"] / (cfg.macs * compute),
        "mac_utilization_all_cycles": tot["useful_macs"] / (cfg.macs * cyc["total"]),
        "events": tot, "elementwise_ops": st["elementwise_ops"],
        "on_chip_memory": {"used_bytes": dict(used, total=sum(used.values())),
                           "available_bytes": cfg.bank_depth * lanes * 2 +
                           cfg.prog_depth * 4},
        "contractions": st["contractions"],
        "layers": st.get("layers"),
    }


def _memory_accounting(batch) -> dict:
    rep = memory_report(get_model("mnist-tt"), "fixed", batch)
    return {"model": "mnist-tt", "precision": "fixed", "batch": batch,
            "paper_reported": REPORTED["on_fpga_vs_embedded_cpu"]["memory"],
            "tt_bytes": rep["tt"], "dense_784_512_10_fp32_bytes": rep["dense_paper_fp32"],
            "reduction_total": rep["reduction_total_vs_paper_dense"],
            "reduction_weights": rep["reduction_weights_vs_paper_dense"],
            "reduction_weights_and_master": (
                rep["dense_paper_fp32"]["weights"] /
                (rep["tt"]["weights"] + rep["tt"]["master_weights"]))}


def evaluate(workloads=None, presets=None, *, batch: int = DEFAULT_BATCH,
             cpu_steps: int = 5, confirm=("tiny",), confirm_workload: str = "digits",
             progress=None) -> dict:
    """The whole evaluation as a JSON-ready dict (see the module doc)."""
    from .step_confirm import confirm_resident_step, confirm_step
    say = progress or (lambda msg: None)
    wls = [get_workload(w) for w in (workloads or list(WORKLOADS))]
    cfgs = [get_config(p) for p in (presets or DEFAULT_PRESETS)]
    t0 = time.perf_counter()
    n_all = os.cpu_count() or 1
    cpu = {}
    for wl in wls:
        one = cpu_step(wl, batch, threads=1, steps=cpu_steps)
        allc = cpu_step(wl, batch, threads=n_all, steps=cpu_steps)
        cpu[wl.name] = {"one_core": one, "all_cores": allc}
        say(f"cpu {wl.name}: {one['samples_per_s']:,.0f} samples/s (1 core), "
            f"{allc['samples_per_s']:,.0f} ({n_all} cores)")
        if torch_available():           # the optional PyTorch baseline
            cpu[wl.name]["torch_one_core"] = torch_step(wl, batch, 1, cpu_steps)
            cpu[wl.name]["torch_all_cores"] = torch_step(wl, batch, n_all, cpu_steps)
            say(f"pytorch {wl.name}: "
                f"{cpu[wl.name]['torch_one_core']['samples_per_s']:,.0f} samples/s "
                f"(1 core), {cpu[wl.name]['torch_all_cores']['samples_per_s']:,.0f} "
                f"({n_all} cores)")
    rows = []
    runs = [(c, w, d) for d in DATAFLOWS for c in cfgs for w in wls
            if d == "separate" or c.move_unit]
    for cfg, wl, dataflow in runs:
        r = _accel_row(wl, cfg, batch, dataflow)
        c1, ca = cpu[wl.name]["one_core"], cpu[wl.name]["all_cores"]
        r["ratios"] = {
            "speedup_vs_one_core": r["samples_per_s"] / c1["samples_per_s"],
            "speedup_vs_all_cores": r["samples_per_s"] / ca["samples_per_s"],
            "energy_vs_one_core": c1["joules_per_sample"] / r["joules_per_sample"],
            "energy_vs_all_cores": ca["joules_per_sample"] / r["joules_per_sample"],
            "edp_vs_one_core": (c1["joules_per_step"] * c1["seconds_per_step"]) /
            r["edp_js"],
        }
        ct = cpu[wl.name].get("torch_one_core")
        if ct is not None:
            r["ratios"]["speedup_vs_torch_one_core"] = \
                r["samples_per_s"] / ct["samples_per_s"]
            r["ratios"]["energy_vs_torch_one_core"] = \
                ct["joules_per_sample"] / r["joules_per_sample"]
        rows.append(r)
        say(f"{cfg.name} {wl.name} ({dataflow}): {r['cycles']['total']:,} cycles, "
            f"{r['samples_per_s']:,.0f} samples/s, "
            f"{r['ratios']['speedup_vs_one_core']:.2f}x / "
            f"{r['ratios']['energy_vs_one_core']:.1f}x vs one core")
    confirms = []
    for name in confirm or ():
        cfg = get_config(name)
        if cfg not in cfgs:
            continue
        say(f"confirming {confirm_workload} on {name} in verilator ...")
        confirms.append(dict(confirm_step(confirm_workload, cfg, "verilator", batch),
                             dataflow="separate"))
        if cfg.move_unit:
            say(f"confirming {confirm_workload} resident on {name} in verilator ...")
            confirms.append(dict(confirm_resident_step(confirm_workload, cfg, "verilator",
                                                       batch), dataflow="resident"))
    return {
        "batch": batch, "commit": source_commit(),
        "machine": dict(cpu_info(), torch=torch_version()),
        "presets": {c.name: {"config": c.to_dict(), "macs": c.macs,
                             "clock_mhz": preset_clock(c)[0],
                             "clock_source": preset_clock(c)[1],
                             "energy_model": "fpga" if c.device else "asic"}
                    for c in cfgs},
        "workloads": {w.name: {"title": w.title, "layers": [l.to_dict() for l in w.layers],
                               "tt_params": w.tt_params, "dense_params": w.dense_params}
                      for w in wls},
        "cpu": cpu, "rows": rows, "rtl_confirmation": confirms,
        "memory": _memory_accounting(batch), "reported": REPORTED,
        "wall_seconds": time.perf_counter() - t0,
    }


def _dataflow(r: dict) -> str:
    return r.get("dataflow", "separate")


def markdown(res: dict) -> str:
    """The README tables: one line per workload and preset with every contraction a
    separate job; the same steps with resident chains (presets with the MOVE unit);
    the CPU baselines."""
    out = ["| workload | preset | MACs | clock MHz | cycles/step (fwd + dx + dG + host + "
           "elementwise est.) | MAC util. (compute / all) | samples/s | vs 1 core | "
           "vs all cores | energy/sample | vs 1 core (energy) | EDP (J s) | on-chip "
           "used / avail. |",
           "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in [r for r in res["rows"] if _dataflow(r) == "separate"]:
        c = r["cycles"]
        ra = r["ratios"]
        mem = r["on_chip_memory"]
        out.append(
            f"| {r['workload']} | {r['preset']} | {r['macs']:,} | {r['clock_mhz']:g} | "
            f"{c['total']:,} ({c['forward']:,} + {c['input_gradient']:,} + "
            f"{c['core_gradients']:,} + {c['host_transfer']:,} + "
            f"{c['elementwise_estimate']:,}) | "
            f"{100 * r['mac_utilization']:.0f}% / {100 * r['mac_utilization_all_cycles']:.0f}% | "
            f"{r['samples_per_s']:,.0f} | {ra['speedup_vs_one_core']:.2f}x | "
            f"{ra['speedup_vs_all_cores']:.2f}x | {_joules(r['joules_per_sample'])} | "
            f"{ra['energy_vs_one_core']:.1f}x | {r['edp_js']:.3g} | "
            f"{_bytes(mem['used_bytes']['total'])} / {_bytes(mem['available_bytes'])} |")
    sep = {(r["workload"], r["preset"]): r for r in res["rows"]
           if _dataflow(r) == "separate"}
    resident = [r for r in res["rows"] if _dataflow(r) in ("resident", "staged")]
    if resident:
        out += ["", "Resident chains (each layer's step one chain: intermediates stay on "
                "chip and reach their readers by MOVE; the host writes x, the cores and dy "
                "and reads y, dx and the core gradients; staged: the host writes each of "
                "those inputs densely, one word per element, and MOVEs lay it out):", "",
                "| workload | preset | dataflow | cycles/step (fwd + dx + dG + moves + host + "
                "elementwise est.) | MAC util. (compute / all) | samples/s | vs 1 core | "
                "energy/sample | vs 1 core (energy) | host words: separate -> resident | "
                "step cycles vs separate |",
                "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in resident:
            c, ra = r["cycles"], r["ratios"]
            s0 = sep.get((r["workload"], r["preset"]))
            words = (f"{s0['cycles']['host_transfer']:,} -> {c['host_transfer']:,}"
                     if s0 else f"{c['host_transfer']:,}")
            gain = f"{s0['cycles']['total'] / c['total']:.2f}x" if s0 else "-"
            out.append(
                f"| {r['workload']} | {r['preset']} | {_dataflow(r)} | {c['total']:,} "
                f"({c['forward']:,} + "
                f"{c['input_gradient']:,} + {c['core_gradients']:,} + "
                f"{c['on_chip_moves']:,} + {c['host_transfer']:,} + "
                f"{c['elementwise_estimate']:,}) | {100 * r['mac_utilization']:.0f}% / "
                f"{100 * r['mac_utilization_all_cycles']:.0f}% | "
                f"{r['samples_per_s']:,.0f} | {ra['speedup_vs_one_core']:.2f}x | "
                f"{_joules(r['joules_per_sample'])} | {ra['energy_vs_one_core']:.1f}x | "
                f"{words} | {gain} |")
    out += _targets(res)
    torch = res.get("machine", {}).get("torch")
    out += ["", "CPU baselines: NumPy float64 (the reference trainer's step) and "
            + (f"PyTorch {torch} float32 (the same step in PyTorch, "
               "`sim/torch_baseline.py`)" if torch else
               "no PyTorch (not installed in this run: `pip install fetta-hdl[torch]`)")
            + ":", "",
            "| workload | NumPy samples/s (1 core) | NumPy samples/s (all cores) | NumPy "
            "energy/sample (1 core) | PyTorch samples/s (1 core) | PyTorch samples/s "
            "(all cores) |", "|---|---:|---:|---:|---:|---:|"]
    for name, c in res["cpu"].items():
        t1, ta = (c.get(k, {}).get("samples_per_s") for k in ("torch_one_core",
                                                              "torch_all_cores"))
        out.append(f"| {name} | {c['one_core']['samples_per_s']:,.0f} | "
                   f"{c['all_cores']['samples_per_s']:,.0f} | "
                   f"{_joules(c['one_core']['joules_per_sample'])} | "
                   f"{'-' if t1 is None else f'{t1:,.0f}'} | "
                   f"{'-' if ta is None else f'{ta:,.0f}'} |")
    return "\n".join(out)


# The goals per preset: (samples/s, energy per sample) vs one CPU core, on the
# digits and mnist-tt steps.
TARGETS = {"asic": (10.0, 100.0), "ecp5": (1.0, 10.0)}
TARGET_WORKLOADS = ("digits", "mnist-tt")


def _targets(res: dict) -> list[str]:
    """The goals table: every row of a preset in ``TARGETS`` on a workload in
    ``TARGET_WORKLOADS``, its ratios against one CPU core and whether both are met."""
    rows = [r for r in res["rows"] if r["preset"] in TARGETS
            and r["workload"] in TARGET_WORKLOADS]
    if not rows:
        return []
    out = ["", "Goals (" + "; ".join(f"`{p}` >= {s:g}x samples/s and >= {e:g}x less "
                                     f"energy per sample than one CPU core"
                                     for p, (s, e) in TARGETS.items()) +
           f", on {' and '.join(TARGET_WORKLOADS)}):", "",
           "| workload | preset | dataflow | samples/s vs 1 core | energy vs 1 core | "
           "goals | samples/s vs PyTorch (1 core) |", "|---|---|---|---:|---:|---|---:|"]
    for r in rows:
        gs, ge = TARGETS[r["preset"]]
        ra = r["ratios"]
        s_ok = ra["speedup_vs_one_core"] >= gs
        e_ok = ra["energy_vs_one_core"] >= ge
        verdict = "met" if s_ok and e_ok else "missed: " + ", ".join(
            w for w, ok in (("speed", s_ok), ("energy", e_ok)) if not ok)
        vt = ra.get("speedup_vs_torch_one_core")
        out.append(f"| {r['workload']} | {r['preset']} | {_dataflow(r)} | "
                   f"{ra['speedup_vs_one_core']:.2f}x | {ra['energy_vs_one_core']:.1f}x | "
                   f"{verdict} | {'-' if vt is None else f'{vt:.2f}x'} |")
    return out


def confirmation_lines(res: dict) -> list[str]:
    """One line per RTL confirmation of the run (separate jobs: per contraction;
    resident chains: per layer)."""
    out = []
    for c in res["rtl_confirmation"]:
        head = (f"RTL confirmation ({c['backend']}, {c.get('dataflow', 'separate')}): "
                f"{c['workload']} on {c['config']}, ")
        if "layers" in c:
            out.append(head + f"{c['layers']} layer chains: {c['cycles_rtl']:,} cycles = "
                       f"model {c['cycles_model']:,}; MOVE element cycles "
                       f"{c['move_elements_rtl']:,}; host words {c['host_words_rtl']:,}")
        else:
            out.append(head + f"{c['contractions']} contractions: {c['cycles_rtl']:,} "
                       f"cycles = model {c['cycles_model']:,}; MAC-active "
                       f"{c['mac_active_rtl']:,}; host words {c['host_words_rtl']:,}")
    return out


def _joules(j: float) -> str:
    for unit, f in (("J", 1), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)):
        if j >= f:
            return f"{j / f:.3g} {unit}"
    return f"{j / 1e-12:.3g} pJ"


def _bytes(b: float) -> str:
    for unit, f in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= f:
            return f"{b / f:.3g} {unit}"
    return f"{b:.0f} B"


def plot(res: dict, path) -> None:
    """Four panels: speedup and energy ratio vs one CPU core per workload and preset
    (log scale; bars separate jobs, dots resident chains), MAC utilization (compute cycles / all cycles), and the cycle
    breakdown by phase."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    rows = [r for r in res["rows"] if _dataflow(r) == "separate"]
    res_rows = {(r["workload"], r["preset"]): r for r in res["rows"]
                if _dataflow(r) == "resident"}
    wls = list(dict.fromkeys(r["workload"] for r in rows))
    pres = list(dict.fromkeys(r["preset"] for r in rows))
    get = {(r["workload"], r["preset"]): r for r in rows}
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8))
    w = 0.8 / len(pres)
    x = np.arange(len(wls))
    for ax, key, title in ((axes[0], "speedup_vs_one_core", "samples/s vs one CPU core"),
                           (axes[1], "energy_vs_one_core",
                            "energy per sample: CPU (one core) / accelerator")):
        for j, p in enumerate(pres):
            ax.bar(x + j * w, [get[(wl, p)]["ratios"][key] for wl in wls], w, label=p)
            pts = [(x[i] + j * w, res_rows[(wl, p)]["ratios"][key])
                   for i, wl in enumerate(wls) if (wl, p) in res_rows]
            if pts:
                ax.scatter(*zip(*pts), color="k", marker="o", s=12, zorder=3,
                           label="resident" if j == 0 else None)
        ax.axhline(1, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x + w * (len(pres) - 1) / 2, wls, rotation=30)
        ax.set_title(title)
        ax.legend(fontsize="small")
    ax = axes[2]
    for j, p in enumerate(pres):
        ax.bar(x + j * w, [100 * get[(wl, p)]["mac_utilization"] for wl in wls], w,
               label=f"{p} (compute)")
        ax.scatter(x + j * w, [100 * get[(wl, p)]["mac_utilization_all_cycles"]
                               for wl in wls], color="k", marker="_", s=60, zorder=3)
    ax.set_xticks(x + w * (len(pres) - 1) / 2, wls, rotation=30)
    ax.set_ylabel("MAC utilization (%)")
    ax.set_title("utilization: bars compute cycles, marks all cycles")
    ax.legend(fontsize="small")
    ax = axes[3]
    phases = ("forward", "input_gradient", "core_gradients", "host_transfer",
              "elementwise_estimate")
    labels = [f"{r['workload']}/{r['preset']}" for r in rows]
    bottom = np.zeros(len(rows))
    for ph in phases:
        v = np.array([r["cycles"][ph] / r["cycles"]["total"] for r in rows])
        ax.bar(np.arange(len(rows)), v, bottom=bottom, label=ph.replace("_", " "))
        bottom += v
    ax.set_xticks(np.arange(len(rows)), labels, rotation=90, fontsize=6)
    ax.set_ylabel("share of step cycles")
    ax.set_title("cycle breakdown per phase")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
