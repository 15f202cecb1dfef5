"""The UART link's framed protocol: the one definition shared by the bridge gateware
(``boards/bridge.py``) and the host driver (``boards/host_driver.py``).

Pure Python, no Amaranth, no pyserial.

Frames
------
Every frame is bytes on an 8N1 serial line. Multi-byte fields are little-endian
except the CRC, which is sent high byte first (so running the CRC over a whole frame
body *including* its CRC gives 0, which is what the gateware checks).

Request (host -> board)::

    SOF_REQ  cmd  seq  n-1  addr[7:0] addr[15:8] addr[23:16]  payload  crc[15:8] crc[7:0]

* ``cmd``: ``Cmd.WRITE`` (payload = ``n`` 32-bit words, written to ``addr .. addr+n-1``),
  ``Cmd.READ`` (no payload; reads ``n`` words from ``addr``), ``Cmd.PING`` (no payload;
  ``n``/``addr`` ignored; answers one ``info`` word and resets the duplicate filter).
* ``seq``: the host's transaction number. A WRITE whose ``seq`` equals the previous
  *executed* WRITE's ``seq`` is acknowledged without touching the bus: a host that
  retries because an ACK was lost does not write twice (this matters for ``Ctrl.START``).
* ``n``: 1 .. ``max_burst`` words (the bridge's ``max_burst`` <= 256 comes back in PING).

Response (board -> host)::

    SOF_RSP  kind  seq  arg  payload  crc[15:8] crc[7:0]

* ``Rsp.ACK``: a WRITE was executed (or was a duplicate); ``arg`` = 0, no payload.
* ``Rsp.DATA``: a READ/PING answer; ``arg`` = ``n-1``; payload = ``n`` words.
* ``Rsp.NAK``: the request was rejected and the bus was **not** touched; ``arg`` is
  a ``Nak`` reason. A write whose CRC fails is never written.

The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)
over every byte after the SOF up to the CRC. The bridge aborts a frame whose bytes stop
arriving for ``timeout`` cycles (``Nak.TIMEOUT``), so a truncated frame never hangs it;
bytes outside a frame that are not SOF are ignored (resynchronisation).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

__all__ = ["SOF_REQ", "SOF_RSP", "Cmd", "Rsp", "Nak", "CRC_POLY", "CRC_INIT",
           "PROTOCOL_VERSION", "INFO_MAGIC", "MAX_BURST_LIMIT", "REQ_HEADER_BYTES",
           "crc16", "info_word", "parse_info", "encode_request", "encode_response",
           "Request", "Response", "ResponseParser", "decode_request", "frame_time_s"]

SOF_REQ = 0xA5
SOF_RSP = 0x5A
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
PROTOCOL_VERSION = 1
INFO_MAGIC = 0xFE
MAX_BURST_LIMIT = 256          # the n-1 field is one byte
REQ_HEADER_BYTES = 7           # SOF cmd seq n-1 addr*3
ADDR_MASK = 0xFFFFFF


class Cmd(enum.IntEnum):
    WRITE = 0x57  # 'W'
    READ = 0x52   # 'R'
    PING = 0x50   # 'P'


class Rsp(enum.IntEnum):
    ACK = 0x06
    DATA = 0x44   # 'D'
    NAK = 0x15


class Nak(enum.IntEnum):
    CRC = 1          # CRC mismatch (corrupted frame)
    TIMEOUT = 2      # frame truncated: bytes stopped arriving mid-frame
    BAD_CMD = 3      # unknown command byte
    BAD_LEN = 4      # n larger than the bridge's max_burst
    BUS = 5          # the bus target did not answer a read (no rvalid)


def _crc16_table():
    table = []
    for b in range(256):
        c = b << 8
        for _ in range(8):
            c = ((c << 1) ^ CRC_POLY) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_CRC_TABLE = _crc16_table()


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of b"123456789" is 0x29B1)."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def info_word(max_burst: int) -> int:
    """The word a PING answers: magic, protocol version, the bridge's max burst."""
    return (INFO_MAGIC << 24) | (PROTOCOL_VERSION << 16) | max_burst


def parse_info(word: int) -> dict:
    if (word >> 24) != INFO_MAGIC:
        raise ValueError(f"PING answer 0x{word:08x} is not a fetta bridge info word "
                         f"(expected magic 0x{INFO_MAGIC:02x} in bits 31..24)")
    return {"version": (word >> 16) & 0xFF, "max_burst": word & 0xFFFF}


