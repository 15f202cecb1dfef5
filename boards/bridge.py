"""The UART bridge: framed requests with CRC (``boards/protocol.py``) in, host-bus
transactions out (``rtl/host_bus.py``), responses back.

``FrameBridge`` works on bytes; ``UARTBridge`` puts the UART (``boards/uart.py``) in
front of it. Both master a host bus, so they drive any target that speaks the protocol
of ``sw_model/accel/hostmap.py`` (the accelerator, or the bring-up memory in ``boards/top.py``).
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fetta.rtl.host_bus import HostBusSignature
from fetta.sw_model.accel.hostmap import ADDR_BITS, DATA_BITS, READ_LATENCY

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

    A request is received completely into a ``4 * max_burst``-byte buffer and its CRC
    checked *before* any bus cycle: a corrupted or truncated write never reaches the
    bus. Then WRITE issues ``n`` one-cycle ``write`` strobes (one per 5 cycles: each
    word is assembled from 4 buffer bytes), READ issues one ``read`` strobe per word,
    waits for its ``rvalid`` and stores the word's 4 bytes, and the response is sent.
    Frames are handled one at a time (stop and wait); bytes that arrive while a
    response is executing or being sent are dropped.

    Area (iCE40): the CRC is computed bit-serially, 8 cycles per byte after the byte is
    taken (received bytes must be >= 9 cycles apart, which any UART gives; a byte
    arriving closer is dropped, so the frame fails its CRC or times out); the header
    is one shift register, the response header is shifted out of it; one byte index
    serves every part of a frame; datapath registers have no reset.

    Latency: a WRITE's ACK starts about ``5n + 2`` cycles after the last CRC byte has
    gone through the CRC, a READ's DATA about ``(READ_LATENCY + 6) n`` cycles after it.

    Parameters:
        max_burst:       words per frame, 1..256 (buffer depth).
        timeout:         cycles without a byte, mid-frame, before the frame is dropped
                         with ``Nak.TIMEOUT`` (counted from the last byte's
                         ``rx_valid``).
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
        nbytes = 4 * self.max_burst
        abits = max(1, (nbytes - 1).bit_length())
        m.submodules.buf = buf = Memory(shape=8, depth=nbytes, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        # -- datapath registers (no reset: each is loaded before it is used); the FSM
        # below only drives the control strobes declared with them --------------------
        # H, the request header: cmd, seq shift into H[0:16], then n-1, addr into
        # H[16:48]: cmd = H[0:8], seq = H[8:16], n-1 = H[16:24], addr = H[24:48]. addr
        # counts up during execution; for the response H[0:8] is loaded with the kind,
        # n-1 with the arg (unless DATA) and H shifts down: H[0:8] = kind, seq, arg.
        H = Signal(48, reset_less=True)
        cmd, seq, n1, addr = H[0:8], H[8:16], H[16:24], H[24:48]
        h_lo_shift = Signal()        # header bytes 0, 1
        h_hi_shift = Signal()        # header bytes 2..5
        h_tx_shift = Signal()        # response header: H >> 8
        addr_inc = Signal()
        load_kind = Signal()
        load_arg = Signal()
        reason = Signal(3)           # NAK reason, 0 = none (the arg of ACK / PING)
        is_data = Signal()           # the response carries a payload
        with m.If(h_hi_shift | h_tx_shift):
            m.d.sync += H[16:48].eq(Cat(H[24:48], self.rx_data))
        with m.If(h_lo_shift):
            m.d.sync += H[8:16].eq(self.rx_data)
        with m.If(h_tx_shift):
            m.d.sync += H[8:16].eq(H[16:24])
        with m.If(h_lo_shift | h_tx_shift):
            m.d.sync += H[0:8].eq(H[8:16])
        with m.If(load_kind):
            m.d.sync += H[0:8].eq(Mux(reason != 0, P.Rsp.NAK,
                                      Mux(is_data, P.Rsp.DATA, P.Rsp.ACK)))
        with m.If(load_arg):
            m.d.sync += n1.eq(reason)
        with m.If(addr_inc):
            m.d.sync += addr.eq(addr + 1)

        # W, one bus word: assembled from 4 buffer bytes for a WRITE; loaded from the
        # bus (READ) or with the info word (PING) and shifted out into the buffer
        W = Signal(DATA_BITS, reset_less=True)
        wr_w = Signal()              # the buffer is written from W[0:8] (else rx_data)
        w_shift = Signal()
        w_load_bus = Signal()
        w_load_info = Signal()
        with m.If(w_load_bus):
            m.d.sync += W.eq(self.bus.rdata)
        with m.Elif(w_load_info):
            m.d.sync += W.eq(P.info_word(self.max_burst))
        with m.Elif(w_shift):
            m.d.sync += W.eq(Cat(W[8:], rd.data))

        # bidx, the byte index in the current part of the frame: Cat(byte[2], word[8])
        bidx = Signal(10)
        bidx_clr = Signal()
        bidx_inc = Signal()
        with m.If(bidx_clr):
            m.d.sync += bidx.eq(0)
        with m.Elif(bidx_inc):
            m.d.sync += bidx.eq(bidx + 1)
        word = bidx[2:10]
        m.d.comb += [rd.addr.eq(bidx[:abits]), wr.addr.eq(bidx[:abits]),
                     self.bus.addr.eq(addr), self.bus.wdata.eq(Cat(W[8:], rd.data))]

        # B and crc: CRC-16/CCITT bit-serially, MSB first, one step per cycle: a byte is
        # loaded into B (received, or the response byte as the UART takes it), then
        # 8 steps shift it through the CRC (the bytes are >= 10 bit times apart)
        B = Signal(8, reset_less=True)
        crc = Signal(16, reset_less=True)
        bit = Signal(3)
        b_load = Signal()
        crc_init = Signal()
        crc_step = Signal()
        b_src = Signal(8)
        with m.If(b_load):
            m.d.sync += B.eq(b_src)
        with m.Elif(crc_step):
            m.d.sync += B.eq(B << 1)
        with m.If(crc_init):
            m.d.sync += crc.eq(P.CRC_INIT)
        with m.Elif(crc_step):
            fb = crc[15] ^ B[7]
            m.d.sync += [crc.eq(Cat(C(0, 1), crc[:15]) ^ Mux(fb, P.CRC_POLY, 0)),
                         bit.eq(bit + 1)]

        # timer: starts at 2**k - timeout, so the frame timeout is its bit k; a READ's
        # bus timeout is its low bits reaching start + bus_timeout
        k = self.timeout.bit_length()
        start = (1 << k) - self.timeout
        bt_bits = self.bus_timeout.bit_length() + 1
        timer = Signal(max(k + 1, bt_bits), init=start)
        timer_rst = Signal()
        with m.If(timer_rst):
            m.d.sync += timer.eq(start)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        frame_timeout = timer[k]
        bus_timeout = timer[:bt_bits] == ((start + self.bus_timeout) % (1 << bt_bits))

        # the frame part a byte belongs to, in order; a part ends at its last byte and
        # the next one follows (DATA skipped if there is no payload, CRC wraps to SOF)
        item = Signal(2)
        SOF, HDR, DATA, CRC = range(4)
        txdir = Signal()             # the byte loop sends the response (else receives)
        last = Signal()              # WRITE: the word being loaded is the last one
        last_seq = Signal(8)
        last_valid = Signal()

        rx = self.rx_data
        word_eq = word == n1
        too_long = n1 >= self.max_burst
        is_write = cmd == P.Cmd.WRITE

        item_adv = Signal()
        item_clr = Signal()
        with m.If(item_clr):
            m.d.sync += item.eq(SOF)
        with m.Elif(item_adv):
            skip = (item == HDR) & ~Mux(txdir, is_data, is_write)
            m.d.sync += item.eq(item + 1 + skip)

        # the response byte (SOF_RSP, kind, seq, arg, payload, CRC)
        tx_src = Signal(8)
        with m.Switch(item):
            with m.Case(SOF):
                m.d.comb += tx_src.eq(P.SOF_RSP)
            with m.Case(HDR):
                m.d.comb += tx_src.eq(H[0:8])
            with m.Case(DATA):
                m.d.comb += tx_src.eq(rd.data)
            with m.Case(CRC):
                m.d.comb += tx_src.eq(crc[8:16])
        m.d.comb += [self.tx.payload.eq(tx_src), b_src.eq(Mux(txdir, tx_src, rx)),
                     wr.data.eq(Mux(wr_w, W[:8], rx))]

        # the end of a frame part (evaluated as its byte is taken)
        part_end = Signal()
        with m.Switch(item):
            with m.Case(SOF):
                m.d.comb += part_end.eq(1)
            with m.Case(HDR):
                m.d.comb += part_end.eq(bidx[:3] == Mux(txdir, 2, 5))
            with m.Case(DATA):
                m.d.comb += part_end.eq((bidx[:2] == 3) &
                                        Mux(txdir, word == H[0:8], word_eq))
            with m.Case(CRC):
                m.d.comb += part_end.eq(bidx[0])

        def respond(nak_reason=0, data=False):
            m.d.sync += [reason.eq(nak_reason), is_data.eq(data)]
            m.d.comb += (self.frame_error if nak_reason else self.frame_ok).eq(1)
            m.next = "RESP"

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += [timer_rst.eq(1), bidx_clr.eq(1), crc_init.eq(1)]
                m.d.sync += [reason.eq(0), txdir.eq(0)]
                with m.If(self.rx_valid & (rx == P.SOF_REQ)):
                    m.d.comb += item_adv.eq(1)              # SOF -> HDR
                    m.next = "BYTE"

            # one byte of the request (rx_valid) or of the response (tx.ready)
            with m.State("BYTE"):
                m.d.comb += [timer_rst.eq(self.rx_valid | txdir),
                             self.tx.valid.eq(txdir)]
                with m.If(frame_timeout & ~txdir):
                    m.d.comb += item_clr.eq(1)
                    respond(P.Nak.TIMEOUT)
                with m.Elif(Mux(txdir, self.tx.ready, self.rx_valid)):
                    m.d.comb += [b_load.eq(1), bidx_inc.eq(1)]
                    m.next = "STEP"
                    with m.If(part_end):
                        m.d.comb += [bidx_clr.eq(1), item_adv.eq(1)]
                    with m.Switch(item):
                        with m.Case(SOF):                   # TX only: not in the CRC
                            m.d.comb += crc_init.eq(1)
                            m.next = "BYTE"
                        with m.Case(HDR):
                            with m.If(txdir):
                                # H[0:8]: kind, seq, arg (kept for the DATA part)
                                m.d.comb += h_tx_shift.eq(~part_end)
                            with m.Elif(bidx[1:3] == 0):
                                # cmd and seq have fixed places from their byte on (a
                                # NAK TIMEOUT of a truncated header still names the seq)
                                m.d.comb += h_lo_shift.eq(1)
                            with m.Else():
                                m.d.comb += h_hi_shift.eq(1)
                        with m.Case(DATA):
                            m.d.comb += wr.en.eq(~txdir)

            with m.State("STEP"):
                m.d.comb += crc_step.eq(1)
                with m.If(bit == 7):
                    with m.If(item != SOF):
                        m.next = "BYTE"
                    with m.Elif(txdir):
                        m.next = "HUNT"                     # the response is sent
                    with m.Else():
                        m.next = "CHECK"                    # the request is in

            with m.State("CHECK"):
                with m.If(crc != 0):
                    respond(P.Nak.CRC)
                with m.Elif(is_write):
                    with m.If(too_long):
                        respond(P.Nak.BAD_LEN)
                    with m.Elif(last_valid & (last_seq == seq)):
                        respond()                       # a retry of an executed write
                    with m.Else():
                        m.next = "W_ADDR"
                with m.Elif(cmd == P.Cmd.READ):
                    with m.If(too_long):
                        respond(P.Nak.BAD_LEN)
                    with m.Else():
                        m.next = "R_ISSUE"
                with m.Elif(cmd == P.Cmd.PING):
                    m.d.comb += [load_arg.eq(1), w_load_info.eq(1)]   # n-1 = 0
                    m.d.sync += last_valid.eq(0)
                    m.next = "R_STORE"
                with m.Else():
                    respond(P.Nak.BAD_CMD)

            # WRITE: 4 buffer reads assemble W; the 4th byte goes to the bus with it
            with m.State("W_ADDR"):                  # rd.addr = first byte of the word
                m.d.comb += bidx_inc.eq(1)
                m.d.sync += last.eq(word_eq)
                m.next = "W_LOAD"

            with m.State("W_LOAD"):                  # rd.data = byte bidx - 1
                m.d.comb += w_shift.eq(1)
                with m.If(bidx[:2] != 0):
                    m.d.comb += bidx_inc.eq(1)
                with m.Else():
                    m.d.comb += [self.bus.write.eq(1), addr_inc.eq(1)]
                    with m.If(last):
                        m.d.sync += [last_seq.eq(seq), last_valid.eq(1)]
                        respond()
                    with m.Else():
                        m.next = "W_ADDR"

            # READ: one bus read per word, its 4 bytes go to the buffer
            with m.State("R_ISSUE"):
                m.d.comb += [self.bus.read.eq(1), timer_rst.eq(1)]
                m.next = "R_WAIT"

            with m.State("R_WAIT"):
                with m.If(self.bus.rvalid):
                    m.d.comb += [w_load_bus.eq(1), addr_inc.eq(1)]
                    m.next = "R_STORE"
                with m.Elif(bus_timeout):
                    respond(P.Nak.BUS)

            with m.State("R_STORE"):
                m.d.comb += [wr.en.eq(1), wr_w.eq(1), w_shift.eq(1), bidx_inc.eq(1)]
                with m.If(bidx[:2] == 3):
                    with m.If(word_eq):
                        respond(data=True)
                    with m.Else():
                        m.next = "R_ISSUE"

            with m.State("RESP"):                    # item = SOF
                m.d.comb += [load_kind.eq(1), load_arg.eq(~is_data), bidx_clr.eq(1)]
                m.d.sync += txdir.eq(1)
                m.next = "BYTE"
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
