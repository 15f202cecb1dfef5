"""Compiler: one pairwise contraction (einsum + shapes) -> accelerator program, buffer
layout and predicted cycle count.

GEMM view
---------
Indices are classified (``einsum_spec``) as batch, m (A and output), n (B and
output) and k (summed). The compiler picks one m index ``im`` and one n index ``in``
to spread over the array lanes, a mapping ``(ga, gb, gk)`` (``isa.Mapping``), and
flattens all k indices into one reduction axis of ``K`` steps of ``gk`` lanes:

* output tile = ``TM x TN`` with ``TM = ga*pe_rows`` values of ``im`` and
  ``TN = gb*pe_cols`` values of ``in``;
* every other batch/m/n index, plus the tile counters of ``im`` and ``in``, is an
  outer loop level of the address generators (at most ``isa.N_LEVELS`` per
  CONTRACT instruction; further outer indices become a software loop of CONTRACT
  instructions with different bases);
* A row (``a_lanes`` words) ``(..., m tile, k step)``: lane ``(ia*gk + ik)*pe_rows + r``
  holds ``A[..., im = tile*TM + ia*pe_rows + r, k = step*gk + ik]`` (0 when padded);
* B row ``(..., n tile, k step)``: lane ``(ib*gk + ik)*pe_cols + j`` holds
  ``B[..., in = tile*TN + ib*pe_cols + j, k = step*gk + ik]``;
* C rows ``(outer levels..., r)``: lane ``(ia*gb + ib)*pe_cols + j`` holds output
  ``(im = mtile*TM + ia*pe_rows + r, in = ntile*TN + ib*pe_cols + j)``.

Operands are stored in these lane-vector layouts (the "buffer layout" the host writes
and reads back); inside a contraction the address generators walk them in any loop
order with no transpose pass. The flat output index each output stage feeds its dither
is computed by the drain address generator from the output tensor's own strides, so
stochastic rounding matches the golden model whatever the tiling.

The analytic cycle model (``predict_cycles``) mirrors the controller exactly; the
mapping search minimises it.

Footprint-aware choice
----------------------
Every candidate ``(mapping, im, in)`` that fits the buffers and program memory
(``candidates`` lists them) fixes the rows its operands take: ``a_rows``, ``b_rows``
and ``c_rows`` (a buffer row is the unit of allocation, however many of its lanes the
layout uses). By default the candidate with the fewest predicted cycles is chosen
(ties: the smaller ``gk``, then the larger ``ga``). Two options of
``compile_contraction``, ``predict_cycles`` and ``fits`` change the choice, never
the cycle model:

* ``max_rows``: a row budget, an int (for A, B and C alike) or a dict with any of
  ``"a"``, ``"b"``, ``"c"``; candidates whose rows exceed it are left out, and the
  fastest of the others is chosen;
* ``slack``: a cycles tolerance ``s >= 0`` (``math.inf``: any); among the candidates
  within the budget whose cycles are at most ``(1 + s)`` times the fewest, the one
  with the smallest footprint ``a_rows + b_rows + c_rows`` is chosen (ties: fewer
  cycles, then the default order).

With neither (the default) the choice is the cycle-optimal one. When no candidate is
within the budget, ``compile_contraction`` raises a one-line ValueError naming the
budget and the fewest rows each operand can take. Resident chains
(``sw_model.program.resident_plan``) use them to fit a chain's homes in the banks.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..accel.hostmap import CONTROL_READS, CONTROL_WRITES
from ..accel import routing
from ..accel.config import AccelConfig, get_config
from ..accel.shift_slots import Vote, as_vote
from ..arith.einsum_spec import Spec, parse_spec
from ..arith.fixedpoint import _int, check_out_bits, check_rounding, check_shift
from ..accel.isa import (COUNT_MAX, Op, decode_header, HALT, N_LEVELS, ConfigPayload,
                         Contract, Level, Mapping, encode_config)
from ..accel.timing import Timing, timing

__all__ = ["CompiledContraction", "compile_contraction", "predict_cycles", "fits",
           "chunk_plan", "mappings", "Candidate", "candidates"]


def mappings(cfg: AccelConfig):
    """Every (ga, gb, gk) of powers of two with ga*gb*gk == n_ce."""
    lg = cfg.n_ce.bit_length() - 1
    for la in range(lg + 1):
        for lb in range(lg + 1 - la):
            yield Mapping(1 << la, 1 << lb, 1 << (lg - la - lb))


@dataclass
class _Choice:
    mapping: Mapping
    im: str | None
    in_: str | None
    cycles: int = 0
    tiles: int = 0
    ksteps: int = 0
    n_instr: int = 0
    rows: tuple = (0, 0, 0)         # A, B, C rows


@dataclass(frozen=True)
class Candidate:
    """One ``(mapping, im, in)`` that fits: its predicted cycles and the buffer rows of
    its A, B and C layouts (``candidates``)."""
    mapping: Mapping
    im: str | None
    in_: str | None
    cycles: int
    a_rows: int
    b_rows: int
    c_rows: int

    @property
    def rows(self) -> int:
        """The footprint the ``slack`` choice minimises: A + B + C rows."""
        return self.a_rows + self.b_rows + self.c_rows


@dataclass
class CompiledContraction:
    """A contraction ready to run: program words, buffer layouts and predictions."""
    spec: Spec
    config: AccelConfig
    sizes: dict
    mapping: Mapping
    im: str | None
    in_: str | None
    program: list
    a_rows: int
    b_rows: int
    c_rows: int
    predicted_cycles: int
    useful_macs: int
    tiles: int
    ksteps: int
    outer: list = field(default_factory=list)   # [(index or tile tag, count)]
    _layout: dict = field(default_factory=dict, repr=False)

    def lanes_used(self, buffer: str) -> int:
        """Lanes of a row of buffer ``buffer`` ("a", "b" or "c") the mapping uses:
        ``ga*gk*pe_rows`` of A, ``gb*gk*pe_cols`` of B, ``ga*gb*pe_cols`` of C (the
        host moves these words of each row; the rest of the lanes are padding)."""
        mp, cfg = self.mapping, self.config
        if buffer == "a":
            return mp.ga * mp.gk * cfg.pe_rows
        if buffer == "b":
            return mp.gb * mp.gk * cfg.pe_cols
        if buffer == "c":
            return mp.ga * mp.gb * cfg.pe_cols
        raise ValueError(f"buffer {buffer!r} unknown; allowed 'a', 'b', 'c'")

    def transfer_words(self, read_out: bool = True) -> dict:
        """Host-bus words of one run of this program when nothing is resident:
        ``written`` = the used lanes of every A and B row (``lanes_used``), the whole
        program and the control writes; ``read`` = the used C lanes of every result row
        (none for a K chunk that holds its sums, ``read_out=False``) and the
        status/counter reads (``hostmap.CONTROL_WRITES``/``CONTROL_READS``).
        ``sim.harness.Session`` counts the same words, less the operand and program
        words it finds already resident."""
        return {"written": self.a_rows * self.lanes_used("a") +
                self.b_rows * self.lanes_used("b") + len(self.program) + CONTROL_WRITES,
                "read": (self.c_rows * self.lanes_used("c") if read_out else 0) +
                CONTROL_READS}

    def with_params(self, *, shift: int, rounding: str, out_bits: int, seed: int,
                    index_offset: int = 0, slot: int = 0,
                    vote=Vote.NONE) -> "CompiledContraction":
        """The same compiled contraction with other output-stage parameters (the
        program's MODE/SEED/BASE_IDX words rewritten; tiling, layout and cycles are
        unchanged), so callers can cache compilation across training steps.

        ``slot`` 1..``shift_slots`` (``sw_model.accel.shift_slots``): the CONTRACTs
        take that on-chip slot's shift (``shift`` is then not encoded) and ``vote``:
        ``close`` votes at the program's last CONTRACT with the others gathering (one
        vote per program), ``gather`` gathers at every CONTRACT (a program that is not
        the contraction's last), ``none`` only reads the slot."""
        import copy
        shift = check_shift(shift, self.config.acc_bits)
        check_rounding(rounding)
        out_bits = check_out_bits(out_bits)       # plain ints: np.int8 << 8 overflows
        seed = _int("seed", seed)
        index_offset = _int("index_offset", index_offset)
        if not 0 <= seed < (1 << 32):
            raise ValueError(f"seed={seed} out of range; allowed 0..{(1 << 32) - 1}")
        slot, vote = _int("slot", slot), as_vote(vote)
        if not 0 <= slot <= self.config.shift_slots:
            raise ValueError(f"slot={slot} out of range; '{self.config.name}' has shift "
                             f"slots 1..{self.config.shift_slots} (0: the shift field)")
        if vote and not slot:
            raise ValueError(f"vote={vote.name.lower()} needs a slot")
        prog = list(self.program)
        pc = 0
        old_off = self._layout.get("index_offset", 0)
        contracts = []
        while pc < len(prog):
            op, n = decode_header(prog[pc])
            if op == Op.CONTRACT:
                c = Contract.decode(prog[pc + 1:pc + 1 + n])
                c = dataclasses.replace(
                    c, shift=0 if slot else shift, rounding=rounding, out_bits=out_bits,
                    seed=seed, slot=slot, vote=Vote.GATHER if vote else Vote.NONE,
                    base_idx=(c.base_idx - old_off + index_offset) & 0xFFFFFFFF)
                prog[pc:pc + 1 + n] = c.encode()
                contracts.append((pc, c))
            pc += 1 + n
        if vote == Vote.CLOSE and contracts:
            pc, c = contracts[-1]
            enc = dataclasses.replace(c, vote=Vote.CLOSE).encode()
            prog[pc:pc + len(enc)] = enc
        new = copy.copy(self)
        new.program = prog
        new._layout = {**self._layout, "index_offset": index_offset}
        return new

    # -- host-side layouts ------------------------------------------------------------
    def pack_a(self, a) -> np.ndarray:
        """A (einsum operand shape) -> (a_rows, a_lanes) buffer rows."""
        return self._pack(np.asarray(a, dtype=np.int64), "a")

    def pack_b(self, b) -> np.ndarray:
        return self._pack(np.asarray(b, dtype=np.int64), "b")

    def unpack_c(self, rows) -> np.ndarray:
        """(c_rows, c_lanes) result rows -> output tensor in the einsum's order."""
        L = self._layout
        cfg, mp = self.config, self.mapping
        R, C = cfg.pe_rows, cfg.pe_cols
        rows = np.asarray(rows, dtype=np.int64).reshape(self.c_rows, cfg.c_lanes)
        lanes = rows[:, :mp.ga * mp.gb * C]
        outer_counts = [cnt for _, cnt in L["c_levels"]]
        x = lanes.reshape(*outer_counts, R, mp.ga, mp.gb, C)
        # outer = [batch..., m_other..., n_other..., mtile, ntile]
        nb = len(L["c_levels"]) - 2
        perm = list(range(nb)) + [nb, nb + 3, nb + 2, nb + 1, nb + 4, nb + 5]
        x = x.transpose(perm)
        shp = x.shape
        x = x.reshape(*shp[:nb], shp[nb] * shp[nb + 1] * shp[nb + 2],
                      shp[nb + 3] * shp[nb + 4] * shp[nb + 5])
        sizes = self.sizes
        x = x[..., :L["m_size"], :L["n_size"]]
        # axes now: outer indices (names), im, in -> output order
        names = [n for n, _ in L["c_levels"][:-2]] + [L["im_name"], L["in_name"]]
        if self.im is None:
            x = x[..., 0:1, :]
        if self.in_ is None:
            x = x[..., :, 0:1]
        order = [names.index(i) for i in self.spec.out]
        virtual = [k for k, n in enumerate(names) if n not in self.spec.out]
        x = x.transpose(order + virtual)
        return x.reshape([sizes[i] for i in self.spec.out])

    def _pack(self, t, which):
        L = self._layout
        cfg, mp = self.config, self.mapping
        sp = self.spec
        idx = sp.a if which == "a" else sp.b
        levels = L[f"{which}_levels"]             # outer indices relevant to this operand
        lane_name = L["im_name"] if which == "a" else L["in_name"]
        lane_idx = self.im if which == "a" else self.in_
        P = cfg.pe_rows if which == "a" else cfg.pe_cols
        g = mp.ga if which == "a" else mp.gb
        T = g * P
        lanes = cfg.a_lanes if which == "a" else cfg.b_lanes
        ks, gk = self.ksteps, mp.gk
        k_names = list(sp.k)
        full = [n for n in levels] + ([lane_idx] if lane_idx else []) + k_names
        # broadcast operand to the full index order
        src = [i for i in idx]
        t2 = t.transpose([src.index(i) for i in full if i in src])
        present = [i for i in full if i in src]
        shape_b = []
        for i in full:
            shape_b.append(self.sizes[i] if i in src else 1)
        t2 = t2.reshape([self.sizes[i] if i in src else 1 for i in full])
        t2 = np.broadcast_to(t2, [self.sizes[i] for i in full])
        nlev = len(levels)
        lane_size = self.sizes[lane_idx] if lane_idx else 1
        ktot = int(np.prod([self.sizes[i] for i in k_names], dtype=np.int64)) if k_names else 1
        lead = [self.sizes[i] for i in levels]
        t2 = t2.reshape(*lead, lane_size, ktot)
        tiles = -(-lane_size // T)
        padded = np.zeros((*lead, tiles * T, ks * gk), dtype=np.int64)
        padded[..., :lane_size, :ktot] = t2
        x = padded.reshape(*lead, tiles, g, P, ks, gk)
        base = list(range(nlev))
        x = x.transpose(base + [nlev, nlev + 3, nlev + 1, nlev + 4, nlev + 2])
        x = x.reshape(-1, g * gk * P)
        out = np.zeros((x.shape[0], lanes), dtype=np.int64)
        out[:, :g * gk * P] = x
        return out


def _classify(sp: Spec):
    return list(sp.batch), list(sp.m), list(sp.n), list(sp.k)


def _out_strides(sp: Spec, sizes) -> dict:
    st, acc = {}, 1
    for i in reversed(sp.out):
        st[i] = acc
        acc *= sizes[i]
    return st


def _evaluate(sp: Spec, sizes, cfg: AccelConfig, mp: Mapping, im, in_, tm: Timing):
    """(cycles, tiles, ksteps, n_instr, rows) of one candidate; rows = buffer rows
    needed in A, B and C and program words."""
    R, C = cfg.pe_rows, cfg.pe_cols
    TM, TN = mp.ga * R, mp.gb * C
    batch, ms, ns, ks_ = _classify(sp)
    mt = -(-sizes[im] // TM) if im else 1
    nt = -(-sizes[in_] // TN) if in_ else 1
    ktot = math.prod(sizes[i] for i in ks_) if ks_ else 1
    ksteps = -(-ktot // mp.gk)
    others = [(i, sizes[i]) for i in batch + ms + ns if i not in (im, in_)]
    outer = [c for _, c in others + [("#m", mt), ("#n", nt)] if c > 1]
    # Levels beyond N_LEVELS become separate CONTRACT instructions.
    n_instr = math.prod(outer[:-N_LEVELS]) if len(outer) > N_LEVELS else 1
    hw = outer[-N_LEVELS:]
    tiles_per = math.prod(hw)
    stall = max(0, cfg.drain_cycles - ksteps) * (tiles_per - 1)
    # every CONTRACT has these counts (Contract.counts); its bound check depends on them
    counts = (1,) * (N_LEVELS - len(hw)) + tuple(hw) + (ksteps,)
    per = tm.contract_fixed(counts) + tiles_per * ksteps + stall
    total = tm.config_cycles() + n_instr * per + tm.fetch
    a_rows = math.prod(c for i, c in others if i in sp.a) * mt * ksteps
    b_rows = math.prod(c for i, c in others if i in sp.b) * nt * ksteps
    c_rows = math.prod(c for _, c in others) * mt * nt * R
    words = 1 + tm.config_words + n_instr * (1 + tm.contract_words) + 1
    return total, n_instr * tiles_per, ksteps, n_instr, (a_rows, b_rows, c_rows, words)


def _fits(cfg: AccelConfig, rows, ksteps, limits=None) -> bool:
    a, b, c, words = rows
    la, lb, lc = limits or (cfg.bank_depth,) * 3
    return a <= la and b <= lb and c <= lc and words <= cfg.prog_depth and \
        ksteps <= COUNT_MAX


def _row_limits(cfg: AccelConfig, max_rows) -> tuple[int, int, int]:
    """(A, B, C) row limits: the bank depth, lowered by ``max_rows`` (an int or a dict
    with any of 'a', 'b', 'c')."""
    depth = cfg.bank_depth
    if max_rows is None:
        return depth, depth, depth
    allowed = "allowed a positive int or a dict of 'a', 'b', 'c' to positive ints"
    if isinstance(max_rows, dict):
        bad = [k for k in max_rows if k not in ("a", "b", "c")]
        if bad:
            raise ValueError(f"max_rows key {bad[0]!r} unknown; {allowed}")
        lim = dict(max_rows)
    else:
        lim = dict.fromkeys("abc", max_rows)
    out = []
    for k in "abc":
        v = lim.get(k)
        if v is None:
            out.append(depth)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"max_rows={max_rows!r} invalid; {allowed}")
        out.append(min(int(v), depth))
    return tuple(out)


def _check_slack(slack):
    if slack is None:
        return None
    if isinstance(slack, bool) or not isinstance(slack, (int, float, np.integer,
                                                         np.floating)) \
            or not slack >= 0:
        raise ValueError(f"slack={slack!r} invalid; allowed None or a number >= 0 "
                         f"(math.inf: any cycles)")
    return float(slack)


def predict_cycles(spec, shape_a, shape_b, config="tiny", mapping: Mapping | None = None,
                   *, max_rows=None, slack=None):
    """Predicted cycles of the best (or the given) mapping, program included;
    ``max_rows``/``slack`` as in ``compile_contraction``."""
    return compile_contraction(spec, shape_a, shape_b, config, mapping=mapping,
                               plan_only=True, max_rows=max_rows,
                               slack=slack).predicted_cycles


def _candidates(sp: Spec, sizes, cfg: AccelConfig, mapping: Mapping | None, tm: Timing,
                lanes: tuple | None = None, limits=None):
    """[(default order key, _Choice)] of every candidate that fits the buffers (or
    ``limits``, (A, B, C) rows) and program memory. ``lanes = (im, in)`` forces the
    lane indices."""
    ims = list(sp.m) or [None]
    ins = list(sp.n) or [None]
    if lanes is not None:
        ims, ins = [lanes[0]], [lanes[1]]
    maps = [mapping.check(cfg)] if mapping is not None else list(mappings(cfg))
    out = []
    for mp, im, in_ in itertools.product(maps, ims, ins):
        cyc, tiles, ksteps, n_instr, rows = _evaluate(sp, sizes, cfg, mp, im, in_, tm)
        if not _fits(cfg, rows, ksteps, limits):
            continue
        out.append(((cyc, mp.gk, -mp.ga),
                    _Choice(mp, im, in_, cyc, tiles, ksteps, n_instr, rows[:3])))
    return out


def _choices(sp: Spec, sizes, cfg: AccelConfig, mapping: Mapping | None, tm: Timing,
             lanes: tuple | None = None, limits=None, slack: float | None = None):
    """The chosen candidate (module docstring: the fewest predicted cycles, or with
    ``slack`` the smallest footprint within the tolerance) among those that fit the
    buffers (or ``limits``) and program memory, or None."""
    cands = _candidates(sp, sizes, cfg, mapping, tm, lanes, limits)
    if not cands:
        return None
    best = min(cands, key=lambda c: c[0])
    if slack is None:
        return best[1]
    bound = best[1].cycles * (1 + slack)
    pool = [c for c in cands if c[1].cycles <= bound]
    return min(pool, key=lambda c: (sum(c[1].rows), c[0]))[1]


def candidates(spec, shape_a, shape_b, config="tiny", mapping: Mapping | None = None,
               *, max_rows=None) -> list[Candidate]:
    """Every ``(mapping, im, in)`` of the contraction that fits ``config`` (and
    ``max_rows``), fewest predicted cycles first (the default order: the first is
    what ``compile_contraction`` chooses by default). Compile one with
    ``compile_contraction(..., mapping=c.mapping, lanes=(c.im, c.in_))``."""
    cfg = get_config(config)
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    cands = _candidates(sp, sp.sizes(shape_a, shape_b), cfg, mapping, timing(cfg),
                        limits=_row_limits(cfg, max_rows))
    return [Candidate(ch.mapping, ch.im, ch.in_, ch.cycles, *ch.rows)
            for _, ch in sorted(cands, key=lambda c: c[0])]


def fits(spec, shape_a, shape_b, config="tiny", mapping: Mapping | None = None, *,
         max_rows=None) -> bool:
    """Whether the contraction compiles into one program for ``config`` (with every
    operand within ``max_rows``, as in ``compile_contraction``)."""
    cfg = get_config(config)
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    return _choices(sp, sp.sizes(shape_a, shape_b), cfg, mapping, timing(cfg),
                    limits=_row_limits(cfg, max_rows)) is not None


def compile_contraction(spec, shape_a, shape_b, config="tiny", *, shift=0,
                        rounding="floor", out_bits=16, seed=0,
                        mapping: Mapping | None = None, plan_only=False,
                        index_offset: int = 0, lanes: tuple | None = None,
                        idx_strides: dict | None = None, acc_continue: bool = False,
                        acc_hold: bool = False, max_rows=None,
                        slack: float | None = None) -> CompiledContraction:
    """Compile ``spec`` for ``config``. ``mapping`` forces a mapping (e.g. a fixed
    baseline); by default the one with the fewest predicted cycles is chosen.
    ``index_offset`` is added to every flat output index (the dither input) when this
    contraction computes a chunk of a larger output; ``idx_strides`` (output index ->
    flat-index stride) replaces the output's own row-major strides, so a chunk that is
    not contiguous in the larger output (a K-chunked tile, ``sw_model.program.kchunk``) feeds
    the dither the larger output's indices. ``lanes = (im, in)`` forces the indices on
    the lanes; ``acc_continue``/``acc_hold`` set the CONTRACTs' K-chunk flags
    (``isa.Contract``). ``max_rows`` (a row budget for A, B and C: an int or a dict
    with any of 'a', 'b', 'c') and ``slack`` (a cycles tolerance: the smallest
    footprint within it) make the choice footprint-aware (module docstring)."""
    cfg = get_config(config)
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    sizes = sp.sizes(shape_a, shape_b)
    check_shift(shift, cfg.acc_bits)
    check_rounding(rounding)
    check_out_bits(out_bits)
    if not 0 <= int(seed) < (1 << 32):
        raise ValueError(f"seed={seed} out of range; allowed 0..{(1 << 32) - 1}")
    limits = _row_limits(cfg, max_rows)
    slack = _check_slack(slack)
    tm = timing(cfg)
    ch = _choices(sp, sizes, cfg, mapping, tm, lanes, limits, slack)
    if ch is None and max_rows is not None:
        free = _candidates(sp, sizes, cfg, mapping, tm, lanes)
        if free:
            least = [min(c.rows[r] for _, c in free) for r in range(3)]
            budget = ", ".join(f"{n} {v}" for n, v in zip("ABC", limits))
            raise ValueError(
                f"contraction '{sp}' with shapes {tuple(shape_a)} x {tuple(shape_b)} has "
                f"no layout within max_rows={max_rows!r} on '{cfg.name}' (at most {budget} "
                f"rows): the fewest rows each operand can take are A {least[0]},"
                f" B {least[1]}, C {least[2]}")
    if ch is None:
        ims, ins = list(sp.m) or [None], list(sp.n) or [None]
        maps = [mapping] if mapping is not None else list(mappings(cfg))
        need = min((_evaluate(sp, sizes, cfg, mp, im, in_, tm) for mp in maps
                    for im in ims for in_ in ins), key=lambda e: max(e[4][:3]))
        a, b, c, words = need[4]
        raise ValueError(
            f"contraction '{sp}' with shapes {tuple(shape_a)} x {tuple(shape_b)} does not "
            f"fit config '{cfg.name}': needs {max(a, b, c)} buffer rows (A {a}, B {b}, "
            f"C {c}; limit {cfg.bank_depth}), {words} program words (limit "
            f"{cfg.prog_depth}), {need[2]} reduction steps (limit {COUNT_MAX}); "
            f"fetta.sim.harness splits such contractions along output indices "
            f"(compiler.chunk_plan) or along K (kchunk.kchunk_plan)")
    mp, im, in_ = ch.mapping, ch.im, ch.in_
    R, C = cfg.pe_rows, cfg.pe_cols
    TM, TN = mp.ga * R, mp.gb * C
    batch, ms, ns, ks_ = _classify(sp)
    useful = math.prod(sizes.values())
    mt = -(-sizes[im] // TM) if im else 1
    nt = -(-sizes[in_] // TN) if in_ else 1
    ksteps = ch.ksteps

    # Outer levels (name, count), outermost first; tiles are '#m'/'#n'.
    outer_all = [(i, sizes[i]) for i in batch + ms + ns if i not in (im, in_)]
    outer_all += [("#m", mt), ("#n", nt)]
    a_rel = set(batch) | set(ms) | {"#m"}
    b_rel = set(batch) | set(ns) | {"#n"}
    a_levels = [(n, c) for n, c in outer_all if n in a_rel]
    b_levels = [(n, c) for n, c in outer_all if n in b_rel]
    a_rows = math.prod(c for _, c in a_levels) * ksteps
    b_rows = math.prod(c for _, c in b_levels) * ksteps
    c_rows = math.prod(c for _, c in outer_all) * R
    assert max(a_rows, b_rows, c_rows) <= cfg.bank_depth

    def strides(levels, inner):
        st, acc = {}, inner
        for n, c in reversed(levels):
            st[n] = acc
            acc *= c
        return st

    sa = strides(a_levels, ksteps)
    sb = strides(b_levels, ksteps)
    sc = strides(outer_all, R)
    ost = _out_strides(sp, sizes) if idx_strides is None else dict(idx_strides)
    sidx = {}
    for n, c in outer_all:
        if n == "#m":
            sidx[n] = TM * ost[im] if im else 0
        elif n == "#n":
            sidx[n] = TN * ost[in_] if in_ else 0
        else:
            sidx[n] = ost[n]
    row_stride_idx = ost[im] if im else 0

    layout = dict(a_levels=[n for n, _ in a_levels if not n.startswith("#")],
                  b_levels=[n for n, _ in b_levels if not n.startswith("#")],
                  c_levels=outer_all, im_name=im or "#vm", in_name=in_ or "#vn",
                  m_size=sizes[im] if im else 1, n_size=sizes[in_] if in_ else 1)
    layout["index_offset"] = index_offset
    result = CompiledContraction(sp, cfg, sizes, mp, im, in_, [], a_rows, b_rows, c_rows,
                                 ch.cycles, useful, ch.tiles, ksteps, outer_all, layout)
    if plan_only:
        return result

    # Network settings for the mapping.
    lane_index = [0] * cfg.c_lanes
    a_map = [None] * cfg.a_lanes
    b_map = [None] * cfg.b_lanes
    groups, dests = [], []
    for ia in range(mp.ga):
        for ib in range(mp.gb):
            for ik in range(mp.gk):
                c = (ia * mp.gk + ik) * mp.gb + ib
                for r in range(R):
                    a_map[c * R + r] = (ia * mp.gk + ik) * R + r
                for j in range(C):
                    b_map[c * C + j] = (ib * mp.gk + ik) * C + j
            for j in range(C):
                groups.append([((ia * mp.gk + ik) * mp.gb + ib) * C + j
                               for ik in range(mp.gk)])
                d = (ia * mp.gb + ib) * C + j
                dests.append(d)
                lane_index[d] = ((ia * R) * ost[im] if im else 0) + \
                    (((ib * C + j) * ost[in_]) if in_ else 0)
    a_set = routing.route_distribution(cfg.a_lanes, a_map)
    b_set = routing.route_distribution(cfg.b_lanes, b_map)
    r_set = routing.route_reduction(cfg.c_lanes, groups, dests)
    payload = ConfigPayload(mp, routing.pack_distribution(cfg.a_lanes, a_set),
                            routing.pack_distribution(cfg.b_lanes, b_set),
                            routing.pack_reduction(cfg.c_lanes, r_set),
                            tuple(v & 0xFFFFFFFF for v in lane_index))
    program = encode_config(cfg, routing.reduction_n_switch_bits(cfg.c_lanes), payload)

    # Hardware levels: the innermost N_LEVELS outer levels with count > 1; the rest is
    # a software loop over CONTRACT instructions.
    live = [(n, c) for n, c in outer_all if c > 1]
    hw = live[-N_LEVELS:] if live else []
    sw = live[:-N_LEVELS] if len(live) > N_LEVELS else []
    hw_levels = [Level(c, sa.get(n, 0), sb.get(n, 0), sc[n], sidx[n]) for n, c in hw]
    hw_levels = [Level()] * (N_LEVELS - len(hw_levels)) + hw_levels
    for combo in itertools.product(*[range(c) for _, c in sw]):
        off = {k: sum(i * s.get(n, 0) for i, (n, _) in zip(combo, sw))
               for k, s in (("a", sa), ("b", sb), ("c", sc), ("idx", sidx))}
        program += Contract(shift=shift, rounding=rounding, out_bits=out_bits, seed=seed,
                            base_a=off["a"], base_b=off["b"], base_c=off["c"],
                            base_idx=(off["idx"] + index_offset) & 0xFFFFFFFF,
                            k_count=ksteps,
                            k_stride_a=1, k_stride_b=1,
                            row_stride_idx=row_stride_idx & 0xFFFFFFFF,
                            levels=tuple(hw_levels), acc_continue=acc_continue,
                            acc_hold=acc_hold).encode()
    program.append(HALT)
    assert len(program) <= cfg.prog_depth
    result.program = program
    return result


def chunk_plan(spec, shape_a, shape_b, config="tiny", mapping: Mapping | None = None):
    """Split a contraction that does not fit into chunks that do.

    Each chunk is a contiguous block of the output in row-major order: a prefix of
    output indices fixed to single values, the next index restricted to a range, the
    rest whole. Returns ``[(ranges, index_offset)]`` with ``ranges`` a dict
    ``index -> (start, stop)``; raises ValueError when even one output element's
    contraction does not fit (the reduction itself is too long)."""
    cfg = get_config(config)
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    sizes = sp.sizes(shape_a, shape_b)
    tm = timing(cfg)
    ost = _out_strides(sp, sizes)

    def ok(sub_sizes):
        return _choices(sp, {**sizes, **sub_sizes}, cfg, mapping, tm) is not None

    def plan(prefix, pos):
        """Chunks of the indices from ``pos`` on, with the indices before ``pos``
        restricted to the sizes in ``prefix`` (fit depends on sizes only, so one
        sub-plan serves every value of the prefix)."""
        if ok(prefix):
            return [{}]
        if pos >= len(sp.out):
            compile_contraction(sp, shape_a, shape_b, cfg, mapping=mapping, plan_only=True)
            raise AssertionError("unreachable: compile_contraction raised above")
        idx = sp.out[pos]
        n = sizes[idx]
        lo, hi = 0, n          # largest chunk length that fits, by bisection
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ok({**prefix, idx: mid}):
                lo = mid
            else:
                hi = mid - 1
        if lo >= 1:
            return [{idx: (s, min(n, s + lo))} for s in range(0, n, lo)]
        inner = plan({**prefix, idx: 1}, pos + 1)
        return [{idx: (v, v + 1), **r} for v in range(n) for r in inner]

    chunks = plan({}, 0)
    return [(r, sum(a * ost[i] for i, (a, _) in r.items())) for r in chunks]
