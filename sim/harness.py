"""The harness: the one entry point for running contractions on the accelerator.

``run_contraction(spec, a, b, ...)`` compiles the einsum (``sw_model.program.compiler``),
loads operands and program over the host bus of the chosen backend, runs, reads the
result rows back and returns a ``ContractionResult``. ``Session`` keeps one backend
alive for many contractions (training).

A ``Session`` is built for many calls:

* **compile cache**: one compile per (spec, operand shapes, mapping) — the config is
  the session's — and per-call output-stage parameters (shift, rounding, out_bits,
  seed, chunk index offset) through ``CompiledContraction.with_params``; chunk plans
  are cached the same way;
* **operand residency**: the session keeps a host-side copy of what it last wrote into
  buffers A and B and program memory, and rewrites only the rows (program words) whose
  contents differ. Only the lanes a mapping reads (``ga*gk*pe_rows`` of A,
  ``gb*gk*pe_cols`` of B) are data; the other lanes keep their old contents and are
  not counted. It assumes it is the only writer of those memories (call
  ``invalidate()`` after touching the backend directly). ``residency=False`` writes
  whole buffer rows every call (and counts them);
* **host-transfer accounting**: every host-bus word written or read for a contraction
  (operand words, program words, the CLEAR/START writes, the result words of the
  output lanes, the status, error-PC and counter reads) is counted in ``ContractionResult.host_words`` and converted to
  ``host_cycles`` at **one 32-bit word per accelerator clock cycle**: the host bus
  accepts one strobe per cycle and never stalls (``sw_model/accel/hostmap.py``), so this is
  the rate of a host (or DMA engine) clocked with the accelerator. Transfers do not
  overlap compute (buffer writes are refused while a program runs). A UART link is far
  slower; its cost is not modelled here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fetta.sw_model.program.compiler import CompiledContraction, chunk_plan, compile_contraction, fits
from fetta.sw_model.accel.config import AccelConfig, get_config
from fetta.sw_model.accel.hostmap import (BUFFER_WORD_BITS, CONTROL_WRITES, PROG_BASE,
                                          REG_BASE, ErrorCode, Reg, Status, buffer_base,
                                          program_base)
from fetta.sw_model.arith.fixedpoint import wrap
from fetta.sw_model.accel.isa import Mapping
from fetta.sw_model.accel.shift_slots import Vote, as_vote, slot_fields, slot_word
from fetta.sw_model.program.kchunk import kchunk_plan, needs_kchunks

from fetta.api_checks import check_contract_args
from fetta.sim.backends.base import Backend, get_backend
from fetta.sim.onchip import OnChipResults, contract_onchip
from fetta.errors import FettaError

__all__ = ["ContractionResult", "Session", "run_contraction", "transfer_words"]


@dataclass
class ContractionResult:
    """What one contraction on the accelerator produced.

    ``output``: int64 array in the einsum output's shape (contract semantics);
    ``cycles``: measured cycles of the program (the CYCLES counter);
    ``predicted_cycles``: the compiler's analytic model;
    ``mac_utilization``: useful MACs / (MACs of the array x cycles), where useful MACs
    is the product of all index sizes (padding lanes do not count);
    ``counters``: every performance counter; ``mapping``: the (ga, gb, gk) used;
    ``host_words``: host-bus words moved (``written``, ``read``, ``skipped`` = buffer
    and program words already resident, not rewritten); ``host_cycles``: their cost at
    one word per cycle (``Session``)."""
    output: np.ndarray
    cycles: int
    predicted_cycles: int
    mac_utilization: float
    counters: dict
    mapping: Mapping
    useful_macs: int
    spec: str
    config: str
    backend: str
    wall_seconds: float = 0.0
    chunks: int = 1
    compiled: CompiledContraction | None = field(default=None, repr=False)
    host_words: dict = field(default_factory=lambda: {"written": 0, "read": 0,
                                                      "skipped": 0})
    move_cycles: int = 0          # cycles of MOVEs bringing on-chip operands (sim.onchip)

    @property
    def host_cycles(self) -> int:
        return self.host_words["written"] + self.host_words["read"]

    def to_dict(self) -> dict:
        return {"spec": self.spec, "config": self.config, "backend": self.backend,
                "cycles": self.cycles, "predicted_cycles": self.predicted_cycles,
                "mac_utilization": self.mac_utilization, "useful_macs": self.useful_macs,
                "mapping": {"ga": self.mapping.ga, "gb": self.mapping.gb,
                            "gk": self.mapping.gk, "mode": self.mapping.mode},
                "counters": dict(self.counters), "output_shape": list(self.output.shape),
                "chunks": self.chunks, "wall_seconds": self.wall_seconds,
                "host_words": dict(self.host_words), "host_cycles": self.host_cycles}


def _words(rows: np.ndarray) -> list[int]:
    return (np.asarray(rows, dtype=np.int64).reshape(-1) & 0xFFFF).tolist()


def transfer_words(cc: CompiledContraction, read_out: bool = True) -> dict:
    """Host-bus words of one run of ``cc`` when nothing is resident
    (``CompiledContraction.transfer_words``, the one definition)."""
    return cc.transfer_words(read_out)


# Changed row runs closer than this are written as one burst (fewer bus transactions).
_MERGE_GAP = 4


class _Resident:
    """Host-side copy of one buffer's rows (or program words) as last written."""

    def __init__(self, depth: int, lanes: int):
        self.rows = np.zeros((depth, lanes), dtype=np.int64)
        self.valid = np.zeros(depth, dtype=bool)

    def runs(self, rows: np.ndarray, used: int | None = None,
             at: int = 0) -> list[tuple[int, int]]:
        """[start, stop) row ranges of ``rows`` (to be held from row ``at``; the ranges
        relative to ``rows``) whose first ``used`` lanes (default all) differ from what
        is resident."""
        n = len(rows)
        if n == 0:
            return []
        used = rows.shape[1] if used is None else used
        diff = ~self.valid[at:at + n] | \
            (self.rows[at:at + n, :used] != rows[:, :used]).any(axis=1)
        if diff.all():
            return [(0, n)]
        idx = np.flatnonzero(diff)
        if not len(idx):
            return []
        cut = np.flatnonzero(np.diff(idx) > _MERGE_GAP)
        starts = np.concatenate(([idx[0]], idx[cut + 1]))
        stops = np.concatenate((idx[cut], [idx[-1]])) + 1
        return list(zip(starts.tolist(), stops.tolist()))

    def merged(self, start: int, rows: np.ndarray, used: int) -> np.ndarray:
        """``rows`` with lanes from ``used`` on taken from what is resident (rewriting
        a word with its own value is the same as not writing it)."""
        out = self.rows[start:start + len(rows)].copy()
        out[:, :used] = rows[:, :used]
        return out

    def store(self, start: int, rows: np.ndarray) -> None:
        self.rows[start:start + len(rows)] = rows
        self.valid[start:start + len(rows)] = True


