"""Allocator: places every tensor of a resident step in the A, B and C buffers by
liveness, reusing freed rows; spills to the host or splits the batch when the step
does not fit. Pure Python over the memory model (``memory_model``), whose footprints
are the compiler's own layouts.

Placement (``allocate``). Each home's live range (``memory_model.Home``) is one
*piece*; pieces are placed bank by bank in order of (start, larger first, name) at
the lowest free base (``strategy="first"``) or in the smallest free gap that holds
them (``"best"``), among the pieces live at that start; rows of a piece whose range
has ended are free again. Deterministic. A bank's figures (``BankUse``):
``peak_rows`` (highest row used + 1: what must fit ``bank_depth``), ``live_rows``
(most rows live at one position: no placement needs fewer) and ``total_rows`` (sum
of all pieces: what a layout without reuse needs).

Spills. When a piece does not fit below ``bank_depth`` at position ``t``, one tensor
in that bank that is live but idle at ``t`` leaves for the host: among the candidates,
the longest idle interval (contractions between two touches) goes first, then the
larger footprint, then the name. A spill cuts the idle run out of the home's range
(the host reads it after the touch before and writes it back before the touch after)
and costs host words (``Spill.how``):

* ``late write``  a host-written tensor is written just before its first consumer
  instead of at its program's start: 0 extra words;
* ``early read``  a result the host reads leaves C right after its producer instead
  of at its program's end: 0 extra words;
* ``rewrite``     a host-written tensor, dropped between consumers: written again
  (``words``);
* ``round trip``  an on-chip result dropped between consumers: read out and written
  back (``2 * words``);
* ``via host``    a result is written to C in its producer's layout, read by the
  host and written into its consumers' bank(s) before the first of them (today's
  flow): C words + the words of every home.

Each spill needs the program to stop where the host moves data (``boundaries``: the
positions before which it must halt; a program break unless a segment starts there).
Every spill is reported (``Allocation.spills``). Spilling always succeeds once every
contraction compiles into one program (then at any position only its own operands
must be resident in A and B, and its result can go via C); a contraction that does
not compile raises a one-line ValueError naming the tensor that does not fit, its
rows and the bank depth (``memory_model.contraction_layouts``).

Micro-batches (``fit_batch``): given ``build(b) -> (contractions, kinds)`` for a
micro-batch of ``b`` samples, the smallest number of micro-batches whose size fits
without spills: the sizes ``ceil(batch / k)`` for k = 1, 2, ... in turn, each planned
and placed (footprints are not monotone in the batch: the compiler's mapping, and with
it the lanes a tensor uses, changes with the shapes, so no size is skipped). When no
size fits, micro-batch 1 is placed with spills. The last micro-batch holds the
remainder and is placed on its own. ``policy="host-words"`` instead places every size
with spills and keeps the one with the fewest host words per step: splitting the batch
finely rewrites the cores and rereads the gradients once per micro-batch, which can
cost more than spilling at a larger micro-batch.

Members: ``Placement``, ``Spill``, ``BankUse``, ``Allocation``, ``allocate``,
``StepFit``, ``fit_batch``, ``STRATEGIES``, ``POLICIES``, ``Piece`` and
``place_pieces`` (the placement rule alone, for other planners).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..accel.config import AccelConfig, get_config
from .memory_model import (BANKS, Contraction, Home, Layout, Tensor, contraction_layouts,
                           segment_bounds, tensor_table)

__all__ = ["STRATEGIES", "POLICIES", "Placement", "Spill", "BankUse", "Allocation",
           "allocate", "StepFit", "fit_batch", "Piece", "place_pieces"]

STRATEGIES = ("first", "best")
POLICIES = ("micro-batch", "host-words")


@dataclass(frozen=True)
class Placement:
    """One piece of a tensor's residency: ``rows`` rows of ``bank`` from ``base``
    during positions ``start..end`` (inclusive), ``lanes`` lanes used per row."""
    tensor: str
    kind: str
    shape: tuple[int, ...]
    bank: str
    base: int
    rows: int
    lanes: int
    start: int
    end: int

    def overlaps(self, other: "Placement") -> bool:
        """Same bank, a position in common and a row in common."""
        return (self.bank == other.bank and self.start <= other.end and
                other.start <= self.end and self.base < other.base + other.rows and
                other.base < self.base + self.rows)

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "kind": self.kind, "shape": list(self.shape),
                "bank": self.bank, "base": self.base, "rows": self.rows,
                "lanes": self.lanes, "live": [self.start, self.end]}


@dataclass(frozen=True)
class Spill:
    """Tensor ``tensor`` not resident in ``bank`` during positions ``first..last``
    (``idle`` contractions that do not touch it); ``how`` and ``host_words`` as in the
    module docstring; the program stops before each position of ``boundaries``."""
    tensor: str
    bank: str
    first: int
    last: int
    idle: int
    how: str
    host_words: int
    boundaries: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "bank": self.bank, "gap": [self.first, self.last],
                "idle": self.idle, "how": self.how, "host_words": self.host_words,
                "boundaries": list(self.boundaries)}


@dataclass(frozen=True)
class BankUse:
    """Occupancy of one bank (rows; see the module docstring). ``lane_fill``: the
    fraction of the lanes of its pieces' rows that hold data (a layout using 2 of 8
    lanes leaves 3/4 of each row empty)."""
    bank: str
    depth: int
    peak_rows: int
    live_rows: int
    total_rows: int
    lane_fill: float = 1.0

    @property
    def percent(self) -> float:
        return 100.0 * self.peak_rows / self.depth

    @property
    def fits(self) -> bool:
        return self.peak_rows <= self.depth

    def to_dict(self) -> dict:
        return {"depth": self.depth, "peak_rows": self.peak_rows,
                "peak_percent": round(self.percent, 2), "live_rows": self.live_rows,
                "total_rows": self.total_rows, "lane_fill": round(self.lane_fill, 4)}


@dataclass
class Allocation:
    """Where every tensor of one (micro-)batch's step lives."""
    config: AccelConfig
    contractions: list[Contraction]
    tensors: dict[str, Tensor]
    placements: list[Placement]
    spills: list[Spill]
    banks: dict[str, BankUse]
    strategy: str

    @property
    def fits(self) -> bool:
        return all(b.fits for b in self.banks.values())

    @property
    def host_words(self) -> dict:
        """Host-bus data words of one run of the step: ``written`` (every home of a
        host-written tensor), ``read`` (every result the host reads from C, unless
        spilled via host), ``spill`` (the spills' extra words) and ``total``."""
        via = {s.tensor for s in self.spills if s.how == "via host"}
        written = sum(h.layout.words for t in self.tensors.values() if t.producer is None
                      for h in t.homes.values())
        read = sum(t.homes["C"].layout.words for t in self.tensors.values()
                   if "C" in t.homes and t.name not in via)
        spill = sum(s.host_words for s in self.spills)
        return {"written": written, "read": read, "spill": spill,
                "total": written + read + spill}

    @property
    def program_breaks(self) -> int:
        """Positions where a spill stops the program that are not segment starts."""
        starts = {lo for lo, _ in segment_bounds(self.contractions).values()}
        return len({b for s in self.spills for b in s.boundaries} - starts)

    @property
    def copies(self) -> list[str]:
        """Tensors resident in both A and B (read as operand A and as operand B)."""
        return sorted(t.name for t in self.tensors.values() if {"A", "B"} <= set(t.homes))

    @property
    def layout_conflicts(self) -> list[str]:
        """``tensor@bank`` whose consumers in that bank read different layouts."""
        return sorted(f"{t.name}@{b}" for t in self.tensors.values()
                      for b, h in t.homes.items() if h.layout_conflict)

    def to_dict(self) -> dict:
        return {"config": self.config.name, "strategy": self.strategy, "fits": self.fits,
                "contractions": [{"position": i, "spec": c.spec, "a": c.a, "b": c.b,
                                  "out": c.out, "shape_a": list(c.shape_a),
                                  "shape_b": list(c.shape_b), "segment": c.segment,
                                  "label": c.label}
                                 for i, c in enumerate(self.contractions)],
                "banks": {b: u.to_dict() for b, u in self.banks.items()},
                "tensors": {t.name: {"kind": t.kind, "shape": list(t.shape),
                                     "producer": t.producer,
                                     "consumers": [list(c) for c in t.consumers],
                                     "homes": {b: {**h.layout.to_dict(),
                                                   "live": [h.start, h.end],
                                                   "touches": list(h.touches),
                                                   "layout_conflict": h.layout_conflict}
                                               for b, h in t.homes.items()}}
                            for t in self.tensors.values()},
                "placements": [p.to_dict() for p in self.placements],
                "spills": [s.to_dict() for s in self.spills],
                "host_words": self.host_words, "program_breaks": self.program_breaks,
                "copies": self.copies, "layout_conflicts": self.layout_conflicts}


