"""Fuzzing the XENT instruction on every backend: random payload words (classes 1..18,
illegal buffer codes, the same buffer twice, the fill bit, counts of 0, ``s``, ``bsz``
and ``out_bits`` past their ranges, reserved bits and the reserved word set, bases and
strides that leave the buffers, destinations with 0 or several nonzero targets per
row). Every example ends either in ``BAD_CONFIG`` or ``ADDRESS_RANGE`` with every
buffer unchanged, or in a run whose buffers, XENT_CORRECT and XENT_LOSS equal the model's
(``sw_model.accel.xent.run_xent``) and whose cycles equal ``xent_cycles``.

Examples: 40 on Verilator and CXXRTL (each one writes and reads every buffer), 4 on
pysim (an XENT row is ~700 cycles); ``SLOW`` under ``-m slow`` on the compiled
backends."""

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
from fetta.sw_model.accel.hostmap import (PROG_BASE, REG_BASE, ErrorCode,  # noqa: E402
                                         Reg, buffer_base)
from fetta.sw_model.accel.isa import HALT, Op, header  # noqa: E402
from fetta.sw_model.accel.move import (BUFS, MOVE_FIELD, MOVE_LEVELS, MW,  # noqa: E402
                                       buffer_lanes, move_check)
from fetta.sw_model.accel.timing import timing  # noqa: E402
from fetta.sw_model.accel.xent import (XENT_FIELD, XENT_LOSS_BITS, XENT_WORDS, XW, Xent,  # noqa: E402
                                       run_xent, xent_cycles)

CFG = get_config("tiny")
WORDS = {b: buffer_lanes(CFG, b) * CFG.bank_depth for b in BUFS}


@st.composite
def payloads(draw):
    """Raw XENT payload words: legal fields, then (in about 2 of 5 examples) one field
    past its legal range; bases and strides leave the buffers freely."""
    words = [0] * XENT_WORDS

    def put(field, value):
        words[field.word] &= ~(((1 << field.width) - 1) << field.lsb)
        words[field.word] |= (value & ((1 << field.width) - 1)) << field.lsb

    src, dst = draw(st.permutations([0, 1, 2]))[:2]
    put(MOVE_FIELD["src"], src)
    put(MOVE_FIELD["dst"], dst)
    put(MOVE_FIELD["src_base"], draw(st.integers(-20, 600)))
    put(MOVE_FIELD["dst_base"], draw(st.integers(-20, 600)))
    for i in range(MOVE_LEVELS - 3, MOVE_LEVELS):
        last = i == MOVE_LEVELS - 1
        put(MOVE_FIELD[f"level{i}.count"], draw(st.integers(2, 16) if last
                                                else st.integers(1, 3)))
        put(MOVE_FIELD[f"level{i}.src_stride"], draw(st.integers(-20, 20)))
        put(MOVE_FIELD[f"level{i}.dst_stride"], draw(st.integers(-20, 20)))
    for i in range(MOVE_LEVELS - 3):
        put(MOVE_FIELD[f"level{i}.count"], 1)
    put(XENT_FIELD["out_bits"], draw(st.integers(2, 16)))
    put(XENT_FIELD["labels"], draw(st.integers(0, 1)))
    put(XENT_FIELD["s"], draw(st.integers(-7, 31)))
    put(XENT_FIELD["bsz"], draw(st.sampled_from([2, 3, 10, 64, 1000, 8192])))
    bad = draw(st.sampled_from([None] * 12 + ["src", "same", "fill", "count", "classes",
                                              "s", "bsz", "out_bits", "reserved",
                                              "word"]))
    if bad == "src":
        put(MOVE_FIELD["src"], 3)
    elif bad == "same":
        put(MOVE_FIELD["dst"], src)
    elif bad == "fill":
        put(MOVE_FIELD["fill"], 1)
    elif bad == "count":
        put(MOVE_FIELD[f"level{draw(st.integers(0, MOVE_LEVELS - 1))}.count"], 0)
    elif bad == "classes":
        put(MOVE_FIELD[f"level{MOVE_LEVELS - 1}.count"], draw(st.sampled_from([1, 17, 18])))
    elif bad == "s":
        put(XENT_FIELD["s"], draw(st.integers(-32, -8)))
    elif bad == "bsz":
        put(XENT_FIELD["bsz"], draw(st.sampled_from([0, 1, 8193, 16383])))
    elif bad == "out_bits":
        put(XENT_FIELD["out_bits"], draw(st.sampled_from([0, 1, 17, 31])))
    elif bad == "reserved":
        w = draw(st.sampled_from([XW.OP, XW.PARAM]))
        free = [b for b in range(32) if not any(f.word == w and f.lsb <= b < f.lsb + f.width
                                                for f in XENT_FIELD.values())]
        words[w] |= 1 << draw(st.sampled_from(free))
    elif bad == "word":
        words[XW.RESERVED] = draw(st.integers(1, (1 << 32) - 1))
    return words


def expected(payload):
    """The controller's verdict (``ErrorCode``) and, when it runs, the decoded XENT."""
    code = {f: MOVE_FIELD[f].decode(payload[MW.MODE]) for f in ("src", "dst")}
    counts = [MOVE_FIELD[f"level{i}.count"].decode(payload[MOVE_FIELD[f"level{i}.count"]
                                                           .word])
              for i in range(MOVE_LEVELS)]
    try:
        x = Xent.decode(payload)
    except ValueError:
        return ErrorCode.BAD_CONFIG, None
    if code["src"] == code["dst"] or 0 in counts:
        return ErrorCode.BAD_CONFIG, None
    if move_check(CFG, x.move):
        return ErrorCode.ADDRESS_RANGE, None
    return ErrorCode.NONE, x


def check(be, payload, rng_seed):
    rng = np.random.default_rng(rng_seed)
    bufs = {}
    for i, b in enumerate(BUFS):
        data = rng.integers(-32768, 32768, WORDS[b]) >> int(rng.integers(0, 12))
        # destinations: mostly 0 (then some 1s: targets), any number per row
        data[rng.random(WORDS[b]) < 0.6] = 0
        be.write(buffer_base(i), (data & 0xFFFF).tolist())
        bufs[b] = data.reshape(CFG.bank_depth, -1)
    be.clear()
    be.write(PROG_BASE, [header(Op.XENT, XENT_WORDS)] + payload + [HALT])
    st_ = be.run(2_000_000)
    code, x = expected(payload)
    assert st_.error == code, (st_.error, code, payload)
    if x is not None:
        _, ok, loss = run_xent(CFG, x, bufs)
        assert st_.counters["cycles"] == xent_cycles(x.counts, timing(CFG).fetch) + 2
        assert be.read(REG_BASE + Reg.XENT_CORRECT, 1)[0] == ok
        lo, hi = be.read(REG_BASE + Reg.XENT_LOSS, 2)
        assert lo | hi << 32 == loss % (1 << XENT_LOSS_BITS), (loss, payload)
    assert_buffers_equal(be, CFG, bufs, f"error {st_.error!r}, {x}")


be = backend_fixture(CFG)


def test_fuzz_xent(be):
    n = 4 if be.name == "pysim" else 40
    tier(n)(given(p=payloads(), s=st.integers(0, 1000))(lambda p, s: check(be, p, s)))()


@pytest.mark.slow
def test_fuzz_xent_slow(be):
    skip_slow_pysim(be)
    tier(slow=True)(given(p=payloads(), s=st.integers(0, 1000))(
        lambda p, s: check(be, p, s)))()
