"""Board tops: the accelerator (or a bring-up memory) behind the UART bridge, status
LEDs, and a PLL where the board's oscillator is slower than the requested clock.

* ``BusMemory``: a word memory speaking the host-bus protocol; the ``memory`` design
  of ``fetta synth`` puts it on a board to bring up the UART link alone.
* ``LinkTop``: bridge + bus target, no platform: what pysim tests and board tops share.
* ``BoardTop``: ``LinkTop`` plus clocking, pins and LEDs for one ``boards.platforms`` board.
"""

import math

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fetta.rtl.host_bus import HostBusSignature
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import DATA_BITS, READ_LATENCY

from .bridge import UARTBridge
from .uart import divisor_for

__all__ = ["BusMemory", "LinkTop", "BoardTop", "make_target", "DESIGNS"]

DESIGNS = ("accelerator", "memory")


class BusMemory(wiring.Component):
    """A ``depth``-word, 32-bit memory on the host bus (the address wraps modulo
    ``depth``). ``rvalid`` comes exactly ``READ_LATENCY`` cycles after ``read``; one
    strobe per cycle, never stalls. ``busy``/``done``/``error`` are constant 0 so it
    drops into the accelerator's place.

    Members: ``bus: In(HostBusSignature())``, ``busy``, ``done``, ``error``: ``Out(1)``.
    """

    bus: In(HostBusSignature())
    busy: Out(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, depth: int = 256):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2 or \
                depth & (depth - 1):
            raise ValueError(f"BusMemory depth {depth!r} invalid; allowed a power of two "
                             f">= 2")
        self.depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=DATA_BITS, depth=self.depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))
        abits = (self.depth - 1).bit_length()
        m.d.comb += [wr.addr.eq(self.bus.addr[:abits]), wr.data.eq(self.bus.wdata),
                     wr.en.eq(self.bus.write), rd.addr.eq(self.bus.addr[:abits])]
        # the read port gives one cycle; pad the data and the valid to READ_LATENCY
        valid = Signal(READ_LATENCY)
        m.d.sync += valid.eq(Cat(self.bus.read, valid[:-1]))
        data = rd.data
        for _ in range(READ_LATENCY - 1):
            stage = Signal(DATA_BITS)
            m.d.sync += stage.eq(data)
            data = stage
        m.d.comb += [self.bus.rdata.eq(data), self.bus.rvalid.eq(valid[-1])]
        return m


def make_target(design: str, config=None):
    """The bus target of a board top: the accelerator for ``config`` or a BusMemory."""
    if design == "memory":
        return BusMemory(256)
    if design == "accelerator":
        try:
            from fetta.rtl.top import Accelerator
        except ImportError as exc:
            raise ValueError(f"design 'accelerator' needs rtl/top.py (Accelerator), which "
                             f"is not importable here ({exc}); use design 'memory' for a "
                             f"UART-link bring-up build") from None
        return Accelerator(get_config(config if config is not None else "tiny"))
    raise ValueError(f"design {design!r} unknown; allowed {', '.join(DESIGNS)}")


