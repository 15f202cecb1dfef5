"""Fuzzing the program loader on every backend: random CONFIG/CONTRACT fields and
random program words. Every example ends in a valid run or an error code (a run over
its cycle limit is aborted), never a crash or a hang; afterwards the accelerator is
idle, the counters add up, and no C row outside the output regions of the CONTRACT
instructions that ran was written (the bound check's promise).

Examples: ``DEFAULT`` (300) on Verilator and CXXRTL, 6 on pysim (a pysim run is
~1,000x slower: 25 took 410 s on a loaded machine); ``SLOW`` (10,000) on each compiled backend under ``-m slow``."""

import sys
from pathlib import Path


import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz_tiers import tier  # noqa: E402

from fetta.errors import RunTimeout  # noqa: E402
from fetta.sw_model.program.compiler import compile_contraction  # noqa: E402
from fetta.sw_model.accel.config import get_config  # noqa: E402
from fetta.sw_model.accel.hostmap import PROG_BASE, ErrorCode, Reg, Status, buffer_base  # noqa: E402
from fetta.sw_model.accel.isa import (CONTRACT_WORDS, COUNT_MAX, CW, HALT, N_LEVELS,  # noqa: E402
                                Contract, Level, Op, decode_header)

CONFIG = "tiny"
CFG = get_config(CONFIG)
BASE = compile_contraction("mk,kn->mn", (6, 5), (5, 6), CONFIG)
N_CFG = BASE.program[0] >> 16
CONFIG_PART = BASE.program[:1 + N_CFG]
SENTINEL = [(0x3C3C + 7 * i) & 0xFFFF for i in range(CFG.bank_depth * CFG.c_lanes)]


def _s16(v):
    return ((v & 0xFFFF) ^ 0x8000) - 0x8000


def c_region(payload):
    """[lo, hi] C rows a CONTRACT payload may write, or None if it cannot run."""
    bc = payload[CW.BASE_C_KCOUNT]
    base_c, k = bc & 0xFFFF, bc >> 16
    counts = [payload[CW.LEVELS + 3 * i] & 0xFFFF for i in range(N_LEVELS)]
    if not 1 <= k <= COUNT_MAX or any(not 1 <= c <= COUNT_MAX for c in counts):
        return None
    lo = hi = base_c
    for i, c in enumerate(counts):
        p = (c - 1) * _s16(payload[CW.LEVELS + 3 * i + 1] >> 16)
        lo, hi = lo + min(0, p), hi + max(0, p)
    return lo, hi + CFG.pe_rows - 1


def executed_regions(prog, stop_pc=None):
    """C regions of the CONTRACTs the controller executes before ``stop_pc``."""
    regions, pc = [], 0
    while pc < len(prog) and (stop_pc is None or pc < stop_pc):
        op, n = decode_header(prog[pc])
        if op == Op.CONTRACT and n == CONTRACT_WORDS and pc + 1 + n <= len(prog):
            r = c_region(prog[pc + 1:pc + 1 + n])
            if r is not None:
                regions.append(r)
        elif op not in (Op.CONFIG, Op.CONTRACT, Op.SYNC):
            break
        pc += 1 if op == Op.SYNC else 1 + n
    return regions


def mostly(valid, anything, odds=12):
    """``valid`` values about ``odds`` times as often as ``anything``."""
    return st.integers(0, odds).flatmap(lambda i: anything if i == 0 else valid)


counts = mostly(st.integers(1, 4), st.integers(0, 0xFFFF))
strides = mostly(st.integers(0, 3), st.integers(-0x8000, 0x7FFF), 6)
bases = mostly(st.integers(0, 16), st.integers(0, 0xFFFF))
levels = st.builds(Level, count=counts, stride_a=strides, stride_b=strides,
                   stride_c=strides, stride_idx=st.integers(0, 0xFFFFFFFF))
contracts = st.builds(
    Contract, shift=mostly(st.integers(0, 31), st.integers(0, 63)),
    rounding=st.sampled_from(["floor", "nearest-even", "stochastic"]),
    out_bits=mostly(st.integers(2, 16), st.integers(0, 31)),
    seed=st.integers(0, 0xFFFFFFFF), base_a=bases, base_b=bases, base_c=bases,
    k_count=counts, k_stride_a=strides, k_stride_b=strides,
    levels=st.tuples(*[levels] * N_LEVELS))


@st.composite
def programs(draw):
    words = list(CONFIG_PART)
    if draw(st.integers(0, 7)) == 0:
        words[1] = draw(st.integers(0, 0xFFF))               # the mapping word
    for _ in range(draw(mostly(st.just(1), st.just(2), 3))):
        c = draw(contracts)
        w = c.encode()
        if draw(st.integers(0, 7)) == 0:                      # rounding code 3
            w[1 + CW.MODE] |= 3 << 6
        words += w
    words.append(HALT)
    for _ in range(draw(mostly(st.just(0), st.integers(1, 3), 2))):  # raw word damage
        i = draw(st.integers(0, len(words) - 1))
        words[i] = draw(st.integers(0, 0xFFFFFFFF))
    return words


def check_program(be, prog, max_cycles):
    full = prog + [0] * (CFG.prog_depth - len(prog))
    be.clear()
    be.write(buffer_base(2), SENTINEL)
    be.write(PROG_BASE, full)
    try:
        st_ = be.run(max_cycles)
        err, err_pc = st_.error, st_.err_pc
        assert st_.status & (Status.DONE | Status.ERROR), hex(st_.status)
    except RunTimeout:
        err, err_pc = ErrorCode.ABORTED, None
    status = be.read_reg(Reg.STATUS)
    assert not status & Status.BUSY
    c = be.counters()
    assert c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                           + c["stall_drain"]), c
    stop = err_pc if err not in (ErrorCode.NONE, ErrorCode.ABORTED) else None
    regions = executed_regions(full, stop)
    got = [w & 0xFFFF for w in be.read(buffer_base(2), len(SENTINEL))]
    lanes = CFG.c_lanes
    for row in range(CFG.bank_depth):
        if any(lo <= row <= hi for lo, hi in regions):
            continue
        assert got[row * lanes:(row + 1) * lanes] == SENTINEL[row * lanes:(row + 1) * lanes], \
            f"C row {row} written outside the output regions {regions} (error {err!r})"


@pytest.fixture(scope="module", params=["verilator", "cxxrtl", "pysim"])
def be(request):
    from fetta.sim.backends.base import get_backend
    b = get_backend(request.param, CONFIG)
    yield b
    b.close()


def test_fuzz_programs(be):
    if be.name == "pysim":
        tier(6)(given(prog=programs())(lambda prog: check_program(be, prog, 2_000)))()
    else:
        tier()(given(prog=programs())(lambda prog: check_program(be, prog, 20_000)))()


@pytest.mark.slow
def test_fuzz_programs_slow(be):
    """Slow tier: 10,000 random programs per compiled backend."""
    if be.name == "pysim":
        pytest.skip("pysim: default-tier examples only (a run is ~1,000x slower)")
    tier(slow=True)(given(prog=programs())(lambda prog: check_program(be, prog, 20_000)))()
