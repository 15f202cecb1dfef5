"""The MOVE instruction: an on-chip copy between buffers along a strided loop nest,
the path by which one contraction's result becomes the next one's operand without
the host (the resident dataflow).

Encoding (``MOVE_FIELDS``, the one definition; ``docs/isa.md`` restates it): a header
word (``isa.Op.MOVE``, payload length ``MOVE_WORDS``) and

====================  =================================================================
payload word          fields
====================  =================================================================
0 MODE                ``src`` bits 1..0, ``dst`` bits 3..2 (0 A, 1 B, 2 C; 3 illegal),
                      ``fill`` bit 4
1 SRC_BASE            first source word address (unsigned)
2 DST_BASE            first destination word address (unsigned)
3 + 3i                level i (0 = outermost): ``count`` bits 15..0 (1..``COUNT_MAX``)
4 + 3i                level i: signed source word stride (32 bits)
5 + 3i                level i: signed destination word stride (32 bits)
====================  =================================================================

A *word address* ``w`` of a buffer with ``lanes`` banks is bank ``w % lanes``, row
``w // lanes`` (the host map's numbering, ``sw_model.accel.hostmap``).

Semantics: for every point ``(c_0, ..., c_7)`` of the ``MOVE_LEVELS``-level nest, in
order (level 7 innermost), ``s = src_base + sum c_i * src_stride_i`` and
``d = dst_base + sum c_i * dst_stride_i``; then ``dst[d] = src[s]`` (one word), or,
with ``fill``, every lane of the destination row ``d // lanes`` becomes 0 (the source
is not read; a fill clears the padding of an operand layout before its elements are
copied in). One element per cycle.

Checks, before anything is written (``move_check``): every ``s`` inside the source
buffer (``lanes * bank_depth`` words; not checked with ``fill``) and every ``d`` inside
the destination buffer; otherwise the program halts with ``ADDRESS_RANGE``. A source
or destination code 3, a copy (no ``fill``) whose source and destination are the same
buffer (each bank has one port per cycle) or a loop count of 0 halts with
``BAD_CONFIG`` (``Move.decode`` raises).

Timing (``move_cycles``): fetch 2 + ``MOVE_WORDS`` payload + 1 validate +
``move_check_cycles`` (the serial range check: one pass per ``MOVE_CHECK_PASSES``
entry of ``bit_length(count - 1)`` Horner steps + 1 accumulate cycle
(``isa.pass_cycles`` of the pass's level), + 1) + one cycle per element + 1 (the
last element's write). Both depend only on the loop counts (``Move.counts``). The element cycles count as ``move_cycles`` (counter
``Reg.MOVE``); the rest as ``stall_config`` (fetch, payload) and ``stall_fill``.

Members: ``MOVE_LEVELS``, ``MOVE_WORDS``, ``MW``, ``BUFS``, ``MoveLevel``, ``Move``,
``MOVE_FIELDS``, ``MOVE_FIELD``, ``MovePass``, ``MOVE_CHECK_PASSES``,
``move_check_cycles``, ``move_cycles``, ``move_check``, ``run_move``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .config import AccelConfig
from .isa import COUNT_MAX, Field, Op, header, pass_cycles

__all__ = ["MOVE_LEVELS", "MOVE_WORDS", "MW", "BUFS", "MoveLevel", "Move", "MOVE_FIELDS",
           "MOVE_FIELD", "MovePass", "MOVE_CHECK_PASSES", "move_check_cycles",
           "MOVE_TAIL", "move_cycles", "move_check", "run_move", "buffer_lanes"]

MOVE_LEVELS = 8
MOVE_WORDS = 3 + 3 * MOVE_LEVELS
BUFS = ("A", "B", "C")
MOVE_TAIL = 1             # the last element's write


class MW(enum.IntEnum):
    """Word offsets inside the MOVE payload."""
    MODE = 0
    SRC_BASE = 1
    DST_BASE = 2
    LEVELS = 3


def _move_fields() -> tuple:
    F = Field
    fields = [F("src", MW.MODE, 0, 2), F("dst", MW.MODE, 2, 2), F("fill", MW.MODE, 4, 1),
              F("src_base", MW.SRC_BASE, 0, 32), F("dst_base", MW.DST_BASE, 0, 32)]
    for i in range(MOVE_LEVELS):
        w = MW.LEVELS + 3 * i
        fields += [F(f"level{i}.count", w, 0, 16),
                   F(f"level{i}.src_stride", w + 1, 0, 32, "signed"),
                   F(f"level{i}.dst_stride", w + 2, 0, 32, "signed")]
    return tuple(fields)


MOVE_FIELDS = _move_fields()
MOVE_FIELD = {f.name: f for f in MOVE_FIELDS}


@dataclass(frozen=True)
class MoveLevel:
    """One loop level of a MOVE: ``count`` iterations, word strides per iteration."""
    count: int = 1
    src_stride: int = 0
    dst_stride: int = 0


def _pad_levels(levels) -> tuple:
    levels = tuple(levels)
    if len(levels) > MOVE_LEVELS:
        raise ValueError(f"{len(levels)} loop levels; a MOVE has at most {MOVE_LEVELS}")
    return (MoveLevel(),) * (MOVE_LEVELS - len(levels)) + levels


@dataclass(frozen=True)
class Move:
    """A MOVE instruction (module docstring). ``src``/``dst``: ``"A"``, ``"B"`` or
    ``"C"``; ``levels``: up to ``MOVE_LEVELS`` ``MoveLevel``s, outermost first (fewer
    are padded outside with count-1 levels)."""
    src: str
    dst: str
    src_base: int
    dst_base: int
    levels: tuple = ()
    fill: bool = False

    def __post_init__(self):
        for role in ("src", "dst"):
            v = getattr(self, role)
            if v not in BUFS:
                raise ValueError(f"MOVE {role}={v!r} unknown; allowed {', '.join(BUFS)}")
        object.__setattr__(self, "levels", _pad_levels(self.levels))

    @property
    def counts(self) -> tuple:
        """The loop counts, outermost first (``MOVE_LEVELS`` of them)."""
        return tuple(lv.count for lv in self.levels)

    @property
    def elements(self) -> int:
        """Words copied (rows cleared, with ``fill``): the product of the counts."""
        n = 1
        for lv in self.levels:
            n *= lv.count
        return n

    def values(self) -> dict[str, int]:
        out = {"src": BUFS.index(self.src), "dst": BUFS.index(self.dst),
               "fill": int(self.fill), "src_base": self.src_base,
               "dst_base": self.dst_base}
        for i, lv in enumerate(self.levels):
            if not 1 <= lv.count <= COUNT_MAX:
                raise ValueError(f"MOVE level {i} count={lv.count} out of range; allowed "
                                 f"1..{COUNT_MAX}")
            out.update({f"level{i}.count": lv.count, f"level{i}.src_stride": lv.src_stride,
                        f"level{i}.dst_stride": lv.dst_stride})
        return out

    def encode(self) -> list[int]:
        """The instruction: header word + ``MOVE_WORDS`` payload words."""
        w = [0] * MOVE_WORDS
        for name, v in self.values().items():
            f = MOVE_FIELD[name]
            w[f.word] |= f.encode(v) << f.lsb
        return [header(Op.MOVE, MOVE_WORDS)] + w

    @classmethod
    def decode(cls, payload) -> "Move":
        """The MOVE of ``payload`` (``MOVE_WORDS`` words). Raises ValueError on a
        buffer code 3 or a copy (no ``fill``) whose source and destination are the
        same buffer (the controller halts with ``BAD_CONFIG``)."""
        if len(payload) != MOVE_WORDS:
            raise ValueError(f"MOVE payload of {len(payload)} words; the ISA has exactly "
                             f"{MOVE_WORDS}")
        v = {f.name: f.decode(int(payload[f.word])) for f in MOVE_FIELDS}
        for role in ("src", "dst"):
            if v[role] >= len(BUFS):
                raise ValueError(f"MOVE {role} code {v[role]} illegal; allowed 0..2")
        if v["src"] == v["dst"] and not v["fill"]:
            raise ValueError(f"MOVE src and dst both {BUFS[v['src']]}; a copy needs two "
                             f"buffers")
        levels = tuple(MoveLevel(v[f"level{i}.count"], v[f"level{i}.src_stride"],
                                 v[f"level{i}.dst_stride"]) for i in range(MOVE_LEVELS))
        return cls(BUFS[v["src"]], BUFS[v["dst"]], v["src_base"], v["dst_base"], levels,
                   bool(v["fill"]))

    def addresses(self) -> tuple[np.ndarray, np.ndarray]:
        """(source, destination) word address of every element, in issue order."""
        s = np.array([self.src_base], dtype=np.int64)
        d = np.array([self.dst_base], dtype=np.int64)
        for lv in self.levels:
            c = np.arange(lv.count, dtype=np.int64)
            s = (s[:, None] + c[None, :] * lv.src_stride).reshape(-1)
            d = (d[:, None] + c[None, :] * lv.dst_stride).reshape(-1)
        return s, d


# -- the range check's schedule ---------------------------------------------------------

@dataclass(frozen=True)
class MovePass:
    """One pass of the MOVE range check (``rtl.move_unit``): the product
    ``(count_level - 1) * stride`` of one stride word."""
    stream: str       # "src" or "dst"
    level: int
    word: int         # payload word offset


def _move_passes() -> tuple:
    inner_first = range(MOVE_LEVELS - 1, -1, -1)
    return tuple(MovePass(s, i, MOVE_FIELD[f"level{i}.{s}_stride"].word)
                 for s in ("src", "dst") for i in inner_first)


MOVE_CHECK_PASSES = _move_passes()


def _counts(counts) -> tuple:
    counts = tuple(int(c) for c in counts)
    if len(counts) > MOVE_LEVELS:
        raise ValueError(f"{len(counts)} loop counts; a MOVE has at most {MOVE_LEVELS}")
    return (1,) * (MOVE_LEVELS - len(counts)) + counts


def move_check_cycles(counts) -> int:
    """Cycles of the MOVE range check, start strobe to done, for loop ``counts``
    (``Move.counts``, outermost first; fewer are padded outside with 1s):
    ``isa.pass_cycles`` of each pass's level summed over ``MOVE_CHECK_PASSES``, plus
    the done register. From ``len(MOVE_CHECK_PASSES) + 1`` (every count 1) to
    ``len(MOVE_CHECK_PASSES) * (COUNT_BITS + 1) + 1``."""
    counts = _counts(counts)
    return 1 + sum(pass_cycles(counts[ps.level]) for ps in MOVE_CHECK_PASSES)


def move_cycles(counts, fetch: int = 2) -> int:
    """Cycles of one MOVE with loop ``counts`` (``Move.counts``): fetch, payload,
    validate, range check (``move_check_cycles``), one cycle per element (the
    product of the counts), the last write."""
    counts = _counts(counts)
    elements = 1
    for c in counts:
        elements *= c
    return fetch + MOVE_WORDS + 1 + move_check_cycles(counts) + elements + MOVE_TAIL


def buffer_lanes(cfg: AccelConfig, buf: str) -> int:
    return {"A": cfg.a_lanes, "B": cfg.b_lanes, "C": cfg.c_lanes}[buf]


def move_check(cfg: AccelConfig, mv: Move) -> str | None:
    """Why the controller refuses ``mv`` (``"address"``: ``ADDRESS_RANGE``), or None.
    The same verdict as the RTL's range check: extremes of each stream over the nest."""
    def extremes(base, attr):
        lo = hi = base
        for lv in mv.levels:
            p = (lv.count - 1) * getattr(lv, attr)
            lo, hi = (lo + p, hi) if p < 0 else (lo, hi + p)
        return lo, hi

    dlo, dhi = extremes(mv.dst_base, "dst_stride")
    words_d = buffer_lanes(cfg, mv.dst) * cfg.bank_depth
    if dlo < 0 or dhi >= words_d:
        return "address"
    if not mv.fill:
        slo, shi = extremes(mv.src_base, "src_stride")
        words_s = buffer_lanes(cfg, mv.src) * cfg.bank_depth
        if slo < 0 or shi >= words_s:
            return "address"
        if mv.src == mv.dst and not (shi < dlo or dhi < slo):
            return "address"
    return None


def run_move(cfg: AccelConfig, mv: Move, bufs: dict) -> None:
    """Execute ``mv`` on ``bufs`` (``{"A": rows x a_lanes, "B": ..., "C": ...}`` int64
    arrays, updated in place). Raises ValueError when the range check refuses it."""
    why = move_check(cfg, mv)
    if why:
        raise ValueError(f"MOVE {mv.src}->{mv.dst} outside its buffers or overlapping")
    s, d = mv.addresses()
    dl = buffer_lanes(cfg, mv.dst)
    dst = bufs[mv.dst]
    if mv.fill:
        dst[np.unique(d // dl)] = 0
        return
    sl = buffer_lanes(cfg, mv.src)
    dst[d // dl, d % dl] = bufs[mv.src][s // sl, s % sl]
