"""The UART link in pysim: bridge + bus target driven bit by bit on the rx pin by a
Python UART model, responses decoded from the tx pin (``boards.host_driver.PysimUART``).

Clock divisor 4 (4 cycles per bit) keeps the simulation fast."""

import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from fetta.boards import protocol as P
from fetta.boards.bridge import FrameBridge, UARTBridge
from fetta.boards.host_driver import Link, PysimUART
from fetta.sim.backends.board import BoardBackend
from fetta.boards.top import BusMemory, LinkTop
from fetta.boards.uart import UARTRx, divisor_for
from fetta.rtl.host_bus import HostBusSignature
from fetta.errors import FettaError

DIV = 4
TIMEOUT = 400          # bridge mid-frame timeout, cycles (10 byte times)


def make_link(target=None, max_burst=16, timeout=TIMEOUT):
    top = LinkTop(target if target is not None else BusMemory(64), divisor=DIV,
                  timeout=timeout, max_burst=max_burst)
    return PysimUART(top)


def exchange(uart, frame, wait_bytes=None, timeout_cycles=4000):
    """Send raw bytes, return the first decoded response (or None)."""
    uart.send(frame)
    parser = P.ResponseParser()
    end = uart.cycles + timeout_cycles
    while uart.cycles < end:
        parser.feed(uart.recv((end - uart.cycles) / uart.clk_hz))
        rsp = parser.pop()
        if rsp is not None:
            return rsp
    return None



def read_via_link(uart, addr, n):
    rsp = exchange(uart, P.encode_request(P.Cmd.READ, 200, addr, count=n))
    assert rsp.kind == P.Rsp.DATA, rsp
    return rsp.words


def test_write_then_read_burst():
    uart = make_link()
    words = [0x01020304, 0xFFFFFFFF, 0, 0x80000000, 7]
    rsp = exchange(uart, P.encode_request(P.Cmd.WRITE, 1, 10, words))
    assert (rsp.kind, rsp.seq) == (P.Rsp.ACK, 1)
    assert read_via_link(uart, 9, 7) == [0] + words + [0]


def test_ping_reports_max_burst():
    uart = make_link(max_burst=16)
    rsp = exchange(uart, P.encode_request(P.Cmd.PING, 5))
    assert rsp.kind == P.Rsp.DATA and P.parse_info(rsp.words[0])["max_burst"] == 16


@pytest.mark.parametrize("where", ["header", "payload", "crc"])
def test_corrupted_write_is_nakked_and_not_written(where):
    uart = make_link()
    frame = bytearray(P.encode_request(P.Cmd.WRITE, 1, 4, [0x11111111, 0x22222222]))
    pos = {"header": 6, "payload": 9, "crc": len(frame) - 1}[where]
    frame[pos] ^= 0x10
    rsp = exchange(uart, bytes(frame))
    if where == "header":
        # the address byte was hit: same length, CRC fails
        assert (rsp.kind, rsp.arg) == (P.Rsp.NAK, P.Nak.CRC)
    else:
        assert (rsp.kind, rsp.arg) == (P.Rsp.NAK, P.Nak.CRC)
    assert read_via_link(uart, 0, 16) == [0] * 16


def test_corrupted_length_field_times_out_not_hangs():
    uart = make_link()
    frame = bytearray(P.encode_request(P.Cmd.WRITE, 1, 0, [0x33333333]))
    frame[3] = 9                   # claims 10 words, carries 1: waits, then times out
    rsp = exchange(uart, bytes(frame), timeout_cycles=8000)
    assert (rsp.kind, rsp.arg) == (P.Rsp.NAK, P.Nak.TIMEOUT)
    assert read_via_link(uart, 0, 4) == [0] * 4


def test_truncated_frame_times_out_then_link_recovers():
    uart = make_link()
    frame = P.encode_request(P.Cmd.WRITE, 1, 0, [0x44444444, 0x55555555])
    rsp = exchange(uart, frame[:9], timeout_cycles=8000)
    assert (rsp.kind, rsp.arg) == (P.Rsp.NAK, P.Nak.TIMEOUT)
    assert read_via_link(uart, 0, 2) == [0, 0]
    assert exchange(uart, frame).kind == P.Rsp.ACK
    assert read_via_link(uart, 0, 2) == [0x44444444, 0x55555555]


