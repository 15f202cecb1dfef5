"""Fuzzing the VEC instruction on every backend: random payload words (illegal buffer
and op codes, rounding 3, out_bits outside 2..16, the fill bit, counts of 0, bases and
strides that leave the buffers, any shift, seed and index base). Every example ends
either in ``BAD_CONFIG`` or ``ADDRESS_RANGE`` with every buffer unchanged, or in a run
whose buffers equal the model's (``sw_model.accel.vec.run_vec``) and whose cycles
equal ``vec_cycles``; never a crash, a hang or a silently different result.

Examples: 100 on Verilator and CXXRTL (each one writes and reads every buffer), 5 on
pysim; ``SLOW`` under ``-m slow`` on the compiled backends."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from buffer_check import assert_buffers_equal  # noqa: E402
from fuzz_tiers import backend_fixture, skip_slow_pysim, tier  # noqa: E402

from fetta.sw_model.accel.config import get_config  # noqa: E402
from fetta.sw_model.accel.hostmap import PROG_BASE, ErrorCode, buffer_base  # noqa: E402
from fetta.sw_model.accel.isa import HALT, Op, header  # noqa: E402
from fetta.sw_model.accel.move import (BUFS, MOVE_FIELD, MOVE_LEVELS, MW,  # noqa: E402
                                       buffer_lanes, move_check)
from fetta.sw_model.accel.timing import timing  # noqa: E402
from fetta.sw_model.accel.vec import VEC_FIELD, VEC_WORDS, Vec, VecOp, run_vec  # noqa: E402

CFG = get_config("tiny")
WORDS = {b: buffer_lanes(CFG, b) * CFG.bank_depth for b in BUFS}


@st.composite
def payloads(draw):
    """Raw VEC payload words: legal fields, then (in about 2 of 5 examples) one
    field set past its legal range; bases and strides leave the buffers freely."""
    words = [0] * VEC_WORDS

    def put(field, value):
        words[field.word] &= ~(((1 << field.width) - 1) << field.lsb)
        words[field.word] |= (value & ((1 << field.width) - 1)) << field.lsb

    src, dst = draw(st.permutations([0, 1, 2]))[:2]
    put(MOVE_FIELD["src"], src)
    put(MOVE_FIELD["dst"], dst)
    put(MOVE_FIELD["src_base"], draw(st.integers(-20, 600)))
    put(MOVE_FIELD["dst_base"], draw(st.integers(-20, 600)))
    for i in range(MOVE_LEVELS - 3, MOVE_LEVELS):
        put(MOVE_FIELD[f"level{i}.count"], draw(st.integers(1, 6)))
        put(MOVE_FIELD[f"level{i}.src_stride"], draw(st.integers(-9, 9)))
        put(MOVE_FIELD[f"level{i}.dst_stride"], draw(st.integers(-9, 9)))
    for i in range(MOVE_LEVELS - 3):
        put(MOVE_FIELD[f"level{i}.count"], 1)
    put(VEC_FIELD["op"], draw(st.integers(0, len(VecOp) - 1)))
    put(VEC_FIELD["shift"], draw(st.integers(0, 31)))
    put(VEC_FIELD["rounding"], draw(st.integers(0, 2)))
    put(VEC_FIELD["out_bits"], draw(st.integers(2, 16)))
    put(VEC_FIELD["seed"], draw(st.integers(0, (1 << 32) - 1)))
    put(VEC_FIELD["index_base"], draw(st.integers(0, (1 << 32) - 1)))
    bad = draw(st.sampled_from([None] * 12 + ["src", "dst", "same", "fill", "count", "op",
                                              "rounding", "out_bits_low",
                                              "out_bits_high"]))
    if bad in ("src", "dst"):
        put(MOVE_FIELD[bad], 3)
    elif bad == "same":
        put(MOVE_FIELD["dst"], src)
    elif bad == "fill":
        put(MOVE_FIELD["fill"], 1)
    elif bad == "count":
        put(MOVE_FIELD[f"level{draw(st.integers(0, MOVE_LEVELS - 1))}.count"], 0)
    elif bad == "op":
        put(VEC_FIELD["op"], draw(st.integers(len(VecOp), 15)))
    elif bad == "rounding":
        put(VEC_FIELD["rounding"], 3)
    elif bad == "out_bits_low":
        put(VEC_FIELD["out_bits"], draw(st.integers(0, 1)))
    elif bad == "out_bits_high":
        put(VEC_FIELD["out_bits"], draw(st.integers(17, 31)))
    return words


def expected(payload):
    """The controller's verdict on ``payload`` (``ErrorCode``) and, when it runs, the
    decoded VEC."""
    code = {f: MOVE_FIELD[f].decode(payload[MW.MODE]) for f in ("src", "dst", "fill")}
    counts = [MOVE_FIELD[f"level{i}.count"].decode(payload[MOVE_FIELD[f"level{i}.count"]
                                                           .word])
              for i in range(MOVE_LEVELS)]
    try:
        vec = Vec.decode(payload)
    except ValueError:
        return ErrorCode.BAD_CONFIG, None
    if code["src"] == code["dst"] or 0 in counts:
        return ErrorCode.BAD_CONFIG, None
    if move_check(CFG, vec.move):
        return ErrorCode.ADDRESS_RANGE, None
    return ErrorCode.NONE, vec


def check(be, payload, rng_seed):
    rng = np.random.default_rng(rng_seed)
    bufs = {}
    for i, b in enumerate(BUFS):
        data = rng.integers(-32768, 32768, WORDS[b])
        data[::3] //= 128
        be.write(buffer_base(i), (data & 0xFFFF).tolist())
        bufs[b] = data.reshape(CFG.bank_depth, -1)
    be.clear()
    be.write(PROG_BASE, [header(Op.VEC, VEC_WORDS)] + payload + [HALT])
    st_ = be.run(200_000)
    code, vec = expected(payload)
    assert st_.error == code, (st_.error, code, payload)
    if vec is not None:
        run_vec(CFG, vec, bufs)
        assert st_.counters["cycles"] == timing(CFG).vec_cycles(vec.counts, vec.op) + 2
        assert st_.counters["vec_cycles"] == vec.elements
    assert_buffers_equal(be, CFG, bufs, f"error {st_.error!r}, {vec}")


be = backend_fixture(CFG)


def test_fuzz_vec(be):
    n = 5 if be.name == "pysim" else 100
    tier(n)(given(p=payloads(), s=st.integers(0, 1000))(lambda p, s: check(be, p, s)))()


@pytest.mark.slow
def test_fuzz_vec_slow(be):
    skip_slow_pysim(be)
    tier(slow=True)(given(p=payloads(), s=st.integers(0, 1000))(
        lambda p, s: check(be, p, s)))()
