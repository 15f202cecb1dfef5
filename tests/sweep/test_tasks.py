"""The RTL-check and synthesis tasks of a sweep point (real Verilator, real YoWASP)."""

import shutil

import pytest

from fetta.sw_model.accel.config import get_config
from fetta.sweep.tasks import fingerprint, rtl_check_task, synth_task


@pytest.mark.skipif(shutil.which("verilator") is None,
                    reason="needs the system Verilator (apt install verilator)")
def test_rtl_check_agrees_with_the_golden_model_and_cycle_model():
    """Two sampled digits contractions on the Verilator model of ``tiny`` (the model
    the Verilator backend tests build; cached)."""
    out = rtl_check_task(get_config("tiny").to_dict(), ["digits L2 128->16"], "macs", 2,
                         seed=3)
    assert out["status"] == "ok" and out["reason"] is None, out["reason"]
    res = out["result"]
    assert res["checked"] == 2 and res["agree"] == 2
    for c in res["checks"]:
        assert c["output_equal"] and c["cycles"] == c["predicted"] > 0
        assert c["workload"] == "digits L2 128->16"


def test_fingerprints_differ_by_kind_and_are_stable():
    fp = {k: fingerprint(k) for k in ("cost", "rtl-check", "synth")}
    assert len(set(fp.values())) == 3
    assert all(len(v) == 16 for v in fp.values())
    assert fingerprint("cost") == fp["cost"]


@pytest.mark.synth
def test_synth_task_ice40_preset():
    """The ice40 preset through the YoWASP flow (a few minutes)."""
    out = synth_task(get_config("ice40").to_dict(), "icebreaker")
    assert out["status"] == "ok", out["reason"]
    r = out["result"]
    assert r["fits"] and r["luts_available"] == 5280 and 0 < r["luts"] <= 5280
    assert r["fmax_mhz"] > 12 and r["resources"]["DSPs"]["used"] == 4


def test_cost_fingerprint_changes_with_the_energy_model(tmp_path, monkeypatch):
    """A cost row depends on the cycle model, the event counts, the energy model and the
    sweep's cost code: a change to any of them makes stored rows stale."""
    from fetta.sweep import tasks
    files = tasks.sources("cost")
    paths = [f.as_posix() for f in files]
    for want in ("sw_model/accel/energy.py", "sw_model/ttm/step_events.py",
                 "sw_model/accel/measured.py", "sw_model/program/compiler.py",
                 "sweep/cost.py", "sweep/tasks.py"):
        assert any(p.endswith(want) for p in paths), want
    copies = []
    for i, f in enumerate(files):
        c = tmp_path / f"{i}" / f.name
        c.parent.mkdir()
        c.write_bytes(f.read_bytes())
        copies.append(c)
    real = fingerprint("cost")
    monkeypatch.setattr(tasks, "sources", lambda kind: copies)
    monkeypatch.setattr(tasks, "_FP", {})
    same = tasks.fingerprint("cost")
    assert same == real              # same names, same bytes
    energy = next(c for c, p in zip(copies, paths) if p.endswith("accel/energy.py"))
    energy.write_text(energy.read_text().replace("0.03", "0.031", 1))
    monkeypatch.setattr(tasks, "_FP", {})
    assert tasks.fingerprint("cost") != same
