"""README's resident-chain table is generated from the stored runs."""

import copy
from pathlib import Path

from fetta.sim.resident_table import BEGIN, END, load, render

ROOT = Path(__file__).resolve().parents[2]


def test_readme_block_is_the_stored_runs():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN):readme.index(END) + len(END)] + "\n"
    assert block == render(load(ROOT)), "README is out of date: run python scripts/gen_docs.py"


def test_stored_runs_are_bit_exact_and_add_up():
    runs = load(ROOT)
    assert [r["batch"] for r in runs] == sorted(r["batch"] for r in runs) and runs
    for r in runs:
        assert r["commit"]                  # the code each run measured
        for lay in r["layers"]:
            assert lay["outputs_equal"]
            for kind in ("separate_jobs", "resident"):
                c = lay[kind]["cycles"]
                assert c["total"] == c["compute"] + c["on_chip_moves"] + c["host_transfer"]
                w = lay[kind]["host_words"]
                assert c["host_transfer"] == w["written"] + w["read"]


def test_render_follows_the_numbers():
    runs = copy.deepcopy(load(ROOT))
    runs[0]["layers"][0]["resident"]["cycles"]["total"] += 1
    assert render(runs) != render(load(ROOT))
