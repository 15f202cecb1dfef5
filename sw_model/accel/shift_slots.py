"""Shift slots: the adaptive output shifts kept and voted on chip.

The recipe's adaptive shift (``sw_model.train.quant_train.ShiftController``, REFERENCES.md
§2) is one power-of-two output shift per contraction (and per activation
requantization) that moves by one when ``votes`` consecutive executions agree that the
output is too large (``max|out| > up * full scale``) or too small (``< down * full
scale``). This module is its one definition, used by the recipe's controller, the
functional model (``sw_model.program.fabric_model``) and the RTL (``rtl.shift_slots``):

* ``vote(out_max, out_bits, up, down)`` -> +1 (up), -1 (down), 0; exact integer
  thresholds ``vote_thresholds`` (``m > t`` equals ``m > floor(t)`` for an integer
  ``m``, ``m < t`` equals ``m < ceil(t)``), so hardware compares integers only;
* ``advance(shift, pending, v, votes, shift_max)`` -> the new ``(shift, pending)``.

On chip (configs with ``shift_slots`` > 0) the accelerator holds ``shift_slots`` slots,
each ``(shift, pending, gmax)``. A CONTRACT or VEC names a slot (``slot`` 1..N; 0: its
own shift field) and a vote mode:

==========  ==  ============================================================
vote        #   at the end of the instruction (its largest |result word| ``m``,
                the max log's entry, ``rtl/max_log.py``)
==========  ==  ============================================================
``none``    0   nothing (evaluation: the shift is read, never moved)
``gather``  1   ``gmax = max(gmax, m)`` (a contraction compiled to several
                CONTRACTs: every one but the last)
``close``   2   vote on ``max(gmax, m)``; ``(shift, pending)`` advance;
                ``gmax = 0``
==========  ==  ============================================================

An instruction that names slot ``k`` uses that slot's shift instead of its shift field
(which must be 0). Votes land two cycles after the instruction's last cycle, before
the next instruction reads any slot: in-order semantics, as the recipe's. Slots keep
their state across programs (START and CLEAR leave them); the host reads and writes
them at ``Reg.SLOT + k - 1`` (``slot_word``/``slot_fields``) while idle: a write sets
the first calibration of a shift (the recipe's first-batch calibration is the host's)
or restores a checkpoint. ``Reg.SLOT_MOVED`` has bit ``k - 1`` set when slot ``k``'s
shift moved by a vote (the host writes 1s to clear bits; START and CLEAR leave it): a
host that keeps copies of the shifts reads one word per program, and the slots that
moved.

Refused with ``BAD_CONFIG`` (nothing written): vote code 3, a vote with slot 0, a slot
above ``shift_slots``, a nonzero shift field with a slot, and (VEC) a slot shift above
``VEC_SHIFT_MAX``; (CONTRACT) a slot shift >= ``acc_bits`` as for the field.
"""

from __future__ import annotations

import enum
import math

__all__ = ["Vote", "SLOT_BITS", "VOTE_BITS", "SLOTS_MAX", "PENDING_BITS", "SLOT_SHIFT_BITS",
           "vote_thresholds", "vote", "advance", "slot_word", "slot_fields", "SlotFile"]

SLOT_BITS = 5          # the instruction's slot field: 0 (none) or 1..SLOTS_MAX
VOTE_BITS = 2
SLOTS_MAX = (1 << SLOT_BITS) - 1
PENDING_BITS = 4       # signed: -(votes-1)..votes-1 held between votes (votes <= 7)
SLOT_SHIFT_BITS = 6    # 0..acc_bits-1 (acc_bits <= 48)


class Vote(enum.IntEnum):
    NONE = 0
    GATHER = 1
    CLOSE = 2


