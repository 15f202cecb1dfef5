"""The on-chip memory model and allocator (sw_model.program.memory_model, .allocator):
footprints are the compiler's, placements never overlap while live and stay inside
the banks, every tensor is resident where it is touched, spills and micro-batches are
reported with their cost, and a step that cannot be placed says why in one line."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fuzz_tiers import tier  # noqa: E402
from placement_checks import check_allocation  # noqa: E402

from fetta.sw_model.accel.config import AccelConfig, get_config  # noqa: E402
from fetta.sw_model.program.allocator import allocate, fit_batch  # noqa: E402
from fetta.sw_model.program.compiler import compile_contraction  # noqa: E402
from fetta.sw_model.program.memory_model import (Contraction,  # noqa: E402
                                                 contraction_layouts, tensor_table)

SMALL = AccelConfig(name="small", n_ce=2, pe_rows=2, pe_cols=2, bank_depth=64)


def chain(b):
    """A two-segment step of ``b`` samples: h0 feeds h1 and, in the second segment,
    the gradient-like g (h0 read as operand A, then as operand B)."""
    return [Contraction("za,ab->zb", "x", "w0", "h0", (b, 16), (16, 16), 0),
            Contraction("zb,bc->zc", "h0", "w1", "h1", (b, 16), (16, 16), 0),
            Contraction("zc,cd->zd", "h1", "w2", "y", (b, 16), (16, 8), 1),
            Contraction("zd,zb->db", "dy", "h0", "g", (b, 8), (b, 16), 1)], {}


def test_layouts_are_the_compilers():
    spec, sa, sb = "zbmk,kn->nzm", (2, 3, 5, 7), (7, 6)
    cfg = get_config("tiny")
    la, lb, lc = contraction_layouts(Contraction(spec, "a", "b", "c", sa, sb), cfg)
    cc = compile_contraction(spec, sa, sb, cfg)
    assert (la.rows, lb.rows, lc.rows) == (cc.a_rows, cc.b_rows, cc.c_rows)
    rng = np.random.default_rng(0)
    a = rng.integers(1, 9, sa)
    b = rng.integers(1, 9, sb)
    # the packed rows use exactly the lanes the layout says (all operand values nonzero)
    pa, pb = cc.pack_a(a), cc.pack_b(b)
    assert pa.shape[0] == la.rows and pb.shape[0] == lb.rows
    assert not pa[:, la.lanes:].any() and not pb[:, lb.lanes:].any()
    assert (la.lanes, lb.lanes) == (cc.mapping.ga * cc.mapping.gk * cfg.pe_rows,
                                    cc.mapping.gb * cc.mapping.gk * cfg.pe_cols)
    assert lc.lanes == cc.mapping.ga * cc.mapping.gb * cfg.pe_cols
    assert la.mapping == lb.mapping == (cc.mapping.ga, cc.mapping.gb, cc.mapping.gk)


def test_live_ranges_homes_and_segments():
    contractions, _ = chain(4)
    t = tensor_table(contractions, SMALL)
    # h0: produced at 0, read as A at 1 and as B at 3 -> a home in each bank
    assert set(t["h0"].homes) == {"A", "B"}
    assert (t["h0"].homes["A"].start, t["h0"].homes["A"].end) == (0, 1)
    assert (t["h0"].homes["B"].start, t["h0"].homes["B"].end) == (0, 3)
    # a host-written tensor arrives when its segment starts: w2 and dy at 2, w1 at 0
    assert (t["w2"].homes["B"].start, t["dy"].homes["A"].start) == (2, 2)
    assert t["w1"].homes["B"].start == 0 and t["w1"].homes["B"].touches == (1,)
    # results nothing consumes are read from C at the end of their segment
    assert set(t["y"].homes) == {"C"} and (t["y"].homes["C"].start,
                                           t["y"].homes["C"].end) == (2, 3)
    assert t["x"].kind == "batch_input" and t["h1"].kind == "intermediate"
    assert t["g"].kind == "output"


def test_layout_conflicts_and_copies():
    first = Contraction("ab,bc->ac", "x", "w", "y1", (8, 6), (6, 4))
    same = Contraction("ab,bc->ac", "x", "v", "y2", (8, 6), (6, 4))
    other = Contraction("ab,ac->bc", "x", "u", "y3", (8, 6), (8, 4))
    assert contraction_layouts(first, SMALL)[0].key != \
        contraction_layouts(other, SMALL)[0].key
    assert not tensor_table([first, same], SMALL)["x"].homes["A"].layout_conflict
    t = tensor_table([first, other], SMALL)
    assert t["x"].homes["A"].layout_conflict
    assert t["x"].homes["A"].rows == max(contraction_layouts(c, SMALL)[0].rows
                                         for c in (first, other))
    both = Contraction("ca,cb->ab", "y1", "x", "z", (8, 4), (8, 6))
    alloc = allocate([first, both], SMALL)
    assert alloc.copies == ["x"] and set(alloc.tensors["x"].homes) == {"A", "B"}


def test_freed_rows_are_reused():
    cfg = SMALL.replace(bank_depth=4096)
    alloc = allocate(chain(8)[0], cfg, spill=False)
    a = alloc.banks["A"]
    assert alloc.fits and not alloc.spills
    x = next(p for p in alloc.placements if p.tensor == "x")
    h1 = next(p for p in alloc.placements if p.tensor == "h1")
    # x's range ends at 0; h1 starts at 1 and takes the rows x freed (h0, live at
    # both positions, keeps its own)
    assert x.end < h1.start and h1.base == x.base and h1.rows <= x.rows
    assert a.live_rows <= a.peak_rows < a.total_rows
    check_allocation(alloc)


def test_best_fit_and_first_fit_are_both_valid_and_deterministic():
    for strategy in ("first", "best"):
        one = allocate(chain(8)[0], SMALL, strategy=strategy)
        two = allocate(chain(8)[0], SMALL, strategy=strategy)
        assert one.placements == two.placements and one.spills == two.spills
        check_allocation(one)
    with pytest.raises(ValueError, match="strategy 'worst' unknown"):
        allocate(chain(8)[0], SMALL, strategy="worst")


def test_spills_when_the_step_does_not_fit():
    contractions, _ = chain(8)
    tight = allocate(contractions, SMALL, spill=False)
    assert not tight.fits and tight.banks["B"].peak_rows > SMALL.bank_depth
    alloc = allocate(contractions, SMALL)
    assert alloc.fits and alloc.spills
    check_allocation(alloc)
    for s in alloc.spills:
        banks = s.bank.split("+")
        for pos in range(s.first, s.last + 1):
            if s.how != "via host":
                assert not any(p.tensor == s.tensor and p.bank in banks and
                               p.start <= pos <= p.end for p in alloc.placements)
        t = alloc.tensors[s.tensor]
        words = {b: t.homes[b].layout.words for b in banks}
        expected = {"late write": 0, "early read": 0, "rewrite": sum(words.values()),
                    "round trip": 2 * sum(words.values())}
        if s.how == "via host":
            c_words = contraction_layouts(alloc.contractions[t.producer], SMALL)[2].words
            assert s.host_words == c_words + sum(words.values())
            assert t.producer == s.first
        else:
            assert s.host_words == expected[s.how]
    assert alloc.host_words["spill"] == sum(s.host_words for s in alloc.spills)
    assert alloc.program_breaks >= 1


def test_micro_batches_are_the_fewest_that_fit():
    cfg = SMALL.replace(bank_depth=256)
    fit = fit_batch(chain, 32, cfg)
    assert 1 < fit.micro_batch < 32 and not fit.spills
    assert fit.allocation.fits
    assert fit.micro_batches == -(-32 // fit.micro_batch)
    tried = [a["micro_batch"] for a in fit.attempts]
    assert tried == sorted(tried, reverse=True) and tried[-1] == fit.micro_batch
    assert not any(a["fits"] for a in fit.attempts[:-1])
    rest = 32 - (fit.micro_batches - 1) * fit.micro_batch
    assert fit.remainder is not None and rest < fit.micro_batch
    assert fit.host_words_per_step == ((fit.micro_batches - 1) *
                                       fit.allocation.host_words["total"] +
                                       fit.remainder.host_words["total"])
    check_allocation(fit.allocation)
    check_allocation(fit.remainder)


def test_micro_batch_one_with_spills_when_nothing_fits():
    fit = fit_batch(chain, 8, SMALL)
    assert (fit.micro_batch, fit.micro_batches) == (1, 8)
    assert fit.spills and fit.allocation.fits
    assert all(not a["fits"] for a in fit.attempts)
    check_allocation(fit.allocation)


def test_host_words_policy_picks_the_cheapest_size():
    fit = fit_batch(chain, 8, SMALL, policy="host-words")
    words = [a["host_words_per_step"] for a in fit.attempts if a["fits"]]
    assert fit.host_words_per_step == min(words)
    with pytest.raises(ValueError, match="policy 'x' unknown"):
        fit_batch(chain, 8, SMALL, policy="x")


def test_a_step_that_cannot_be_placed_names_the_tensor():
    cfg = SMALL.replace(bank_depth=16)
    with pytest.raises(ValueError) as exc:
        fit_batch(chain, 4, cfg)
    msg = str(exc.value)
    # w0 (16 x 16) alone needs more rows than the bank has, whatever the micro-batch
    m = re.fullmatch(r"tensor 'w0' \(16, 16\) \(256 elements\) needs (\d+) rows of bank "
                     r"B in contraction 'za,ab->zb'; bank depth 16 on 'small'", msg)
    assert m and int(m.group(1)) > 16


def test_bad_sequences_are_refused():
    c = Contraction("ab,bc->ac", "x", "w", "y", (2, 3), (3, 4))
    with pytest.raises(ValueError, match="produced at contraction 1 is produced earlier"):
        tensor_table([c, c], SMALL)
    with pytest.raises(ValueError, match="segment 0, which ended before"):
        tensor_table([c, Contraction("ac,cd->ad", "y", "v", "z", (2, 4), (4, 2), 1),
                      Contraction("ad,de->ae", "z", "u", "t", (2, 2), (2, 2), 0)], SMALL)
    with pytest.raises(ValueError, match="empty step"):
        tensor_table([], SMALL)
    with pytest.raises(ValueError, match="kind 'weights' unknown"):
        tensor_table([c], SMALL, {"w": "weights"})
    with pytest.raises(ValueError, match="batch 0 invalid"):
        fit_batch(chain, 0, SMALL)


LETTERS = "abcde"


@st.composite
def steps(draw):
    """Random step-like sequences: host inputs, then contractions of any two tensors
    produced so far (or inputs) keeping a random subset of the shared indices, in
    non-decreasing segments."""
    sizes = {i: draw(st.integers(1, 4)) for i in LETTERS}
    pool = []
    for j in range(draw(st.integers(2, 4))):
        idx = draw(st.lists(st.sampled_from(LETTERS), min_size=1, max_size=3, unique=True))
        pool.append((f"in{j}", "".join(idx)))
    out, seg = [], 0
    for j in range(draw(st.integers(1, 10))):
        (na, ia), (nb, ib) = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
        shared = [i for i in ia if i in ib]
        drop = set(draw(st.lists(st.sampled_from(shared), unique=True))) if shared else set()
        keep = "".join(i for i in dict.fromkeys(ia + ib) if i not in drop)[:4] or ia[0]
        seg += draw(st.integers(0, 1))
        out.append(Contraction(f"{ia},{ib}->{keep}", na, nb, f"t{j}",
                               tuple(sizes[i] for i in ia), tuple(sizes[i] for i in ib),
                               seg))
        pool.append((f"t{j}", keep))
    return out


@tier()
@given(contractions=steps(), depth=st.sampled_from([16, 32, 64, 1024]),
       strategy=st.sampled_from(["first", "best"]))
def test_random_steps_never_overlap(contractions, depth, strategy):
    cfg = SMALL.replace(bank_depth=depth)
    try:
        alloc = allocate(contractions, cfg, strategy=strategy)
    except ValueError as exc:
        msg = str(exc)
        assert "\n" not in msg
        assert f"bank depth {depth}" in msg or "does not compile" in msg
        assert any(f"'{n}'" in msg for c in contractions for n in (c.a, c.b, c.out))
        return
    assert alloc.fits
    check_allocation(alloc)
    for u in alloc.banks.values():
        assert u.live_rows <= u.peak_rows <= max(u.total_rows, u.peak_rows)
    free = allocate(contractions, cfg.replace(bank_depth=65536), spill=False,
                    strategy=strategy)
    assert not free.spills and free.fits
    check_allocation(free)
    for u in free.banks.values():
        assert u.live_rows <= u.peak_rows <= u.total_rows
