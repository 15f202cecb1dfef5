"""The XENT instruction: the softmax cross-entropy gradient of a batch of logits on
chip (the loss-gradient step between a training step's forward and backward passes).

XENT walks a MOVE's loop nest (``sw_model.accel.move``: source, destination, range
check) whose innermost level runs over the ``n`` classes of a row (2..16) and the outer
levels over the rows. For each row it reads the logits ``z`` (source) and the targets
``y`` from the destination's old words — one-hot (nonzero at the label), or, with
``labels``, the label index in the row's first destination word (class 0; the other
words are not used; an index outside 0..n-1 gives the row no target) — and writes
at the destination the gradient of the mean cross-entropy
(``sw_model.arith.fixedpoint.softmax_xent_rows``, the recipe's arithmetic)::

    g = saturate(out_bits, sign(num) * ((|num| + bsz // 2) // bsz)),
    num = ((e << 15) // sum(e) - 2**15 [y != 0]) << (ceil(log2 bsz) - 1),
    e = 2**((z - max z) * log2 e) in Q15 (the 256-entry table, ``EXP2_Q15``)

with frac ``14 + ceil(log2 bsz)``, counts the rows whose first maximum has a
nonzero target (``Reg.XENT_CORRECT``: the accuracy count, cleared by START) and sums
the rows' cross-entropy in bits, Q16 (``sw_model.arith.fixedpoint.xent_loss_rows``:
per target ``log2_q16(sum e) - t``, from the same terms as the gradient;
``Reg.XENT_LOSS``, 48 bits wrapping, cleared by START): the host reads the loss and
the accuracy of a batch in three words, not its logits.

Encoding: a header word (``isa.Op.XENT``, payload length ``XENT_WORDS``), the MOVE
payload (``fill`` 0), then

====================  =================================================================
payload word          fields
====================  =================================================================
``MOVE_WORDS`` OP     ``out_bits`` bits 15..11 (2..16), ``labels`` bit 16; the other
                      bits are 0
``MOVE_WORDS + 1``    ``s`` bits 5..0 (signed, -7..31: the logits' frac minus 2),
PARAM                 ``bsz`` bits 29..16 (2..8192: the batch the mean runs over)
``MOVE_WORDS + 2``    0
====================  =================================================================

Refused with ``BAD_CONFIG`` (nothing written): an innermost count outside 2..16, ``s``
or ``bsz`` out of range, ``out_bits`` outside 2..16, nonzero reserved bits, the fill
bit; the MOVE's checks (``ADDRESS_RANGE``). A row's destination words are written
after all its words are read; rows run in order.

Timing (``xent_cycles``): a MOVE's fixed part with ``XENT_WORDS`` payload words, then
per row ``xent_row_cycles(n)`` (``rtl/xent_unit.py``: the row's reads, its
exponentials, two sequential divisions and a write per class), the last write's
cycle, then the tail. The row cycles and the last write's count as ``vec_cycles``
(counters ``Reg.VEC``, vector-unit busy, and ``Reg.XENT_CYCLES``: ``Xent.busy_cycles``).

Members: ``XENT_WORDS``, ``XW``, ``XENT_FIELDS``, ``Xent``, ``run_xent``,
``xent_row_cycles``, ``xent_cycles``, ``N_MAX``, ``S_MIN``, ``S_MAX``, ``BSZ_MAX``,
``XENT_LOSS_BITS``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..arith.fixedpoint import softmax_xent_rows, xent_loss_rows
from .config import AccelConfig
from .isa import Field, Op, decode_fields, header, used_bits
from .move import MOVE_TAIL, MOVE_WORDS, Move, _counts, buffer_lanes, move_check, \
    move_check_cycles

__all__ = ["XENT_WORDS", "XW", "XENT_FIELDS", "XENT_FIELD", "Xent", "run_xent",
           "xent_row_cycles", "xent_cycles", "N_MAX", "S_MIN", "S_MAX", "BSZ_MAX",
           "DIV1_BITS", "DIV2_BITS", "DIV_PER_CYCLE", "div_cycles", "class_cycles",
           "XENT_LOSS_BITS"]

XENT_WORDS = MOVE_WORDS + 3
N_MAX = 16
S_MIN, S_MAX = -7, 31
BSZ_MAX = 8192
# the two sequential divisions per class (rtl/divider.py: DIV_PER_CYCLE quotient bits
# per cycle, + done)
DIV1_BITS = 31     # (e << 15) // sum e: e < 2**16
DIV2_BITS = 30     # (|num| + bsz // 2) // bsz: |num| <= 2**15 << 12
DIV_PER_CYCLE = 4  # four conditional subtractions chained per cycle
XENT_LOSS_BITS = 48  # Reg.XENT_LOSS: the loss sum's width (wraps)


class XW(enum.IntEnum):
    OP = MOVE_WORDS
    PARAM = MOVE_WORDS + 1
    RESERVED = MOVE_WORDS + 2


XENT_FIELDS = (Field("out_bits", XW.OP, 11, 5), Field("labels", XW.OP, 16, 1),
               Field("s", XW.PARAM, 0, 6, "signed"),
               Field("bsz", XW.PARAM, 16, 14))
XENT_FIELD = {f.name: f for f in XENT_FIELDS}
_USED = used_bits(XENT_FIELDS, XW)


def xent_row_cycles(n: int) -> int:
    """Cycles of one row of ``n`` classes: 1 start, ``n`` reads + 1 (the read data's
    latency), ``n`` exponentials, per class two divisions (each started in a cycle of
    its own, ``div_cycles(bits)`` to done) and an emit cycle."""
    return 1 + (n + 1) + n + n * class_cycles()


def div_cycles(bits: int) -> int:
    """Cycles from a division's start to its ``done`` (``rtl/divider.py``'s
    ``LATENCY``): ``ceil(bits / DIV_PER_CYCLE) + 1``."""
    return -(-bits // DIV_PER_CYCLE) + 1


def class_cycles() -> int:
    """Cycles per class of a row beyond its read and exponential: the two divisions,
    each started in a cycle of its own, and the emit cycle."""
    return 1 + div_cycles(DIV1_BITS) + 1 + div_cycles(DIV2_BITS) + 1


def xent_cycles(counts, fetch: int = 2) -> int:
    """Cycles of one XENT with loop ``counts`` (innermost = the classes): fetch,
    payload, validate, range check, the rows, the cycle of the last row's last write
    (counted as ``vec`` with the rows) and ``MOVE_TAIL``."""
    counts = _counts(counts)
    n = counts[-1]
    rows = 1
    for c in counts[:-1]:
        rows *= c
    return fetch + XENT_WORDS + 1 + move_check_cycles(counts) + rows * xent_row_cycles(n) \
        + 1 + MOVE_TAIL


@dataclass(frozen=True)
class Xent:
    """An XENT instruction (module docstring): ``move`` walks rows (outer levels) and
    classes (innermost level); ``frac`` the logits' frac (``s = frac - 2``)."""
    move: Move
    frac: int
    bsz: int
    out_bits: int = 16
    labels: bool = False

    def __post_init__(self):
        if self.move.fill:
            raise ValueError("XENT move.fill=True not allowed; XENT reads its source")
        n = self.move.counts[-1]
        if not 2 <= n <= N_MAX:
            raise ValueError(f"XENT classes (innermost count)={n} out of range; "
                             f"allowed 2..{N_MAX}")
        if not S_MIN <= int(self.frac) - 2 <= S_MAX:
            raise ValueError(f"XENT frac={self.frac} out of range; allowed "
                             f"{S_MIN + 2}..{S_MAX + 2}")
        if not 2 <= int(self.bsz) <= BSZ_MAX:
            raise ValueError(f"XENT bsz={self.bsz} out of range; allowed 2..{BSZ_MAX}")
        if not 2 <= int(self.out_bits) <= 16:
            raise ValueError(f"XENT out_bits={self.out_bits} out of range; allowed 2..16")

    @property
    def counts(self) -> tuple:
        return self.move.counts

    @property
    def classes(self) -> int:
        return self.move.counts[-1]

    @property
    def busy_cycles(self) -> int:
        """The vector-busy cycles it takes (``Reg.VEC`` and ``Reg.XENT_CYCLES``): the
        rows and the cycle of the last write."""
        rows = int(np.prod(self.counts[:-1]))
        return rows * xent_row_cycles(self.classes) + 1

    def encode(self) -> list[int]:
        words = self.move.encode()[1:] + [0] * (XENT_WORDS - MOVE_WORDS)
        for name, v in (("out_bits", self.out_bits), ("s", int(self.frac) - 2),
                        ("bsz", self.bsz), ("labels", int(bool(self.labels)))):
            f = XENT_FIELD[name]
            words[f.word] |= f.encode(int(v)) << f.lsb
        return [header(Op.XENT, XENT_WORDS)] + words

    @classmethod
    def decode(cls, payload) -> "Xent":
        """The XENT of ``payload``; ValueError on what the controller refuses with
        ``BAD_CONFIG``."""
        v = decode_fields("XENT", payload, XENT_WORDS, XENT_FIELDS, _USED)
        return cls(Move.decode(payload[:MOVE_WORDS]), v["s"] + 2, v["bsz"], v["out_bits"],
                   bool(v["labels"]))