class Session:
    """One accelerator instance (a backend) that runs many contractions.

    ``residency=False`` rewrites every operand row and program word on every call.
    ``resident=True`` keeps results in C and moves them on chip into the next
    contraction that reads them (``sim.onchip``).
    ``stats`` accumulates over the session: contractions, chunks, compile cache
    hits/misses, host words written/read/skipped and the peak rows used per buffer
    and program words (on-chip memory high-water marks).
    ``job_program_at``: where the programs of separate jobs (``contract``, and the
    on-chip-results path of ``sim.onchip``) are written and started: 0 (default) or
    ``"top"`` (the end of program memory, ``hostmap.program_base``), so that a
    resident chain's program held from word 0 stays in place between chains."""

    def __init__(self, config="tiny", backend: str | Backend = "pysim", *,
                 residency: bool = True, resident: bool = False, **backend_options):
        self.config: AccelConfig = get_config(config)
        if resident and not self.config.move_unit:
            raise FettaError(f"resident results need the MOVE unit; config "
                             f"'{self.config.name}' has move_unit=False")
        self.onchip = OnChipResults(self.config.bank_depth) if resident else None
        self._c_rows_written = 0        # C rows a host-path contraction's programs wrote
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            self.backend = get_backend(backend, self.config, **backend_options)
        self.residency = residency
        self.job_program_at = 0
        self._compiled: dict = {}
        self._chunks: dict = {}
        self.stats = {"contractions": 0, "chunks": 0, "compile_hits": 0,
                      "compile_misses": 0, "words_written": 0, "words_read": 0,
                      "words_skipped": 0, "peak_rows": {"a": 0, "b": 0, "c": 0},
                      "peak_program_words": 0}
        self.invalidate()

    def invalidate(self, program: bool = True, buffers: bool = True) -> None:
        """Forget what is resident: the next contraction rewrites everything (and
        no kept result is moved from C). ``program=False`` keeps the copy of program
        memory (programs run change the buffers, never program memory);
        ``buffers=False`` keeps the copies of A and B (for a caller that has marked
        the rows its programs wrote, as ``sim.resident`` does)."""
        cfg = self.config
        if getattr(self, "onchip", None) is not None:
            self.onchip.drop()
        old = getattr(self, "_resident", None)
        keep = {"prog": not program, 0: not buffers, 1: not buffers}
        fresh = {0: (cfg.bank_depth, cfg.a_lanes), 1: (cfg.bank_depth, cfg.b_lanes),
                 "prog": (cfg.prog_depth, 1)}
        self._resident = {k: old[k] if old is not None and keep[k] else _Resident(*shape)
                          for k, shape in fresh.items()}

    def close(self):
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def compile(self, spec, shape_a, shape_b, **kw) -> CompiledContraction:
        return compile_contraction(spec, shape_a, shape_b, self.config, **kw)

    def _compiled_for(self, sp, shape_a, shape_b, mapping, *, compile_kw=None,
                      **params) -> CompiledContraction:
        """Compiled (cached) with the output-stage ``params``; ``compile_kw`` are
        further ``compile_contraction`` arguments that change the program (lanes,
        idx_strides, K-chunk flags), part of the cache key."""
        compile_kw = compile_kw or {}
        key = (str(sp), tuple(shape_a), tuple(shape_b), mapping,
               repr(sorted(compile_kw.items())))
        cc = self._compiled.get(key)
        if cc is None:
            self.stats["compile_misses"] += 1
            cc = self._compiled[key] = compile_contraction(sp, shape_a, shape_b,
                                                           self.config, mapping=mapping,
                                                           **compile_kw)
        else:
            self.stats["compile_hits"] += 1
        return cc.with_params(**params)

    def _chunk_plan(self, sp, shape_a, shape_b, mapping):
        key = (str(sp), tuple(shape_a), tuple(shape_b), mapping)
        parts = self._chunks.get(key)
        if parts is None:
            if fits(sp, shape_a, shape_b, self.config, mapping):
                parts = [({}, 0)]
            else:
                parts = self._reuse_order(sp, shape_a, shape_b,
                                          chunk_plan(sp, shape_a, shape_b, self.config,
                                                     mapping))
            self._chunks[key] = parts
        return parts

    @staticmethod
    def _reuse_order(sp, shape_a, shape_b, parts):
        """Chunks grouped by their slice of the larger operand, so that with residency
        it is written once per group (chunks are independent: each writes its own
        output block with its own dither index offset, so order does not matter)."""
        sizes = sp.sizes(shape_a, shape_b)

        def key(ranges, idx):
            return tuple(ranges.get(i, (0, sizes[i])) for i in idx)

        def size(ranges, idx):
            return int(np.prod([b - a for a, b in key(ranges, idx)]))

        big, small = (sp.a, sp.b) if sum(size(r, sp.a) for r, _ in parts) >= \
            sum(size(r, sp.b) for r, _ in parts) else (sp.b, sp.a)
        return sorted(parts, key=lambda p: (key(p[0], big), key(p[0], small)))

    def contract(self, spec, a, b, *, shift=0, rounding="floor", out_bits=16, seed=0,
                 mapping: Mapping | None = None, max_cycles: int | None = None,
                 progress=None, read_back: bool = True, slot: int = 0,
                 vote=Vote.NONE, slot_init: tuple | None = None) -> ContractionResult:
        """Run one contraction. One that does not fit the buffers in one program is
        split into contiguous output chunks (``compiler.chunk_plan``), run one after
        the other, or, when the reduction alone is longer than the buffers hold, into
        K chunks accumulated in the array (``sw_model.program.kchunk``); cycles, counters and
        host words are summed over the programs. ``progress(done, total)`` is called
        after each output chunk. ``read_back=False`` (with ``resident=True``): the
        caller needs the result only as a later operand; the host reads one word
        (``Reg.MAX_ABS``) instead of the result (``sim.onchip``), none when the
        contraction votes on chip.

        Shift slots (``sw_model.accel.shift_slots``): ``slot`` 1..``shift_slots`` runs
        the contraction with that on-chip slot's shift (``shift`` is what the caller
        expects it to be, for the result check) and ``vote`` (``close``: the
        contraction's largest result word votes at its end; over several programs the
        earlier ones gather); ``slot_init=(shift, pending)`` first writes the slot (one
        host word: the shift's first calibration, or a restore)."""
        cfg = self.config
        t0 = time.perf_counter()
        a_obj, b_obj = a, b
        args = check_contract_args(cfg, spec, a, b, shift=shift, rounding=rounding,
                                   out_bits=out_bits, seed=seed, mapping=mapping,
                                   max_cycles=max_cycles)
        sp, a, b, mapping, max_cycles = (args["spec"], args["a"], args["b"],
                                         args["mapping"], args["max_cycles"])
        sizes = sp.sizes(a.shape, b.shape)
        kw = dict(shift=args["shift"], rounding=args["rounding"],
                  out_bits=args["out_bits"], seed=args["seed"], mapping=mapping,
                  slot=slot, vote=as_vote(vote))
        init_words = self._init_slot(slot, slot_init) if slot_init is not None else 0
        if needs_kchunks(sp, sizes, cfg, mapping):
            if self.onchip is not None:
                self.onchip.drop()
            total = self._contract_kchunked(sp, a, b, max_cycles=max_cycles, **kw)
            total.host_words["written"] += init_words
            return self._finish(total, sp, a, b, t0)
        parts = self._chunk_plan(sp, a.shape, b.shape, mapping)
        if self.onchip is not None:
            if parts == [({}, 0)]:
                res = ContractionResult(**contract_onchip(
                    self, sp, a, b, a_obj, b_obj, max_cycles=max_cycles,
                    read_back=read_back, **kw))
                res.host_words["written"] += init_words
                return self._finish(res, sp, a, b, t0)
            for obj in (a_obj, b_obj):      # the host path needs its operands
                self.onchip.read_now(obj)
        out = np.zeros(sp.output_shape(a.shape, b.shape), dtype=np.int64)
        total = None
        self._c_rows_written = 0
        for done, (ranges, offset) in enumerate(parts, 1):
            # one vote per contraction: the programs before the last gather
            pkw = dict(kw, vote=Vote.GATHER if kw["vote"] and done < len(parts)
                       else kw["vote"])
            if ranges:
                sl_a = tuple(slice(*ranges[i]) if i in ranges else slice(None) for i in sp.a)
                sl_b = tuple(slice(*ranges[i]) if i in ranges else slice(None) for i in sp.b)
                sl_o = tuple(slice(*ranges[i]) if i in ranges else slice(None)
                             for i in sp.out)
                res = self._contract_one(sp, a[sl_a], b[sl_b], index_offset=offset,
                                         max_cycles=max_cycles, **pkw)
                out[sl_o] = res.output
            else:
                res = self._contract_one(sp, a, b, index_offset=offset,
                                         max_cycles=max_cycles, **pkw)
                out = res.output
            total = self._add(total, res)
            if progress is not None:
                progress(done, len(parts))
        total.output = out
        total.chunks = len(parts)
        total.host_words["written"] += init_words
        if self.onchip is not None:     # the chunks' programs wrote C from row 0
            self.onchip.evict_rows(self._c_rows_written)
        return self._finish(total, sp, a, b, t0)

    def _finish(self, total, sp, a, b, t0) -> ContractionResult:
        """Whole-contraction figures and session statistics of a summed result."""
        total.useful_macs = int(np.prod(list(sp.sizes(a.shape, b.shape).values())))
        total.mac_utilization = total.useful_macs / (self.config.macs * total.cycles)
        total.spec = str(sp)
        total.wall_seconds = time.perf_counter() - t0
        if self.onchip is not None:     # unread results that left C: read them now
            total.host_words["read"] += self.onchip.take_pending_reads()
        st = self.stats
        st["contractions"] += 1
        st["chunks"] += total.chunks
        st["words_written"] += total.host_words["written"]
        st["words_read"] += total.host_words["read"]
        st["words_skipped"] += total.host_words["skipped"]
        return total

    @staticmethod
    def _add(total, res):
        if total is None:
            return res
        total.cycles += res.cycles
        total.predicted_cycles += res.predicted_cycles
        total.move_cycles += res.move_cycles
        total.counters = {k: v + res.counters[k] for k, v in total.counters.items()}
        total.host_words = {k: v + res.host_words[k] for k, v in total.host_words.items()}
        return total

    def _init_slot(self, slot: int, init) -> int:
        """Write shift slot ``slot`` to ``(shift, pending)`` (gmax 0); host words."""
        cfg = self.config
        if not 1 <= int(slot) <= cfg.shift_slots:
            raise FettaError(f"shift slot {slot} out of range; '{cfg.name}' has "
                             f"{'slots 1..' + str(cfg.shift_slots) if cfg.shift_slots else 'none'}")
        be = self.backend
        if not be.known_idle:
            be.abort()
            self.invalidate()
        be.write(REG_BASE + Reg.SLOT + int(slot) - 1, [slot_word(int(init[0]), int(init[1]))])
        return 1

    def read_slot(self, slot: int) -> tuple[int, int, int]:
        """``(shift, pending, gmax)`` of shift slot ``slot``, read for verification
        (outside the host-word accounting, like the results the simulator hands over)."""
        return slot_fields(self.backend.read(REG_BASE + Reg.SLOT + int(slot) - 1, 1)[0])

    def _contract_kchunked(self, sp, a, b, *, shift, rounding, out_bits, seed, mapping,
                           max_cycles, slot=0, vote=Vote.NONE) -> ContractionResult:
        """A contraction whose reduction alone does not fit (``sw_model.program.kchunk``): per
        output tile, one program per K box accumulating in the PE accumulators; the
        last box of a tile drains it. Nothing else may run on the backend between the
        programs of one tile (the accumulators carry the partial sums)."""
        key = ("k", str(sp), a.shape, b.shape, mapping)
        plan = self._chunks.get(key)
        if plan is None:
            plan = self._chunks[key] = kchunk_plan(sp, a.shape, b.shape, self.config,
                                                   mapping)
        out = np.zeros(sp.output_shape(a.shape, b.shape), dtype=np.int64)
        total = None
        runs = list(plan.runs())
        for i, (tile, box, first, last) in enumerate(runs):
            r = {**tile, **box}
            sl_a = tuple(slice(*r[i]) if i in r else slice(None) for i in sp.a)
            sl_b = tuple(slice(*r[i]) if i in r else slice(None) for i in sp.b)
            ckw = dict(lanes=(plan.im, plan.in_), idx_strides=plan.idx_strides,
                       acc_continue=not first, acc_hold=not last)
            res = self._contract_one(sp, a[sl_a], b[sl_b], shift=shift, rounding=rounding,
                                     out_bits=out_bits, seed=seed, mapping=plan.mapping,
                                     index_offset=plan.index_offset(tile),
                                     max_cycles=max_cycles, compile_kw=ckw,
                                     read_out=last, slot=slot,
                                     vote=Vote.GATHER if vote and i < len(runs) - 1
                                     else vote)
            if last:
                out[tuple(slice(*tile[i]) for i in sp.out)] = res.output
            total = self._add(total, res)
        total.output = out
        total.chunks = plan.programs
        return total

    def _load(self, region, base: int, rows: np.ndarray, used: int) -> tuple[int, int]:
        """Write ``rows`` (rows x lanes) at ``base``, skipping resident rows; only the
        first ``used`` lanes of a row carry data for this mapping (the others are never
        read), so only those count as host words. Returns (words written, skipped)."""
        res = self._resident[region]
        if not self.residency:
            self.backend.write(base, _words(rows))
            return rows.size, 0
        lanes = rows.shape[1]
        written = 0
        for start, stop in res.runs(rows, used):
            chunk = res.merged(start, rows[start:stop], used)
            self.backend.write(base + start * lanes, _words(chunk))
            res.store(start, chunk)
            written += (stop - start) * used
        return written, len(rows) * used - written

    def _write_program(self, program, base: int = 0) -> int:
        """Write the words of ``program`` that differ from what program memory holds
        from word ``base`` on (runs of changed words, merged across gaps of up to
        ``_MERGE_GAP`` like operand rows; every word without ``residency``); returns
        the words written."""
        rows = np.asarray(program, dtype=np.int64).reshape(-1, 1)
        depth = self.config.prog_depth
        if base < 0 or base + len(rows) > depth:
            raise FettaError(f"a program of {len(rows)} words at program word {base} "
                             f"leaves program memory; program depth {depth}")
        res = self._resident["prog"]
        written = 0
        for lo, hi in (res.runs(rows, at=base) if self.residency else [(0, len(rows))]):
            self.backend.write(PROG_BASE + base + lo, list(program[lo:hi]))
            res.store(base + lo, rows[lo:hi])
            written += hi - lo
        return written

    def _contract_one(self, sp, a, b, *, shift, rounding, out_bits, seed, mapping,
                      index_offset, max_cycles, compile_kw=None,
                      read_out=True, slot=0, vote=Vote.NONE) -> ContractionResult:
        """One program. ``read_out=False`` (a K chunk that holds its sums in the
        accumulators and writes nothing) skips reading C back."""
        cfg = self.config
        cc = self._compiled_for(sp, a.shape, b.shape, mapping, shift=shift,
                                rounding=rounding, out_bits=out_bits, seed=seed,
                                index_offset=index_offset, compile_kw=compile_kw,
                                slot=slot, vote=vote)
        be = self.backend
        if not be.known_idle:
            be.abort()          # a program left running (started outside the harness)
            self.invalidate()
        be.clear()
        mp = cc.mapping
        wa, sa = self._load(0, buffer_base(0), cc.pack_a(a), cc.lanes_used("a"))
        wb, sb = self._load(1, buffer_base(1), cc.pack_b(b), cc.lanes_used("b"))
        base = program_base(self.job_program_at, len(cc.program), cfg.prog_depth)
        wp = self._write_program(cc.program, base)
        limit = max_cycles or (4 * cc.predicted_cycles + 10_000)
        try:
            st = be.run(limit, start=base)
        except BaseException:
            self.invalidate()
            raise
        if st.error != ErrorCode.NONE:
            self.invalidate()
            raise FettaError(f"accelerator halted with error {st.error.name} at program "
                             f"word {st.err_pc} running '{cc.spec}'")
        if not st.status & Status.DONE:     # never return data of an unfinished run
            self.invalidate()
            raise FettaError(f"accelerator stopped without DONE (STATUS "
                             f"0x{st.status:08x}) running '{cc.spec}'; no result returned")
        n_out = cc.c_rows * cfg.c_lanes
        self._c_rows_written = max(self._c_rows_written, cc.c_rows)
        read_array = getattr(be, "read_array", None)
        if not read_out:
            out = None
        else:
            if read_array is not None:
                raw = read_array(buffer_base(2), n_out).astype(np.int64)
            else:
                raw = np.array(be.read(buffer_base(2), n_out), dtype=np.int64)
            raw = wrap(raw, BUFFER_WORD_BITS)      # the bus's sign extension, as values
            out = cc.unpack_c(raw.reshape(cc.c_rows, cfg.c_lanes))
        cycles = st.counters["cycles"]
        peak = self.stats["peak_rows"]
        for k, rows in (("a", cc.a_rows), ("b", cc.b_rows), ("c", cc.c_rows)):
            peak[k] = max(peak[k], rows)
        self.stats["peak_program_words"] = max(self.stats["peak_program_words"],
                                               len(cc.program))
        # The host reads only the lanes holding outputs (lane < ga*gb*pe_cols).
        words = {"written": wa + wb + wp + CONTROL_WRITES,
                 "read": transfer_words(cc, read_out)["read"],
                 "skipped": sa + sb + len(cc.program) - wp}
        return ContractionResult(
            output=out, cycles=cycles, predicted_cycles=cc.predicted_cycles,
            mac_utilization=cc.useful_macs / (cfg.macs * cycles) if cycles else 0.0,
            counters=st.counters, mapping=cc.mapping, useful_macs=cc.useful_macs,
            spec=str(cc.spec), config=cfg.name, backend=be.name, compiled=cc,
            host_words=words)


