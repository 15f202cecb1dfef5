"""ShiftMAC (rtl/shift_mac.py): activation x power-of-two weight code with a shifter and a
negation, accumulated like the MAC. Golden products come from sw_model's Pow2Code."""

import numpy as np
import pytest
from amaranth.back import rtlil
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_backends import (RTL_BACKENDS, accumulate_model, assert_invalid, backend_params,
                           first_mismatch, simulate)

from fetta.rtl.shift_mac import ShiftMAC
from fetta.sw_model.arith.fixedpoint import Pow2Code


def hw_products(a, codes, pow2_bits):
    """Pow2Code's product; the malformed negative-zero code counts as weight 0, as the
    ShiftMAC docstring states (the software Pow2Code rejects it)."""
    code = Pow2Code(pow2_bits)
    codes = np.asarray(codes, dtype=np.int64)
    malformed = codes == (1 << code.exp_bits)
    return np.where(malformed, 0, code.multiply(a, np.where(malformed, 0, codes)))


def model(pow2_bits, acc_bits):
    def run(inputs):
        return accumulate_model(hw_products(inputs["a"], inputs["b"], pow2_bits),
                                inputs["en"], inputs["clear"], acc_bits)
    return run


def check(backend, operand_bits, pow2_bits, acc_bits, inputs):
    got = simulate(backend, lambda: ShiftMAC(operand_bits, pow2_bits, acc_bits),
                   model(pow2_bits, acc_bits), inputs, ["acc", "sum"])
    want = model(pow2_bits, acc_bits)(inputs)
    assert got == want, first_mismatch(got, want, inputs)


def random_inputs(rng, n, operand_bits, pow2_bits):
    lo, hi = -(1 << (operand_bits - 1)), 1 << (operand_bits - 1)
    a = rng.integers(lo, hi, n)
    a = np.where(rng.random(n) < 0.125, rng.choice([lo, hi - 1, -1, 0], n), a)
    return {"a": a.tolist(), "b": rng.integers(0, 1 << pow2_bits, n).tolist(),
            "en": (rng.random(n) < 0.85).astype(int).tolist(),
            "clear": (rng.random(n) < 0.1).astype(int).tolist()}


# -- hand-written ---------------------------------------------------------------------------

# (operand_bits, pow2_bits, acc_bits): rows (a, code, en, clear) -> (acc, sum)
HAND = {
    (16, 4, 32): [
        ((3, 0b0011, 1, 1), (0, 12)),                  # exp 3: +4
        ((-5, 0b1010, 1, 0), (12, 22)),                # sign, exp 2: -2
        ((-32768, 0b1111, 1, 0), (22, 22 + 2**21)),    # most-negative x -64
        ((-32768, 0b0111, 1, 1), (22 + 2**21, -2**21)),  # most-negative x +64
        ((12345, 0b0000, 1, 0), (-2**21, -2**21)),     # weight 0
        ((12345, 0b1000, 1, 0), (-2**21, -2**21)),     # malformed -0: weight 0
        ((7, 0b0001, 0, 1), (-2**21, 7)),              # ~en&clear: hold
        ((0, 0, 0, 0), (-2**21, -2**21)),
    ],
    (16, 6, 32): [
        # -32767 * 2**30 = -2**45 + 2**30, which wraps to 2**30 in 32 bits
        ((-32767, 0b011111, 1, 1), (0, 2**30)),
        ((-32768, 0b011111, 1, 1), (2**30, 0)),        # -2**45 wraps to 0
        ((1, 0b111111, 1, 0), (0, -2**30)),
        ((0, 0, 0, 0), (-2**30, -2**30)),
    ],
    (16, 6, 48): [
        ((-32768, 0b011111, 1, 1), (0, -2**45)),
        ((-32768, 0b111111, 1, 0), (-2**45, 0)),
        ((-32768, 0b111111, 1, 0), (0, 2**45)),
        ((-32768, 0b111111, 1, 0), (2**45, 2**46)),
        ((-32768, 0b111111, 1, 0), (2**46, 3 * 2**45)),
        ((-32768, 0b111111, 1, 0), (3 * 2**45, -2**47)),  # 2**47 wraps
    ],
    (4, 2, 8): [
        ((-8, 0b01, 1, 1), (0, -8)),                   # 2 bits: codes 0, +1, -0, -1
        ((-8, 0b11, 1, 0), (-8, 0)),
        ((7, 0b10, 1, 0), (0, 0)),                     # malformed
        ((7, 0b11, 1, 0), (0, -7)),
    ],
}


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("params", sorted(HAND))
def test_hand_written(backend, params):
    rows = HAND[params]
    cols = list(zip(*(r for r, _ in rows)))
    inputs = dict(zip(("a", "b", "en", "clear"), (list(c) for c in cols)))
    got = simulate(backend, lambda: ShiftMAC(*params), model(*params[1:]), inputs,
                   ["acc", "sum"])
    assert got["acc"] == [acc for _, (acc, _) in rows]
    assert got["sum"] == [s for _, (_, s) in rows]


