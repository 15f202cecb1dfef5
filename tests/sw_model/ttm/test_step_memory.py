"""A training step's tensors placed on chip (sw_model.ttm.step_memory): execution order,
segments and kinds as the trainer runs the step, reuse of freed rows, and the
micro-batch, host-words and spill paths on real workloads."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from placement_checks import check_allocation  # noqa: E402

from fetta.sw_model.accel.config import get_config  # noqa: E402
from fetta.sw_model.program.allocator import allocate  # noqa: E402
from fetta.sw_model.ttm.layers import split_plan  # noqa: E402
from fetta.sw_model.ttm import csse  # noqa: E402
from fetta.sw_model.accel.hostmap import CONTROL_READS, CONTROL_WRITES  # noqa: E402
from fetta.sw_model.ttm.step_events import step_events  # noqa: E402
from fetta.sw_model.ttm.step_memory import (separate_job_words, step_allocation,  # noqa: E402
                                            step_contractions)
from fetta.sw_model.ttm.workloads import get_workload  # noqa: E402

DIGITS = get_workload("digits")
TINY = get_config("tiny")


def test_order_segments_and_kinds_follow_the_trainer():
    contractions, kinds = step_contractions(DIGITS, 8, TINY, order="macs")
    labels = [c.label for c in contractions]
    # forward input layer first, then the backward from the last layer
    runs = list(dict.fromkeys(labels))
    assert runs == ["L0 forward", "L1 forward", "L1 backward", "L0 backward"]
    assert [c.segment for c in contractions] == sorted(c.segment for c in contractions)
    assert {c.label: c.segment for c in contractions} == {
        "L0 forward": 0, "L1 forward": 1, "L1 backward": 2, "L0 backward": 3}
    for l, layer in enumerate(DIGITS.layers):
        plan = csse.search(list(layer.in_modes), list(layer.out_modes),
                           list(layer.ranks), 8, cost="macs")
        parts = split_plan(plan, len(layer.in_modes), DIGITS.need_dx(l))
        mine = [c.out for c in contractions if c.label.startswith(f"L{l} ")]
        assert mine == [f"L{l}/{s.out}" for s in parts.forward.steps + parts.backward.steps]
    outs = {c.out for c in contractions}
    assert "L0/dx" not in outs and "L1/dx" in outs       # the input layer has no dx
    assert kinds["L0/g1"] == "core" and kinds["L0/x"] == "saved_input"
    assert kinds["L1/dy"] == "batch_input" and kinds["L1/y"] == "output"
    assert kinds["L1/dx"] == kinds["L0/dg2"] == "gradient"
    assert kinds["L0/x.dy"] == "intermediate"


def test_digits_reuses_freed_rows():
    contractions, kinds = step_contractions(DIGITS, 1, TINY, order="macs")
    alloc = allocate(contractions, TINY.replace(bank_depth=65536), kinds, spill=False)
    assert alloc.fits and not alloc.spills
    check_allocation(alloc)
    for u in alloc.banks.values():
        assert u.live_rows <= u.peak_rows <= u.total_rows
    assert sum(u.peak_rows for u in alloc.banks.values()) < \
        sum(u.total_rows for u in alloc.banks.values())
    # saved inputs and cores are live from the forward to their last backward use
    x = alloc.tensors["L0/x"].homes["A"]
    assert contractions[x.start].label == "L0 forward"
    assert contractions[x.end].label == "L0 backward"


def test_digits_on_tiny_spills_at_micro_batch_one():
    fit = step_allocation(DIGITS, TINY, 64, order="macs")
    assert (fit.micro_batch, fit.micro_batches) == (1, 64)
    assert fit.spills and fit.allocation.fits
    assert not any(a["fits"] for a in fit.attempts)
    assert len(fit.attempts) == len({-(-64 // k) for k in range(1, 65)})
    check_allocation(fit.allocation)
    assert fit.host_words_per_step == 64 * fit.allocation.host_words["total"]


def test_digits_micro_batches_when_the_banks_are_deeper():
    cfg = TINY.replace(name="tiny-4k", bank_depth=4096)
    fit = step_allocation(DIGITS, cfg, 64, order="macs")
    assert 1 < fit.micro_batch < 64 and not fit.spills
    assert fit.micro_batches == -(-64 // fit.micro_batch)
    check_allocation(fit.allocation)
    if fit.remainder is not None:
        check_allocation(fit.remainder)


def test_host_words_policy_is_never_worse():
    by_count = step_allocation(DIGITS, TINY, 64, order="macs")
    by_words = step_allocation(DIGITS, TINY, 64, order="macs", policy="host-words")
    assert by_words.host_words_per_step <= by_count.host_words_per_step
    assert by_words.host_words_per_step == min(
        a["host_words_per_step"] for a in by_words.attempts if a["fits"])
    check_allocation(by_words.allocation)


def test_a_step_that_cannot_be_placed_raises_one_line():
    cfg = TINY.replace(name="tiny-16", bank_depth=16)
    with pytest.raises(ValueError, match=r"^tensor 'L\d/[^']+' \([\d, ]+\) \([\d,]+ "
                                         r"elements\) needs [\d,]+ rows of bank [ABC] in "
                                         r"contraction '[^']+'; bank depth 16 on "
                                         r"'tiny-16'$"):
        step_allocation(DIGITS, cfg, 4, order="macs")
    with pytest.raises(ValueError, match="order 'fast' unknown"):
        step_contractions(DIGITS, 4, TINY, order="fast")


def test_separate_job_words_are_step_events_data_words():
    total = step_events(DIGITS, TINY, 16)["total"]
    control = total.chunks * (CONTROL_WRITES + CONTROL_READS)
    assert separate_job_words(DIGITS, TINY, 16, order="cycles") == \
        total.host_words - total.program_words - control
