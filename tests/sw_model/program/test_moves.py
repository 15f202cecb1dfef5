"""Layout changes on chip (``sw_model.program.moves``): the MOVEs of a relayout put
every element of a producer's result where the consumer's own packing puts it
(checked on the functional model), and ``nests`` is an exact cover of the pairs."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.isa import HALT
from fetta.sw_model.accel.move import MOVE_LEVELS, Move, MoveLevel
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.program.fabric_model import run_program
from fetta.sw_model.program.moves import nests, relayout


def _expand(parts):
    s, d = [], []
    for s0, d0, levels in parts:
        mv = Move("C", "A", 0, 0, tuple(MoveLevel(*lv) for lv in levels))
        ss, dd = mv.addresses()
        s += list(ss + s0)
        d += list(dd + d0)
    return s, d


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=1,
                max_size=60))
def test_nests_cover_arbitrary_pairs_in_order(pairs):
    s, d = zip(*pairs)
    parts = nests(s, d)
    assert all(len(levels) <= MOVE_LEVELS for _, _, levels in parts)
    assert _expand(parts) == (list(s), list(d))


def test_nests_find_one_nest_for_a_transpose():
    src = np.arange(6 * 10).reshape(6, 10)
    s = src.T.reshape(-1)                    # read column by column
    d = np.arange(60)
    parts = nests(s, d)
    assert len(parts) == 1 and parts[0][2] == [(10, 1, 6), (6, 10, 1)]
    assert _expand(parts) == (list(s), list(d))


CASES = [  # producer spec/shapes, consumer spec, role, other operand shape
    ("bi,ij->bj", (6, 5), (5, 7), "bj,jk->bk", "a", (7, 4)),
    ("bi,ij->bj", (6, 5), (5, 7), "kj,bj->kb", "b", (3, 7)),
    ("abi,ij->abj", (2, 3, 4), (4, 5), "abj,jk->bk", "a", (5, 6)),
    ("bi,ij->bj", (9, 3), (3, 11), "bj,bk->jk", "a", (9, 2)),
]


@pytest.mark.parametrize("config", ["tiny", "ecp5", "large"])
@pytest.mark.parametrize("case", CASES, ids=[c[3] + "/" + c[4] for c in CASES])
def test_relayout_lands_every_element_in_the_consumers_layout(config, case):
    cfg = get_config(config)
    pspec, sa, sb, cspec, role, other = case
    rng = np.random.default_rng(3)
    a, b = rng.integers(-99, 99, sa), rng.integers(-99, 99, sb)
    prod = compile_contraction(pspec, sa, sb, cfg)
    y = reference_contraction(pspec, a, b)
    shapes = (y.shape, other) if role == "a" else (other, y.shape)
    cons = compile_contraction(cspec, *shapes, cfg)
    c_row, d_row = 3, 5
    plan = relayout(prod, cons, role, y.shape, src_row=c_row, dst_row=d_row)
    # the producer's result at C row c_row, then the MOVEs, on the functional model
    c_buf = np.zeros((cfg.bank_depth, cfg.c_lanes), dtype=np.int64)
    c_buf[c_row:c_row + prod.c_rows] = run_program(cfg, prod.program, prod.pack_a(a),
                                                   prod.pack_b(b))[:prod.c_rows]
    # an earlier tensor's rows in A and B
    junk_a = np.full((cfg.bank_depth, cfg.a_lanes), 777)
    junk_b = np.full((cfg.bank_depth, cfg.b_lanes), 777)
    state = {}
    run_program(cfg, plan.program() + [HALT], junk_a, junk_b, c_rows=c_buf, state=state)
    rows = cons.a_rows if role == "a" else cons.b_rows
    got = state[role.upper()][d_row:d_row + rows]
    want = cons.pack_a(y) if role == "a" else cons.pack_b(y)
    assert np.array_equal(got, want)
    assert plan.elements == y.size
    # per MOVE: fetch, payload, validate, range check (16 passes of bit_length(count -
    # 1) Horner steps + 1, + 1: each level has a source and a destination pass),
    # elements, last write
    assert plan.cycles == sum(
        2 + 27 + 1 + (16 + 2 * sum((c - 1).bit_length() for c in mv.counts) + 1)
        + mv.elements + 1 for mv in plan.moves)


def test_relayout_refuses_a_configuration_without_the_unit():
    cfg = get_config("ice40")
    p = compile_contraction("bi,ij->bj", (2, 2), (2, 2), cfg)
    c = compile_contraction("bj,jk->bk", (2, 2), (2, 2), cfg)
    with pytest.raises(ValueError, match="no MOVE unit"):
        relayout(p, c, "a", (2, 2))


@pytest.mark.parametrize("config", ["tiny", "large"])
def test_dense_relayout_builds_the_consumers_packing(config):
    """``relayout_dense``: a tensor written densely into C, moved by the plan's MOVEs
    (the functional model ``run_move``), is exactly the consumer's own packing of it
    (replicas and zero padding included), over stale buffer contents."""
    from fetta.sw_model.accel.move import run_move
    from fetta.sw_model.program.compiler import compile_contraction
    from fetta.sw_model.program.moves import relayout_dense
    cfg = get_config(config)
    cc = compile_contraction("bij,jk->bik", (3, 5, 6), (6, 7), cfg)
    rng = np.random.default_rng(3)
    for role, shape in (("a", (3, 5, 6)), ("b", (6, 7))):
        x = rng.integers(-100, 100, shape)
        mp = relayout_dense(cc, role, shape, src="C", src_row=2, dst_row=1)
        bufs = {k: rng.integers(-9, 9, (cfg.bank_depth, n)) for k, n in
                (("A", cfg.a_lanes), ("B", cfg.b_lanes), ("C", cfg.c_lanes))}
        flat = np.zeros(cfg.bank_depth * cfg.c_lanes, np.int64)
        flat[2 * cfg.c_lanes:2 * cfg.c_lanes + x.size] = x.reshape(-1)
        bufs["C"] = flat.reshape(cfg.bank_depth, cfg.c_lanes)
        for mv in mp.moves:
            run_move(cfg, mv, bufs)
        want = cc.pack_a(x) if role == "a" else cc.pack_b(x)
        got = bufs[role.upper()][1:1 + want.shape[0], :want.shape[1]]
        assert np.array_equal(got, want), role
