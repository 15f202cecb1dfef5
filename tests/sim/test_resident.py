"""Resident chains (``sim.resident``): intermediates stay on chip, moved by MOVE
instructions; the outputs equal the host path's bit for bit and the cycle count the
model's, on the Amaranth simulator (and Verilator in the slow tier)."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import run_chain
from fetta.sim.resident import plan_resident, plan_segments
from fetta.sim.chain import check_chain
from fetta.sw_model.accel.config import get_config

RNG = np.random.default_rng(0)
TENSORS = {"x": RNG.integers(-100, 100, (8, 12)), "w1": RNG.integers(-100, 100, (12, 10)),
           "w2": RNG.integers(-100, 100, (6, 10)), "w3": RNG.integers(-50, 50, (6, 5))}
# y is read as B by step 1 and as A by step 3 (two homes, two layouts); z and u are
# read once; g is the only output
STEPS = [("bi,ij->bj", "x", "w1", "y", {"shift": 6, "rounding": "stochastic",
                                        "out_bits": 12}),
         ("kj,bj->kb", "w2", "y", "z", {"shift": 5}),
         ("kb,kl->bl", "z", "w3", "u", {"shift": 4, "rounding": "nearest-even"}),
         ("bj,bl->jl", "y", "u", "g", {"shift": 3})]


def _check(backend):
    ref = run_chain(STEPS, TENSORS, config="tiny", backend=backend)
    res = run_chain(STEPS, TENSORS, config="tiny", backend=backend, resident=True)
    assert set(res.outputs) == {"g"}
    got, want = res.outputs["g"], ref.outputs["g"]
    bad = np.argwhere(got != want)
    assert not len(bad), (f"output g element {tuple(bad[0])}: resident "
                          f"{got[tuple(bad[0])]}, host path {want[tuple(bad[0])]}")
    run = res.resident
    assert len(run.segments) == 1
    rp = run.segments[0].plan
    # cycle model exact: the programs' CYCLES counters = compute + moves predicted
    assert run.cycles["counted"] == run.cycles["predicted"] == rp.predicted_cycles
    assert res.cycles["compute"] + res.cycles["on_chip_moves"] == rp.predicted_cycles
    assert res.cycles["on_chip_moves"] == rp.move_cycles > 0
    assert [(i, o, b) for i, o, b, _ in rp.moves] == [(0, "y", "B"), (0, "y", "A"),
                                                       (1, "z", "A"), (2, "u", "B")]
    # the host reads only g; it writes only x, w1, w2, w3 (and the program)
    assert res.host_words["read"] < ref.host_words["read"]
    return res


def test_resident_chain_equals_host_path_on_pysim():
    res = _check("pysim")
    assert len(res.resident.segments[0].plan.programs) == 1


@pytest.mark.slow     # builds the Verilator model of tiny (about a minute)
def test_resident_chain_equals_host_path_on_verilator():
    _check("verilator")


def test_program_is_cut_where_program_memory_is_full():
    cfg = get_config("tiny").replace(name="tiny-short-prog", prog_depth=256)
    plan = check_chain(STEPS, TENSORS)
    rp = plan_resident(plan, {k: v.shape for k, v in TENSORS.items()}, cfg)
    assert len(rp.programs) > 1 and all(len(p) <= 256 for p in rp.programs)
    res = run_chain(STEPS, TENSORS, config=cfg, backend="pysim", resident=True)
    ref = run_chain(STEPS, TENSORS, config="tiny", backend="pysim")
    assert np.array_equal(res.outputs["g"], ref.outputs["g"])
    assert res.resident.cycles["counted"] == res.resident.cycles["predicted"]


def test_a_chain_that_does_not_fit_is_cut_into_segments():
    """16-row banks: no two steps fit together; every step is a segment (or a
    separate job where it does not compile into one program), results crossing a cut
    go through the host, and the outputs still equal the host path's."""
    small = get_config("tiny").replace(name="tiny-16", bank_depth=16)
    plan = check_chain(STEPS, TENSORS)
    segs = plan_segments(plan, {k: v.shape for k, v in TENSORS.items()}, small)
    assert len(segs) > 1 and segs[0].lo == 0 and segs[-1].hi == len(STEPS) - 1
    assert any(s.plan is None for s in segs)
    res = run_chain(STEPS, TENSORS, config=small, backend="pysim", resident=True)
    ref = run_chain(STEPS, TENSORS, config="tiny", backend="pysim")
    assert np.array_equal(res.outputs["g"], ref.outputs["g"])
    assert res.resident.cycles["counted"] == res.resident.cycles["predicted"]


def test_refusals_are_one_line():
    plan = check_chain(STEPS, TENSORS)
    shapes = {k: v.shape for k, v in TENSORS.items()}
    for fn in (plan_resident, plan_segments):
        with pytest.raises(FettaError, match="no MOVE unit") as exc:
            fn(plan, shapes, get_config("ice40"))
        assert "\n" not in str(exc.value)
    small = get_config("tiny").replace(name="tiny-16", bank_depth=16)
    with pytest.raises(FettaError, match=r"does not (fit|compile)") as exc:
        plan_resident(plan, shapes, small)
    assert "\n" not in str(exc.value)
