"""A training step as resident chains, costed from the plans (``resident_step``): the
chains are the step's contractions with the step's phases; the model's cycles and host
words are what a run on the Amaranth simulator counts; a preset without the MOVE unit
is refused; the energy model prices the MOVEs."""

import numpy as np
import pytest

from fetta.sim.chain import run_chain
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.energy import asic_energy, fpga_energy
from fetta.sw_model.ttm.resident_step import layer_chains, resident_step_events
from fetta.sw_model.ttm.step_events import Events, step_events
from fetta.sw_model.ttm.workloads import get_workload

DIGITS = get_workload("digits")


def test_chains_are_the_steps_contractions_with_their_phases():
    """Every contraction of the separate-jobs step, with the same layer and phase, in
    the resident step (batch 64 on tiny: its layer 0 has segments and separate jobs)."""
    sep = step_events(DIGITS, "tiny", 64)
    res = resident_step_events(DIGITS, "tiny", 64)
    key = lambda r: (r["layer"], r["phase"], r["spec"], tuple(r["shape_a"]),  # noqa: E731
                     tuple(r["shape_b"]))
    assert sorted(map(key, res["contractions"])) == sorted(map(key, sep["contractions"]))
    lay0 = res["layers"][0]
    assert any(not s["resident"] for s in lay0["segments"]), "expected a separate job"
    # a separate-job step is costed as step_events costs it (same programs)
    jobs = [r for r in res["contractions"] if r["chunks"] > 1]
    assert jobs
    by = {key(r): r for r in sep["contractions"]}
    for r in jobs:
        assert r["cycles"] == by[key(r)]["cycles"]
    tot = res["total"]
    assert tot.cycles == sum(res["phases"][p].cycles for p in res["phases"])
    assert tot.cycles + tot.move_cycles + tot.host_words == \
        sum(lay["cycles"]["total"] for lay in res["layers"])
    assert tot.move_cycles > 0 and tot.move_elements > 0
    assert tot.host_words < sep["total"].host_words


@pytest.mark.parametrize("batch", [2, 4])
def test_model_equals_a_run_on_pysim(batch):
    """digits layer 1's chain run resident on the Amaranth simulator: its CYCLES
    counters and host words are the model's, phase by phase."""
    cfg = get_config("tiny")
    steps, shapes, _ = layer_chains(DIGITS, batch, cfg)[1]
    model = resident_step_events(DIGITS, cfg, batch)["layers"][1]
    assert all(s["resident"] for s in model["segments"])
    rng = np.random.default_rng(batch)
    tensors = {k: rng.integers(-64, 64, v) for k, v in shapes.items()}
    steps = [(s, a, b, o, {"shift": 6}) for s, a, b, o, _ in steps]
    run = run_chain(steps, tensors, config=cfg, backend="pysim", resident=True).resident
    assert run.cycles["counted"] == run.cycles["predicted"]
    for phase in ("compute", "on_chip_moves", "host_transfer", "total"):
        assert run.cycles[phase] == model["cycles"][phase], phase
    assert {k: run.host_words[k] for k in ("written", "read")} == model["host_words"]


def test_a_preset_without_the_move_unit_is_refused():
    with pytest.raises(ValueError, match="no MOVE unit"):
        resident_step_events(DIGITS, "ice40", 8)


def test_moves_are_priced_as_a_bank_read_and_write_each():
    cfg = get_config("tiny")
    base = Events(cycles=100, a_reads=10, b_reads=10, c_writes=5).to_dict()
    moved = Events(cycles=100, a_reads=10, b_reads=10, c_writes=5, move_elements=7,
                   move_cycles=40).to_dict()
    e0, e1 = asic_energy(base, cfg), asic_energy(moved, cfg)
    rd = (e1["buffer_read"] - e0["buffer_read"]) / 7
    wr = (e1["buffer_write"] - e0["buffer_write"]) / 7
    assert rd == pytest.approx(e0["buffer_read"] / 20)
    assert wr == pytest.approx(e0["buffer_write"] / 5)
    res = {"LUTs": 1000, "FFs": 1000, "DSPs": 16, "BRAMs": 10}
    f0, f1 = fpga_energy(base, cfg, 50, res, 200), fpga_energy(moved, cfg, 50, res, 200)
    assert f1["bram"] > f0["bram"] and f1["logic"] > f0["logic"]   # MOVE cycles are busy


def test_staged_inputs_are_bit_exact_and_the_model_on_pysim():
    """With ``stage=True`` the host writes each input densely into C and MOVEs lay it
    out (replicas and padding included): digits layer 1 at batch 4 on tiny stages
    every input (its layouts hold more words than elements), the outputs equal the
    host path's bit for bit, the host writes one word per element, and CYCLES and the
    host words equal the model's."""
    cfg = get_config("tiny")
    steps, shapes, _ = layer_chains(DIGITS, 4, cfg)[1]
    rng = np.random.default_rng(7)
    tensors = {k: rng.integers(-64, 64, v) for k, v in shapes.items()}
    steps = [(s, a, b, o, {"shift": 6}) for s, a, b, o, _ in steps]
    ref = run_chain(steps, tensors, config=cfg, backend="pysim")
    run = run_chain(steps, tensors, config=cfg, backend="pysim", resident=True,
                    stage=True)
    for k, v in run.outputs.items():
        assert np.array_equal(v, ref.outputs[k]), k
    (seg,) = run.resident.segments
    assert set(seg.plan.staged) == set(shapes)
    assert sum(n for _, n in seg.plan.staged.values()) == \
        sum(int(np.prod(v)) for v in shapes.values())
    model = resident_step_events(DIGITS, cfg, 4, stage=True)["layers"][1]
    direct = resident_step_events(DIGITS, cfg, 4)["layers"][1]
    assert run.resident.cycles["counted"] == run.resident.cycles["predicted"]
    for phase in ("compute", "on_chip_moves", "host_transfer"):
        assert run.resident.cycles[phase] == model["cycles"][phase], phase
    assert model["host_words"]["written"] < direct["host_words"]["written"]
    assert model["cycles"]["on_chip_moves"] > direct["cycles"]["on_chip_moves"]
