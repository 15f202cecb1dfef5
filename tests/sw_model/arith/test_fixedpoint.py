"""The arithmetic contract (sw_model.arith.fixedpoint): semantics and parameter validation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fetta.sw_model.arith.fixedpoint import (ROUNDING_MODES, Format, Pow2Code, check_acc_bits,
                                 check_out_bits, check_rounding, check_shift, check_width,
                                 dequantize, dither, dither_hash, output_stage, quantize,
                                 round_shift, saturate, wrap, LOG2_Q16, LOG2E_Q14,
                                 log2_q16, xent_loss_rows)

M32 = 0xFFFFFFFF


def scalar_hash(seed, index):
    """The module docstring's definition, written independently with Python ints."""
    x = ((seed ^ 0x9E3779B9) + index) & M32
    x = (x + (x << 10)) & M32
    x ^= x >> 6
    x = (x + (x << 3)) & M32
    x ^= x >> 11
    x = (x + (x << 15)) & M32
    x ^= seed
    x = (x + (x << 10)) & M32
    x ^= x >> 6
    x = (x + (x << 3)) & M32
    x ^= x >> 11
    return (x + (x << 15)) & M32


# -- wrap and saturate -------------------------------------------------------------------

def test_wrap_two_complement_edges():
    assert wrap(2**31 - 1, 32) == 2**31 - 1
    assert wrap(2**31, 32) == -2**31
    assert wrap(-2**31 - 1, 32) == 2**31 - 1
    assert wrap(2**32 + 5, 32) == 5
    assert wrap(128, 8) == -128
    assert list(wrap([255, 256, -129], 8)) == [-1, 0, 127]


@given(st.integers(-2**62, 2**62), st.integers(1, 63))
def test_wrap_is_mod_2_pow_bits(x, bits):
    w = int(wrap(x, bits))
    assert -(1 << (bits - 1)) <= w < (1 << (bits - 1))
    assert (w - x) % (1 << bits) == 0


def test_wrap_makes_sum_order_independent():
    rng = np.random.default_rng(3)
    terms = rng.integers(-2**30, 2**30, 1000)
    forward = 0
    for t in terms:
        forward = int(wrap(forward + t, 16))
    backward = 0
    for t in terms[::-1]:
        backward = int(wrap(backward + t, 16))
    assert forward == backward == int(wrap(terms.sum(), 16))


def test_saturate_edges():
    assert list(saturate([-32769, -32768, 32767, 32768], 16)) == [-32768, -32768, 32767, 32767]
    assert list(saturate([-3, -2, 1, 2], 2)) == [-2, -2, 1, 1]
    assert list(saturate([-1, 0, 255, 256], 8, signed=False)) == [0, 0, 255, 255]


# -- rounding ------------------------------------------------------------------------------

def test_floor_is_arithmetic_shift():
    assert list(round_shift([-100, 100, -1, 0, 15, 16], 4, "floor")) == [-7, 6, -1, 0, 0, 1]


def test_nearest_even_ties():
    # x.5 goes to the even neighbour, both signs; non-ties go to the nearest.
    acc = [5, 7, -5, -7, 2, -2, 6, -6, 3, -3, 1, 9]
    want = [2, 4, -2, -4, 0, 0, 2, -2, 1, -1, 0, 2]  # acc/2 or acc/4 below
    got = list(round_shift(acc[:4], 1, "nearest-even")) + \
        list(round_shift(acc[4:10], 2, "nearest-even")) + \
        list(round_shift(acc[10:], 2, "nearest-even"))
    # 2/4=.5->0, -2/4=-.5->0, 6/4=1.5->2, -6/4=-1.5->-2, 3/4->1, -3/4->-1, 1/4->0, 9/4->2
    assert got == want


