"""The host side of the UART link: byte transports and the framed transactions of
``boards/protocol.py`` that ``fetta.sim.backends.board.BoardBackend`` drives a board
(or a simulated board) with.

Layers:

* a *transport* moves bytes: ``SerialTransport`` (pyserial, a real board) or
  ``PysimUART`` (Amaranth's simulator running a ``boards.top.LinkTop``, bit by bit on
  its ``rx``/``tx`` pins). Both keep their own clock: wall time for a board, simulated
  time for pysim, so every timeout below means the same thing on both.
* ``Link`` runs transactions: splits bursts into frames of at most ``max_burst``
  words, checks response CRCs, retries on NAK/garbled/missing responses, and raises a
  one-line ``FettaError`` when a frame fails ``retries + 1`` times. It never waits
  without a deadline.
* ``fetta.sim.backends.board.BoardBackend`` is the harness API on top
  (``backend="board", port=...``).
"""

from __future__ import annotations

import collections
import math
import time
from typing import Sequence

from fetta.errors import FettaError

from . import protocol as P

__all__ = ["SerialTransport", "PysimUART", "Link", "LinkStats"]


class SerialTransport:
    """Bytes over a serial port (pyserial)."""

    def __init__(self, port: str, baud: int = 115200):
        try:
            import serial
        except ImportError:
            raise FettaError("the board backend needs pyserial: pip install "
                             "'fetta-hdl[board]' (or pip install pyserial)") from None
        if not port:
            raise FettaError("the board backend needs a serial port, e.g. "
                             "port='/dev/ttyUSB1' (iCEBreaker: the second FTDI channel)")
        try:
            self._ser = serial.Serial(port, baud, timeout=0)
        except (serial.SerialException, OSError) as exc:
            raise FettaError(f"cannot open serial port {port} at {baud} baud: "
                             f"{str(exc).splitlines()[0]}") from None
        self.baud = baud
        self.name = port

    def now(self) -> float:
        return time.monotonic()

    def send(self, data: bytes) -> None:
        self._ser.write(data)
        self._ser.flush()

    def recv(self, timeout_s: float) -> bytes:
        """Whatever arrives within ``timeout_s`` (returns as soon as any byte is there)."""
        self._ser.timeout = max(0.0, timeout_s)
        first = self._ser.read(1)
        if not first:
            return b""
        return first + self._ser.read(self._ser.in_waiting)

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def flush_input(self) -> None:
        self._ser.reset_input_buffer()

    def close(self) -> None:
        self._ser.close()


