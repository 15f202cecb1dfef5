"""Results kept on chip (``Session(resident=True)``, ``sim.onchip``): operands that are
earlier results are MOVEd from C instead of written by the host; outputs equal the
golden model, counted cycles equal the model, and every fallback is exact."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.harness import Session
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.arith.contraction import reference_contraction

RNG = np.random.default_rng(0)
X = RNG.integers(-100, 100, (8, 12))
W1 = RNG.integers(-100, 100, (12, 10))
W2 = RNG.integers(-100, 100, (6, 10))


def _chain(sess, mutate=False):
    """y = x w1; z = w2 y^T (y as B); g = y z^T (y as A, z as B)."""
    y = sess.contract("bi,ij->bj", X, W1, shift=6, rounding="stochastic", seed=3)
    if mutate:
        y.output[0, 0] += 1                 # the caller changes the result in place
    z = sess.contract("kj,bj->kb", W2, y.output, shift=5)
    g = sess.contract("bj,kb->jk", y.output, z.output, shift=5)
    ry = reference_contraction("bi,ij->bj", X, W1, shift=6, rounding="stochastic", seed=3)
    if mutate:
        ry[0, 0] += 1
    rz = reference_contraction("kj,bj->kb", W2, ry, shift=5)
    rg = reference_contraction("bj,kb->jk", ry, rz, shift=5)
    for got, want, name in ((y.output, ry, "y"), (z.output, rz, "z"), (g.output, rg, "g")):
        bad = np.argwhere(got != want)
        assert not len(bad), f"{name} element {tuple(bad[0])}: {got[tuple(bad[0])]} != " \
                             f"{want[tuple(bad[0])]}"
    return y, z, g


def test_kept_results_move_on_chip_and_stay_exact():
    with Session("tiny", "pysim") as s:
        plain = _chain(s)
    with Session("tiny", "pysim", resident=True) as s:
        res = _chain(s)
        assert s.onchip.stats["moved_operands"] == 3      # y twice, z once
    for r in res:
        assert r.cycles == r.predicted_cycles
    assert res[0].move_cycles == 0 and res[1].move_cycles > 0 and res[2].move_cycles > 0
    for p, r in zip(plain[1:], res[1:]):                 # the moved operands are not written
        assert r.host_words["written"] < p.host_words["written"]


def test_a_result_changed_in_place_is_written_by_the_host():
    with Session("tiny", "pysim", resident=True) as s:
        _chain(s, mutate=True)
        assert s.onchip.stats["moved_operands"] == 1      # y no longer matches; z does


def test_full_c_drops_kept_results_and_stays_exact():
    cfg = get_config("tiny").replace(name="tiny-64", bank_depth=64)
    with Session(cfg, "pysim", resident=True) as s:
        for _ in range(3):
            _chain(s)
        assert s.onchip.stats["dropped"] > 0


def test_an_intermediate_not_read_back_costs_one_word_until_it_leaves_c():
    """read_back=False: the host reads MAX_ABS (1 word) instead of the result; when
    C fills and the unread result is dropped, its words count as read then."""
    from fetta.sw_model.accel.hostmap import CONTROL_READS
    with Session("tiny", "pysim", resident=True) as s:
        y = s.contract("bi,ij->bj", X, W1, shift=6, read_back=False)
        assert y.host_words["read"] == 1 + CONTROL_READS
        assert np.array_equal(y.output, reference_contraction("bi,ij->bj", X, W1, shift=6))
        z = s.contract("kj,bj->kb", W2, y.output, shift=5)
        cc = y.compiled
        full = cc.c_rows * cc.mapping.ga * cc.mapping.gb * s.config.pe_cols
        assert z.host_words["read"] == z.compiled.c_rows * z.mapping.ga * \
            z.mapping.gb * s.config.pe_cols + CONTROL_READS
        s.onchip.drop()                       # y leaves C unread: the next run reads it
        g = s.contract("kj,bj->kb", W2, y.output, shift=5)
        assert g.host_words["read"] == z.host_words["read"] + full
        assert s.onchip.stats["read_when_dropped"] == full


def test_a_chunked_contraction_between_keeps_results_it_does_not_overwrite():
    """Kept results fill C from the top; a contraction that needs output chunks (the
    host path, writing C from row 0) evicts only the kept results in the rows it
    wrote, so y survives it and is still moved on chip afterwards."""
    cfg = get_config("tiny").replace(name="tiny-128", bank_depth=128)
    # a long reduction: A and B bind, each chunk writes only a few C rows
    big_a, big_b = RNG.integers(-9, 9, (40, 300)), RNG.integers(-9, 9, (300, 2))
    with Session(cfg, "pysim", resident=True) as s:
        y = s.contract("bi,ij->bj", X, W1, shift=6, read_back=False)
        big = s.contract("mk,kn->mn", big_a, big_b)
        assert big.chunks > 1
        assert np.array_equal(big.output, reference_contraction("mk,kn->mn", big_a, big_b))
        assert s.onchip.find(y.output) is not None and s.onchip.stats["dropped"] == 0
        z = s.contract("kj,bj->kb", W2, y.output, shift=5)
        assert s.onchip.stats["moved_operands"] == 1 and z.move_cycles > 0
        ry = reference_contraction("bi,ij->bj", X, W1, shift=6)
        assert np.array_equal(z.output, reference_contraction("kj,bj->kb", W2, ry, shift=5))
        # the host path taking a kept, unread result as operand reads it (counted)
        cc = y.compiled
        words = cc.c_rows * cc.mapping.ga * cc.mapping.gb * cfg.pe_cols
        s.contract("bj,jn->bn", y.output, RNG.integers(-9, 9, (10, 600)))
        assert s.onchip.stats["read_for_host_path"] == words


def test_resident_needs_the_move_unit():
    with pytest.raises(FettaError, match="move_unit=False") as exc:
        Session("ice40", "pysim", resident=True)
    assert "\n" not in str(exc.value)