def test_noise_before_sof_is_ignored():
    uart = make_link()
    rsp = exchange(uart, b"\x00\x13\xff" + P.encode_request(P.Cmd.WRITE, 2, 1, [9]))
    assert rsp.kind == P.Rsp.ACK and read_via_link(uart, 1, 1) == [9]


def test_unknown_command_and_too_long_burst_are_nakked():
    uart = make_link(max_burst=4)
    body = bytes([0x99, 3, 0, 0, 0, 0])
    frame = bytes([P.SOF_REQ]) + body + P.crc16(body).to_bytes(2, "big")
    assert (exchange(uart, frame).arg) == P.Nak.BAD_CMD
    rsp = exchange(uart, P.encode_request(P.Cmd.WRITE, 4, 0, [1, 2, 3, 4, 5]))
    assert (rsp.kind, rsp.arg) == (P.Rsp.NAK, P.Nak.BAD_LEN)
    rsp = exchange(uart, P.encode_request(P.Cmd.READ, 5, 0, count=5))
    assert (rsp.kind, rsp.arg) == (P.Rsp.NAK, P.Nak.BAD_LEN)
    assert read_via_link(uart, 0, 4) == [0] * 4


def test_duplicate_write_is_acked_but_not_executed():
    uart = make_link()
    assert exchange(uart, P.encode_request(P.Cmd.WRITE, 7, 3, [0xA])).kind == P.Rsp.ACK
    # a retry of seq 7 (its ACK was "lost") must not write again
    assert exchange(uart, P.encode_request(P.Cmd.WRITE, 7, 3, [0xB])).kind == P.Rsp.ACK
    assert read_via_link(uart, 3, 1) == [0xA]
    # PING clears the filter
    exchange(uart, P.encode_request(P.Cmd.PING, 8))
    assert exchange(uart, P.encode_request(P.Cmd.WRITE, 7, 3, [0xC])).kind == P.Rsp.ACK
    assert read_via_link(uart, 3, 1) == [0xC]


class _DeadTarget(wiring.Component):
    """Never answers a read."""
    bus: In(HostBusSignature())

    def elaborate(self, platform):
        from amaranth import Module
        return Module()


def test_silent_bus_target_gives_nak_bus():
    uart = make_link(target=_DeadTarget())
    rsp = exchange(uart, P.encode_request(P.Cmd.READ, 1, 0, count=2))
    assert (rsp.kind, rsp.arg) == (P.Rsp.NAK, P.Nak.BUS)


def test_link_retries_after_corruption():
    uart = make_link()
    link = Link(uart, retries=3, margin_s=2e-3, resync_s=1e-3)
    link.ping()
    hits = {"n": 0}

    def corrupt_first_two(data):
        hits["n"] += 1
        if hits["n"] <= 2:
            data = bytearray(data)
            data[-3] ^= 0x01
            if hits["n"] == 2:
                data = data[:5]               # and a truncated one
        return bytes(data)

    uart.corrupt = corrupt_first_two
    link.write(0, list(range(1, 21)))          # 16 + 4 words: two frames
    uart.corrupt = None
    assert link.read(0, 20) == list(range(1, 21))
    st = link.stats.as_dict()
    assert st["retries"] == 2 and st["naks"] == {"CRC": 1, "TIMEOUT": 1}


def test_link_gives_up_with_a_clear_error():
    uart = make_link()
    link = Link(uart, retries=2, margin_s=2e-3, resync_s=1e-3)
    link.ping()
    uart.corrupt = lambda data: data[:4]
    start = uart.cycles
    with pytest.raises(FettaError, match=r"write of 1 words at 0x000000 failed after 3 "
                                         r"attempts \(last: NAK TIMEOUT\)"):
        link.write(0, [1])
    assert uart.cycles - start < 50_000


def test_no_bridge_is_a_clear_error():
    uart = make_link()
    uart.corrupt = lambda data: b""                 # a dead line
    with pytest.raises(FettaError, match="no fetta bridge answered"):
        BoardBackend("tiny", transport=uart, retries=1, check_id=False)


