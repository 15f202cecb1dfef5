"""The VEC instruction's model (``sw_model.accel.vec``): the vector ALU equals the
training recipe's own functions on an independent set of vectors (extremes,
saturation, ties, every rounding mode), the encoding round-trips and refuses what the
controller refuses, sequential semantics of the ops that read the destination, and
the cycle formula."""

import numpy as np
import pytest

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.isa import Op, decode_header
from fetta.sw_model.accel.move import MOVE_WORDS, Move, MoveLevel, move_cycles
from fetta.sw_model.accel.timing import timing
from fetta.sw_model.accel.vec import (READS_DEST, VEC_WORDS, VW, Vec, VecOp, run_vec,
                                      vec_alu, vec_cycles, vec_tail)
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, saturate
from fetta.sw_model.train.quant_train import align, requantize

CFG = get_config("tiny")
W16 = (-32768, 32767)

# extremes, zero, ones, values next to the saturation limits of every width
EDGE = np.array(sorted({-32768, -32767, -16384, -257, -256, -255, -129, -128, -127, -9,
                        -8, -7, -2, -1, 0, 1, 2, 7, 8, 9, 127, 128, 255, 256, 16383,
                        32766, 32767}), dtype=np.int64)


def _words(rng, n=512):
    return np.concatenate([EDGE, rng.integers(*W16, n, endpoint=True)])


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("shift", [0, 1, 3, 7, 8, 15, 16, 31])
@pytest.mark.parametrize("out_bits", [2, 8, 16])
def test_requant_is_the_recipes_requantize(rounding, shift, out_bits):
    """REQUANT = ``quant_train.requantize`` (the activation requantization) with the
    VEC's element numbers as the dither index; ties (a fraction of exactly one half)
    are among the vectors: every odd multiple of 2**(shift-1)."""
    rng = np.random.default_rng(shift * 31 + out_bits)
    a = _words(rng)
    if shift:
        ties = (np.arange(-40, 40) * 2 + 1) << (shift - 1)
        a = np.concatenate([a, ties[(ties >= W16[0]) & (ties <= W16[1])]])
    got = vec_alu("requant", a, shift=shift, rounding=rounding, out_bits=out_bits,
                  seed=0xC0FFEE)
    want = requantize(a, shift, out_bits, rounding, 0xC0FFEE)
    bad = np.flatnonzero(got != want)
    assert not len(bad), f"element {bad[0]} a={a[bad[0]]}: {got[bad[0]]} vs {want[bad[0]]}"


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_relu_req_is_relu_then_requantize_with_the_flat_index(rounding):
    """RELU_REQ = the forward step's ``requantize(max(z, 0))`` (``paths.py``); a tensor
    split over VECs gets the dither of its flat index through ``index_base``."""
    rng = np.random.default_rng(9)
    z = _words(rng)
    want = requantize(np.maximum(z, 0), 5, 8, rounding, 77)
    assert np.array_equal(vec_alu("relu_req", z, shift=5, rounding=rounding, out_bits=8,
                                  seed=77), want)
    half = len(z) // 2
    bufs = {"A": np.zeros((CFG.bank_depth, CFG.a_lanes), np.int64),
            "B": np.zeros((CFG.bank_depth, CFG.b_lanes), np.int64),
            "C": np.zeros((CFG.bank_depth, CFG.c_lanes), np.int64)}
    bufs["C"].reshape(-1)[:len(z)] = z
    for first, n in ((0, half), (half, len(z) - half)):
        run_vec(CFG, Vec(Move("C", "A", first, first, (MoveLevel(n, 1, 1),)), "relu_req",
                         5, rounding, 8, 77, index_base=first), bufs)
    assert np.array_equal(bufs["A"].reshape(-1)[:len(z)], want)