# -- random ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
@pytest.mark.parametrize("operand_bits, pow2_bits, acc_bits",
                         [(16, 4, 32), (8, 6, 32), (16, 6, 16), (4, 2, 8), (12, 5, 48)])
def test_random_vectors(backend, operand_bits, pow2_bits, acc_bits):
    rng = np.random.default_rng(operand_bits * 1000 + pow2_bits * 100 + acc_bits)
    check(backend, operand_bits, pow2_bits, acc_bits,
          random_inputs(rng, 400, operand_bits, pow2_bits))


@pytest.mark.slow
@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
@pytest.mark.parametrize("pow2_bits", range(2, 7))
def test_random_vectors_slow(backend, pow2_bits):
    rng = np.random.default_rng(9000 + pow2_bits)
    for operand_bits in (4, 8, 16):
        for acc_bits in (8, 32, 48):
            check(backend, operand_bits, pow2_bits, acc_bits,
                  random_inputs(rng, 1000, operand_bits, pow2_bits))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_pysim(data):
    operand_bits = data.draw(st.integers(4, 16), "operand_bits")
    pow2_bits = data.draw(st.integers(2, 6), "pow2_bits")
    acc_bits = data.draw(st.integers(8, 48), "acc_bits")
    lo, hi = -(1 << (operand_bits - 1)), (1 << (operand_bits - 1)) - 1
    rows = data.draw(st.lists(st.tuples(st.integers(lo, hi),
                                        st.integers(0, (1 << pow2_bits) - 1),
                                        st.integers(0, 1), st.integers(0, 1)),
                              min_size=1, max_size=60), "rows")
    inputs = dict(zip(("a", "b", "en", "clear"), (list(c) for c in zip(*rows))))
    check("pysim", operand_bits, pow2_bits, acc_bits, inputs)


# -- structure and parameters ----------------------------------------------------------------

@pytest.mark.parametrize("pow2_bits", range(2, 7))
def test_no_multiplier(pow2_bits):
    text = rtlil.convert(ShiftMAC(16, pow2_bits, 32))
    assert "cell $mul " not in text
    assert "cell $shl " in text or "cell $sshl " in text or "cell $shift" in text


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("kwargs, pattern", [
    ({"operand_bits": 0}, r"operand_bits=0 out of range; allowed 1\.\.32"),
    ({"operand_bits": 33}, r"operand_bits=33 out of range; allowed 1\.\.32"),
    ({"pow2_bits": 1}, r"pow2_bits=1 out of range; allowed 2\.\.6"),
    ({"pow2_bits": 7}, r"pow2_bits=7 out of range; allowed 2\.\.6"),
    ({"acc_bits": 7}, r"acc_bits=7 out of range; allowed 8\.\.48"),
    ({"acc_bits": 64}, r"acc_bits=64 out of range; allowed 8\.\.48"),
])
def test_invalid_parameters(kwargs, pattern):
    assert_invalid(lambda: ShiftMAC(**kwargs), pattern)