def _check_count(n: int):
    if not 1 <= n <= MAX_BURST_LIMIT:
        raise ValueError(f"burst length {n} out of range; allowed 1..{MAX_BURST_LIMIT}")


def encode_request(cmd: Cmd, seq: int, addr: int = 0, words=(), count: int | None = None
                   ) -> bytes:
    """One request frame. ``words`` is the WRITE payload; READ takes ``count``."""
    cmd = Cmd(cmd)
    words = [int(w) & 0xFFFFFFFF for w in words]
    if cmd == Cmd.WRITE:
        count = len(words)
    elif words:
        raise ValueError(f"{cmd.name} carries no payload; got {len(words)} words")
    count = 1 if count is None else count
    _check_count(count)
    if not 0 <= addr <= ADDR_MASK:
        raise ValueError(f"address 0x{addr:x} out of range; allowed 0..0x{ADDR_MASK:x}")
    body = bytes([cmd, seq & 0xFF, count - 1]) + (addr & ADDR_MASK).to_bytes(3, "little")
    body += struct.pack(f"<{len(words)}I", *words)
    return bytes([SOF_REQ]) + body + crc16(body).to_bytes(2, "big")


def encode_response(kind: Rsp, seq: int, arg: int = 0, words=()) -> bytes:
    """One response frame (what the bridge sends; used by tests and host-side models)."""
    words = [int(w) & 0xFFFFFFFF for w in words]
    body = bytes([Rsp(kind), seq & 0xFF, arg & 0xFF]) + struct.pack(f"<{len(words)}I", *words)
    return bytes([SOF_RSP]) + body + crc16(body).to_bytes(2, "big")


@dataclass
class Request:
    cmd: int
    seq: int
    count: int
    addr: int
    words: list = field(default_factory=list)


@dataclass
class Response:
    kind: Rsp
    seq: int
    arg: int
    words: list = field(default_factory=list)


class ResponseParser:
    """Incremental response decoder: ``feed(bytes)`` then ``pop()``.

    Bytes before a SOF are skipped. A frame with a bad CRC or unknown kind is counted in
    ``bad_frames`` and skipped (the host then retries)."""

    def __init__(self):
        self.buf = bytearray()
        self.bad_frames = 0

    def feed(self, data: bytes):
        self.buf += data

    @staticmethod
    def _length(kind: int, arg: int) -> int:
        payload = 4 * (arg + 1) if kind == Rsp.DATA else 0
        return 4 + payload + 2

    def pop(self) -> Response | None:
        while True:
            start = self.buf.find(SOF_RSP)
            if start < 0:
                self.buf.clear()
                return None
            del self.buf[:start]
            if len(self.buf) < 4:
                return None
            kind, seq, arg = self.buf[1], self.buf[2], self.buf[3]
            if kind not in (Rsp.ACK, Rsp.DATA, Rsp.NAK):
                self.bad_frames += 1
                del self.buf[:1]
                continue
            length = self._length(kind, arg)
            if len(self.buf) < length:
                return None
            frame = bytes(self.buf[:length])
            if crc16(frame[1:]) != 0:
                self.bad_frames += 1
                del self.buf[:1]
                continue
            del self.buf[:length]
            n = (length - 6) // 4
            words = list(struct.unpack(f"<{n}I", frame[4:4 + 4 * n]))
            return Response(Rsp(kind), seq, arg, words)


def decode_request(frame: bytes) -> Request:
    """Decode one whole request frame (used by tests and software bridge models)."""
    if len(frame) < REQ_HEADER_BYTES + 2 or frame[0] != SOF_REQ:
        raise ValueError(f"not a request frame ({len(frame)} bytes)")
    if crc16(frame[1:]) != 0:
        raise ValueError("request CRC mismatch")
    cmd, seq, n1 = frame[1], frame[2], frame[3]
    addr = int.from_bytes(frame[4:7], "little")
    payload = frame[7:-2]
    words = list(struct.unpack(f"<{len(payload) // 4}I", payload))
    return Request(cmd, seq, n1 + 1, addr, words)


def frame_time_s(n_bytes: int, baud: int) -> float:
    """Seconds an 8N1 line needs for ``n_bytes``."""
    return n_bytes * 10 / baud
