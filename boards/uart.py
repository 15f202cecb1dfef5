"""An 8N1 UART: receiver and transmitter, one clock domain, a fixed clock divisor.

``divisor`` is clock cycles per bit (``round(clk_hz / baud)``); 4 is the least that
lets the receiver sample mid-bit and is what the pysim tests use to stay fast.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for", "MIN_DIVISOR"]

MIN_DIVISOR = 4


def _check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor {divisor!r} invalid; allowed integers >= "
                         f"{MIN_DIVISOR} (clock cycles per bit)")


def divisor_for(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; rejects a rate error over 2 %."""
    div = round(clk_hz / baud)
    _check_divisor(div)
    err = abs(clk_hz / div - baud) / baud
    if err > 0.02:
        raise ValueError(f"baud {baud} at {clk_hz / 1e6:g} MHz has a {100 * err:.1f} % "
                         f"rate error; allowed <= 2 % (pick another baud or clock)")
    return div


class UARTRx(wiring.Component):
    """8N1 receiver.

    The line goes through a two-flop synchroniser; a start bit is accepted if it is still
    low half a bit later, each data bit is sampled in the middle of its bit time. A byte
    appears on ``data`` with a one-cycle ``valid`` pulse about 9.5 bit times after the
    start edge (plus 2 cycles of synchroniser). A low stop bit drops the byte, pulses
    ``frame_error`` and waits for the line to go idle (high).

    Members:
        line:        the serial input pin (idle high).
        data:        the received byte.
        valid:       one-cycle strobe: ``data`` holds a new byte. There is no back
                     pressure: the consumer must take it in that cycle.
        frame_error: one-cycle strobe: a byte with a low stop bit was dropped.
    """

    line: In(1, init=1)
    data: Out(8)
    valid: Out(1)
    frame_error: Out(1)

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        sync0 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync0.eq(self.line), line.eq(sync0)]

        # one down-counter for the half bit (start) and the whole bits; ``shreg`` is
        # loaded with a marker bit that reaches bit 0 after the 8 data bits, so no bit
        # counter is needed (data = shreg[1:9])
        timer = Signal(range(div))
        tick = timer == 0
        shreg = Signal(9, reset_less=True)
        idle = Signal()
        with m.If(idle):
            m.d.sync += timer.eq(div // 2 - 1)
        with m.Elif(tick):
            m.d.sync += timer.eq(div - 1)
        with m.Else():
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(~line):
                    m.next = "START"
            with m.State("START"):
                with m.If(tick):
                    m.d.sync += shreg.eq(1 << 8)
                    with m.If(line):
                        m.next = "IDLE"             # a glitch, not a start bit
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    with m.If(~shreg[0]):
                        m.d.sync += shreg.eq(Cat(shreg[1:], line))
                    with m.Elif(line):              # the stop bit
                        m.d.comb += self.valid.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.frame_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        m.d.comb += self.data.eq(shreg[1:9])
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter with a stream input.

    A byte is accepted when ``bytes.valid & bytes.ready``; its start bit starts on the
    next tick of the free-running bit timer (within ``divisor`` cycles), each bit lasts
    exactly ``divisor`` cycles, and ``ready`` returns as the stop bit goes on the line
    (a byte accepted then starts after a full stop bit).

    Members:
        bytes: stream of bytes to send (``payload``, ``valid``, ``ready``).
        line:  the serial output pin (idle high).
        busy:  start or data bits of a byte are being shifted out.
    """

    bytes: In(stream.Signature(8))
    line: Out(1, init=1)
    busy: Out(1)

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        # a free-running bit timer; the line register changes only on its ticks, so
        # every bit (the start bit too) lasts exactly ``div`` cycles
        timer = Signal(range(div))
        tick = timer == 0
        with m.If(tick):
            m.d.sync += timer.eq(div - 1)
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        # start, data[7:0], stop; shifted out LSB first with zero fill: empty (0) once
        # the stop bit is on the line
        shreg = Signal(10)
        line = Signal(init=1)
        empty = shreg == 0
        m.d.comb += [self.line.eq(line), self.busy.eq(~empty), self.bytes.ready.eq(empty)]
        with m.If(empty):
            with m.If(self.bytes.valid):
                m.d.sync += shreg.eq(Cat(C(0, 1), self.bytes.payload, C(1, 1)))
        with m.Elif(tick):
            m.d.sync += [line.eq(shreg[0]), shreg.eq(shreg >> 1)]
        return m
