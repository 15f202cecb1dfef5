"""Compiler: footprint-aware layout choice (``max_rows``, ``slack``, ``candidates``).

Every candidate is enumerated here independently of the compiler's search: each
(mapping, im, in) compiled on its own (``mapping=``, ``lanes=``), its rows and cycles
read from the result."""

import itertools
import math

import pytest

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.program.compiler import (candidates, compile_contraction, fits,
                                             mappings, predict_cycles)

# a training-layer contraction (digits layer 0, batch 8) with many candidates of equal
# and of different cycles, and a small one
CASES = [("abijC,BjbC->iaB", (4, 4, 4, 8, 8), (8, 8, 4, 8)),
         ("iaB,BjbC->abijC", (4, 4, 8), (8, 8, 4, 8)),
         ("bi,ij->bj", (8, 12), (12, 10))]


def _all(spec, sa, sb, cfg="tiny"):
    """[(cycles, (a, b, c) rows, compiled)] of every (mapping, im, in) that compiles."""
    sp = parse_spec(spec)
    out = []
    for mp, im, in_ in itertools.product(mappings(get_config(cfg)), list(sp.m) or [None],
                                         list(sp.n) or [None]):
        try:
            cc = compile_contraction(spec, sa, sb, cfg, mapping=mp, lanes=(im, in_),
                                     plan_only=True)
        except ValueError:
            continue
        out.append((cc.predicted_cycles, (cc.a_rows, cc.b_rows, cc.c_rows), cc))
    return out


def _same_choice(x, y):
    return (x.mapping, x.im, x.in_) == (y.mapping, y.im, y.in_)


@pytest.mark.parametrize("spec,sa,sb", CASES)
def test_default_choice_is_unchanged(spec, sa, sb):
    base = compile_contraction(spec, sa, sb, "tiny")
    same = compile_contraction(spec, sa, sb, "tiny", max_rows=None, slack=None)
    assert same.program == base.program and _same_choice(same, base)
    first = candidates(spec, sa, sb, "tiny")[0]
    assert (first.mapping, first.im, first.in_) == (base.mapping, base.im, base.in_)
    assert first.cycles == base.predicted_cycles == min(c for c, _, _ in _all(spec, sa, sb))


@pytest.mark.parametrize("spec,sa,sb", CASES)
def test_candidates_are_every_fitting_choice(spec, sa, sb):
    want = sorted((c, r, (cc.mapping, cc.im, cc.in_)) for c, r, cc in _all(spec, sa, sb))
    got = candidates(spec, sa, sb, "tiny")
    assert [c.cycles for c in got] == sorted(c.cycles for c in got)
    assert sorted((c.cycles, (c.a_rows, c.b_rows, c.c_rows), (c.mapping, c.im, c.in_))
                  for c in got) == want


@pytest.mark.parametrize("spec,sa,sb", CASES)
def test_budget_choice_is_the_fastest_within_budget(spec, sa, sb):
    every = _all(spec, sa, sb)
    rows = sorted({r for _, rr, _ in every for r in rr})
    budgets = [{"a": r} for r in rows] + [{"b": r} for r in rows] + \
        [{"c": r} for r in rows] + [r for r in rows] + \
        [{"a": ra, "b": rb} for ra in rows[::2] for rb in rows[1::2]]
    tried = 0
    for budget in budgets:
        lim = budget if isinstance(budget, dict) else dict.fromkeys("abc", budget)
        ok = [(c, r, cc) for c, r, cc in every
              if all(r["abc".index(k)] <= v for k, v in lim.items())]
        if not ok:
            with pytest.raises(ValueError, match="no layout within max_rows") as exc:
                compile_contraction(spec, sa, sb, "tiny", max_rows=budget)
            assert "\n" not in str(exc.value)
            assert not fits(spec, sa, sb, "tiny", max_rows=budget)
            continue
        tried += 1
        cc = compile_contraction(spec, sa, sb, "tiny", max_rows=budget)
        got = (cc.a_rows, cc.b_rows, cc.c_rows)
        assert all(got["abc".index(k)] <= v for k, v in lim.items()), (budget, got)
        assert cc.predicted_cycles == min(c for c, _, _ in ok), budget
        assert fits(spec, sa, sb, "tiny", max_rows=budget)
        assert predict_cycles(spec, sa, sb, "tiny", max_rows=budget) == cc.predicted_cycles
        # what it compiled is that candidate, program and all
        forced = compile_contraction(spec, sa, sb, "tiny", mapping=cc.mapping,
                                     lanes=(cc.im, cc.in_))
        assert forced.program == compile_contraction(spec, sa, sb, "tiny",
                                                     max_rows=budget).program
    assert tried >= 3


