"""Instruction set: encodings defined once, used by the compiler and the RTL controller.

Programs are 32-bit words in program memory. See ``docs/isa.md`` for the prose version.
Every instruction starts with a header word: ``opcode`` in bits 7..0, payload length
(words following the header) in bits 31..16.

* ``CONFIG`` (0x01): mapping and network settings, ``config_words(cfg)`` payload words.
* ``CONTRACT`` (0x02): one contraction, ``CONTRACT_WORDS`` payload words.
* ``SYNC`` (0x03): wait until all previous work has drained (no payload).
* ``HALT`` (0x04): stop; STATUS.DONE set.
* ``MOVE`` (0x05): on-chip copy between buffers along a loop nest, ``move.MOVE_WORDS``
  payload words (``sw_model/accel/move.py``).
* ``VEC`` (0x06): a MOVE whose elements pass through the vector ALU (ReLU,
  requantization, shift, add, mask), ``vec.VEC_WORDS`` payload words
  (``sw_model/accel/vec.py``).
* ``XENT`` (0x07): the softmax cross-entropy gradient of rows of logits along a MOVE's
  walk, ``xent.XENT_WORDS`` payload words (``sw_model/accel/xent.py``).
* ``ADAM`` (0x08): the fixed-point Adam update of a parameter tensor along a MOVE's
  walk, its state in the update unit's memory, ``adam.ADAM_WORDS`` payload words
  (``sw_model/accel/adam.py``).

Any other opcode halts with ``ErrorCode.ILLEGAL_OPCODE``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .config import AccelConfig
from ..arith.fixedpoint import ROUNDING_MODES
from .routing import distribution_n_switch_bits
from .shift_slots import SLOT_BITS, SLOTS_MAX, VOTE_BITS, as_vote

__all__ = ["Op", "N_LEVELS", "COUNT_MAX", "CONTRACT_WORDS", "MODE_CONTINUE", "MODE_HOLD", "MODE_BITS",
           "Level", "Contract", "CW", "Field", "CONTRACT_FIELDS", "FIELD", "used_bits",
           "decode_fields",
           "Mapping", "ConfigPayload", "config_words", "net_words", "header",
           "encode_config", "decode_header", "instructions", "SYNC", "HALT",
           "CheckPass", "CHECK_PASSES", "CHECK_STREAMS", "pass_cycles", "check_cycles",
           "loop_deltas"]

N_LEVELS = 4          # outer (tile) loop levels of the address generators
COUNT_BITS = 13       # loop counts are 1..COUNT_MAX
COUNT_MAX = (1 << COUNT_BITS) - 1
STRIDE_BITS = 16      # buffer row strides, signed
CONTRACT_WORDS = 7 + 3 * N_LEVELS


class Op(enum.IntEnum):
    CONFIG = 0x01
    CONTRACT = 0x02
    SYNC = 0x03
    HALT = 0x04
    MOVE = 0x05       # on-chip copy between buffers (sw_model.accel.move)
    VEC = 0x06        # elementwise op along a MOVE's walk (sw_model.accel.vec)
    XENT = 0x07       # softmax cross-entropy gradient along a MOVE's walk (sw_model.accel.xent)
    ADAM = 0x08       # fixed-point Adam update along a MOVE's walk (sw_model.accel.adam)
    STEP = 0x09       # a training step's key (derived seeds) and learning rate (sw_model.accel.step)


def header(op: Op, length: int = 0) -> int:
    return int(op) | (length << 16)


def decode_header(word: int) -> tuple[int, int]:
    return word & 0xFF, (word >> 16) & 0xFFFF


def instructions(program):
    """``(pc, op, payload)`` of each instruction of ``program`` (words) in order, walked
    by the headers' payload lengths."""
    pc = 0
    while pc < len(program):
        op, n = decode_header(program[pc])
        yield pc, op, program[pc + 1:pc + 1 + n]
        pc += 1 + n


SYNC = header(Op.SYNC)
HALT = header(Op.HALT)


def _u(value: int, bits: int, name: str, signed: bool = False) -> int:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}={value} out of range; allowed {lo}..{hi}")
    return int(value) & ((1 << bits) - 1)


# -- CONFIG -------------------------------------------------------------------------

def _log2(x: int) -> int:
    return x.bit_length() - 1


def net_words(bits: int) -> int:
    return (bits + 31) // 32


