"""The UART bridge: framed requests with CRC (``boards/protocol.py``) in, host-bus
transactions out (``rtl/host_bus.py``), responses back.

``FrameBridge`` works on bytes; ``UARTBridge`` puts the UART (``boards/uart.py``) in
front of it. Both master a host bus, so they drive any target that speaks the protocol
of ``sw_model/hostmap.py`` (the accelerator, or the bring-up memory in ``boards/top.py``).
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.host_bus import HostBusSignature
from sw_model.hostmap import ADDR_BITS, DATA_BITS, READ_LATENCY

from . import protocol as P
from .uart import UARTRx, UARTTx

__all__ = ["FrameBridge", "UARTBridge", "crc16_byte"]


def crc16_byte(crc, byte):
    """One byte of CRC-16/CCITT-FALSE as an Amaranth expression.

    The CRC is linear over GF(2): each next-state bit is the XOR of a fixed set of
    current CRC bits and byte bits. The sets are found here by running the MSB-first
    shift register symbolically (Python sets of input bits), so the gateware is one
    flat XOR per output bit rather than eight chained steps."""
    # symbolic state: bit i holds the set of inputs ("c", j) / ("d", j) XORed into it
    state = [{("c", i)} for i in range(16)]
    for i in range(8):
        feedback = state[15] ^ {("d", 7 - i)}
        shifted = [set()] + state[:15]
        state = [shifted[j] ^ feedback if (P.CRC_POLY >> j) & 1 else shifted[j]
                 for j in range(16)]
    bits = []
    for terms in state:
        expr = Const(0, 1)
        for src, j in sorted(terms):
            expr = expr ^ (crc[j] if src == "c" else byte[j])
        bits.append(expr)
    return Cat(*bits)


class FrameBridge(wiring.Component):
    """Frame receiver/executor/responder between a byte stream and a host bus.

    A request is received completely into a ``max_burst``-word buffer and its CRC
    checked *before* any bus cycle: a corrupted or truncated write never reaches the
    bus. Then WRITE issues ``n`` one-cycle ``write`` strobes (one per 2 cycles), READ
    issues ``n`` back-to-back ``read`` strobes and collects the ``rvalid`` data into the
    buffer, and the response is sent. Frames are handled one at a time (stop and wait);
    bytes that arrive while a response is executing or being sent are dropped.

    Latency: a WRITE's ACK starts ``2n + 2`` cycles after the last CRC byte, a READ's
    DATA about ``n + READ_LATENCY + 2`` cycles after it.

    Parameters:
        max_burst:       words per frame, 1..256 (buffer depth).
        timeout:         cycles without a byte, mid-frame, before the frame is dropped
                         with ``Nak.TIMEOUT``.
        bus_timeout:     cycles a READ waits for ``rvalid`` before ``Nak.BUS``.

    Members:
        rx_data, rx_valid: received bytes (no back pressure).
        tx:                stream of response bytes.
        bus:               host-bus initiator.
        frame_ok:          one-cycle strobe per executed request (ACK or DATA sent).
        frame_error:       one-cycle strobe per rejected request (NAK sent).
    """

    def __init__(self, *, max_burst: int = P.MAX_BURST_LIMIT, timeout: int = 1 << 16,
                 bus_timeout: int = 64):
        if isinstance(max_burst, bool) or not isinstance(max_burst, int) or \
                not 1 <= max_burst <= P.MAX_BURST_LIMIT:
            raise ValueError(f"max_burst {max_burst!r} out of range; allowed "
                             f"1..{P.MAX_BURST_LIMIT}")
        if not isinstance(timeout, int) or timeout < 16:
            raise ValueError(f"timeout {timeout!r} cycles too short; allowed >= 16")
        if not isinstance(bus_timeout, int) or bus_timeout <= READ_LATENCY:
            raise ValueError(f"bus_timeout {bus_timeout!r} cycles invalid; allowed > "
                             f"READ_LATENCY={READ_LATENCY}")
        self.max_burst = max_burst
        self.timeout = timeout
        self.bus_timeout = bus_timeout
        super().__init__({
            "rx_data": In(8),
            "rx_valid": In(1),
            "tx": Out(stream.Signature(8)),
            "bus": Out(HostBusSignature()),
            "frame_ok": Out(1),
            "frame_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = buf = Memory(shape=DATA_BITS, depth=self.max_burst, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        crc = Signal(16)
        cmd = Signal(8)
        seq = Signal(8)
        count_m1 = Signal(8)             # n - 1
        addr = Signal(ADDR_BITS)
        idx = Signal(9)                  # word index (receive, bus, send)
        issued = Signal(9)               # READ: strobes issued
        byte_idx = Signal(3)             # byte within header / word / CRC
        word = Signal(DATA_BITS)
        timer = Signal(range(max(self.timeout, self.bus_timeout) + 1))
        last_seq = Signal(8)
        last_valid = Signal()
        kind = Signal(8)
        arg = Signal(8)

        rx = self.rx_data
        crc_rx = crc16_byte(crc, rx)
        too_long = count_m1 >= self.max_burst
        bus_addr_of = lambda i: (addr + i)[:ADDR_BITS]

        m.d.comb += rd.addr.eq(idx[:max(1, (self.max_burst - 1).bit_length())])
        tx_word = Mux(cmd == P.Cmd.PING, P.info_word(self.max_burst), rd.data)

        def nak(reason):
            m.d.sync += [kind.eq(P.Rsp.NAK), arg.eq(reason), byte_idx.eq(0)]
            m.d.comb += self.frame_error.eq(1)
            m.next = "TX_HEADER"

        def reply(rsp_kind, rsp_arg):
            m.d.sync += [kind.eq(rsp_kind), arg.eq(rsp_arg), byte_idx.eq(0), idx.eq(0)]
            m.d.comb += self.frame_ok.eq(1)
            m.next = "TX_HEADER"

        # mid-frame inactivity timer
        receiving = Signal()
        with m.If(receiving):
            with m.If(self.rx_valid):
                m.d.sync += timer.eq(0)
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        with m.FSM():
            with m.State("HUNT"):
                m.d.sync += timer.eq(0)
                with m.If(self.rx_valid & (rx == P.SOF_REQ)):
                    m.d.sync += [crc.eq(P.CRC_INIT), byte_idx.eq(0), idx.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += receiving.eq(1)
                with m.If(timer == self.timeout):
                    nak(P.Nak.TIMEOUT)
                with m.Elif(self.rx_valid):
                    m.d.sync += [crc.eq(crc_rx), byte_idx.eq(byte_idx + 1)]
                    with m.Switch(byte_idx):
                        with m.Case(0):
                            m.d.sync += cmd.eq(rx)
                        with m.Case(1):
                            m.d.sync += seq.eq(rx)
                        with m.Case(2):
                            m.d.sync += count_m1.eq(rx)
                        with m.Case(3):
                            m.d.sync += addr[0:8].eq(rx)
                        with m.Case(4):
                            m.d.sync += addr[8:16].eq(rx)
                        with m.Case(5):
                            m.d.sync += [addr[16:24].eq(rx), byte_idx.eq(0)]
                            with m.If(cmd == P.Cmd.WRITE):
                                m.next = "PAYLOAD"
                            with m.Else():
                                m.next = "CRC"

            with m.State("PAYLOAD"):
                m.d.comb += receiving.eq(1)
                with m.If(timer == self.timeout):
                    nak(P.Nak.TIMEOUT)
                with m.Elif(self.rx_valid):
                    m.d.sync += [crc.eq(crc_rx), word.eq(Cat(word[8:], rx)),
                                 byte_idx.eq(byte_idx + 1)]
                    with m.If(byte_idx == 3):
                        # words past max_burst are not stored; the frame is NAKed below
                        m.d.comb += [wr.addr.eq(idx), wr.data.eq(Cat(word[8:], rx)),
                                     wr.en.eq(idx < self.max_burst)]
                        m.d.sync += [byte_idx.eq(0), idx.eq(idx + 1)]
                        with m.If(idx == count_m1):
                            m.next = "CRC"

            with m.State("CRC"):
                m.d.comb += receiving.eq(1)
                with m.If(timer == self.timeout):
                    nak(P.Nak.TIMEOUT)
                with m.Elif(self.rx_valid):
                    m.d.sync += [crc.eq(crc_rx), byte_idx.eq(byte_idx + 1)]
                    with m.If(byte_idx == 1):
                        with m.If(crc_rx != 0):
                            nak(P.Nak.CRC)
                        with m.Else():
                            m.next = "DECODE"

            with m.State("DECODE"):
                m.d.sync += [idx.eq(0), issued.eq(0), timer.eq(0)]
                with m.Switch(cmd):
                    with m.Case(P.Cmd.WRITE):
                        with m.If(too_long):
                            nak(P.Nak.BAD_LEN)
                        with m.Elif(last_valid & (last_seq == seq)):
                            reply(P.Rsp.ACK, 0)      # a retry of an executed write
                        with m.Else():
                            m.next = "WRITE_FETCH"
                    with m.Case(P.Cmd.READ):
                        with m.If(too_long):
                            nak(P.Nak.BAD_LEN)
                        with m.Else():
                            m.next = "READ"
                    with m.Case(P.Cmd.PING):
                        m.d.sync += [last_valid.eq(0), count_m1.eq(0)]
                        reply(P.Rsp.DATA, 0)
                    with m.Default():
                        nak(P.Nak.BAD_CMD)

            with m.State("WRITE_FETCH"):            # rd.addr = idx; data next cycle
                m.next = "WRITE_ISSUE"

            with m.State("WRITE_ISSUE"):
                m.d.comb += [self.bus.write.eq(1), self.bus.addr.eq(bus_addr_of(idx)),
                             self.bus.wdata.eq(rd.data)]
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == count_m1):
                    m.d.sync += [last_seq.eq(seq), last_valid.eq(1)]
                    reply(P.Rsp.ACK, 0)
                with m.Else():
                    m.next = "WRITE_FETCH"

            with m.State("READ"):
                with m.If(issued <= count_m1):
                    m.d.comb += [self.bus.read.eq(1), self.bus.addr.eq(bus_addr_of(issued))]
                    m.d.sync += issued.eq(issued + 1)
                with m.If(self.bus.rvalid):
                    m.d.comb += [wr.addr.eq(idx), wr.data.eq(self.bus.rdata), wr.en.eq(1)]
                    m.d.sync += [idx.eq(idx + 1), timer.eq(0)]
                    with m.If(idx == count_m1):
                        reply(P.Rsp.DATA, count_m1)
                with m.Elif(timer == self.bus_timeout):
                    nak(P.Nak.BUS)
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)

            with m.State("TX_HEADER"):
                with m.Switch(byte_idx):
                    for i, value in enumerate((P.SOF_RSP, kind, seq, arg)):
                        with m.Case(i):
                            m.d.comb += self.tx.payload.eq(value)
                m.d.comb += self.tx.valid.eq(1)
                with m.If(self.tx.ready):
                    m.d.sync += byte_idx.eq(byte_idx + 1)
                    with m.If(byte_idx == 0):
                        m.d.sync += crc.eq(P.CRC_INIT)
                    with m.Else():
                        m.d.sync += crc.eq(crc16_byte(crc, self.tx.payload))
                    with m.If(byte_idx == 3):
                        m.d.sync += byte_idx.eq(0)
                        with m.If(kind == P.Rsp.DATA):
                            m.next = "TX_FETCH"
                        with m.Else():
                            m.next = "TX_CRC"

            with m.State("TX_FETCH"):               # rd.addr = idx; data next cycle
                m.next = "TX_DATA"

            with m.State("TX_DATA"):
                m.d.comb += [self.tx.payload.eq(tx_word.word_select(byte_idx[:2], 8)),
                             self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += [crc.eq(crc16_byte(crc, self.tx.payload)),
                                 byte_idx.eq(byte_idx + 1)]
                    with m.If(byte_idx == 3):
                        m.d.sync += [byte_idx.eq(0), idx.eq(idx + 1)]
                        with m.If(idx == arg):
                            m.next = "TX_CRC"
                        with m.Else():
                            m.next = "TX_FETCH"

            with m.State("TX_CRC"):
                m.d.comb += [self.tx.payload.eq(Mux(byte_idx[0], crc[:8], crc[8:])),
                             self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += byte_idx.eq(byte_idx + 1)
                    with m.If(byte_idx == 1):
                        m.next = "HUNT"
        return m


class UARTBridge(wiring.Component):
    """``FrameBridge`` behind an 8N1 UART.

    Parameters:
        divisor:     clock cycles per bit (``boards.uart.divisor_for(clk_hz, baud)``).
        max_burst:   words per frame (1..256).
        timeout:     mid-frame inactivity timeout in cycles (default 64 byte times;
                     board tops pass ~20 ms so USB-serial scheduling gaps are tolerated).
        bus_timeout: cycles a READ waits for ``rvalid``.

    Members:
        rx:          serial input pin (from the host's TX).
        tx:          serial output pin (to the host's RX).
        bus:         host-bus initiator.
        rx_activity: a byte was received (one-cycle strobe).
        tx_activity: the transmitter is busy.
        frame_ok, frame_error: as ``FrameBridge``.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    bus: Out(HostBusSignature())
    rx_activity: Out(1)
    tx_activity: Out(1)
    frame_ok: Out(1)
    frame_error: Out(1)

    def __init__(self, divisor: int, *, max_burst: int = P.MAX_BURST_LIMIT,
                 timeout: int | None = None, bus_timeout: int = 64):
        self.divisor = divisor
        self.max_burst = max_burst
        self.timeout = divisor * 10 * 64 if timeout is None else timeout
        self.bus_timeout = bus_timeout
        self._rx = UARTRx(divisor)
        self._tx = UARTTx(divisor)
        self._core = FrameBridge(max_burst=max_burst, timeout=self.timeout,
                                 bus_timeout=bus_timeout)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = self._rx
        m.submodules.uart_tx = utx = self._tx
        m.submodules.core = core = self._core
        m.d.comb += [
            urx.line.eq(self.rx),
            self.tx.eq(utx.line),
            core.rx_data.eq(urx.data),
            core.rx_valid.eq(urx.valid),
            self.rx_activity.eq(urx.valid),
            self.tx_activity.eq(utx.busy),
            self.frame_ok.eq(core.frame_ok),
            self.frame_error.eq(core.frame_error),
        ]
        wiring.connect(m, core.tx, utx.bytes)
        wiring.connect(m, core.bus, wiring.flipped(self.bus))
        return m
