"""Lean runs (``run_chain(..., lean=True)``, ``sim.resident.run_resident``,
``Backend.begin_lean``/``expect_counters``/``settle_counters``): a chain whose programs
run without CLEAR and counter reads gives the same results and cycles as the full
runs, with fewer host words; the counters, read once when the series closes, are
checked against the model's sums, and a difference is reported naming the counter
and both values; XENT results read per program (``xent_results``) equal the recipe's
loss sum and accuracy count."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import run_chain
from fetta.sw_model.accel.hostmap import (ALL_COUNTERS, CONTROL_READS, CONTROL_WRITES,
                                          LEAN_READS, LEAN_WRITES, UNIT_COUNTER_READS)
from fetta.sw_model.accel.timing import vector_busy
from fetta.sw_model.train.quant_train import xent_loss_sum

from test_chain_xent import _step


def test_lean_chain_equals_the_full_one_with_fewer_host_words(tiny_session):
    rng = np.random.default_rng(7)
    steps, tensors = _step(rng)
    full = [run_chain(steps, tensors, session=tiny_session, resident=True, keep=("y",),
                      xent_results=True) for _ in range(2)][1]    # the second: warm
    lean = [run_chain(steps, tensors, session=tiny_session, resident=True, keep=("y",),
                      xent_results=True, lean=True) for _ in range(2)]
    be = tiny_session.backend
    for r in lean:
        for k, v in full.outputs.items():
            assert np.array_equal(r.outputs[k], v), k
        assert r.resident.cycles["predicted"] == full.resident.cycles["counted"]
        assert r.resident.cycles["vector_busy"] == full.resident.cycles["vector_busy"]
        assert r.resident.xent == full.resident.xent
    progs = [p for sg in full.resident.segments for p in sg.plan.programs]
    # per program the CLEAR and the counter reads; the unit counters after the XENT's
    saved = len(progs) * (CONTROL_WRITES - LEAN_WRITES + CONTROL_READS - LEAN_READS) + \
        UNIT_COUNTER_READS * sum(vector_busy(p)["xent"] > 0 for p in progs)
    words = lambda r: r.host_words["written"] + r.host_words["read"]   # noqa: E731
    assert words(lean[0]) == words(full) - saved + 1          # the CLEAR opening the series
    assert words(lean[1]) == words(full) - saved
    # the series closes: the counters equal the model's sums over both chains
    assert be.settle_counters() == 2 * len(ALL_COUNTERS)
    assert be.settle_counters() == 0                          # nothing open
    # the XENT's results: the recipe's loss sum and accuracy count of the logits
    y, lab = full.outputs["y"], tensors["lab"]
    assert full.resident.xent == {"loss": xent_loss_sum(y, 6, lab, 10),
                                  "correct": int((y[:, :10].argmax(1) == lab).sum())}


def test_a_counter_off_the_model_is_reported_when_the_series_closes(tiny_session):
    rng = np.random.default_rng(8)
    steps, tensors = _step(rng)
    run_chain(steps, tensors, session=tiny_session, resident=True, lean=True)
    be = tiny_session.backend
    be.expect_counters(0, move_cycles=1)          # a model one element off
    with pytest.raises(FettaError, match=r"counter move_cycles after \d+ lean runs: "
                                         r"\d+ counted != \d+ predicted"):
        tiny_session.backend.clear()                   # any CLEAR closes the series first
    assert be.settle_counters() == 0


def test_lean_runs_need_a_series(tiny_session):
    with pytest.raises(FettaError, match="lean run outside a lean series"):
        tiny_session.backend.run(1000, counters=False)
    with pytest.raises(FettaError, match="outside a lean series"):
        tiny_session.backend.expect_counters(1, cycles=5)