def dist_bits(lanes: int) -> int:
    """Settings bits of a Benes distribution network (2 bits per switch)."""
    return distribution_n_switch_bits(lanes)


@dataclass(frozen=True)
class Mapping:
    """How the GEMM view (M, N, K) of a contraction is spread over the CE array:
    ``ga`` CE groups take different M tiles, ``gb`` different N tiles, ``gk`` split K
    (their partial sums are added by the reduction network). ``ga*gb*gk == n_ce``.

    Modes named in the docs: independent output tiles per CE (``gk == 1``), K split
    (``gk > 1``), one operand multicast to all CEs (``ga == n_ce`` multicasts B,
    ``gb == n_ce`` multicasts A)."""

    ga: int
    gb: int
    gk: int

    def check(self, cfg: AccelConfig) -> "Mapping":
        for name in ("ga", "gb", "gk"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"mapping {name}={v} is not a power of two")
        if self.ga * self.gb * self.gk != cfg.n_ce:
            raise ValueError(f"mapping ga*gb*gk={self.ga * self.gb * self.gk}; must equal "
                             f"n_ce={cfg.n_ce}")
        return self

    @property
    def mode(self) -> str:
        if self.gk > 1:
            return "k-split"
        if self.ga == 1 or self.gb == 1:
            return "multicast"
        return "tiles"

    def word(self) -> int:
        return _log2(self.ga) | (_log2(self.gb) << 4) | (_log2(self.gk) << 8)


@dataclass(frozen=True)
class ConfigPayload:
    mapping: Mapping
    a_net: int            # packed distribution settings (A operand)
    b_net: int            # packed distribution settings (B operand)
    red_net: int          # packed reduction settings
    lane_index: tuple     # per C lane: flat-output-index offset (32-bit)


def config_layout(cfg: AccelConfig, red_bits: int) -> dict[str, tuple[int, int]]:
    """Payload word ranges: name -> (first word, word count)."""
    parts = [("mapping", 1), ("a_net", net_words(dist_bits(cfg.a_lanes))),
             ("b_net", net_words(dist_bits(cfg.b_lanes))),
             ("red_net", net_words(red_bits)), ("lane_index", cfg.c_lanes)]
    out, at = {}, 0
    for name, n in parts:
        out[name] = (at, n)
        at += n
    return out


def config_words(cfg: AccelConfig, red_bits: int) -> int:
    lay = config_layout(cfg, red_bits)
    return sum(n for _, n in lay.values())


def _split(value: int, words: int) -> list[int]:
    return [(value >> (32 * i)) & 0xFFFFFFFF for i in range(words)]


def encode_config(cfg: AccelConfig, red_bits: int, p: ConfigPayload) -> list[int]:
    p.mapping.check(cfg)
    lay = config_layout(cfg, red_bits)
    words = [p.mapping.word()]
    words += _split(p.a_net, lay["a_net"][1])
    words += _split(p.b_net, lay["b_net"][1])
    words += _split(p.red_net, lay["red_net"][1])
    if len(p.lane_index) != cfg.c_lanes:
        raise ValueError(f"lane_index has {len(p.lane_index)} entries; need {cfg.c_lanes}")
    words += [int(v) & 0xFFFFFFFF for v in p.lane_index]
    return [header(Op.CONFIG, len(words))] + words


# -- CONTRACT -------------------------------------------------------------------------

@dataclass(frozen=True)
class Level:
    """One outer loop level: ``count`` iterations; per iteration the A, B and C row
    addresses advance by their strides and the flat output index by ``stride_idx``."""
    count: int = 1
    stride_a: int = 0
    stride_b: int = 0
    stride_c: int = 0
    stride_idx: int = 0