# -- residency: which positions each home keeps after spills ------------------------------

@dataclass
class _Piece:
    tensor: str
    bank: str
    start: int
    end: int
    rows: int


class _Residency:
    """Each home's kept positions and touches; spills remove runs of positions."""

    def __init__(self, tensors: dict[str, Tensor], contractions: list[Contraction], cfg):
        self.tensors, self.contractions, self.cfg = tensors, contractions, cfg
        self.homes: dict[tuple[str, str], Home] = {
            (t.name, b): h for t in tensors.values() for b, h in t.homes.items()}
        self.kept = {k: set(range(h.start, h.end + 1)) for k, h in self.homes.items()}
        self.touches = {k: set(h.touches) for k, h in self.homes.items()}
        self.host_has = {t.name for t in tensors.values() if t.producer is None}
        self.via_host: set[str] = set()

    def pieces(self) -> list[_Piece]:
        out = []
        for (name, bank), kept in self.kept.items():
            run = None
            for pos in sorted(kept):
                if run is not None and pos == run[1] + 1:
                    run[1] = pos
                    continue
                if run is not None:
                    out.append(_Piece(name, bank, run[0], run[1], self.homes[name, bank].rows))
                run = [pos, pos]
            if run is not None:
                out.append(_Piece(name, bank, run[0], run[1], self.homes[name, bank].rows))
        return out

    def _run(self, key, t) -> list[int]:
        kept, touch = self.kept[key], self.touches[key]
        lo = hi = t
        while lo - 1 in kept and lo - 1 not in touch:
            lo -= 1
        while hi + 1 in kept and hi + 1 not in touch:
            hi += 1
        return [lo, hi]

    def candidates(self, bank: str, t: int):
        """``(rank key, action)`` of every tensor in ``bank`` that could leave at ``t``."""
        out = []
        for key, h in self.homes.items():
            if key[1] != bank or t not in self.kept[key]:
                continue
            name = key[0]
            if t not in self.touches[key]:
                lo, hi = self._run(key, t)
                out.append(((-(hi - lo + 1), -h.rows, name, bank), ("run", key, lo, hi)))
            elif (bank != "C" and self.tensors[name].producer == t
                  and name not in self.via_host):
                nxt = min(p for p in self.touches[key] if p > t)
                out.append(((-(nxt - t - 1), -h.rows, name, bank), ("via", name)))
        return sorted(out)

    def apply(self, action) -> Spill:
        if action[0] == "run":
            _, key, lo, hi = action
            name, bank = key
            touch = self.touches[key]
            words = self.homes[key].layout.words
            self.kept[key] -= set(range(lo, hi + 1))
            if not any(p < lo for p in touch):
                return Spill(name, bank, lo, hi, hi - lo + 1, "late write", 0, (hi + 1,))
            if not any(p > hi for p in touch):
                return Spill(name, bank, lo, hi, hi - lo + 1, "early read", 0, (lo,))
            if name in self.host_has:
                return Spill(name, bank, lo, hi, hi - lo + 1, "rewrite", words, (lo, hi + 1))
            self.host_has.add(name)
            return Spill(name, bank, lo, hi, hi - lo + 1, "round trip", 2 * words,
                         (lo, hi + 1))
        _, name = action
        p = self.tensors[name].producer
        c_lay: Layout = contraction_layouts(self.contractions[p], self.cfg)[2]
        words, bounds, last = c_lay.words, {p + 1}, p
        for bank in ("A", "B"):
            key = (name, bank)
            if key not in self.homes:
                continue
            self.touches[key].discard(p)
            nxt = min(self.touches[key])
            self.kept[key] -= set(range(p, nxt))
            words += self.homes[key].layout.words
            bounds.add(nxt)
            last = max(last, nxt - 1)
        home = Home(name, "C", c_lay, p, p, (p,))
        self.homes[name, "C"] = self.tensors[name].homes["C"] = home
        self.kept[name, "C"] = {p}
        self.touches[name, "C"] = {p}
        self.via_host.add(name)
        self.host_has.add(name)
        banks = "+".join(b for b in ("A", "B") if (name, b) in self.homes)
        return Spill(name, banks, p, last, last - p, "via host", words,
                     tuple(sorted(bounds)))


