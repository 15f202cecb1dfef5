"""``fetta sweep --report``: the Pareto front of a sweep store, per workload.

A point's cost on a workload (``cost.cost_workload``) is set against an area measure
``x`` (smaller is better):

* ``macs``: multipliers/shifters of the array (``n_ce * pe_rows * pe_cols``);
* ``dsps``: hard multipliers used (multiply MACs; shift MACs use none);
* ``buffer_kbits``: on-chip A + B + C buffer bits / 1024;
* ``luts``: LUTs (iCE40 logic cells) of the point's ``--synth`` build (points without
  one, or that do not fit, are left out);

and a measure ``y``: ``cycles_per_sample`` (training-step cycles including host
transfer / batch; smaller is better), ``samples_per_s`` (at the point's synthesized
Fmax; larger is better) or ``energy_per_sample`` (microjoules per sample of the
training step: the FPGA model from the point's own ``--synth`` build when it has one
that fits, ``cost.fpga_point``, else the ASIC model the cost row stores,
``cost.asic_point``; each point names its model; smaller is better). A point is on the front when no other point of the same workload is at
least as good in both and better in one.

Members: ``pareto(points, x, y)``, ``build_report(store, x, y)`` (the JSON-able
report: fresh rows joined per point, the front per workload), ``format_report``,
``plot``; ``AXES_X``, ``AXES_Y``, ``UNITS``.
"""

from __future__ import annotations

from fetta.sw_model.accel.config import AccelConfig

from .cost import fpga_point
from .store import Store
from .tasks import fingerprint

__all__ = ["AXES_X", "AXES_Y", "UNITS", "build_report", "format_report", "pareto", "plot"]

AXES_X = ("macs", "dsps", "buffer_kbits", "luts")
AXES_Y = ("cycles_per_sample", "samples_per_s", "energy_per_sample")
UNITS = {"macs": "MACs", "dsps": "DSPs", "buffer_kbits": "kbit", "luts": "LUTs",
         "cycles_per_sample": "cycles", "samples_per_s": "samples/s",
         "energy_per_sample": "uJ"}


def _config_measures(cfg: dict) -> dict:
    macs = cfg["n_ce"] * cfg["pe_rows"] * cfg["pe_cols"]
    lanes = cfg["n_ce"] * (cfg["pe_rows"] + 2 * cfg["pe_cols"])
    return {"macs": macs, "dsps": macs if cfg["mac_kind"] == "multiply" else 0,
            "buffer_kbits": cfg["bank_depth"] * lanes * 16 / 1024}


def pareto(points: list[dict], x: str, y: str) -> list[dict]:
    """The non-dominated points (minimise ``x``; maximise ``samples_per_s``, minimise
    any other ``y``), sorted by ``x``."""
    sign = -1 if y == "samples_per_s" else 1
    pts = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    pts.sort(key=lambda p: (p[x], sign * p[y]))
    front, best = [], None
    for p in pts:
        v = sign * p[y]
        if best is None or v < best:
            front.append(p)
            best = v
    return front


def build_report(store_path, x: str = "macs", y: str = "cycles_per_sample",
                 include_stale: bool = False) -> dict:
    """The report of the store at ``store_path``. Rows computed by other code (another
    fingerprint) are counted as stale and left out unless ``include_stale``."""
    if x not in AXES_X:
        raise ValueError(f"--x {x!r} unknown; allowed {', '.join(AXES_X)}")
    if y not in AXES_Y:
        raise ValueError(f"--y {y!r} unknown; allowed {', '.join(AXES_Y)}")
    with Store(store_path, create=False) as st:
        rows = st.rows()
    current = {k: fingerprint(k) for k in ("cost", "synth", "rtl-check")}
    synth, checks, per_wl = {}, {}, {}
    counts = {"invalid": 0, "failed": 0, "infeasible": 0, "stale": 0, "ok": 0}
    invalid_examples = []
    for r in rows:
        kind = ("synth" if r["task"].startswith("synth:") else
                "rtl-check" if r["task"] == "rtl-check" else "cost")
        if r["status"] == "invalid":
            counts["invalid"] += 1
            if len(invalid_examples) < 5:
                invalid_examples.append({"overrides": r["overrides"], "reason": r["reason"]})
            continue
        if r["version"] != current[kind]:
            counts["stale"] += 1
            if not include_stale:
                continue
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r["status"] != "ok":
            continue
        if kind == "synth":
            synth[r["point_id"]] = r["result"]
        elif kind == "rtl-check":
            checks[r["point_id"]] = r
        else:
            per_wl.setdefault(r["task"], []).append(r)
    report = {"store": str(store_path), "x": x, "y": y, "units": UNITS, "counts": counts,
              "include_stale": include_stale,
              "invalid_examples": invalid_examples, "workloads": {}}
    if checks:
        report["rtl_check"] = {
            "points": len(checks),
            "contractions": sum(c["result"]["checked"] for c in checks.values()),
            "agree": sum(c["result"]["agree"] for c in checks.values()),
            "disagreements": [c["reason"] for c in checks.values() if c["reason"]][:10]}
    for wl, rs in sorted(per_wl.items()):
        pts = []
        for r in rs:
            res, cfg = r["result"], r["config"]
            p = {"point_id": r["point_id"], "overrides": r["overrides"],
                 **_config_measures(cfg), "batch": res["batch"],
                 "cycles_per_sample": res["cycles_per_sample"],
                 "cycles": res["cycles"], "mac_utilization": res["mac_utilization"],
                 "mac_utilization_with_transfer": res["mac_utilization_with_transfer"],
                 "occupancy": res["occupancy"], "host_words": res["host_words"],
                 "luts": None, "fmax_mhz": None, "samples_per_s": None}
            s = synth.get(r["point_id"])
            energy = res.get("energy")            # None on a stale row from older code
            if s and s.get("fits"):
                p["luts"], p["fmax_mhz"] = s["luts"], s["fmax_mhz"]
                p["samples_per_s"] = res["batch"] * s["fmax_mhz"] * 1e6 / \
                    res["cycles"]["total"]
                if "events" in res:
                    energy = fpga_point(res, AccelConfig(**cfg), s)
            p["energy"] = energy
            p["energy_per_sample"] = energy["pj_per_sample"] * 1e-6 if energy else None
            p["energy_model"] = energy["model"] if energy else None
            pts.append(p)
        report["workloads"][wl] = {"points": len(pts), "front": pareto(pts, x, y),
                                   "all": pts}
    return report


