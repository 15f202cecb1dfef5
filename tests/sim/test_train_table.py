"""README's "Training on the RTL" figures are generated from the stored run."""

import copy
from pathlib import Path

from fetta.sim.rtl_training import PHASES
from fetta.sim.train_table import BEGIN, END, load, load_resident, render

ROOT = Path(__file__).resolve().parents[2]


def test_readme_block_is_the_stored_run():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN):readme.index(END) + len(END)] + "\n"
    assert block == render(load(ROOT), load_resident(ROOT)), \
        "README is out of date: run python scripts/gen_docs.py"


def test_stored_runs_are_complete_and_add_up():
    res = load_resident(ROOT)
    assert res is not None and res["resident"]
    for r in (load(ROOT), res):
        assert r["mismatches"] == 0 and r["verified"] == r["contractions"] > 0
        assert r["cycles"]["total"] == sum(r["cycles"].get(p, 0) for p in PHASES)
        assert len(r["cycles_per_step"]) == r["steps_simulated"]
    assert res["test_accuracy"] == load(ROOT)["test_accuracy"]
    assert res["cycles"]["on_chip_moves"] > 0


def test_render_follows_the_numbers():
    r = copy.deepcopy(load(ROOT))
    r["cycles"]["forward"] += 660 * r["steps_simulated"]
    r["cycles"]["total"] += 660 * r["steps_simulated"]
    a, b = render(load(ROOT)), render(r)
    assert a != b and "| forward | " in b
    two = render(load(ROOT), load_resident(ROOT))
    assert "with `--resident`" in two and two != a