# -- placement -------------------------------------------------------------------------

def _choose_base(active: list[tuple[int, int]], rows: int, depth: int, strategy: str) -> int:
    """Base for ``rows`` rows among ``active`` ``(base, rows)`` (sorted by base): the
    first gap that holds them or the smallest such gap, else above every piece."""
    gaps, cursor = [], 0
    for base, n in active:
        if base > cursor:
            gaps.append((base - cursor, cursor))
        cursor = max(cursor, base + n)
    fitting = [(size, base) for size, base in gaps if size >= rows]
    if depth - cursor >= rows:
        fitting.append((depth - cursor, cursor))
    if not fitting:
        return cursor
    if strategy == "first":
        return min(fitting, key=lambda g: g[1])[1]
    return min(fitting)[1]


def _place(pieces: list[_Piece], depth: int, strategy: str):
    """(bases by piece index, first piece that ends above ``depth`` or None)."""
    bases: dict[int, int] = {}
    fail = None
    for bank in BANKS:
        order = sorted((i for i, p in enumerate(pieces) if p.bank == bank),
                       key=lambda i: (pieces[i].start, -pieces[i].rows, pieces[i].tensor))
        active: list[int] = []
        for i in order:
            p = pieces[i]
            active = [j for j in active if pieces[j].end >= p.start]
            spans = sorted((bases[j], pieces[j].rows) for j in active)
            bases[i] = _choose_base(spans, p.rows, depth, strategy)
            if bases[i] + p.rows > depth and (fail is None or p.start < pieces[fail].start):
                fail = i
            active.append(i)
    return bases, fail