class LinkTop(wiring.Component):
    """The UART bridge mastering a bus target (``target.bus``), no clocking or pins.

    Members:
        rx, tx:       serial pins (host TX -> ``rx``; ``tx`` -> host RX).
        busy, done, error: the target's status (0 if it has none).
        rx_activity, tx_activity, frame_ok, frame_error: bridge status strobes.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)
    done: Out(1)
    error: Out(1)
    rx_activity: Out(1)
    tx_activity: Out(1)
    frame_ok: Out(1)
    frame_error: Out(1)

    def __init__(self, target, *, divisor: int, timeout: int | None = None,
                 max_burst: int = 256, bus_timeout: int = 64):
        self.target = target
        self.bridge = UARTBridge(divisor, max_burst=max_burst, timeout=timeout,
                                 bus_timeout=bus_timeout)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.submodules.target = target = self.target
        wiring.connect(m, bridge.bus, target.bus)
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]
        for name in ("rx_activity", "tx_activity", "frame_ok", "frame_error"):
            m.d.comb += getattr(self, name).eq(getattr(bridge, name))
        for name in ("busy", "done", "error"):
            if hasattr(target, name):
                m.d.comb += getattr(self, name).eq(getattr(target, name))
        return m


class _Stretch(Elaboratable):
    """Holds ``o`` high after a strobe on ``i`` until ``ticks`` more strobes on ``tick``
    (2..``ticks`` tick periods: visible LED blinks from a shared slow tick, so each LED
    costs a 2-bit counter rather than a counter of its own)."""

    def __init__(self, ticks: int = 3):
        self.ticks = ticks
        self.i = Signal()
        self.tick = Signal()
        self.o = Signal()

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.ticks + 1))
        with m.If(self.i):
            m.d.sync += count.eq(self.ticks)
        with m.Elif(self.tick & (count != 0)):
            m.d.sync += count.eq(count - 1)
        m.d.comb += self.o.eq(count != 0)
        return m


class BoardTop(Elaboratable):
    """A complete board design for a ``boards.platforms`` platform.

    Clock: ``sys_clk_hz`` (default: the board's own oscillator, or its PLL target from
    ``boards.platforms.BOARDS``). Reset is held until the PLL locks.

    LEDs (as many as the board has, in this order): heartbeat (~1.5 Hz, the clock
    runs), busy, done, error, UART rx, UART tx, frame rejected (NAK), PLL lock. The
    iCEBreaker's two: green = heartbeat/busy, red = error or NAK.
    """

    def __init__(self, board: str, *, config=None, design: str = "accelerator",
                 baud: int = 115200, sys_clk_hz: float | None = None):
        from .platforms import board_info
        self.info = board_info(board)
        self.board = board
        self.config = config
        self.design = design
        self.baud = baud
        self.sys_clk_hz = float(sys_clk_hz or self.info["sys_clk_hz"])
        self.divisor = divisor_for(self.sys_clk_hz, baud)
        self.target = make_target(design, config)

    def elaborate(self, platform):
        from .platforms import add_sync_clock
        m = Module()
        locked = add_sync_clock(m, platform, self.info, self.sys_clk_hz)

        link = LinkTop(self.target, divisor=self.divisor,
                       timeout=int(self.sys_clk_hz * 0.02))
        m.submodules.link = link

        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]

        heartbeat = Signal(range(int(self.sys_clk_hz)))
        m.d.sync += heartbeat.eq(heartbeat + 1)
        # LED blinks of ~50 ms: 3 ticks of ~20 ms from the heartbeat counter (a tick
        # when its bit ``tb`` falls, every 2**(tb+1) cycles)
        tb = max(0, round(math.log2(self.sys_clk_hz * 0.02)) - 1)
        tb_last = Signal()
        tick = Signal()
        m.d.sync += tb_last.eq(heartbeat[tb])
        m.d.comb += tick.eq(tb_last & ~heartbeat[tb])
        stretch = {}
        for name in ("rx_activity", "tx_activity", "frame_error"):
            s = stretch[name] = _Stretch(3)
            m.submodules[f"stretch_{name}"] = s
            m.d.comb += [s.i.eq(getattr(link, name)), s.tick.eq(tick)]
        beat = heartbeat[-1]

        if self.info["leds"] == "rg":
            m.d.comb += [platform.request("led_g", 0).o.eq(beat ^ link.busy),
                         platform.request("led_r", 0).o.eq(
                             link.error | stretch["frame_error"].o)]
        else:
            values = [beat, link.busy, link.done, link.error, stretch["rx_activity"].o,
                      stretch["tx_activity"].o, stretch["frame_error"].o, locked]
            for i, value in enumerate(values[:self.info["leds"]]):
                m.d.comb += platform.request("led", i).o.eq(value)
        return m
