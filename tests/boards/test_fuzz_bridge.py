"""Fuzzing the UART bridge's frame layer (``FrameBridge`` + a bus memory, byte level,
one persistent pysim simulation): random noise (never a start-of-frame byte, so no
frame can hide in it) followed by a WRITE frame with 1-3 flipped bits or cut short.
Properties: the corrupted write never reaches the memory (CRC-16/CCITT detects every
error of up to 3 bits), every byte the bridge sends is part of a well-formed response,
the bridge answers within its timeout (no hang), and a valid READ right after reads the
old word back (the link recovers).

Examples: 60 in the default tier (each is ~500 simulated cycles of the bridge in
pysim), ``SLOW`` (10,000) under ``-m slow``."""

import sys
from pathlib import Path

import pytest
from amaranth import Module
from amaranth.sim import Simulator
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz_tiers import tier  # noqa: E402

from fetta.boards import protocol as P  # noqa: E402
from fetta.boards.bridge import FrameBridge  # noqa: E402
from fetta.boards.top import BusMemory  # noqa: E402

GAP = 9              # cycles between received bytes (the bridge needs >= 9)
TIMEOUT = 40         # the bridge's mid-frame timeout, cycles


class ByteBridge:
    """A FrameBridge on a 64-word BusMemory, fed bytes by a background testbench."""

    def __init__(self):
        m = Module()
        m.submodules.bridge = self.bridge = FrameBridge(max_burst=4, timeout=TIMEOUT)
        m.submodules.mem = self.mem = BusMemory(64)
        b, bus = self.bridge.bus, self.mem.bus
        m.d.comb += [bus.addr.eq(b.addr), bus.wdata.eq(b.wdata), bus.write.eq(b.write),
                     bus.read.eq(b.read), b.rdata.eq(bus.rdata), b.rvalid.eq(bus.rvalid)]
        self.sim = Simulator(m)
        self.sim.add_clock(1e-6)
        self.cmds, self.out = [], []
        self.sim.add_testbench(self._server, background=True)

    async def _server(self, ctx):
        br = self.bridge
        ctx.set(br.tx.ready, 1)
        while True:
            if not self.cmds:
                await ctx.tick()
                continue
            data, idle = self.cmds.pop(0)
            rx = bytearray()
            for byte in data:
                ctx.set(br.rx_data, byte)
                ctx.set(br.rx_valid, 1)
                for i in range(GAP):
                    await ctx.tick()
                    ctx.set(br.rx_valid, 0)
                    if ctx.get(br.tx.valid):
                        rx.append(ctx.get(br.tx.payload))
            for _ in range(idle):
                await ctx.tick()
                if ctx.get(br.tx.valid):
                    rx.append(ctx.get(br.tx.payload))
            self.out.append(bytes(rx))

    def exchange(self, data: bytes, idle: int) -> bytes:
        """Send ``data`` (GAP cycles per byte), then ``idle`` cycles; the bytes the
        bridge sent meanwhile."""
        self.cmds.append((data, idle))
        while not self.out:
            self.sim.advance()
        return self.out.pop()


@pytest.fixture(scope="module")
def bridge():
    return ByteBridge()


def _responses(raw):
    p = P.ResponseParser()
    p.feed(raw)
    out = []
    while (r := p.pop()) is not None:
        out.append(r)
    assert p.bad_frames == 0, raw.hex()
    return out


def check_corrupted_write(bridge, noise, addr, word, flips, cut, seq):
    noise = bytes(b for b in noise if b != P.SOF_REQ)
    frame = bytearray(P.encode_request(P.Cmd.WRITE, (seq + 1) & 0xFF, addr, [word]))
    for bit in flips:
        frame[bit // 8 % len(frame)] ^= 1 << (bit % 8)
    if cut:
        frame = frame[:cut % len(frame)]
    # corrupted: at most a NAK or nothing (the mid-frame timeout drops a cut frame)
    rsp = _responses(bridge.exchange(noise + bytes(frame), TIMEOUT + 100))
    assert all(r.kind == P.Rsp.NAK for r in rsp), rsp
    again = _responses(bridge.exchange(P.encode_request(P.Cmd.READ, (seq + 2) & 0xFF,
                                                        addr, count=1), 200))
    assert [r.kind for r in again] == [P.Rsp.DATA]
    # nothing ever writes validly here: the memory holds its power-on zeros
    assert again[0].words == [0], "a corrupted WRITE reached the memory"


args = dict(noise=st.binary(max_size=12), addr=st.integers(0, 63),
            word=st.integers(0, 0xFFFFFFFF),
            flips=st.lists(st.integers(0, 8 * 13 - 1), min_size=1, max_size=3, unique=True),
            cut=st.integers(0, 12), seq=st.integers(0, 255))


def test_fuzz_bridge_frames(bridge):
    tier(60)(given(**args)(lambda **kw: check_corrupted_write(bridge, **kw)))()


@pytest.mark.slow
def test_fuzz_bridge_frames_slow(bridge):
    """Slow tier: 10,000 corrupted frames (pysim; an hour or more on a loaded machine)."""
    tier(slow=True)(given(**args)(lambda **kw: check_corrupted_write(bridge, **kw)))()