# The placement rule for other planners (the resident-chain planner, ``resident_plan``):
# ``Piece(tensor, bank, start, end, rows)`` live ranges in, bases out.
Piece = _Piece


def place_pieces(pieces: list[_Piece], depth: int, strategy: str = "first"):
    """Bases of ``pieces`` (by index) under the allocator's rule (module docstring),
    and the first piece that ends above ``depth`` (None: all fit)."""
    return _place(pieces, depth, strategy)


def _bank_use(placements: list[Placement], cfg: AccelConfig, n: int) -> dict[str, BankUse]:
    out = {}
    width = {"A": cfg.a_lanes, "B": cfg.b_lanes, "C": cfg.c_lanes}
    for bank in BANKS:
        mine = [p for p in placements if p.bank == bank]
        rows = sum(p.rows for p in mine)
        live = [0] * (n + 1)
        for p in mine:
            live[p.start] += p.rows
            live[p.end + 1] -= p.rows
        running, peak_live = 0, 0
        for v in live:
            running += v
            peak_live = max(peak_live, running)
        out[bank] = BankUse(bank, cfg.bank_depth,
                            max((p.base + p.rows for p in mine), default=0), peak_live,
                            rows, sum(p.rows * p.lanes for p in mine) /
                            (rows * width[bank]) if rows else 1.0)
    return out


def allocate(contractions, config="tiny", kinds: dict | None = None, *,
             spill: bool = True, strategy: str = "first") -> Allocation:
    """Place every tensor of ``contractions`` (``memory_model.Contraction``, in
    execution order) in the buffers of ``config``. With ``spill`` (default) tensors
    leave for the host until the step fits (see the module docstring); without, the
    result may not fit (``Allocation.fits``; ``banks`` say by how much)."""
    cfg = get_config(config)
    if strategy not in STRATEGIES:
        raise ValueError(f"placement strategy {strategy!r} unknown; allowed "
                         f"{', '.join(STRATEGIES)}")
    contractions = list(contractions)
    tensors = tensor_table(contractions, cfg, kinds)
    res = _Residency(tensors, contractions, cfg)
    spills: list[Spill] = []
    while True:
        pieces = res.pieces()
        bases, fail = _place(pieces, cfg.bank_depth, strategy)
        if fail is None or not spill:
            break
        p = pieces[fail]
        cands = res.candidates(p.bank, p.start)
        if not cands:
            c = contractions[p.start]
            raise ValueError(f"tensor '{p.tensor}' ({p.rows:,} rows) cannot be placed in "
                             f"bank {p.bank} at contraction {p.start} ('{c.spec}'): every "
                             f"tensor there is in use; bank depth {cfg.bank_depth:,} on "
                             f"'{cfg.name}'")
        spills.append(res.apply(cands[0][1]))
    placements = []
    for i, p in enumerate(pieces):
        t = tensors[p.tensor]
        placements.append(Placement(p.tensor, t.kind, t.shape, p.bank, bases[i], p.rows,
                                    res.homes[p.tensor, p.bank].layout.lanes, p.start,
                                    p.end))
    placements.sort(key=lambda q: (q.bank, q.start, q.base, q.tensor))
    return Allocation(cfg, contractions, tensors, placements, spills,
                      _bank_use(placements, cfg, len(contractions)), strategy)