@given(st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=50), st.integers(1, 20))
def test_nearest_even_matches_numpy_round(acc, shift):
    acc = np.array(acc, dtype=np.int64)
    want = np.round(acc / float(2**shift)).astype(np.int64)  # exact: |acc| < 2**53
    assert np.array_equal(round_shift(acc, shift, "nearest-even"), want)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_shift_zero_is_exact(mode):
    acc = np.array([-2**31, -1, 0, 1, 2**31 - 1])
    assert np.array_equal(round_shift(acc, 0, mode, seed=5), acc)


def test_stochastic_rounds_to_a_neighbour_and_is_unbiased():
    shift = 6
    acc = np.full(20000, 1000)  # 1000 / 64 = 15.625
    r = round_shift(acc, shift, "stochastic", seed=1234)
    assert set(np.unique(r)) == {15, 16}
    assert abs(r.mean() - 1000 / 64) < 0.02
    # exact multiples never move
    assert np.all(round_shift(np.full(100, 64 * 7), shift, "stochastic", seed=9) == 7)


def test_stochastic_differs_from_floor_and_depends_on_seed():
    acc = np.arange(-500, 500) * 37
    a = round_shift(acc, 5, "stochastic", seed=1)
    b = round_shift(acc, 5, "stochastic", seed=2)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, round_shift(acc, 5, "floor"))


# -- dither -------------------------------------------------------------------------------

@given(st.integers(0, M32), st.integers(0, M32))
def test_dither_hash_matches_definition(seed, index):
    assert int(dither_hash(seed, index)) == scalar_hash(seed, index)


# Regression anchors: a change to the dither definition must be deliberate (the RTL
# tests check the same words).
HASH_ANCHORS = [(0, 0, 0x8FEF9E1C), (0, 1, 0xDFED9C44), (1, 0, 0xCA4BE500),
                (M32, M32, 0xD9AB34B1), (0x12345678, 1000, 0x93109733)]


@pytest.mark.parametrize("seed, index, word", HASH_ANCHORS)
def test_dither_hash_known_values(seed, index, word):
    assert int(dither_hash(seed, index)) == word == scalar_hash(seed, index)


def test_dither_hash_is_a_pure_function_of_seed_and_index():
    idx = np.arange(1000)
    whole = dither_hash(77, idx)
    # any order, any shape, any batch split: same value per (seed, index)
    perm = np.random.default_rng(0).permutation(1000)
    assert np.array_equal(dither_hash(77, idx[perm]), whole[perm])
    assert np.array_equal(dither_hash(77, idx.reshape(10, 100)).ravel(), whole)
    assert np.array_equal(dither_hash(77, idx[500:]), whole[500:])
    # index is taken mod 2**32
    assert int(dither_hash(77, 2**32 + 5)) == int(whole[5])
    assert len(np.unique(whole)) == 1000


@pytest.mark.parametrize("shift", [0, 1, 7, 31, 32, 33, 47])
def test_dither_range_and_top_bits(shift):
    idx = np.arange(4096)
    r = dither(99, idx, shift)
    h = dither_hash(99, idx).astype(np.int64)
    assert r.min() >= 0 and r.max() < 2**shift
    if shift == 0:
        assert np.all(r == 0)
    elif shift <= 32:
        assert np.array_equal(r, h >> (32 - shift))
        if shift >= 7:
            assert r.max() > 2**shift * 0.9  # spans its range
    else:
        assert np.array_equal(r, h << (shift - 32))


# -- output stage -------------------------------------------------------------------------

def test_output_stage_composes_wrap_round_saturate():
    # 2**32 + 300 wraps to 300; 300/4 = 75 in range
    assert output_stage(2**32 + 300, shift=2, acc_bits=32) == 75
    # 40000 saturates at 16 bits, 300/4 = 75 saturates at out_bits 7 (max 63)
    assert output_stage(40000, out_bits=16) == 32767
    assert output_stage(300, shift=2, out_bits=7) == 63
    assert output_stage(-300, shift=2, out_bits=7) == -64
    # nearest-even: -257 / 2 = -128.5 -> -128 (in range of 8 bits)
    assert output_stage(-257, shift=1, rounding="nearest-even", out_bits=8) == -128
    # 255/2 = 127.5 -> 128 -> saturates to 127
    assert output_stage(255, shift=1, rounding="nearest-even", out_bits=8) == 127