def test_uart_rx_drops_a_byte_with_a_low_stop_bit():
    from amaranth.sim import Simulator
    rx = UARTRx(DIV)
    got, errors = [], []

    async def bench(ctx):
        for byte, stop in ((0x5A, 1), (0xC3, 0), (0x81, 1)):
            for bit in (0, *((byte >> i) & 1 for i in range(8)), stop):
                ctx.set(rx.line, bit)
                for _ in range(DIV):
                    await ctx.tick()
                    if ctx.get(rx.valid):
                        got.append(ctx.get(rx.data))
                    if ctx.get(rx.frame_error):
                        errors.append(1)
            ctx.set(rx.line, 1)
            for _ in range(3 * DIV):
                await ctx.tick()
                if ctx.get(rx.valid):
                    got.append(ctx.get(rx.data))

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0x5A, 0x81] and errors == [1]


def test_divisor_checks():
    assert divisor_for(12e6, 115200) == 104
    with pytest.raises(ValueError, match="rate error"):
        divisor_for(1e6, 230400)
    with pytest.raises(ValueError, match="divisor"):
        UARTBridge(2)
    with pytest.raises(ValueError, match="max_burst"):
        FrameBridge(max_burst=300)


def test_missing_port_and_pyserial_are_clear_errors(monkeypatch, tmp_path):
    from fetta.sim.backends.base import get_backend
    with pytest.raises(FettaError, match="needs a serial port"):
        get_backend("board", "tiny")
    with pytest.raises(FettaError, match=r"cannot open serial port .*no-such-tty at 115200"):
        get_backend("board", "tiny", port=str(tmp_path / "no-such-tty"))
    import builtins
    real_import = builtins.__import__

    def no_serial(name, *a, **kw):
        if name == "serial":
            raise ImportError(name)
        return real_import(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_serial)
    with pytest.raises(FettaError, match=r"needs pyserial: pip install"):
        BoardBackend("tiny", port="/dev/ttyUSB1")


def test_serial_transport_over_a_pty():
    """BoardBackend through real pyserial, against a software bridge on a pty."""
    import os
    import threading
    pytest.importorskip("serial")
    master, slave = os.openpty()
    mem = {}
    stop = threading.Event()

    def software_bridge():
        buf = bytearray()
        while not stop.is_set():
            import select
            if not select.select([master], [], [], 0.05)[0]:
                continue
            buf += os.read(master, 4096)
            while True:
                start = buf.find(P.SOF_REQ)
                if start < 0 or len(buf) - start < P.REQ_HEADER_BYTES:
                    break
                del buf[:start]
                n = buf[3] + 1
                length = P.REQ_HEADER_BYTES + (4 * n if buf[1] == P.Cmd.WRITE else 0) + 2
                if len(buf) < length:
                    break
                req = P.decode_request(bytes(buf[:length]))
                del buf[:length]
                if req.cmd == P.Cmd.PING:
                    rsp = P.encode_response(P.Rsp.DATA, req.seq, 0, [P.info_word(8)])
                elif req.cmd == P.Cmd.WRITE:
                    for i, w in enumerate(req.words):
                        mem[req.addr + i] = w
                    rsp = P.encode_response(P.Rsp.ACK, req.seq)
                else:
                    words = [mem.get(req.addr + i, 0) for i in range(req.count)]
                    rsp = P.encode_response(P.Rsp.DATA, req.seq, req.count - 1, words)
                os.write(master, rsp)

    th = threading.Thread(target=software_bridge, daemon=True)
    th.start()
    try:
        be = BoardBackend("tiny", port=os.ttyname(slave), baud=115200, check_id=False)
        assert be.info["max_burst"] == 8
        be.write(0x100, list(range(20)))            # three frames of <= 8 words
        assert be.read(0x100, 20) == list(range(20))
        assert be.stats["frames"] == 1 + 3 + 3 and be.stats["retries"] == 0
        be.close()
    finally:
        stop.set()
        th.join()
        os.close(master)
        os.close(slave)


def test_await_with_a_deadline_one_ulp_ahead_returns():
    """A response deadline within one float ulp of the simulated time used to spin
    forever (a 0-femtosecond receive returned without advancing time)."""
    import math
    import signal

    uart = make_link()
    link = Link(uart)
    uart.idle(0.0123)                       # simulated time far from 0
    deadline = math.nextafter(uart.now(), math.inf)
    assert int((deadline - uart.now()) * 1e15) == 0

    def hang(*_):
        raise AssertionError("Link._await did not return (hang)")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    try:
        assert link._await(1, deadline) is None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
