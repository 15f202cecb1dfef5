"""Fuzzing the UART bridge's frame layer (``FrameBridge`` + a bus memory, byte level)
on every simulator, through ``BridgeBench`` (``tests/boards/bridge_bench.py``: the
bridge clocked only while a script of bytes plays, one persistent simulation): random
noise (never a start-of-frame byte, so no frame can hide in it) followed by a WRITE
frame with 1-3 flipped bits or cut short. Properties: the corrupted write never
reaches the memory (the bridge issues no bus write; CRC-16/CCITT detects every error
of up to 3 bits), every byte the bridge sends is part of a well-formed response (at
most a NAK), the bridge answers within its timeout (no hang: the next frame starts
``TIMEOUT + 100`` cycles later), and a valid READ then reads the old word back (the
link recovers).

Examples: ``DEFAULT`` (300) and, under ``-m slow``, ``SLOW`` (10,000) on each of
Verilator, CXXRTL and pysim (an exchange is clocked inside the simulator, with no
per-cycle Python: about 2 ms per example on the compiled backends, 60 ms on pysim)."""

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_tiers import tier  # noqa: E402
from bridge_bench import BenchReg, BridgeBench, PysimBus, exchange  # noqa: E402

from fetta.boards import protocol as P  # noqa: E402
from fetta.sw_model.accel.hostmap import REG_BASE  # noqa: E402

GAP = 9              # cycles between received bytes (the bridge needs >= 9)
TIMEOUT = 40         # the bridge's mid-frame timeout, cycles


def bridge_bench(_config=None):
    """The design under test: a 4-word-burst bridge with a 40-cycle timeout on a
    64-word memory."""
    return BridgeBench(max_burst=4, timeout=TIMEOUT, target_depth=64)


@pytest.fixture(scope="module", params=["verilator", "cxxrtl", "pysim"])
def bench(request):
    if request.param == "pysim":
        b = PysimBus(bridge_bench())
    else:
        from fetta.sim.backends.base import get_backend
        b = get_backend(request.param, "tiny", top_factory=bridge_bench)
    yield b
    b.close()


def _responses(raw):
    p = P.ResponseParser()
    p.feed(raw)
    out = []
    while (r := p.pop()) is not None:
        out.append(r)
    assert p.bad_frames == 0, raw.hex()
    return out


def _writes(bench):
    return bench.read(REG_BASE + BenchReg.WRITES, 1)[0]


def _read_word(bench, addr, seq):
    rsp = _responses(exchange(bench, P.encode_request(P.Cmd.READ, seq & 0xFF, addr,
                                                      count=1), GAP, 200))
    assert [(r.kind, r.seq) for r in rsp] == [(P.Rsp.DATA, seq & 0xFF)], rsp
    return rsp[0].words[0]


def test_bench_sees_a_write(bench):
    """The observers can fail: a valid WRITE is ACKed, counted and read back (then the
    word is written back to its power-on zero, which the fuzzing below expects)."""
    writes = _writes(bench)
    for seq, word in ((0x31, 0xDEADBEEF), (0x32, 0)):
        rsp = _responses(exchange(bench, P.encode_request(P.Cmd.WRITE, seq, 9, [word]),
                                  GAP, 200))
        assert [(r.kind, r.seq) for r in rsp] == [(P.Rsp.ACK, seq)], rsp
        assert _read_word(bench, 9, seq + 0x10) == word
    assert _writes(bench) == writes + 2


def check_corrupted_write(bench, noise, addr, word, flips, cut, seq):
    noise = bytes(b for b in noise if b != P.SOF_REQ)
    frame = bytearray(P.encode_request(P.Cmd.WRITE, (seq + 1) & 0xFF, addr, [word]))
    for bit in flips:
        frame[bit // 8 % len(frame)] ^= 1 << (bit % 8)
    if cut:
        frame = frame[:cut % len(frame)]
    writes = _writes(bench)
    # corrupted: at most a NAK or nothing (the mid-frame timeout drops a cut frame)
    rsp = _responses(exchange(bench, noise + bytes(frame), GAP, TIMEOUT + 100))
    assert all(r.kind == P.Rsp.NAK for r in rsp), rsp
    assert _writes(bench) == writes, "a corrupted WRITE reached the bus"
    # nothing ever writes validly here: the memory holds its power-on zeros
    assert _read_word(bench, addr, seq + 2) == 0, "a corrupted WRITE reached the memory"


args = dict(noise=st.binary(max_size=12), addr=st.integers(0, 63),
            word=st.integers(0, 0xFFFFFFFF),
            flips=st.lists(st.integers(0, 8 * 13 - 1), min_size=1, max_size=3, unique=True),
            cut=st.integers(0, 12), seq=st.integers(0, 255))


def test_fuzz_bridge_frames(bench):
    tier()(given(**args)(lambda **kw: check_corrupted_write(bench, **kw)))()


@pytest.mark.slow
def test_fuzz_bridge_frames_slow(bench):
    """Slow tier: 10,000 corrupted frames per backend."""
    tier(slow=True)(given(**args)(lambda **kw: check_corrupted_write(bench, **kw)))()