def test_output_stage_stochastic_uses_flat_output_index():
    acc = np.arange(24).reshape(2, 3, 4) * 1001
    got = output_stage(acc, shift=7, rounding="stochastic", seed=3)
    flat = output_stage(acc.ravel(), shift=7, rounding="stochastic", seed=3)
    assert np.array_equal(got.ravel(), flat)
    want = (acc.ravel() + dither(3, np.arange(24), 7)) >> 7
    assert np.array_equal(flat, want)


# -- quantize -----------------------------------------------------------------------------

def test_format_ranges():
    assert (Format(8).min_code, Format(8).max_code) == (-128, 127)
    assert (Format(8, signed=False).min_code, Format(8, signed=False).max_code) == (0, 255)
    assert Format(16, 8).scale == 2.0 ** -8
    assert str(Format(8, 4)) == "s8.4"


def test_quantize_modes_and_saturation():
    f = Format(8, 2)  # step 0.25
    x = np.array([0.3, -0.3, 0.125, 0.375, 100.0, -100.0])
    assert list(quantize(x, f, "floor")) == [1, -2, 0, 1, 127, -128]
    # 0.125*4 = 0.5 -> 0 (even), 0.375*4 = 1.5 -> 2 (even)
    assert list(quantize(x, f, "nearest-even")) == [1, -1, 0, 2, 127, -128]
    s = quantize(np.full(4000, 0.3), f, "stochastic", seed=8)  # 1.2 steps
    assert set(np.unique(s)) == {1, 2}
    assert abs(s.mean() - 1.2) < 0.03
    assert np.array_equal(quantize(np.full(4000, 0.3), f, "stochastic", seed=8), s)
    assert np.allclose(dequantize(quantize(x[:4], f, "floor"), f), [0.25, -0.5, 0.0, 0.25])


# -- power-of-two codes -------------------------------------------------------------------

@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6])
def test_pow2_encode_decode_round_trip(bits):
    code = Pow2Code(bits)
    valid = [c for c in range(1 << bits) if c != 1 << (bits - 1)]
    values = code.decode(valid)
    assert np.array_equal(code.encode(values), valid)
    mags = sorted({abs(int(v)) for v in values})
    assert mags == [0] + [2**e for e in range(code.max_exp + 1)]


def test_pow2_layout_and_multiply():
    code = Pow2Code(4)  # [exp:3][sign:1]
    assert list(code.decode([0, 1, 2, 7, 9, 15])) == [0, 1, 2, 64, -1, -64]
    assert list(code.multiply([3, -5, -32768, 7], [0b0011, 0b1010, 0b1111, 0])) == \
        [12, 10, 32768 * 64, 0]
    assert list(code.quantize([0.2, 0.7, -3.1, 1000.0])) == list(code.encode([0, 1, -4, 64]))


# -- invalid parameters: ValueError naming the value and the allowed range ----------------

