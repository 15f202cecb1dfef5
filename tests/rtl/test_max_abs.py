"""MAX_ABS (``rtl/max_abs.py``): after a program, the register holds the largest
magnitude of the result words its CONTRACTs wrote, over every mapping (result lanes
only, padding included), restarted by each START."""

import numpy as np
import pytest

from fetta.sim.harness import Session
from fetta.sw_model.accel.hostmap import Reg
from fetta.sw_model.program.compiler import mappings

CASES = [("mk,kn->mn", (6, 5), (5, 7)), ("bi,ij->bj", (3, 20), (20, 3)),
         ("abi,ij->abj", (2, 3, 4), (4, 5)), ("mk,kn->mn", (9, 33), (33, 2))]


@pytest.fixture(scope="module")
def sess():
    with Session("tiny", "pysim") as s:
        yield s


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}{c[1]}{c[2]}" for c in CASES])
def test_max_abs_is_the_largest_result_magnitude_for_every_mapping(sess, case):
    spec, sa, sb = case
    rng = np.random.default_rng(len(spec) + sa[0])
    for mp in mappings(sess.config):
        a, b = rng.integers(-3000, 3000, sa), rng.integers(-3000, 3000, sb)
        res = sess.contract(spec, a, b, shift=9, rounding="stochastic", seed=5,
                            out_bits=12, mapping=mp)
        got = sess.backend.read_reg(Reg.MAX_ABS)
        assert got == int(np.abs(res.output).max()), (mp, got)


def test_saturated_minimum_counts_and_start_restarts(sess):
    a = np.full((4, 4), -32768)
    b = np.ones((4, 4), dtype=np.int64)
    sess.contract("mk,kn->mn", a, b)                        # saturates at -32768
    assert sess.backend.read_reg(Reg.MAX_ABS) == 32768
    sess.contract("mk,kn->mn", np.zeros((4, 4), int), b)    # a new program: 0
    assert sess.backend.read_reg(Reg.MAX_ABS) == 0
