"""scripts/inference_report.py: the digits inference pass on the RTL as separate jobs
and as one resident chain with on-chip epilogues; both reproduce the trainer's
logits (the script exits otherwise) and the JSON adds up."""

import json
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "inference_report.py"


def test_report_runs_and_adds_up(tmp_path):
    out = tmp_path / "inf.json"
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main(["--batch", "4", "--steps", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["logits_equal_trainer"] and doc["batch"] == 4
    r, s = doc["resident"], doc["separate"]
    assert r["total"] == (r["compute"] + r["on_chip_moves"] + r["elementwise"] +
                          r["host_transfer"])
    assert s["total"] == s["compute"] + s["host_transfer"]
    assert r["elementwise"] > 0 and r["host_words"] < s["host_words"]