@dataclass(frozen=True)
class Contract:
    """A CONTRACT instruction. The A/B issue loop is ``levels`` (outer, outermost
    first) then ``k_count`` reduction steps (strides ``k_stride_a/b``); every outer
    iteration is one output tile, drained as ``pe_rows`` C rows at
    ``base_c + sum(level_i * stride_c_i) + row``, with flat output index
    ``base_idx + sum(level_i * stride_idx_i) + row * row_stride_idx + lane_index[lane]``.

    K-chunk accumulation (MODE bits ``MODE_CONTINUE``/``MODE_HOLD``): with
    ``acc_continue`` a tile's first step adds to the sums the PE accumulators already
    hold instead of restarting them; with ``acc_hold`` a tile's last step does not
    hand its sums to the drain (nothing is written to C; the sums stay in the
    accumulators). A reduction longer than the buffers runs as one-tile CONTRACTs per
    K chunk: hold on every chunk but the last, continue on every chunk but the first.
    Timing is the same with or without them.

    Shift slots (``sw_model.accel.shift_slots``): ``slot`` 1..``shift_slots`` takes
    the output shift from that on-chip slot (``shift`` must then be 0) and ``vote``
    (``none``/``gather``/``close``, or 0..2) folds the CONTRACT's largest result word
    into the slot's vote at its end; ``slot`` 0 (default) uses ``shift``.
    """
    shift: int = 0
    rounding: str = "floor"
    out_bits: int = 16
    seed: int = 0
    base_a: int = 0
    base_b: int = 0
    base_c: int = 0
    base_idx: int = 0
    k_count: int = 1
    k_stride_a: int = 1
    k_stride_b: int = 1
    row_stride_idx: int = 0
    levels: tuple = field(default_factory=lambda: tuple(Level() for _ in range(N_LEVELS)))
    acc_continue: bool = False
    acc_hold: bool = False
    slot: int = 0
    vote: int = 0

    @property
    def counts(self) -> tuple:
        """The loop counts: levels 0..N_LEVELS-1 (outermost first), then ``k_count``
        (the bound check's timing, ``check_cycles``)."""
        return tuple(lv.count for lv in self.levels) + (self.k_count,)

    def values(self) -> dict[str, int]:
        """Field name (``CONTRACT_FIELDS``) -> integer value as encoded."""
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding={self.rounding!r} unknown; allowed "
                             f"{', '.join(ROUNDING_MODES)}")
        if len(self.levels) != N_LEVELS:
            raise ValueError(f"{len(self.levels)} loop levels; the ISA has exactly {N_LEVELS}")
        if self.slot and self.shift:
            raise ValueError(f"shift={self.shift} with slot={self.slot}; a slot's shift "
                             f"replaces the field, which must be 0")
        if as_vote(self.vote) and not self.slot:
            raise ValueError(f"vote={self.vote!r} needs a slot (1..{SLOTS_MAX}); slot 0 "
                             f"is the instruction's own shift")
        out = {}
        for f in CONTRACT_FIELDS:
            if f.name.startswith("level"):
                lv, attr = f.name.split(".")
                v = getattr(self.levels[int(lv[5:])], attr)
            elif f.name == "rounding":
                v = ROUNDING_MODES.index(self.rounding)
            elif f.name == "vote":
                v = as_vote(self.vote)
            else:
                v = getattr(self, f.name)
            out[f.name] = int(v)
        return out

    def encode(self) -> list[int]:
        """The instruction: header word + ``CONTRACT_WORDS`` payload words."""
        w = [0] * CONTRACT_WORDS
        for f, v in zip(CONTRACT_FIELDS, self.values().values()):
            w[f.word] |= f.encode(v) << f.lsb
        return [header(Op.CONTRACT, CONTRACT_WORDS)] + w

    @classmethod
    def decode(cls, payload) -> "Contract":
        """The CONTRACT whose payload words are ``payload`` (``CONTRACT_WORDS`` of
        them); signed fields sign-extended, modular fields as unsigned 32-bit. An
        illegal rounding code (3) stays an integer (the controller halts such an
        instruction with ``BAD_CONFIG``; ``encode`` refuses it)."""
        if len(payload) != CONTRACT_WORDS:
            raise ValueError(f"CONTRACT payload of {len(payload)} words; the ISA has "
                             f"exactly {CONTRACT_WORDS}")
        v = {f.name: f.decode(int(payload[f.word])) for f in CONTRACT_FIELDS}
        levels = tuple(Level(**{a: v.pop(f"level{i}.{a}") for a in
                                ("count", "stride_a", "stride_b", "stride_c", "stride_idx")})
                       for i in range(N_LEVELS))
        v["rounding"] = ROUNDING_MODES[v["rounding"]] if v["rounding"] < len(ROUNDING_MODES) \
            else v["rounding"]
        v["acc_continue"], v["acc_hold"] = bool(v["acc_continue"]), bool(v["acc_hold"])
        return cls(levels=levels, **v)