def run_xent(cfg: AccelConfig, x: Xent, bufs: dict) -> tuple[np.ndarray, int, int]:
    """Execute ``x`` on ``bufs`` (updated in place); returns (the words written in
    order, rows whose first maximum has a nonzero target, the rows' loss sum in bits
    Q16, ``xent_loss_rows``). ValueError when the range check refuses it."""
    mv = x.move
    if move_check(cfg, mv):
        raise ValueError(f"XENT {mv.src}->{mv.dst} outside its buffers or overlapping")
    s, d = mv.addresses()
    sl, dl = buffer_lanes(cfg, mv.src), buffer_lanes(cfg, mv.dst)
    src, dst = bufs[mv.src], bufs[mv.dst]
    n = x.classes
    # rows in order, each written after it is read: a later row reads earlier writes
    out = np.empty(len(d), dtype=np.int64)
    ok = loss = 0
    for r in range(len(d) // n):
        sr, dr = s[r * n:(r + 1) * n], d[r * n:(r + 1) * n]
        zr = src[sr // sl, sr % sl].reshape(1, n)
        yr = dst[dr // dl, dr % dl].reshape(1, n)
        if x.labels:                    # the label index in the row's first word
            yr = (np.arange(n) == yr[0, 0]).astype(np.int64).reshape(1, n)
        gr, cr = softmax_xent_rows(zr, yr, x.frac, x.bsz, x.out_bits)
        dst[dr // dl, dr % dl] = out[r * n:(r + 1) * n] = gr[0]
        ok += int(cr[0])
        loss += int(xent_loss_rows(zr, yr, x.frac)[0])
    return out, ok, loss
