"""Memory model of a resident step: which tensors a sequence of contractions keeps in
the A, B and C buffers, in which layout, and for which positions of the sequence.

Input: ``Contraction`` records in execution order (spec, operand and output names,
operand shapes, ``segment``: the program the contraction belongs to; the host reads
and writes buffers only between programs). Output: one ``Tensor`` descriptor per name
with its *homes* (``Home``: bank, footprint, live range, the positions it must be
resident at).

Footprints come from the compiler itself (``compile_contraction(plan_only=True)``):
an operand takes ``a_rows`` rows of A (``b_rows`` of B) with ``ga*gk*pe_rows``
(``gb*gk*pe_cols``) lanes used, in the lane/row layout the compiler packs it in
(``CompiledContraction.pack_a``); a result the host reads takes ``c_rows`` rows of C
with ``ga*gb*pe_cols`` lanes. A buffer row is the unit of allocation (one address per
row across all lanes), so a tensor occupies whole rows whatever lanes it uses.

Where a tensor lives (the resident dataflow): a contraction's result goes straight
into the bank its consumers read it from, in their layout — A if a consumer reads it
as operand A, B if as operand B (a tensor read both ways has a home in each bank, a
*copy*); a result nothing consumes is read by the host from C. Tensors nothing
produces (TT cores, layer inputs, output gradients) are written by the host. When the
consumers in one bank read a tensor in different layouts (mapping, lane index or row
order differ) the home takes the largest footprint and is marked ``layout_conflict``:
the producer cannot write one layout that serves both without a reshaping pass.

Live range of a home, in positions (contraction indices, inclusive): from the producer
(or, for a host-written tensor, the first position of the program of its first
consumer: the host writes between programs) to its last consumer in that bank (or, for
a result the host reads, the last position of its producer's program). ``touches``
are the positions where the tensor must be resident (its producer and consumers);
between touches it is *idle* and may be spilled to the host (``allocator``).

Members: ``Contraction``, ``Layout``, ``Home``, ``Tensor``, ``KINDS``,
``contraction_layouts`` (the three layouts of one contraction, cached per shape and
config), ``tensor_table`` (every tensor of a sequence), ``segment_bounds``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from ..accel.config import AccelConfig, get_config
from ..accel.timing import timing
from ..arith.einsum_spec import parse_spec
from .compiler import _evaluate, compile_contraction, fits, mappings

__all__ = ["KINDS", "Contraction", "Layout", "Home", "Tensor", "contraction_layouts",
           "tensor_table", "segment_bounds", "BANKS"]

BANKS = ("A", "B", "C")

# What a tensor is to the training step (labels for reports; placement follows from
# who produces and who consumes it).
KINDS = ("core", "saved_input", "batch_input", "intermediate", "gradient", "output")


@dataclass(frozen=True)
class Contraction:
    """One pairwise contraction ``out = einsum(spec, a, b)`` of a step, in execution
    order; ``segment`` numbers the program it runs in (non-decreasing along the
    sequence); ``label`` says where it comes from (e.g. ``"L0 forward"``)."""
    spec: str
    a: str
    b: str
    out: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    segment: int = 0
    label: str = ""

    @property
    def shape_out(self) -> tuple[int, ...]:
        return parse_spec(self.spec).output_shape(self.shape_a, self.shape_b)


@dataclass(frozen=True)
class Layout:
    """A tensor's layout in one bank as the compiler lays it out for one contraction:
    ``rows`` buffer rows of which ``lanes`` lanes are used; ``mapping`` ``(ga, gb, gk)``
    and ``lane_index`` (the einsum index spread over the lanes, None for none);
    ``row_order``: the outer loop indices that walk the rows, outermost first
    (``#m``/``#n`` are the lane index's tile counters), then ``ksteps`` reduction steps
    per row group (A/B) or ``pe_rows`` rows per tile (C)."""
    bank: str
    rows: int
    lanes: int
    mapping: tuple[int, int, int]
    lane_index: str | None
    row_order: tuple[str, ...]
    ksteps: int

    @property
    def words(self) -> int:
        """Words the host moves to write or read the tensor in this layout."""
        return self.rows * self.lanes

    @property
    def key(self) -> tuple:
        """What fixes where each element sits: two layouts with equal keys hold the
        same data in the same rows and lanes. Lane ``(ia*gk + ik)*pe_rows + r`` of A
        depends on ``ga`` and ``gk`` only (B: ``gb``, ``gk``; C: ``ga``, ``gb``)."""
        ga, gb, gk = self.mapping
        groups = {"A": (ga, gk), "B": (gb, gk), "C": (ga, gb)}[self.bank]
        return (self.bank, self.rows, self.lanes, groups, self.lane_index,
                self.row_order, self.ksteps)

    def to_dict(self) -> dict:
        return {"bank": self.bank, "rows": self.rows, "lanes": self.lanes,
                "mapping": list(self.mapping), "lane_index": self.lane_index,
                "row_order": list(self.row_order), "ksteps": self.ksteps}


@dataclass
class Home:
    """A tensor's residency in one bank: footprint ``layout`` (``rows``), live range
    ``start..end`` (positions, inclusive) and ``touches`` (positions where it must be
    resident); ``layout_conflict``: its consumers in this bank read different layouts."""
    tensor: str
    bank: str
    layout: Layout
    start: int
    end: int
    touches: tuple[int, ...]
    layout_conflict: bool = False

    @property
    def rows(self) -> int:
        return self.layout.rows


@dataclass
class Tensor:
    """One named tensor of the step: ``kind`` (``KINDS``), einsum ``shape``, its
    ``producer`` position (None: written by the host), ``consumers`` as ``(position,
    bank)`` and its ``homes`` by bank."""
    name: str
    kind: str
    shape: tuple[int, ...]
    producer: int | None
    consumers: tuple[tuple[int, str], ...]
    homes: dict[str, Home] = field(default_factory=dict)

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


class _NoFit(Exception):
    """The contraction does not compile into one program (``compiler.fits``)."""


@functools.lru_cache(maxsize=4096)
def _layouts(spec: str, shape_a: tuple, shape_b: tuple, cfg: AccelConfig):
    sp = parse_spec(spec)
    if not fits(sp, shape_a, shape_b, cfg):
        raise _NoFit()
    cc = compile_contraction(sp, shape_a, shape_b, cfg, plan_only=True)
    mp = cc.mapping
    m = (mp.ga, mp.gb, mp.gk)
    # compile_contraction's a_levels/b_levels: the outer levels over A's (B's) indices
    # and the lane index's tile counter, in the C loop order.
    a_order = tuple(n for n, _ in cc.outer if n == "#m" or n in sp.a)
    b_order = tuple(n for n, _ in cc.outer if n == "#n" or n in sp.b)
    c_order = tuple(n for n, _ in cc.outer)
    return (Layout("A", cc.a_rows, mp.ga * mp.gk * cfg.pe_rows, m, cc.im, a_order,
                   cc.ksteps),
            Layout("B", cc.b_rows, mp.gb * mp.gk * cfg.pe_cols, m, cc.in_, b_order,
                   cc.ksteps),
            Layout("C", cc.c_rows, mp.ga * mp.gb * cfg.pe_cols, m, None, c_order,
                   cfg.pe_rows))


def _no_fit_message(c: Contraction, cfg: AccelConfig) -> str:
    """One line naming the operand or result of ``c`` that cannot be placed, with the
    rows the compiler's most compact candidate needs and the bank depth."""
    sp = parse_spec(c.spec)
    sizes = sp.sizes(c.shape_a, c.shape_b)
    tm = timing(cfg)
    best = min((_evaluate(sp, sizes, cfg, mp, im, in_, tm)
                for mp in mappings(cfg) for im in (list(sp.m) or [None])
                for in_ in (list(sp.n) or [None])), key=lambda e: max(e[4][:3]))
    a, b, cr, words = best[4]
    rows = {"A": (a, c.a, c.shape_a), "B": (b, c.b, c.shape_b),
            "C": (cr, c.out, c.shape_out)}
    bank = max(rows, key=lambda k: rows[k][0])
    n, name, shape = rows[bank]
    if n > cfg.bank_depth:
        return (f"tensor '{name}' {tuple(shape)} ({math.prod(shape):,} elements) needs "
                f"{n:,} rows of bank {bank} in contraction '{c.spec}'; bank depth "
                f"{cfg.bank_depth:,} on '{cfg.name}'")
    return (f"contraction '{c.spec}' {tuple(c.shape_a)} x {tuple(c.shape_b)} producing "
            f"tensor '{c.out}' does not compile into one program on '{cfg.name}' "
            f"({words} program words, limit {cfg.prog_depth}; {best[2]} reduction steps)")


def contraction_layouts(c: Contraction, config) -> tuple[Layout, Layout, Layout]:
    """The A, B and C layouts of ``c`` (its best mapping, as the compiler chooses it).
    Raises a one-line ValueError naming the tensor that does not fit a bank when the
    contraction does not compile into one program."""
    cfg = get_config(config)
    try:
        return _layouts(c.spec, tuple(int(s) for s in c.shape_a),
                        tuple(int(s) for s in c.shape_b), cfg)
    except _NoFit:
        raise ValueError(_no_fit_message(c, cfg)) from None


def segment_bounds(contractions) -> dict[int, tuple[int, int]]:
    """Segment -> (first position, last position); segments must not interleave."""
    out: dict[int, tuple[int, int]] = {}
    last = None
    for pos, c in enumerate(contractions):
        if c.segment in out and c.segment != last:
            raise ValueError(f"contraction {pos} ('{c.out}') is in segment {c.segment}, "
                             f"which ended before; segments must be contiguous")
        lo = out.get(c.segment, (pos, pos))[0]
        out[c.segment] = (lo, pos)
        last = c.segment
    return out


def _check_kind(name: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"tensor '{name}' kind {kind!r} unknown; allowed "
                         f"{', '.join(KINDS)}")
    return kind


def tensor_table(contractions, config, kinds: dict | None = None) -> dict[str, Tensor]:
    """Every tensor of ``contractions`` with its homes (see the module docstring).
    ``kinds`` labels tensors (default: ``batch_input`` for host-written, ``output``
    for host-read, ``intermediate`` otherwise). A name produced twice, or read before
    it is produced, raises ValueError."""
    cfg = get_config(config)
    contractions = list(contractions)
    if not contractions:
        raise ValueError("empty step: no contractions to place")
    bounds = segment_bounds(contractions)
    kinds = dict(kinds or {})
    producer: dict[str, int] = {}
    shapes: dict[str, tuple] = {}
    uses: dict[str, list[tuple[int, str, Layout]]] = {}
    c_layout: dict[str, Layout] = {}
    for pos, c in enumerate(contractions):
        la, lb, lc = contraction_layouts(c, cfg)
        for name, bank, lay, shape in ((c.a, "A", la, c.shape_a), (c.b, "B", lb, c.shape_b)):
            if name in shapes and tuple(shapes[name]) != tuple(shape):
                raise ValueError(f"tensor '{name}' read with shape {tuple(shape)} at "
                                 f"contraction {pos}, earlier {tuple(shapes[name])}")
            shapes.setdefault(name, tuple(int(s) for s in shape))
            uses.setdefault(name, []).append((pos, bank, lay))
        if c.out in producer or c.out in uses:
            raise ValueError(f"tensor '{c.out}' produced at contraction {pos} is "
                             f"{'produced' if c.out in producer else 'read'} earlier; "
                             f"every name is produced once, before it is read")
        producer[c.out] = pos
        shapes[c.out] = tuple(c.shape_out)
        c_layout[c.out] = lc

    table: dict[str, Tensor] = {}
    for name in shapes:
        p = producer.get(name)
        ulist = uses.get(name, [])
        default = ("batch_input" if p is None else
                   "output" if not ulist else "intermediate")
        t = Tensor(name, _check_kind(name, kinds.get(name, default)), shapes[name], p,
                   tuple((pos, bank) for pos, bank, _ in ulist))
        if not ulist:                       # the host reads it from C
            seg_end = bounds[contractions[p].segment][1]
            t.homes["C"] = Home(name, "C", c_layout[name], p, seg_end, (p,))
        for bank in ("A", "B"):
            mine = [(pos, lay) for pos, b, lay in ulist if b == bank]
            if not mine:
                continue
            lays = [lay for _, lay in mine]
            rows = max(lay.rows for lay in lays)
            lay = next(lay for lay in lays if lay.rows == rows)
            first = mine[0][0]
            start = p if p is not None else bounds[contractions[first].segment][0]
            touches = tuple(sorted({pos for pos, _ in mine} |
                                   ({p} if p is not None else set())))
            t.homes[bank] = Home(name, bank, lay, start, mine[-1][0], touches,
                                 layout_conflict=len({x.key for x in lays}) > 1)
        table[name] = t
    return table