def test_relu_add_mask_shl_are_the_forward_and_backward_steps():
    """The digits forward step's ``z = saturate(y + align(bias))``, ``max(z, 0)`` and the
    backward ``dx * (z > 0)``, and ``align`` to a larger frac (SHL), each equal to the
    recipe's expression (``sw_model/train/paths.py``)."""
    rng = np.random.default_rng(5)
    y, bias, dx = _words(rng), _words(rng), _words(rng)
    for s in (0, 1, 4, 9, 17, 31):
        assert np.array_equal(vec_alu("shl", bias, shift=s, out_bits=16),
                              align(bias, 12, 12 + s, 16)), s
    for s in (1, 4, 12):    # the bias aligned to a smaller frac: REQUANT nearest-even
        assert np.array_equal(vec_alu("requant", bias, shift=s, rounding="nearest-even"),
                              align(bias, 12, 12 - s, 16)), s
    z = vec_alu("add", bias, y, out_bits=16)
    assert np.array_equal(z, saturate(y + bias, 16))
    assert np.array_equal(vec_alu("relu", z), np.maximum(z, 0))
    assert np.array_equal(vec_alu("mask", z, dx), dx * (z > 0))
    for bits in (2, 5, 8, 16):
        assert np.array_equal(vec_alu("add", y, bias, out_bits=bits),
                              saturate(y + bias, bits))
        assert np.array_equal(vec_alu("relu", y, out_bits=bits),
                              saturate(np.maximum(y, 0), bits))


def test_ops_that_read_the_destination_need_it():
    with pytest.raises(ValueError, match="reads the destination"):
        vec_alu("add", [1, 2])
    assert READS_DEST == {VecOp.ADD, VecOp.MASK}


def test_encoding_round_trips_and_sits_after_the_move_payload():
    mv = Move("C", "A", 17, 3, (MoveLevel(4, 1, 8), MoveLevel(8, 4, 1)))
    v = Vec(mv, "requant", shift=7, rounding="stochastic", out_bits=8, seed=0xDEADBEEF,
            index_base=123456)
    words = v.encode()
    assert decode_header(words[0]) == (Op.VEC, VEC_WORDS)
    assert words[1:1 + MOVE_WORDS] == mv.encode()[1:]
    assert (VW.OP, VW.SEED, VW.INDEX) == (MOVE_WORDS, MOVE_WORDS + 1, MOVE_WORDS + 2)
    assert Vec.decode(words[1:]) == v


@pytest.mark.parametrize("kw, match", [
    (dict(op="sqrt"), "op='sqrt' unknown"),
    (dict(op="relu", shift=32), "shift=32 out of range"),
    (dict(op="relu", out_bits=1), "out_bits=1 out of range"),
    (dict(op="relu", out_bits=17), "out_bits=17 out of range"),
    (dict(op="relu", rounding="up"), "rounding='up' unknown"),
    (dict(op="relu", seed=1 << 32), "seed=4294967296 out of range"),
    (dict(op="relu", index_base=-1), "index_base=-1 out of range"),
])
def test_bad_fields_are_refused_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        Vec(Move("C", "A", 0, 0), **kw)


def test_fill_and_illegal_codes_are_refused():
    with pytest.raises(ValueError, match="fill"):
        Vec(Move("C", "A", 0, 0, fill=True), "relu")
    good = Vec(Move("C", "A", 0, 0), "relu").encode()[1:]
    for field_value, match in ((len(VecOp), f"op code {len(VecOp)} illegal"),
                               (3 << 9, "rounding code 3 illegal")):
        payload = list(good)
        payload[VW.OP] |= field_value
        with pytest.raises(ValueError, match=match):
            Vec.decode(payload)


def test_a_destination_stride_of_zero_accumulates_in_order():
    """ADD with the destination fixed: each element adds to the previous element's
    result (the RTL forwards it), saturating at every step."""
    bufs = {"A": np.zeros((CFG.bank_depth, CFG.a_lanes), np.int64),
            "B": np.zeros((CFG.bank_depth, CFG.b_lanes), np.int64),
            "C": np.zeros((CFG.bank_depth, CFG.c_lanes), np.int64)}
    vals = np.array([30000, 30000, -5000, -32768, 7], np.int64)
    bufs["C"].reshape(-1)[:5] = vals
    bufs["A"][0, 0] = 100
    run_vec(CFG, Vec(Move("C", "A", 0, 0, (MoveLevel(5, 1, 0),)), "add"), bufs)
    acc = 100
    for v in vals:
        acc = int(saturate(acc + v, 16))
    assert bufs["A"][0, 0] == acc


def test_cycles_are_a_moves_with_the_longer_payload_and_the_alus_tail():
    counts = (3, 1, 20)
    for op in VecOp:
        want = move_cycles(counts) + (VEC_WORDS - MOVE_WORDS) + vec_tail(op) - 1
        assert vec_cycles(counts, op) == want == timing(CFG).vec_cycles(counts, op)
    assert vec_tail("requant") == vec_tail("relu_req") == 5 and vec_tail("add") == 1