def as_vote(value) -> Vote:
    """``Vote`` from a ``Vote``, its code or its lower-case name."""
    if isinstance(value, Vote):
        return value
    if isinstance(value, str) and value.upper() in Vote.__members__:
        return Vote[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(Vote):
        return Vote(value)
    raise ValueError(f"vote={value!r} unknown; allowed "
                     f"{', '.join(v.name.lower() for v in Vote)}")


def vote_thresholds(out_bits: int, up: float, down: float) -> tuple[int, int]:
    """``(hi, lo)``: an integer ``m`` votes up iff ``m > hi`` and down iff ``m < lo``,
    exactly the recipe's ``m > up * full`` and ``m < down * full`` with ``full =
    2**(out_bits-1) - 1`` (the same float products, floored and ceiled)."""
    full = (1 << (int(out_bits) - 1)) - 1
    return math.floor(up * full), math.ceil(down * full)


def vote(out_max: int, out_bits: int, up: float, down: float) -> int:
    """+1 (output too large), -1 (too small) or 0 for the largest |output| ``out_max``."""
    hi, lo = vote_thresholds(out_bits, up, down)
    m = int(out_max)
    return 1 if m > hi else -1 if m < lo else 0


def advance(shift: int, pending: int, v: int, votes: int, shift_max: int) -> tuple[int, int]:
    """The shift and the run of equal votes after vote ``v``: ``pending`` counts
    consecutive up (> 0) or down (< 0) votes; ``votes`` in a row move the shift by one
    (up to ``shift_max``, down to 0) and restart the count; a 0 vote restarts it."""
    if v > 0:
        pending = pending + 1 if pending > 0 else 1
    elif v < 0:
        pending = pending - 1 if pending < 0 else -1
    else:
        pending = 0
    if pending >= votes:
        return min(shift + 1, shift_max), 0
    if pending <= -votes:
        return max(shift - 1, 0), 0
    return shift, pending


def slot_word(shift: int, pending: int = 0, gmax: int = 0) -> int:
    """The register word of a slot: ``shift`` bits 5..0, ``pending`` bits 11..8
    (signed), ``gmax`` bits 31..16."""
    if not 0 <= int(shift) < 1 << SLOT_SHIFT_BITS:
        raise ValueError(f"slot shift={shift} out of range; allowed 0..{(1 << SLOT_SHIFT_BITS) - 1}")
    lim = 1 << (PENDING_BITS - 1)
    if not -lim <= int(pending) < lim:
        raise ValueError(f"slot pending={pending} out of range; allowed {-lim}..{lim - 1}")
    if not 0 <= int(gmax) < 1 << 16:
        raise ValueError(f"slot gmax={gmax} out of range; allowed 0..65535")
    return int(shift) | ((int(pending) & ((1 << PENDING_BITS) - 1)) << 8) | (int(gmax) << 16)


def slot_fields(word: int) -> tuple[int, int, int]:
    """``(shift, pending, gmax)`` of a slot register word."""
    word = int(word) & 0xFFFFFFFF
    p = (word >> 8) & ((1 << PENDING_BITS) - 1)
    if p >> (PENDING_BITS - 1):
        p -= 1 << PENDING_BITS
    return word & ((1 << SLOT_SHIFT_BITS) - 1), p, word >> 16


class SlotFile:
    """The slots of a config (``cfg.shift_slots`` of them), as the hardware keeps them:
    ``slots[k - 1] = [shift, pending, gmax]`` for slot ``k``; ``moved`` (bit ``k - 1``:
    slot ``k``'s shift moved by a vote since the host last cleared the bit,
    ``Reg.SLOT_MOVED``)."""

    def __init__(self, cfg, words=None):
        self.cfg = cfg
        self.moved = 0
        n = cfg.shift_slots
        self.slots = [[0, 0, 0] for _ in range(n)] if words is None else \
            [list(slot_fields(w)) for w in words]
        if len(self.slots) != n:
            raise ValueError(f"{len(self.slots)} slot words; {cfg.name} has {n} slots")

    def words(self) -> list[int]:
        return [slot_word(*s) for s in self.slots]

    def check(self, slot: int, vote_mode: int, shift_field: int) -> None:
        """Raise ValueError for what the controller refuses with ``BAD_CONFIG``."""
        if vote_mode >= len(Vote):
            raise ValueError(f"vote code {vote_mode} illegal; allowed 0..{len(Vote) - 1}")
        if vote_mode and not slot:
            raise ValueError("a vote needs a slot; slot 0 is the instruction's own shift")
        if slot > self.cfg.shift_slots:
            raise ValueError(f"shift slot {slot} out of range; {self.cfg.name} has "
                             f"1..{self.cfg.shift_slots}")
        if slot and shift_field:
            raise ValueError(f"shift field {shift_field} with slot {slot}; must be 0")

    def shift(self, slot: int, shift_field: int) -> int:
        return self.slots[slot - 1][0] if slot else shift_field

    def end(self, slot: int, vote_mode: int, out_max: int, out_bits: int) -> None:
        """The vote of an instruction that wrote largest |word| ``out_max``."""
        if not vote_mode:
            return
        s = self.slots[slot - 1]
        if vote_mode == Vote.GATHER:
            s[2] = max(s[2], int(out_max))
            return
        cfg = self.cfg
        v = vote(max(s[2], int(out_max)), out_bits, cfg.vote_up, cfg.vote_down)
        old = s[0]
        s[0], s[1] = advance(s[0], s[1], v, cfg.vote_count, cfg.acc_bits - 1)
        s[2] = 0
        if s[0] != old:
            self.moved |= 1 << (slot - 1)
