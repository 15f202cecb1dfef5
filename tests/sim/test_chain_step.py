"""Chains whose programs open with a STEP (``run_chain(..., step={"key", "lr"})``,
``sw_model/accel/step.py``): the seeds are indices the key derives the seeds from, so
the run equals the same chain with the derived seeds written out
(``resident_plan.literal_seeds``) and the golden model (``reference_chain(...,
step=)``), bit for bit; each program costs ``step_cycles`` more (counted = predicted);
a second step rewrites only the key; bad uses are refused in one line."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import check_chain, reference_chain, run_chain
from fetta.sw_model.accel.step import StepParams, step_cycles
from fetta.sw_model.program.resident_plan import literal_seeds

from test_chain_xent import _step

KEY = 0xC0FFEE11


def _indexed(steps):
    """The chain with small seeds (indices), every rounding stochastic."""
    out = []
    for i, (spec, a, b, o, p) in enumerate(steps):
        out.append((spec, a, b, o, {**p, "rounding": "stochastic", "seed": 3 + i}))
    return out


def test_step_chain_equals_its_seeds_written_out(tiny_session):
    rng = np.random.default_rng(21)
    steps, tensors = _step(rng)
    steps = _indexed(steps)
    plan = check_chain(steps, tensors)
    lit = [(sp, a, b, o, p) for sp, a, b, o, p in literal_seeds(plan, StepParams(KEY))]
    assert all(p["seed"] != q["seed"] for (*_, p), (*_, q) in zip(plan, lit))
    got = run_chain(steps, tensors, session=tiny_session, resident=True, keep=("dy",),
                    step={"key": KEY})
    want = run_chain(lit, tensors, session=tiny_session, resident=True, keep=("dy",))
    gold = reference_chain(plan, tensors, "tiny", step={"key": KEY})
    for k, v in want.outputs.items():
        assert np.array_equal(got.outputs[k], v), k
        assert np.array_equal(gold[k], v), k
    # another key: other results (the seeds matter)
    run_chain(steps, tensors, session=tiny_session, resident=True, keep=("dy",),
              step={"key": KEY})                       # (after the literal chain's run)
    other = run_chain(steps, tensors, session=tiny_session, resident=True, keep=("dy",),
                      step={"key": KEY + 1})
    assert any(not np.array_equal(other.outputs[k], v) for k, v in want.outputs.items())
    # cycles: the STEP's per program, exact
    progs = sum(len(sg.plan.programs) for sg in got.resident.segments)
    c, w = got.resident.cycles, want.resident.cycles
    assert c["counted"] == c["predicted"] == w["counted"] + progs * step_cycles()
    # a new key rewrites one program word per program (the STEP's key); the same key
    # again none
    again = run_chain(steps, tensors, session=tiny_session, resident=True, keep=("dy",),
                      step={"key": KEY + 1})
    assert other.resident.host_words["written"] - again.resident.host_words["written"] \
        == progs


def test_step_needs_a_resident_chain_and_the_updates_rate():
    rng = np.random.default_rng(22)
    steps, tensors = _step(rng)
    with pytest.raises(ValueError, match="step .* needs resident=True"):
        run_chain(steps, tensors, step={"key": 1})
    with pytest.raises(ValueError, match="is not a STEP's"):
        run_chain(steps, tensors, resident=True, step={"seed": 1})