_SESSIONS: dict = {}


def run_contraction(spec, a, b, *, config="tiny", shift=0, rounding="floor", out_bits=16,
                    seed=0, backend="pysim", vcd=None, mapping: Mapping | None = None,
                    max_cycles: int | None = None, progress=None) -> ContractionResult:
    """Run one pairwise contraction on the simulated (or real) accelerator.

    ``spec`` is an einsum string ``"A,B->C"``; ``a``/``b`` integer arrays (16-bit
    range; with a shift-MAC config ``b`` holds power-of-two codes). Values follow the
    arithmetic contract exactly. ``vcd=path`` records a waveform (pysim) plus a GTKWave
    save file at ``path`` with ``.gtkw``. Backends are kept alive between calls (one
    per backend/config) unless a VCD is requested."""
    cfg = get_config(config)
    if not isinstance(backend, str):
        raise TypeError(f"backend={backend!r} invalid; allowed a backend name "
                        f"(pysim, cxxrtl, verilator, board)")
    # arguments checked before a backend is built (no simulator for a bad call)
    check_contract_args(cfg, spec, a, b, shift=shift, rounding=rounding,
                        out_bits=out_bits, seed=seed, mapping=mapping,
                        max_cycles=max_cycles)
    if vcd is not None:
        if backend != "pysim":
            raise ValueError(f"vcd= is supported on backend 'pysim'; got {backend!r}")
        with Session(cfg, backend, vcd=str(vcd)) as s:
            return s.contract(spec, a, b, shift=shift, rounding=rounding,
                              out_bits=out_bits, seed=seed, mapping=mapping,
                              max_cycles=max_cycles, progress=progress)
    key = (backend, cfg)
    if key not in _SESSIONS:
        _SESSIONS[key] = Session(cfg, backend)
    return _SESSIONS[key].contract(spec, a, b, shift=shift, rounding=rounding,
                                   out_bits=out_bits, seed=seed, mapping=mapping,
                                   max_cycles=max_cycles, progress=progress)