class PysimUART:
    """A simulated board: Amaranth's simulator running ``top`` (a ``LinkTop``: members
    ``rx``/``tx``), with a bit-level 8N1 model on both pins.

    ``clk_hz`` only scales simulated time into seconds (the baud rate is
    ``clk_hz / top.bridge.divisor``). ``corrupt`` is a hook ``f(bytes) -> bytes``
    applied to each ``send`` (tests inject bit flips and truncation through it)."""

    def __init__(self, top, *, clk_hz: float = 1e6, vcd_path: str | None = None):
        from amaranth.sim import Simulator

        self.top = top
        self.divisor = top.bridge.divisor
        self.clk_hz = clk_hz
        self.baud = clk_hz / self.divisor
        self.name = "pysim"
        self.corrupt = None
        self._to_dut = collections.deque()
        self._from_dut = bytearray()
        self.framing_errors = 0
        self._time_fs = 0
        self._period_fs = round(1e15 / clk_hz)

        self.sim = sim = Simulator(top)
        sim.add_clock(1 / clk_hz)
        sim.add_testbench(self._drive_rx, background=True)
        sim.add_testbench(self._decode_tx, background=True)
        self._vcd = None
        if vcd_path:
            self._vcd = sim.write_vcd(vcd_path)
            self._vcd.__enter__()

    # ``trigger.repeat()`` keeps an async generator open, which Python cannot close
    # cleanly when the simulator is dropped mid-wait; one-shot triggers (a single tick,
    # a delay, an edge) have no such state.
    async def _ticks(self, ctx, n):
        for _ in range(n):
            await ctx.tick()

    async def _drive_rx(self, ctx):
        div = self.divisor
        while True:
            if not self._to_dut:
                await ctx.delay(div * 10 / self.clk_hz)     # poll once per byte time
                continue
            byte = self._to_dut.popleft()
            for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                ctx.set(self.top.rx, bit)
                await ctx.delay(div / self.clk_hz)

    async def _decode_tx(self, ctx):
        div = self.divisor
        while True:
            await ctx.negedge(self.top.tx)
            await self._ticks(ctx, div // 2)
            if ctx.get(self.top.tx):
                continue                      # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await self._ticks(ctx, div)
                byte |= ctx.get(self.top.tx) << i
            await self._ticks(ctx, div)
            if ctx.get(self.top.tx):
                self._from_dut.append(byte)
            else:
                self.framing_errors += 1

    @property
    def cycles(self) -> int:
        return self._time_fs // self._period_fs

    def now(self) -> float:
        return self._time_fs / 1e15

    def _advance(self, cycles: int) -> None:
        self._time_fs += cycles * self._period_fs
        self.sim.run_until(self._time_fs / 1e15)

    def send(self, data: bytes) -> None:
        if self.corrupt is not None:
            data = self.corrupt(bytes(data))
        self._to_dut.extend(data)

    def recv(self, timeout_s: float) -> bytes:
        """Bytes received within ``timeout_s`` of simulated time. Time is kept in
        integer femtoseconds and always advances by at least one byte time when
        nothing has arrived (a deadline below one femtosecond cannot stall a caller
        that loops until its deadline)."""
        deadline = self._time_fs + max(1, math.ceil(timeout_s * 1e15))
        step = self.divisor * 10
        while not self._from_dut and self._time_fs < deadline:
            self._advance(step)
        data = bytes(self._from_dut)
        self._from_dut.clear()
        return data

    def idle(self, seconds: float) -> None:
        self._advance(max(1, int(seconds * self.clk_hz)))

    def flush_input(self) -> None:
        self._from_dut.clear()

    def close(self) -> None:
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None


class LinkStats:
    """Counts of what happened on the link (for tests and ``--json`` reports)."""

    def __init__(self):
        self.frames = 0
        self.retries = 0
        self.naks = collections.Counter()
        self.timeouts = 0
        self.bad_responses = 0
        self.bytes_sent = 0

    def as_dict(self) -> dict:
        return {"frames": self.frames, "retries": self.retries,
                "naks": {P.Nak(k).name if k in P.Nak._value2member_map_ else str(k): v
                         for k, v in self.naks.items()},
                "timeouts": self.timeouts, "bad_responses": self.bad_responses,
                "bytes_sent": self.bytes_sent}


class Link:
    """Framed, retried transactions over a transport.

    Parameters:
        retries:      extra attempts per frame after a NAK, a garbled or a missing
                      response.
        margin_s:     added to the line time of request + response to get a
                      response deadline (covers USB latency on a board; in pysim,
                      bridge execution time).
        resync_s:     quiet time before a retry: longer than the bridge's mid-frame
                      timeout, so it has dropped any half frame and answered it.
    """

    def __init__(self, transport, *, retries: int = 4, margin_s: float = 0.2,
                 resync_s: float = 0.05):
        self.t = transport
        self.retries = retries
        self.margin_s = margin_s
        self.resync_s = resync_s
        self.stats = LinkStats()
        self._seq = 0
        self._last_write_seq = None
        self._parser = P.ResponseParser()
        self.max_burst = 1

    def _next_seq(self, is_write: bool) -> int:
        self._seq = (self._seq + 1) & 0xFF
        # the bridge acknowledges a WRITE carrying its last executed write's seq without
        # writing: never reuse that seq for a *new* write (after 256 transactions)
        if is_write and self._seq == self._last_write_seq:
            self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _line_time(self, n_bytes: int) -> float:
        return P.frame_time_s(n_bytes, self.t.baud)

    def _transact(self, frame: bytes, seq: int, expect: P.Rsp, rsp_words: int,
                  what: str) -> P.Response:
        deadline_s = 1.2 * self._line_time(len(frame) + 6 + 4 * rsp_words) + self.margin_s
        last = "no response"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                self.t.idle(self.resync_s)
                self.t.flush_input()
                self._parser = P.ResponseParser()
            self.stats.frames += 1
            self.stats.bytes_sent += len(frame)
            self.t.send(frame)
            rsp = self._await(seq, self.t.now() + deadline_s)
            if rsp is None:
                self.stats.timeouts += 1
                last = f"no response within {deadline_s * 1e3:.1f} ms"
                continue
            if rsp.kind == P.Rsp.NAK:
                self.stats.naks[rsp.arg] += 1
                name = P.Nak(rsp.arg).name if rsp.arg in P.Nak._value2member_map_ \
                    else str(rsp.arg)
                last = f"NAK {name}"
                if rsp.arg == P.Nak.BAD_LEN or rsp.arg == P.Nak.BAD_CMD:
                    break                     # retrying cannot help
                continue
            if rsp.kind != expect or (expect == P.Rsp.DATA and len(rsp.words) != rsp_words):
                self.stats.bad_responses += 1
                last = f"unexpected {rsp.kind.name} response ({len(rsp.words)} words)"
                continue
            return rsp
        raise FettaError(f"board link ({self.t.name}): {what} failed after "
                         f"{attempt + 1} attempts (last: {last})")

    def _await(self, seq: int, deadline: float) -> P.Response | None:
        while True:
            rsp = self._parser.pop()
            while rsp is not None:
                if rsp.seq == seq:
                    self.stats.bad_responses += self._parser.bad_frames
                    self._parser.bad_frames = 0
                    return rsp
                rsp = self._parser.pop()          # a stale answer to an earlier attempt
            before = self.t.now()
            remaining = deadline - before
            if remaining <= 0:
                return None
            data = self.t.recv(remaining)
            if data:
                self._parser.feed(data)
            elif self.t.now() <= before:
                return None                   # the transport made no progress: give up

    # -- transactions -------------------------------------------------------------
    def ping(self) -> dict:
        """Check the bridge answers; learn its max burst; reset its duplicate filter."""
        seq = self._next_seq(False)
        rsp = self._transact(P.encode_request(P.Cmd.PING, seq), seq, P.Rsp.DATA, 1,
                             "PING")
        info = P.parse_info(rsp.words[0])
        if info["version"] != P.PROTOCOL_VERSION:
            raise FettaError(f"board link ({self.t.name}): bridge speaks protocol "
                             f"version {info['version']}; this host speaks "
                             f"{P.PROTOCOL_VERSION} (rebuild the bitstream)")
        self.max_burst = info["max_burst"]
        self._last_write_seq = None
        return info

    def write(self, addr: int, words: Sequence[int]) -> None:
        words = [int(w) & 0xFFFFFFFF for w in words]
        for i in range(0, len(words), self.max_burst):
            chunk = words[i:i + self.max_burst]
            seq = self._next_seq(True)
            frame = P.encode_request(P.Cmd.WRITE, seq, addr + i, chunk)
            self._transact(frame, seq, P.Rsp.ACK, 0,
                           f"write of {len(chunk)} words at 0x{addr + i:06x}")
            self._last_write_seq = seq

    def read(self, addr: int, count: int) -> list[int]:
        out = []
        for i in range(0, count, self.max_burst):
            n = min(self.max_burst, count - i)
            seq = self._next_seq(False)
            frame = P.encode_request(P.Cmd.READ, seq, addr + i, count=n)
            rsp = self._transact(frame, seq, P.Rsp.DATA, n,
                                 f"read of {n} words at 0x{addr + i:06x}")
            out.extend(rsp.words)
        return out
