"""README's TTM training-step tables are generated from the stored run of
``scripts/ttm_step_report.py``, whose numbers follow from the model."""

import copy
import json
from pathlib import Path

import pytest

from fetta.sim.ttm_step_table import BEGIN, END, STORED, render
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.resident_step import resident_step_events
from fetta.sw_model.ttm.step_events import step_events
from fetta.sw_model.ttm.workloads import layer_workload

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doc():
    return json.loads((ROOT / STORED).read_text())


def test_readme_block_is_the_stored_run(doc):
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN):readme.index(END) + len(END)] + "\n"
    assert block == render(doc), "README is out of date: run python scripts/gen_docs.py"


def test_stored_rows_add_up(doc):
    assert doc["commit"] and doc["config"]["name"] == "tiny"
    utils = [u for r in doc["rows"] for u in r["per_contraction_utilization"]]
    assert doc["summary"]["contractions"] == len(utils)
    assert doc["summary"]["utilization_mean"] == pytest.approx(sum(utils) / len(utils))
    for r in doc["rows"]:
        for kind in ("step_separate", "step_resident"):
            c = r[kind]
            assert c["total"] == c["compute"] + c["on_chip_moves"] + c["host_transfer"]
        assert r["step_separate"]["compute"] == r["cycles"]


@pytest.mark.parametrize("layer", ["digits L2 128->16", "fc2 (on-FPGA 512->16)"])
def test_stored_steps_are_the_models(doc, layer):
    """The whole-step columns of two layers recomputed now (the others' CSSE cycle
    searches take minutes; all are recomputed by the script)."""
    r = next(r for r in doc["rows"] if r["layer"] == layer)
    cfg = get_config("tiny")
    wl = layer_workload(layer)
    sep = step_events(wl, cfg, r["batch"])["total"]
    res = resident_step_events(wl, cfg, r["batch"])["total"]
    assert r["step_separate"]["host_transfer"] == sep.host_words
    assert r["step_resident"]["compute"] == res.cycles
    assert r["step_resident"]["on_chip_moves"] == res.move_cycles
    assert r["step_resident"]["host_transfer"] == res.host_words


def test_render_follows_the_numbers(doc):
    d = copy.deepcopy(doc)
    d["rows"][0]["step_resident"]["total"] += 1
    assert render(d) != render(doc)
