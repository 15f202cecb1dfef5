"""``fetta sweep --report``: the Pareto front per workload, with energy per sample as
an axis (ASIC model from the cost rows, FPGA model from a point's own build), from a
store written as the runner writes it (real cost results, no cluster)."""

import json

import pytest

from fetta.sim.cli import main as fetta
from fetta.sw_model.accel.config import get_config
from fetta.sweep import tasks
from fetta.sweep.cost import cost_workload, fpga_point
from fetta.sweep.report import AXES_Y, build_report, format_report, pareto, plot
from fetta.sweep.space import point_id
from fetta.sweep.store import Store

from stored_builds import stored_synth

WL = "digits L2 128->16"
# around tiny, plus the ice40 preset (whose measured build serves as its --synth row)
POINTS = [get_config("tiny").replace(n_ce=n, pe_rows=r, bank_depth=d)
          for n in (2, 4) for r in (1, 2) for d in (256, 1024)] + [get_config("ice40")]


def _store(path, stale_extra=False):
    with Store(path) as st:
        for cfg in POINTS:
            st.put(dict(point_id=point_id(cfg), task=WL, config=cfg.to_dict(),
                        overrides={"name": cfg.name}, status="ok",
                        result=cost_workload(cfg, WL, "macs"),
                        version=tasks.fingerprint("cost"), task_hash="h"))
        ice = get_config("ice40")
        st.put(dict(point_id=point_id(ice), task="synth:icebreaker", config=ice.to_dict(),
                    overrides={}, status="ok", result=stored_synth("ice40"),
                    version=tasks.fingerprint("synth"), task_hash="s"))
        if stale_extra:           # a row from before the energy model: no events, no energy
            old = cost_workload(get_config("tiny"), WL, "macs")
            for k in ("events", "elementwise_ops", "energy"):
                old.pop(k)
            cfg = get_config("tiny").replace(n_ce=8)
            st.put(dict(point_id=point_id(cfg), task=WL, config=cfg.to_dict(),
                        overrides={"n_ce": 8}, status="ok", result=old,
                        version="0" * 16, task_hash="h"))
    return path


def test_energy_axis_front_and_models(tmp_path):
    db = _store(tmp_path / "r.db")
    assert "energy_per_sample" in AXES_Y
    rep = build_report(db, "macs", "energy_per_sample")
    assert rep["units"]["energy_per_sample"] == "uJ"
    w = rep["workloads"][WL]
    assert w["points"] == len(POINTS)
    by_id = {p["point_id"]: p for p in w["all"]}
    ice = by_id[point_id(get_config("ice40"))]
    assert ice["energy_model"] == "fpga" and "icebreaker build" in ice["energy"]["basis"]
    want = fpga_point(cost_workload(get_config("ice40"), WL, "macs"), get_config("ice40"),
                      stored_synth("ice40"))
    assert ice["energy_per_sample"] == pytest.approx(want["pj_per_sample"] * 1e-6)
    others = [p for p in w["all"] if p is not ice]
    assert {p["energy_model"] for p in others} == {"asic"}
    for p in others:
        assert p["energy_per_sample"] == pytest.approx(
            p["energy"]["pj_per_step"]["total"] / p["batch"] * 1e-6)
    # the front: no point dominated by another, every other point dominated
    front = w["front"]
    ids = {p["point_id"] for p in front}

    def dominates(a, b):
        return (a["macs"] <= b["macs"] and a["energy_per_sample"] <= b["energy_per_sample"]
                and (a["macs"], a["energy_per_sample"]) != (b["macs"], b["energy_per_sample"]))

    for p in w["all"]:
        dominated = any(dominates(q, p) for q in w["all"])
        assert (p["point_id"] not in ids) == dominated, p["overrides"]
    assert [p["macs"] for p in front] == sorted(p["macs"] for p in front)
    text = format_report(rep)
    assert "energy/sample uJ (model)" in text and "(asic)" in text
    assert "energy, asic model on" in text
    json.dumps(rep)                                   # JSON-able as --json writes it


def test_stale_rows_without_energy_are_left_out_or_shown_without_it(tmp_path):
    db = _store(tmp_path / "r.db", stale_extra=True)
    rep = build_report(db, "macs", "energy_per_sample")
    assert rep["counts"]["stale"] == 1 and rep["workloads"][WL]["points"] == len(POINTS)
    rep = build_report(db, "macs", "energy_per_sample", include_stale=True)
    stale = [p for p in rep["workloads"][WL]["all"] if p["overrides"] == {"n_ce": 8}]
    assert stale[0]["energy_per_sample"] is None and stale[0]["energy_model"] is None
    assert stale[0] not in rep["workloads"][WL]["front"]
    # on the cycles axis the same stale row competes as before
    rep = build_report(db, "macs", "cycles_per_sample", include_stale=True)
    assert len(rep["workloads"][WL]["all"]) == len(POINTS) + 1


def test_pareto_maximises_samples_per_s_and_minimises_the_rest():
    pts = [{"x": 1, "e": 5.0, "s": 10.0}, {"x": 2, "e": 4.0, "s": 9.0},
           {"x": 3, "e": 6.0, "s": 20.0}]
    assert [p["x"] for p in pareto(pts, "x", "e")] == [1, 2]
    pts = [dict(p, samples_per_s=p["s"]) for p in pts]
    assert [p["x"] for p in pareto(pts, "x", "samples_per_s")] == [1, 3]


def test_report_command_energy_json_and_plot(tmp_path, capsys):
    db = _store(tmp_path / "r.db")
    png, out = tmp_path / "p.png", tmp_path / "r.json"
    assert fetta(["sweep", "--report", str(db), "--x", "dsps", "--y",
                  "energy_per_sample", "--json", str(out), "--png", str(png)]) == 0
    rep = json.loads(out.read_text())
    assert rep["y"] == "energy_per_sample" and rep["x"] == "dsps"
    assert all(p["energy_per_sample"] > 0 for p in rep["workloads"][WL]["front"])
    assert png.stat().st_size > 10_000
    assert "energy/sample uJ (model)" in capsys.readouterr().out
    assert fetta(["sweep", "--report", str(db), "--y", "joules"]) == 2
    assert "--y 'joules' unknown; allowed cycles_per_sample, samples_per_s, " \
           "energy_per_sample" in capsys.readouterr().err


def test_plot_labels_the_energy_axis_with_its_unit(tmp_path, monkeypatch):
    import matplotlib.axes
    labels = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel",
                        lambda self, text, *a, **k: labels.append(text))
    plot(build_report(_store(tmp_path / "r.db"), "macs", "energy_per_sample"),
         tmp_path / "p.png")
    assert labels == ["energy per sample (uJ)"]