# Word offsets inside the CONTRACT payload (used by the RTL decoder).
class CW(enum.IntEnum):
    MODE = 0
    SEED = 1
    BASE_AB = 2
    BASE_C_KCOUNT = 3
    KSTRIDE = 4
    BASE_IDX = 5
    ROW_STRIDE_IDX = 6
    LEVELS = 7


@dataclass(frozen=True)
class Field:
    """One CONTRACT payload field: ``width`` bits from bit ``lsb`` of payload word
    ``word``. ``kind``: ``"unsigned"`` and ``"signed"`` values are range-checked when
    encoded (signed ones sign-extended when decoded); ``"modular"`` values (32-bit
    flat-index offsets) are taken modulo ``2**width``."""
    name: str             # ``Contract`` attribute; ``levelI.attr`` for loop levels
    word: int
    lsb: int
    width: int
    kind: str = "unsigned"

    @property
    def signed(self) -> bool:
        return self.kind == "signed"

    def encode(self, value: int) -> int:
        if self.kind == "modular":
            return int(value) & ((1 << self.width) - 1)
        return _u(value, self.width, self.name, self.signed)

    def decode(self, word: int) -> int:
        raw = (int(word) >> self.lsb) & ((1 << self.width) - 1)
        if self.signed and raw >> (self.width - 1):
            return raw - (1 << self.width)
        return raw


def used_bits(fields, words) -> dict:
    """``{word: mask of the bits its fields use}`` for every word of ``words``."""
    return {w: sum(((1 << f.width) - 1) << f.lsb for f in fields if f.word == w)
            for w in words}


def decode_fields(name: str, payload, length: int, fields, used: dict) -> dict:
    """The field values of an instruction ``name``'s ``payload`` (``length`` words);
    ValueError (what the controller refuses with ``BAD_CONFIG``) on another length or
    a reserved bit (one outside ``used``, ``used_bits``) set."""
    if len(payload) != length:
        raise ValueError(f"{name} payload of {len(payload)} words; the ISA has exactly "
                         f"{length}")
    for w, mask in used.items():
        extra = int(payload[w]) & ~mask & 0xFFFFFFFF
        if extra:
            raise ValueError(f"{name} payload word {int(w)}: reserved bits {extra:#x} "
                             f"set; allowed 0")
    return {f.name: f.decode(int(payload[f.word])) for f in fields}


def _contract_fields() -> tuple:
    F = Field
    fields = [F("shift", CW.MODE, 0, 6), F("rounding", CW.MODE, 6, 2),
              F("out_bits", CW.MODE, 8, 5),
              # K-chunk accumulation across CONTRACTs (``Contract``)
              F("acc_continue", CW.MODE, 13, 1), F("acc_hold", CW.MODE, 14, 1),
              # shift slots (sw_model.accel.shift_slots): 0 = the shift field
              F("slot", CW.MODE, 15, SLOT_BITS), F("vote", CW.MODE, 15 + SLOT_BITS, VOTE_BITS),
              F("seed", CW.SEED, 0, 32),
              F("base_a", CW.BASE_AB, 0, 16), F("base_b", CW.BASE_AB, 16, 16),
              F("base_c", CW.BASE_C_KCOUNT, 0, 16), F("k_count", CW.BASE_C_KCOUNT, 16, 16),
              F("k_stride_a", CW.KSTRIDE, 0, 16, "signed"),
              F("k_stride_b", CW.KSTRIDE, 16, 16, "signed"),
              F("base_idx", CW.BASE_IDX, 0, 32, "modular"),
              F("row_stride_idx", CW.ROW_STRIDE_IDX, 0, 32, "modular")]
    for i in range(N_LEVELS):
        w = CW.LEVELS + 3 * i
        fields += [F(f"level{i}.count", w, 0, 16), F(f"level{i}.stride_a", w, 16, 16, "signed"),
                   F(f"level{i}.stride_b", w + 1, 0, 16, "signed"),
                   F(f"level{i}.stride_c", w + 1, 16, 16, "signed"),
                   F(f"level{i}.stride_idx", w + 2, 0, 32, "modular")]
    return tuple(fields)


# The CONTRACT payload layout, the one definition: ``Contract.encode``/``decode``, the
# compiler, the fabric model, the bound check's schedule and the controller's
# decoder (``rtl.isa_layout`` builds its ``amaranth.lib.data`` layouts from it).
CONTRACT_FIELDS = _contract_fields()
FIELD = {f.name: f for f in CONTRACT_FIELDS}