@pytest.mark.parametrize("call, pattern", [
    (lambda: check_width(0), r"width=0 .*1\.\.32"),
    (lambda: check_width(33), r"width=33 .*1\.\.32"),
    (lambda: check_width(2.5), r"width=2\.5"),
    (lambda: Format(0), r"bits=0 .*1\.\.32"),
    (lambda: Format(33), r"bits=33 .*1\.\.32"),
    (lambda: check_out_bits(1), r"out_bits=1 .*2\.\.16"),
    (lambda: check_out_bits(17), r"out_bits=17 .*2\.\.16"),
    (lambda: output_stage(0, out_bits=1), r"out_bits=1 .*2\.\.16"),
    (lambda: output_stage(0, out_bits=17), r"out_bits=17 .*2\.\.16"),
    (lambda: check_shift(-1), r"shift=-1 .*0\.\.31"),
    (lambda: check_shift(32, 32), r"shift=32 .*0\.\.31"),
    (lambda: output_stage(0, shift=32), r"shift=32 .*0\.\.31"),
    (lambda: output_stage(0, shift=16, acc_bits=16), r"shift=16 .*0\.\.15"),
    (lambda: output_stage(0, shift=-1), r"shift=-1 .*0\.\.31"),
    (lambda: check_acc_bits(7), r"acc_bits=7 .*8\.\.48"),
    (lambda: check_acc_bits(49), r"acc_bits=49 .*8\.\.48"),
    (lambda: check_rounding("up"), r"rounding='up' .*floor, nearest-even, stochastic"),
    (lambda: output_stage(0, rounding="round"), r"'round' .*floor, nearest-even"),
    (lambda: round_shift([1], 2, "ceil"), r"'ceil' .*floor, nearest-even"),
    (lambda: quantize([1.0], Format(8), "banker"), r"'banker' .*floor"),
    (lambda: output_stage(0, seed=2**32), r"seed=4294967296 .*0\.\.4294967295"),
    (lambda: Pow2Code(4).decode([8]), r"pow2 code 8 malformed; allowed 0\.\.15 .*8"),
    (lambda: Pow2Code(4).decode([16]), r"pow2 code 16 malformed; allowed 0\.\.15"),
    (lambda: Pow2Code(4).check([-1]), r"pow2 code -1 malformed; allowed 0\.\.15"),
    (lambda: Pow2Code(3).multiply([1], [4]), r"pow2 code 4 malformed; allowed 0\.\.7"),
    (lambda: Pow2Code(4).encode([3]), r"pow2 weight 3 .*e in 0\.\.6"),
    (lambda: Pow2Code(4).encode([128]), r"pow2 weight 128 .*e in 0\.\.6"),
    (lambda: Pow2Code(7), r"pow2 bits=7 .*2\.\.6"),
])
def test_invalid_parameters_raise_value_error(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_log2_q16_is_the_leading_one_and_the_truncated_mantissa():
    # exact integer definition, from the smallest sum to the largest of 16 classes
    for s in [1 << 15, (1 << 15) + 1, 65535, 1 << 16, 98303, 98304, 16 * 65447]:
        p = s.bit_length() - 1
        assert log2_q16(s) == ((p - 15) << 16) + LOG2_Q16[(s >> (p - 8)) & 0xFF]
    assert log2_q16(1 << 15) == 0 and log2_q16(1 << 16) == 1 << 16
    s = np.arange(1 << 15, 1 << 20, 37)
    assert np.all(np.abs(log2_q16(s) / 65536 - np.log2(s / 32768)) < 2 ** -7)
    with pytest.raises(ValueError, match="allowed >= 2\\*\\*15"):
        log2_q16([32767])


def test_xent_loss_rows_is_the_cross_entropy_in_bits():
    rng = np.random.default_rng(3)
    frac = 9
    z = rng.integers(-3000, 3000, (200, 10))
    labels = rng.integers(0, 10, 200)
    y = np.zeros_like(z)
    y[np.arange(200), labels] = 1
    got = xent_loss_rows(z, y, frac) / 65536 * np.log(2)
    zf = z / 2.0 ** frac
    want = np.log(np.exp(zf - zf.max(1, keepdims=True)).sum(1)) + zf.max(1) \
        - zf[np.arange(200), labels]
    assert np.all(np.abs(got - want) < 0.01)
    # extremes: the label at the maximum of equal logits; a label far below; no target
    eq = np.zeros((1, 16), np.int64)
    one = np.eye(16, dtype=np.int64)[:1]
    assert xent_loss_rows(eq, one, 4)[0] == 4 << 16               # log2(16), exact
    far = np.array([[32767, -32768]])
    t = ((-65535 * LOG2E_Q14) << 7)                              # s = -7: shifted left
    assert xent_loss_rows(far, np.array([[0, 1]]), -5)[0] == -t   # sum e = 2**15
    assert xent_loss_rows(far, np.zeros((1, 2), np.int64), 9)[0] == 0
