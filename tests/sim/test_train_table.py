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


def sc_steps(run: dict) -> int:
    return sum(s["chain"] for s in run["cycles_per_step"])


def test_step_chain_block_is_the_stored_runs():
    """README's training-step-as-one-chain figures: the stored ``--step-chains`` run on
    ``large`` (every chain step verified, accuracy equal to the per-contraction run's)
    rendered between its markers."""
    from fetta.sim.train_table import (STEP_BEGIN, STEP_END, load_step_chains,
                                       render_step_chains)
    chains, base, update, trusted = load_step_chains(ROOT)
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(STEP_BEGIN):readme.index(STEP_END) + len(STEP_END)] + "\n"
    assert block == render_step_chains(chains, base, update, trusted), \
        "README is out of date: run python scripts/gen_docs.py"
    for run in (update, trusted):       # the optimizer on chip: the same training
        if run is not None:
            assert run["test_accuracy"] == base["test_accuracy"]
            assert run["on_chip_update"]["steps"] == sc_steps(run) > 0
    if update is not None:
        assert update["mismatches"] == 0
        assert update["on_chip_update"]["verified"] == update["on_chip_update"]["steps"]
    sc = chains["step_chains"]
    assert chains["mismatches"] == base["mismatches"] == 0
    assert sc["steps"] == sc["verified"] == sum(s["chain"] for s in
                                                chains["cycles_per_step"]) > 0
    assert chains["test_accuracy"] == base["test_accuracy"]
    assert chains["accelerator"]["config"]["name"] == "large"
    chain_steps = [s for s in chains["cycles_per_step"] if s["chain"]]
    assert all(s["elementwise"] > 0 for s in chain_steps)
    assert all(s["total"] == sum(s[p] for p in PHASES) for s in chain_steps)
