"""Fuzzing the host bus on every backend: random sequences of memory writes, CTRL
writes (START, CLEAR, ABORT in any combination), reads and idle clocks, with a
program loaded that runs a few hundred cycles. Checked against the busy rule of
``sw_model/hostmap.py`` through the direct-memory path of each backend:

* a write made while the accelerator was idle (STATUS read just before says idle;
  nothing can start it in between) lands;
* a write made while it was busy before *and* after (busy cannot drop and rise again
  without a START) is dropped and STATUS bit 3 is set;
* otherwise either is allowed;

and after every sequence an ABORT leaves it idle with the counters adding up, the
error code is a documented one, and nothing hangs.

Examples: ``DEFAULT`` (300) on Verilator and CXXRTL, 10 on pysim; ``SLOW`` (10,000)
per compiled backend under ``-m slow``."""

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz_tiers import backend_fixture, skip_slow_pysim, tier  # noqa: E402

from fetta.sw_model.program.compiler import compile_contraction  # noqa: E402
from fetta.sw_model.accel.hostmap import (PROG_BASE, REG_BASE, ErrorCode, Reg,  # noqa: E402
                                    Status, buffer_base)

CONFIG = "tiny"
CC = compile_contraction("mk,kn->mn", (6, 5), (5, 6), CONFIG)
REGIONS = {"a": (buffer_base(0), 64), "b": (buffer_base(1), 64),
           "prog": (PROG_BASE, len(CC.program) + 8)}

ops = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(sorted(REGIONS)), st.integers(0, 63),
              st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=3)),
    st.tuples(st.just("ctrl"), st.integers(0, 7)),
    st.tuples(st.just("read"), st.sampled_from([Reg.STATUS, Reg.PC, Reg.CYCLES, Reg.ID]),
              st.integers(1, 3)),
    st.tuples(st.just("clock"), st.integers(1, 400)),
)


def check_sequence(be, seq):
    be.clear()
    be.write(PROG_BASE, CC.program)
    expect = {}                  # addr -> set of allowed values
    for base, n in REGIONS.values():
        for addr, v in zip(range(base, base + n), be.read(base, n)):
            expect[addr] = {v & 0xFFFF if base >= buffer_base(0) else v}
    for op in seq:
        if op[0] == "write":
            _, region, off, words = op
            base, n = REGIONS[region]
            addr = base + off % (n - len(words) + 1)
            before = be.read_reg(Reg.STATUS) & Status.BUSY
            be.write(addr, words)
            after = be.read_reg(Reg.STATUS)
            for i, w in enumerate(words):
                if not before:
                    expect[addr + i] = {w}
                elif after & Status.BUSY:
                    assert after & Status.BUS_WHILE_BUSY, hex(after)
                else:
                    expect[addr + i] = expect[addr + i] | {w}
        elif op[0] == "ctrl":
            be.write_reg(Reg.CTRL, op[1])
        elif op[0] == "read":
            got = be.read(REG_BASE + op[1], op[2])
            if op[1] == Reg.STATUS:
                assert (got[0] >> 8) & 0xFF in set(ErrorCode), hex(got[0])
        else:
            be.read(REG_BASE + Reg.ID, op[1])              # op[1] clock cycles
    status = be.abort()
    assert not status & Status.BUSY and (status >> 8) & 0xFF in set(ErrorCode)
    c = be.counters()
    assert c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                           + c["stall_drain"]), c
    for base, n in REGIONS.values():
        for addr, v in zip(range(base, base + n), be.read(base, n)):
            v = v & 0xFFFF if base >= buffer_base(0) else v
            assert v in expect[addr], f"word {addr:#x} is {v:#x}; allowed {expect[addr]}"


be = backend_fixture(CONFIG)


def test_fuzz_bus_sequences(be):
    n = 10 if be.name == "pysim" else None
    settings_ = tier(n) if n else tier()
    settings_(given(seq=st.lists(ops, max_size=12))(lambda seq: check_sequence(be, seq)))()


@pytest.mark.slow
def test_fuzz_bus_sequences_slow(be):
    """Slow tier: 10,000 random sequences per compiled backend."""
    skip_slow_pysim(be)
    tier(slow=True)(given(seq=st.lists(ops, max_size=12))(
        lambda seq: check_sequence(be, seq)))()
