"""`fetta alloc`: the printed report agrees with its JSON, and bad input or a step that
cannot be placed gives one line on stderr and exit code 2."""

import json
import subprocess
import sys


def fetta(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fetta.sim.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_report_and_json(tmp_path):
    out = tmp_path / "alloc.json"
    proc = fetta("alloc", "--workload", "digits", "--config", "tiny", "--batch", "16",
                 "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["workload"] == "digits" and res["batch"] == 16
    assert res["micro_batch"] * res["micro_batches"] >= 16
    alloc = res["allocation"]
    text = proc.stdout
    assert f"runs per step: {res['micro_batches']} micro-batch" in text
    for bank, use in alloc["banks"].items():
        assert use["peak_rows"] <= use["depth"] == 1024
        assert f"{use['peak_rows']:,} / 1,024" in text
    for p in alloc["placements"]:
        assert p["tensor"] in text
    words = alloc["host_words"]
    assert f"total {words['total']:,}; per step {res['host_words_per_step']:,}" in text
    assert f"(today's flow): {res['separate_job_host_words']:,} host words" in text
    if alloc["spills"]:
        assert "spills to the host" in text
    else:
        assert "spills: none" in text


def test_unplaceable_step_is_one_line():
    proc = fetta("alloc", "--workload", "digits", "--set", "bank_depth=16")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fetta alloc: error: tensor 'L")
    assert "bank depth 16" in lines[0]


def test_bad_input():
    proc = fetta("alloc", "--workload", "digits", "--batch", "0")
    assert proc.returncode == 2 and "--batch 0 out of range" in proc.stderr
    proc = fetta("alloc", "--workload", "nope")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = fetta("alloc", "--help")
    assert proc.returncode == 0
    for option in ("--workload", "--config", "--batch", "--json", "--policy", "--order"):
        assert option in proc.stdout