# -- micro-batches ---------------------------------------------------------------------

@dataclass
class StepFit:
    """A whole batch's step: ``micro_batches`` runs of ``allocation`` (``micro_batch``
    samples each), the last one of ``remainder`` (fewer samples) when the batch does
    not divide; ``attempts`` lists every micro-batch size tried and how it fared."""
    batch: int
    micro_batch: int
    micro_batches: int
    allocation: Allocation
    remainder: Allocation | None = None
    attempts: list[dict] = field(default_factory=list)
    policy: str = "micro-batch"

    @property
    def spills(self) -> list[Spill]:
        return self.allocation.spills + (self.remainder.spills if self.remainder else [])

    @property
    def host_words_per_step(self) -> int:
        """Host data words of the whole batch: every run of the step counted in full
        (each micro-batch's run writes its inputs and cores and reads its results)."""
        return _words_per_step(self.batch, self.micro_batch, self.allocation,
                               self.remainder)

    def to_dict(self) -> dict:
        return {"batch": self.batch, "policy": self.policy,
                "micro_batch": self.micro_batch, "micro_batches": self.micro_batches,
                "host_words_per_step": self.host_words_per_step,
                "attempts": self.attempts, "allocation": self.allocation.to_dict(),
                "remainder": self.remainder.to_dict() if self.remainder else None}


def _words_per_step(batch: int, b: int, alloc: Allocation, rem: Allocation | None) -> int:
    k = -(-batch // b)
    return (k - 1) * alloc.host_words["total"] + (rem or alloc).host_words["total"]


def fit_batch(build: Callable[[int], tuple[list, dict]], batch: int, config="tiny", *,
              strategy: str = "first", policy: str = "micro-batch",
              progress: Callable[[str], None] | None = None) -> StepFit:
    """Run ``batch`` samples' step on ``config`` in micro-batches (``build(b)`` returns
    the contractions and tensor kinds of a micro-batch of ``b`` samples).

    ``policy="micro-batch"``: the fewest micro-batches that fit without spills, else
    micro-batch 1 with spills (see the module docstring). ``policy="host-words"``:
    every micro-batch size placed with spills; the fewest host words per step wins
    (then the fewer micro-batches)."""
    cfg = get_config(config)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch {batch!r} invalid; allowed an integer >= 1")
    if policy not in POLICIES:
        raise ValueError(f"micro-batch policy {policy!r} unknown; allowed "
                         f"{', '.join(POLICIES)}")
    attempts: list[dict] = []

    def place(b: int, spill: bool) -> Allocation:
        if progress:
            progress(f"placing micro-batch {b}" + (" with spills" if spill else ""))
        contractions, kinds = build(b)
        return allocate(contractions, cfg, kinds, spill=spill, strategy=strategy)

    def remainder(b: int) -> Allocation | None:
        rest = batch - (-(-batch // b) - 1) * b
        return None if rest == b else place(rest, True)

    sizes = sorted({-(-batch // k) for k in range(1, batch + 1)}, reverse=True)
    if policy == "micro-batch":
        for b in sizes:
            try:
                alloc = place(b, False)
            except ValueError as exc:
                attempts.append({"micro_batch": b, "fits": False, "reason": str(exc)})
                continue
            attempts.append({"micro_batch": b, "fits": alloc.fits,
                             "peak_rows": {k: u.peak_rows for k, u in alloc.banks.items()}})
            if alloc.fits:
                return StepFit(batch, b, -(-batch // b), alloc, remainder(b), attempts,
                               policy)
        return StepFit(batch, 1, batch, place(1, True), None, attempts, policy)

    best, error = None, None
    for b in sizes:
        try:
            alloc = place(b, True)
            rem = remainder(b)
        except ValueError as exc:
            attempts.append({"micro_batch": b, "fits": False, "reason": str(exc)})
            error = exc
            continue
        words = _words_per_step(batch, b, alloc, rem)
        attempts.append({"micro_batch": b, "fits": True, "spills": len(alloc.spills),
                         "host_words_per_step": words})
        if best is None or words < best[0]:
            best = (words, StepFit(batch, b, -(-batch // b), alloc, rem, attempts, policy))
    if best is None:
        raise error
    return best[1]
