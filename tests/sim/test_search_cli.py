"""`fetta search`: JSON fields, human summary, one-line errors with exit code 2."""

import json

import pytest

from fetta.sim.cli import main

FC1 = ["--in", "7,4,2,16", "--out", "4,4,2,16", "--ranks", "16,16,16", "--batch", "64"]


def test_json_fields(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert main(["search", *FC1, "--json", str(path)]) == 0
    human = capsys.readouterr().out
    assert "joint plan" in human and "95,502,336" in human
    s = json.loads(path.read_text())
    assert [n["name"] for n in s["networks"]] == ["y", "dx", "dg1", "dg2", "dg3", "dg4"]
    for n in s["networks"]:
        assert {"name", "order", "macs", "joint_order", "joint_new_macs"} <= set(n)
    assert s["per_network_total_macs"] == sum(n["macs"] for n in s["networks"])
    assert s["total_macs"] == 95_502_336 <= s["per_network_total_macs"]
    assert s["total_macs"] == sum(st["macs"] for st in s["steps"])
    assert s["dense_macs"] == 3 * 64 * 896 * 512
    assert s["peak_bytes"] > 0 and s["search_seconds"] >= 0
    assert set(s["outputs"]) == {"y", "dx", "dg1", "dg2", "dg3", "dg4"}
    assert {"out", "a", "b", "spec", "shape", "macs"} <= set(s["steps"][0])


def test_memory_cost_and_budget(tmp_path):
    path = tmp_path / "m.json"
    assert main(["search", *FC1, "--cost", "memory", "--json", str(path)]) == 0
    mem = json.loads(path.read_text())
    budget = mem["peak_bytes"]
    assert main(["search", *FC1, "--memory-budget", str(budget), "--json", str(path)]) == 0
    s = json.loads(path.read_text())
    assert s["peak_bytes"] <= budget and s["memory_budget"] == budget


def test_independent_flag(tmp_path):
    path = tmp_path / "i.json"
    assert main(["search", *FC1, "--independent", "--json", str(path)]) == 0
    s = json.loads(path.read_text())
    assert s["total_macs"] == s["per_network_total_macs"] == 191_004_672
    assert not s["kept"]


@pytest.mark.parametrize("argv,needle", [
    (["--in", "7,4", "--out", "4,4,2", "--ranks", "16"], "out modes [4, 4, 2]"),
    (["--in", "7,4", "--out", "4,4", "--ranks", "16,16"], "ranks [16, 16]"),
    (["--in", "7,0", "--out", "4,4", "--ranks", "16"], "in mode 0"),
    (["--in", "7,4", "--out", "4,4", "--ranks", "16", "--batch", "0"], "batch 0"),
    (["--in", "7,a", "--out", "4,4", "--ranks", "16"], "entry 'a'"),
    (["--in", "7,4", "--out", "4,4", "--ranks", "16", "--batch", "x"], "batch 'x'"),
    ([*FC1, "--memory-budget", "100"], "memory budget 100 bytes too small"),
    ([*FC1, "--memory-budget", "lots"], "memory budget 'lots'"),
])
def test_bad_input_one_line_exit_2(argv, needle, capsys):
    assert main(["search", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1 and err.startswith("fetta search: error:")