@pytest.mark.parametrize("spec,sa,sb", CASES)
@pytest.mark.parametrize("slack", [0, 0.25, 1.0, math.inf])
def test_slack_choice_is_the_smallest_footprint_within_tolerance(spec, sa, sb, slack):
    every = _all(spec, sa, sb)
    fastest = min(c for c, _, _ in every)
    ok = [(c, r) for c, r, _ in every if c <= fastest * (1 + slack)]
    cc = compile_contraction(spec, sa, sb, "tiny", slack=slack, plan_only=True)
    rows = cc.a_rows + cc.b_rows + cc.c_rows
    assert cc.predicted_cycles <= fastest * (1 + slack)
    assert rows == min(sum(r) for _, r in ok)
    # among the smallest footprints, the fastest
    assert cc.predicted_cycles == min(c for c, r in ok if sum(r) == rows)


def test_slack_zero_can_shrink_at_no_cycle_cost():
    """Several layouts of a training contraction (digits layer 0's product of its two
    weight cores) take the fewest cycles, with different footprints; slack=0 picks the
    one with the fewest rows, the default another. (Since a CONTRACT's bound check
    depends on its loop counts, CASES[0]'s fastest layouts share one footprint: its
    layouts of fewer rows take 2 or more cycles more.)"""
    spec, sa, sb = CASES[1]
    every = candidates(spec, sa, sb, "tiny")
    fastest = [c.a_rows + c.b_rows + c.c_rows for c in every
               if c.cycles == every[0].cycles]
    assert len(set(fastest)) > 1
    base = compile_contraction(spec, sa, sb, "tiny", plan_only=True)
    lean = compile_contraction(spec, sa, sb, "tiny", slack=0, plan_only=True)
    assert lean.predicted_cycles == base.predicted_cycles == every[0].cycles
    assert lean.a_rows + lean.b_rows + lean.c_rows == min(fastest) < \
        base.a_rows + base.b_rows + base.c_rows


def test_budget_and_slack_combine():
    spec, sa, sb = CASES[1]
    every = _all(spec, sa, sb)
    ok = [(c, r) for c, r, _ in every if r[0] <= 32]
    cc = compile_contraction(spec, sa, sb, "tiny", max_rows={"a": 32}, slack=0,
                             plan_only=True)
    fastest = min(c for c, _ in ok)
    assert cc.a_rows <= 32 and cc.predicted_cycles == fastest
    assert cc.a_rows + cc.b_rows + cc.c_rows == min(sum(r) for c, r in ok if c == fastest)


def test_bad_options_are_refused_in_one_line():
    spec, sa, sb = CASES[2]
    for bad, what in (({"d": 4}, "key 'd' unknown"), (0, "max_rows=0 invalid"),
                      ({"a": -3}, "max_rows=.*invalid"), (2.5, "max_rows=2.5 invalid"),
                      (True, "max_rows=True invalid")):
        with pytest.raises(ValueError, match=what) as exc:
            compile_contraction(spec, sa, sb, "tiny", max_rows=bad)
        assert "\n" not in str(exc.value)
    for bad in (-1, float("nan"), "x", True):
        with pytest.raises(ValueError, match="slack=.* invalid") as exc:
            compile_contraction(spec, sa, sb, "tiny", slack=bad)
        assert "\n" not in str(exc.value)
    # a budget nothing meets names the budget and the fewest rows each operand takes
    with pytest.raises(ValueError, match=r"no layout within max_rows=\{'a': 1, 'c': 1\} "
                       r"on 'tiny' \(at most A 1, B 1024, C 1 rows\): the fewest rows "
                       r"each operand can take are A \d+, B \d+, C \d+$"):
        compile_contraction(spec, sa, sb, "tiny", max_rows={"a": 1, "c": 1})
    # a contraction that does not fit at all keeps its own message
    small = get_config("tiny").replace(name="tiny-16", bank_depth=16)
    with pytest.raises(ValueError, match="does not fit config 'tiny-16'"):
        compile_contraction("bi,ij->bj", (64, 64), (64, 64), small, max_rows=8)
