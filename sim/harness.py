"""The harness: the one entry point for running contractions on the accelerator.

``run_contraction(spec, a, b, ...)`` compiles the einsum (``sw_model.compiler``),
loads operands and program over the host bus of the chosen backend, runs, reads the
result rows back and returns a ``ContractionResult``. ``Session`` keeps one backend
alive for many contractions (training).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from sw_model.compiler import CompiledContraction, chunk_plan, compile_contraction, fits
from sw_model.config import AccelConfig, get_config
from sw_model.contraction import check_operand
from sw_model.einsum_spec import parse_spec
from sw_model.fixedpoint import Pow2Code
from sw_model.hostmap import PROG_BASE, ErrorCode, buffer_base
from sw_model.isa import Mapping

from .backend import Backend, get_backend
from .errors import FettaError

__all__ = ["ContractionResult", "Session", "run_contraction"]


@dataclass
class ContractionResult:
    """What one contraction on the accelerator produced.

    ``output``: int64 array in the einsum output's shape (contract semantics);
    ``cycles``: measured cycles of the program (the CYCLES counter);
    ``predicted_cycles``: the compiler's analytic model;
    ``mac_utilization``: useful MACs / (MACs of the array x cycles), where useful MACs
    is the product of all index sizes (padding lanes do not count);
    ``counters``: every performance counter; ``mapping``: the (ga, gb, gk) used."""
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

    def to_dict(self) -> dict:
        return {"spec": self.spec, "config": self.config, "backend": self.backend,
                "cycles": self.cycles, "predicted_cycles": self.predicted_cycles,
                "mac_utilization": self.mac_utilization, "useful_macs": self.useful_macs,
                "mapping": {"ga": self.mapping.ga, "gb": self.mapping.gb,
                            "gk": self.mapping.gk, "mode": self.mapping.mode},
                "counters": dict(self.counters), "output_shape": list(self.output.shape),
                "chunks": self.chunks, "wall_seconds": self.wall_seconds}


def _words(rows: np.ndarray) -> list[int]:
    return (np.asarray(rows, dtype=np.int64).reshape(-1) & 0xFFFF).tolist()


class Session:
    """One accelerator instance (a backend) that runs many contractions."""

    def __init__(self, config="tiny", backend: str | Backend = "pysim", **backend_options):
        self.config: AccelConfig = get_config(config)
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            self.backend = get_backend(backend, self.config, **backend_options)

    def close(self):
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def compile(self, spec, shape_a, shape_b, **kw) -> CompiledContraction:
        return compile_contraction(spec, shape_a, shape_b, self.config, **kw)

    def contract(self, spec, a, b, *, shift=0, rounding="floor", out_bits=16, seed=0,
                 mapping: Mapping | None = None, max_cycles: int | None = None
                 ) -> ContractionResult:
        """Run one contraction. One that does not fit the buffers in one program is
        split into contiguous output chunks (``compiler.chunk_plan``), run one after
        the other; cycles and counters are summed over the chunks."""
        cfg = self.config
        t0 = time.perf_counter()
        a = check_operand("A", a, cfg.operand_bits)
        if cfg.mac_kind == "shift":
            b = Pow2Code(cfg.pow2_bits).check(np.asarray(b))
        else:
            b = check_operand("B", b, cfg.operand_bits)
        sp = parse_spec(spec) if isinstance(spec, str) else spec
        sp.sizes(a.shape, b.shape)
        kw = dict(shift=shift, rounding=rounding, out_bits=out_bits, seed=seed,
                  mapping=mapping)
        if fits(sp, a.shape, b.shape, cfg, mapping):
            parts = [({}, 0)]
        else:
            parts = chunk_plan(sp, a.shape, b.shape, cfg, mapping)
        out = np.zeros(sp.output_shape(a.shape, b.shape), dtype=np.int64)
        total = None
        for ranges, offset in parts:
            sl_a = tuple(slice(*ranges[i]) if i in ranges else slice(None) for i in sp.a)
            sl_b = tuple(slice(*ranges[i]) if i in ranges else slice(None) for i in sp.b)
            sl_o = tuple(slice(*ranges[i]) if i in ranges else slice(None) for i in sp.out)
            res = self._contract_one(sp, a[sl_a], b[sl_b], index_offset=offset,
                                     max_cycles=max_cycles, **kw)
            out[sl_o] = res.output
            if total is None:
                total = res
            else:
                total.cycles += res.cycles
                total.predicted_cycles += res.predicted_cycles
                total.counters = {k: v + res.counters[k] for k, v in total.counters.items()}
        total.output = out
        total.useful_macs = int(np.prod(list(sp.sizes(a.shape, b.shape).values())))
        total.mac_utilization = total.useful_macs / (cfg.macs * total.cycles)
        total.chunks = len(parts)
        total.spec = str(sp)
        total.wall_seconds = time.perf_counter() - t0
        return total

    def _contract_one(self, sp, a, b, *, shift, rounding, out_bits, seed, mapping,
                      index_offset, max_cycles) -> ContractionResult:
        cfg = self.config
        cc = compile_contraction(sp, a.shape, b.shape, cfg, shift=shift,
                                 rounding=rounding, out_bits=out_bits, seed=seed,
                                 mapping=mapping, index_offset=index_offset)
        be = self.backend
        be.clear()
        be.write(buffer_base(0), _words(cc.pack_a(a)))
        be.write(buffer_base(1), _words(cc.pack_b(b)))
        be.write(PROG_BASE, cc.program)
        limit = max_cycles or (4 * cc.predicted_cycles + 10_000)
        st = be.run(limit)
        if st.error != ErrorCode.NONE:
            raise FettaError(f"accelerator halted with error {st.error.name} at program "
                             f"word {st.err_pc} running '{cc.spec}'")
        raw = np.array(be.read(buffer_base(2), cc.c_rows * cfg.c_lanes), dtype=np.int64)
        raw = ((raw & 0xFFFF) ^ 0x8000) - 0x8000
        out = cc.unpack_c(raw.reshape(cc.c_rows, cfg.c_lanes))
        cycles = st.counters["cycles"]
        return ContractionResult(
            output=out, cycles=cycles, predicted_cycles=cc.predicted_cycles,
            mac_utilization=cc.useful_macs / (cfg.macs * cycles) if cycles else 0.0,
            counters=st.counters, mapping=cc.mapping, useful_macs=cc.useful_macs,
            spec=str(cc.spec), config=cfg.name, backend=be.name, compiled=cc)


_SESSIONS: dict = {}


def run_contraction(spec, a, b, *, config="tiny", shift=0, rounding="floor", out_bits=16,
                    seed=0, backend="pysim", vcd=None, mapping: Mapping | None = None,
                    max_cycles: int | None = None) -> ContractionResult:
    """Run one pairwise contraction on the simulated (or real) accelerator.

    ``spec`` is an einsum string ``"A,B->C"``; ``a``/``b`` integer arrays (16-bit
    range; with a shift-MAC config ``b`` holds power-of-two codes). Values follow the
    arithmetic contract exactly. ``vcd=path`` records a waveform (pysim) plus a GTKWave
    save file at ``path`` with ``.gtkw``. Backends are kept alive between calls (one
    per backend/config) unless a VCD is requested."""
    cfg = get_config(config)
    if vcd is not None:
        if backend != "pysim":
            raise ValueError(f"vcd= is supported on backend 'pysim'; got {backend!r}")
        with Session(cfg, backend, vcd=str(vcd)) as s:
            return s.contract(spec, a, b, shift=shift, rounding=rounding,
                              out_bits=out_bits, seed=seed, mapping=mapping,
                              max_cycles=max_cycles)
    key = (backend, cfg)
    if key not in _SESSIONS:
        _SESSIONS[key] = Session(cfg, backend)
    return _SESSIONS[key].contract(spec, a, b, shift=shift, rounding=rounding,
                                   out_bits=out_bits, seed=seed, mapping=mapping,
                                   max_cycles=max_cycles)