def _fields_cover_payload() -> None:
    used = [0] * CONTRACT_WORDS
    for f in CONTRACT_FIELDS:
        mask = ((1 << f.width) - 1) << f.lsb
        assert f.lsb + f.width <= 32 and not used[f.word] & mask, f.name
        used[f.word] |= mask


_fields_cover_payload()

# MODE word: its used width and the K-chunk flags as masks.
MODE_BITS = max(f.lsb + f.width for f in CONTRACT_FIELDS if f.word == CW.MODE)
MODE_CONTINUE = 1 << FIELD["acc_continue"].lsb
MODE_HOLD = 1 << FIELD["acc_hold"].lsb


# -- the bound check's schedule --------------------------------------------------------

def loop_deltas(counts, strides, bits: int | None = None) -> list[int]:
    """Deltas of a strided loop nest (level 0 outermost): when level ``i`` advances
    and every inner level restarts, the address changes by
    ``strides[i] - sum_{j > i} (counts[j] - 1) * strides[j]`` (``rtl.loop_nest``).
    With ``bits``, reduced modulo ``2**bits`` (the address width)."""
    out, inner = [], 0
    for c, s in reversed(list(zip(counts, strides))):
        out.append(int(s) - inner)
        inner += (int(c) - 1) * int(s)
    out.reverse()
    return [d % (1 << bits) for d in out] if bits else out


@dataclass(frozen=True)
class CheckPass:
    """One pass of the serial bound check (``rtl.bound_check``): the product
    ``(count_level - 1) * stride`` of one stride field of one CONTRACT payload word.
    ``level`` is 0..N_LEVELS-1 for the outer levels, N_LEVELS for the reduction."""
    stream: str       # "a", "b", "c" (range-checked) or "idx" (flat output index)
    level: int
    word: int         # payload word offset (CW)
    field: str        # "lo" (bits 15..0, signed), "hi" (31..16, signed), "full" (32 bits)


CHECK_STREAMS = ("a", "b", "c", "idx")


def _check_passes() -> tuple:
    def cp(stream, level, name):
        f = FIELD[name]
        part = "full" if f.width == 32 else {0: "lo", 16: "hi"}[f.lsb]
        return CheckPass(stream, level, f.word, part)

    K = N_LEVELS
    outer = range(N_LEVELS - 1, -1, -1)          # innermost first
    passes = [cp("a", K, "k_stride_a")]
    passes += [cp("a", i, f"level{i}.stride_a") for i in outer]
    passes += [cp("b", K, "k_stride_b")]
    passes += [cp("b", i, f"level{i}.stride_b") for i in outer]
    passes += [cp("c", i, f"level{i}.stride_c") for i in outer]
    passes += [cp("idx", i, f"level{i}.stride_idx") for i in outer]
    return tuple(passes)


# Stream by stream, innermost level first (the order the deltas' suffix sums need).
CHECK_PASSES = _check_passes()


def pass_cycles(count: int) -> int:
    """Cycles of one serial range-check pass (``CheckPass`` here, ``move.MovePass`` for
    MOVE) over a loop level of ``count`` iterations: one Horner step per bit of
    ``count - 1`` from its highest set bit down (``(count - 1).bit_length()``, none
    when ``count`` is 1), then one accumulate cycle."""
    count = int(count)
    if count < 1:
        raise ValueError(f"loop count={count} out of range; allowed 1..{COUNT_MAX}")
    return (count - 1).bit_length() + 1


def check_cycles(counts=None) -> int:
    """Cycles of the bound check, start strobe to done, of a CONTRACT whose loop
    counts are ``counts`` (``Contract.counts``: levels 0..N_LEVELS-1, then
    ``k_count``; default every count ``COUNT_MAX``, the longest): ``pass_cycles`` of
    each pass's level summed over ``CHECK_PASSES``, plus the done register. From
    ``len(CHECK_PASSES) + 1`` (every count 1) to ``len(CHECK_PASSES) * (COUNT_BITS +
    1) + 1``."""
    counts = (COUNT_MAX,) * (N_LEVELS + 1) if counts is None else tuple(counts)
    if len(counts) != N_LEVELS + 1:
        raise ValueError(f"{len(counts)} loop counts; the bound check takes exactly "
                         f"{N_LEVELS + 1} (levels, then k_count)")
    return 1 + sum(pass_cycles(counts[ps.level]) for ps in CHECK_PASSES)