def _fmt_over(ov: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in ov.items()) or "(base)"


def format_report(rep: dict) -> str:
    c = rep["counts"]
    stale = ("included (--stale)" if rep.get("include_stale") else
             "left out; rerun the sweep to refresh, or --stale")
    lines = [f"sweep store {rep['store']}: {c['ok']} results, {c['invalid']} invalid "
             f"points, {c['infeasible']} infeasible, {c['failed']} failed, {c['stale']} "
             f"stale (computed by other code: {stale})"]
    for ex in rep["invalid_examples"][:3]:
        lines.append(f"  invalid {_fmt_over(ex['overrides'])}: {ex['reason']}")
    if "rtl_check" in rep:
        rc = rep["rtl_check"]
        lines.append(f"RTL check (Verilator): {rc['agree']}/{rc['contractions']} sampled "
                     f"contractions agree (outputs and cycles) on {rc['points']} points")
        for d in rc["disagreements"][:3]:
            lines.append(f"  {d}")
    x, y = rep["x"], rep["y"]
    for wl, w in rep["workloads"].items():
        lines.append("")
        lines.append(f"## {wl}: {len(w['front'])} of {w['points']} points on the front "
                     f"({y} vs {x})")
        lines.append("| point | MACs | buffer kbit | batch | cycles/sample | utilization "
                     "(compute / with transfer) | LUTs | Fmax MHz | samples/s | "
                     "energy/sample uJ (model) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for p in w["front"]:
            e = (f"{p['energy_per_sample']:.4g} ({p['energy_model']})"
                 if p["energy_per_sample"] is not None else "-")
            lines.append(
                f"| {_fmt_over(p['overrides'])} | {p['macs']} | {p['buffer_kbits']:g} | "
                f"{p['batch']} | {p['cycles_per_sample']:,.0f} | "
                f"{100 * p['mac_utilization']:.1f}% / "
                f"{100 * p['mac_utilization_with_transfer']:.1f}% | "
                f"{p['luts'] if p['luts'] is not None else '-'} | "
                f"{p['fmax_mhz'] if p['fmax_mhz'] is not None else '-'} | "
                f"{format(p['samples_per_s'], ',.0f') if p['samples_per_s'] else '-'} | "
                f"{e} |")
        by_model: dict = {}
        for p in w["front"]:
            if p["energy"]:
                by_model.setdefault(p["energy_model"], []).append(p["energy"]["basis"])
        for model, bases in sorted(by_model.items()):
            more = " (and the like for the others)" if len(set(bases)) > 1 else ""
            lines.append(f"energy, {model} model on {len(bases)} of these points: "
                         f"{bases[0]}{more}")
    return "\n".join(lines)


def plot(rep: dict, path) -> None:
    """One panel per workload: every point, the front joined as a step line."""
    import math

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    wls = list(rep["workloads"].items())
    if not wls:
        raise ValueError(f"sweep store {rep['store']!r} has no fresh results to plot")
    cols = min(4, len(wls))
    rows = math.ceil(len(wls) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    x, y = rep["x"], rep["y"]
    for ax, (wl, w) in zip(axes.flat, wls):
        pts = [p for p in w["all"] if p.get(x) is not None and p.get(y) is not None]
        ax.scatter([p[x] for p in pts], [p[y] for p in pts], s=10, c="0.7",
                   label="points")
        fr = w["front"]
        ax.step([p[x] for p in fr], [p[y] for p in fr], where="post", c="C3", lw=1)
        ax.scatter([p[x] for p in fr], [p[y] for p in fr], s=18, c="C3", label="front")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(wl, fontsize="small")
        ax.set_xlabel(f"{x.replace('_', ' ')} ({UNITS[x]})")
        ax.set_ylabel(f"{y.replace('_', ' ')} ({UNITS[y]})")
    for ax in list(axes.flat)[len(wls):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
