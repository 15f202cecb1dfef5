"""On-chip results for a ``Session``: results stay in buffer C and reach the next
contraction by MOVE instructions instead of the host bus (``Session(resident=True)``,
``fetta train --backend rtl --resident``).

Each contraction that compiles into one program writes its result to C at rows of its
own (``OnChipResults.place``: the highest gap between kept results; when none holds
it, the oldest kept results leave C, the operands the contraction is about to move
last). When a later contraction's operand is
the very array a kept result returned, unchanged (``OnChipResults.find``: by
identity, and its contents compared with a copy taken when it was returned, so a
caller that changes a result in place gets it written by the host), the program copies it from C into the
operand's A or B layout with MOVEs (``sw_model.program.moves.relayout``) placed
after CONFIG, instead of the host writing it; the session's record of what A/B hold
is updated with the moved rows, so the host also skips what is already there.
Operands that are not kept results are written by the host as usual.

What the host reads: a result it needs (``read_back=True``, the default) in full; an
intermediate only the next contractions need (``read_back=False``) as one word, the
largest magnitude of the program's results (``Reg.MAX_ABS``, ``rtl/max_abs.py``: the
adaptive-shift vote's input), or nothing when the contraction names a shift slot
(the vote runs on chip, ``sw_model.accel.shift_slots``). The simulator still hands the caller the whole result
(read without bus cycles) for its bookkeeping; a result that is not read back is
counted as read when it leaves C unread (C full, or the host path overwriting it),
since the host would have to save it then. A contraction
that needs several programs (output or K chunks), or a configuration without the
MOVE unit, runs the host path and drops the kept results (its programs write C from
row 0).

Cycles: the run's CYCLES counter; ``move_cycles`` of the result is the MOVEs' share
(``MovePlan.cycles``, exact), reported as the ``on_chip_moves`` phase.

Members: ``OnChipResults``, ``contract_onchip``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fetta.errors import FettaError
from fetta.sw_model.accel.hostmap import (BUFFER_WORD_BITS, CONTROL_READS, CONTROL_WRITES,
                                         ErrorCode, Status,
                                         buffer_base, program_base)
from fetta.sw_model.accel.isa import Contract, Op, decode_header, instructions
from fetta.sw_model.arith.fixedpoint import wrap
from fetta.sw_model.program.moves import relayout

__all__ = ["OnChipResults", "contract_onchip"]


@dataclasses.dataclass
class _Kept:
    array: np.ndarray             # the result as returned (identity is the key)
    snapshot: np.ndarray          # its contents then (a caller may change it in place)
    compiled: object              # its producer's CompiledContraction (C layout)
    c_row: int                    # first C row
    unread: int = 0               # host words still to read if it leaves C (0: read)


class OnChipResults:
    """Results kept in C (module docstring). ``stats``: operands moved, elements
    moved, results dropped because C was full."""

    def __init__(self, depth: int):
        self.depth = depth
        self.kept: dict[int, _Kept] = {}
        self.pending_reads = 0        # words of unread results that left C
        self.stats = {"moved_operands": 0, "moved_elements": 0, "dropped": 0,
                      "not_read_back": 0, "read_when_dropped": 0,
                      "read_for_host_path": 0}

    def find(self, x) -> _Kept | None:
        """The kept result ``x`` is, if its contents are still what C holds."""
        k = self.kept.get(id(x))
        if k is None or k.array is not x or not np.array_equal(k.snapshot, x):
            return None
        return k

    def place(self, rows: int, protect=()) -> int:
        """First C row for a result of ``rows`` rows: the highest gap between kept
        results that holds it (results fill C from the top, away from row 0, where a
        chunked contraction's host path writes); when none does, the oldest kept
        results leave (their unread words counted, ``_evict``) until one does, the
        ones in ``protect`` (this contraction's operands) last: their MOVEs run
        before the CONTRACT writes C, so the result may take their rows."""
        while True:
            spans = sorted(((k.c_row, k.compiled.c_rows) for k in self.kept.values()),
                           reverse=True)
            top = self.depth
            for base, n in spans:
                if top - (base + n) >= rows:
                    return top - rows
                top = min(top, base)
            if top >= rows:
                return top - rows
            victims = [key for key, k in self.kept.items()
                       if not any(k is p for p in protect)] or list(self.kept)
            self._evict(victims[0])       # the oldest (dicts keep insertion order)

    def evict_rows(self, rows: int) -> None:
        """The host path wrote C rows ``0 .. rows - 1``: the kept results there leave."""
        for key in [key for key, k in self.kept.items() if k.c_row < rows]:
            self._evict(key)

    def read_now(self, x) -> None:
        """The host path takes ``x`` as an operand: a kept result not read back yet is
        read now (counted), and stays kept."""
        k = self.find(x)
        if k is not None and k.unread:
            self.pending_reads += k.unread
            self.stats["read_for_host_path"] += k.unread
            k.unread = 0

    def _evict(self, key) -> None:
        k = self.kept.pop(key)
        self.stats["dropped"] += 1
        self.pending_reads += k.unread
        self.stats["read_when_dropped"] += k.unread

    def keep(self, array, compiled, c_row: int, unread: int = 0) -> None:
        self.kept[id(array)] = _Kept(array, array.copy(), compiled, c_row, unread)

    def drop(self) -> None:
        """Forget every kept result; the unread ones count as read now
        (``pending_reads``, taken by the next contraction's host words)."""
        for key in list(self.kept):
            self._evict(key)

    def take_pending_reads(self) -> int:
        n, self.pending_reads = self.pending_reads, 0
        return n


def _rebased_c(program, c_row: int) -> list[int]:
    out = []
    for pc, op, payload in instructions(program):
        words = [program[pc], *payload]
        if op == Op.CONTRACT:
            k = Contract.decode(payload)
            words = dataclasses.replace(k, base_c=k.base_c + c_row).encode()
        out += words
    return out


def contract_onchip(session, sp, a, b, a_obj, b_obj, *, max_cycles, read_back=True,
                    **kw):
    """One contraction of ``session`` with on-chip operands and a kept result (module
    docstring); ``a_obj``/``b_obj`` are the operands as the caller passed them (their
    identity finds kept results). It must compile into one program. Returns the
    fields of the ``harness.ContractionResult`` (a dict)."""
    cfg = session.config
    onchip: OnChipResults = session.onchip
    cc = session._compiled_for(sp, a.shape, b.shape, kw.pop("mapping"), index_offset=0,
                               **kw)
    sources = {role: onchip.find(obj) for role, obj in (("a", a_obj), ("b", b_obj))}
    c_row = onchip.place(cc.c_rows, [k for k in sources.values() if k is not None])
    be = session.backend
    if not be.known_idle:
        be.abort()
        session.invalidate()
    be.clear()
    mp = cc.mapping
    moves, move_cycles, written, skipped = [], 0, 0, 0
    for role, x, region in (("a", a, 0), ("b", b, 1)):
        pack = cc.pack_a(x) if role == "a" else cc.pack_b(x)
        used = cc.lanes_used(role)
        src = sources[role]
        if src is None:
            w, s = session._load(region, buffer_base(region), pack, used)
            written, skipped = written + w, skipped + s
            continue
        plan = relayout(src.compiled, cc, role, x.shape, src_row=src.c_row, dst_row=0)
        moves += plan.program()
        move_cycles += plan.cycles
        session._resident[region].store(0, pack)    # what the MOVEs leave in A/B
        onchip.stats["moved_operands"] += 1
        onchip.stats["moved_elements"] += plan.elements
    prog = _rebased_c(cc.program, c_row)
    n_cfg = 1 + decode_header(prog[0])[1] if decode_header(prog[0])[0] == Op.CONFIG else 0
    prog = prog[:n_cfg] + moves + prog[n_cfg:]
    if len(prog) > cfg.prog_depth:
        raise FettaError(f"'{sp}' with its MOVEs needs {len(prog)} program words; "
                         f"program depth {cfg.prog_depth} on '{cfg.name}'")
    base = program_base(session.job_program_at, len(prog), cfg.prog_depth)
    wp = session._write_program(prog, base)   # the words that differ from what is there
    predicted = cc.predicted_cycles + move_cycles
    try:
        st = be.run(max_cycles or (4 * predicted + 10_000), start=base)
    except BaseException:
        session.invalidate()
        onchip.drop()
        raise
    if st.error != ErrorCode.NONE or not st.status & Status.DONE:
        session.invalidate()
        onchip.drop()
        what = (f"error {st.error.name} at program word {st.err_pc}"
                if st.error != ErrorCode.NONE else f"STATUS 0x{st.status:08x} without DONE")
        raise FettaError(f"accelerator halted with {what} running '{cc.spec}' with "
                         f"on-chip operands; no result returned")
    n_out = cc.c_rows * cfg.c_lanes
    raw = np.array(be.read(buffer_base(2) + c_row * cfg.c_lanes, n_out), dtype=np.int64)
    out = cc.unpack_c(wrap(raw, BUFFER_WORD_BITS).reshape(cc.c_rows, cfg.c_lanes))
    result_words = cc.c_rows * cc.lanes_used("c")
    onchip.keep(out, cc, c_row, 0 if read_back else result_words)
    if not read_back:
        onchip.stats["not_read_back"] += 1
    peak = session.stats["peak_rows"]
    for k, rows in (("a", cc.a_rows), ("b", cc.b_rows), ("c", c_row + cc.c_rows)):
        peak[k] = max(peak[k], rows)
    session.stats["peak_program_words"] = max(session.stats["peak_program_words"],
                                              len(prog))
    words = {"written": written + wp + CONTROL_WRITES,
             # not read back: MAX_ABS for the host's vote, nothing with a shift slot
             "read": (result_words if read_back else 0 if kw.get("slot") else 1)
             + CONTROL_READS,
             "skipped": skipped + len(prog) - wp}
    cycles = st.counters["cycles"]
    return dict(output=out, cycles=cycles, predicted_cycles=predicted,
                mac_utilization=cc.useful_macs / (cfg.macs * cycles) if cycles else 0.0,
                counters=st.counters, mapping=mp, useful_macs=cc.useful_macs,
                spec=str(cc.spec), config=cfg.name, backend=be.name, compiled=cc,
                host_words=words, move_cycles=move_cycles)
