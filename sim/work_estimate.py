"""What a contraction will cost before it runs: the cycle model's cycles, the expected
wall time on a backend and the host memory, and the threshold above which the command
line refuses to start without ``--force``.

Simulation rates (accelerator cycles per wall second on ``tiny``, 16 MACs) are the
README's measured figures rounded down ("Compiled simulation": pysim ~1,000,
CXXRTL ~400,000, Verilator ~1,100,000 under load); a cycle of a larger array costs
more in proportion to its MACs (measured: ``large``, 256 MACs, ~12x dearer per cycle
on Verilator; taken as 16x here, the safe side). Host memory counts the operand,
result and golden-reference arrays (int64) the command line holds.

A contraction that does not fit the buffers is split into output chunks; planning
the chunks of a huge one takes long itself, so the estimate first takes the lower
bound ``MACs / array MACs`` cycles (100% utilization) and computes the exact model
only when that bound is under the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fetta.sw_model.program.kchunk import predict_total
from fetta.sw_model.accel.config import AccelConfig

__all__ = ["Estimate", "estimate", "RATES", "MAX_SECONDS", "MAX_BYTES"]

# accelerator cycles per wall second on a 16-MAC array (README figures, rounded down)
RATES = {"pysim": 1_000, "cxxrtl": 400_000, "verilator": 1_100_000}
MAX_SECONDS = 600          # refuse work expected to take longer (10 minutes) ...
MAX_BYTES = 2 << 30        # ... or to need more host memory (2 GiB) unless --force


@dataclass
class Estimate:
    cycles: int            # the cycle model's total (or its lower bound, see exact)
    exact: bool            # False: cycles is the lower bound MACs / array MACs
    chunks: int | None     # output chunks (None when not planned)
    seconds: float | None  # expected wall time on the backend (None: rate unknown)
    host_bytes: int
    backend: str

    @property
    def too_big(self) -> bool:
        return (self.seconds is not None and self.seconds > MAX_SECONDS) or \
            self.host_bytes > MAX_BYTES

    def describe(self) -> str:
        cyc = f"{self.cycles:,} cycles" if self.exact else \
            f"at least {self.cycles:,} cycles (MACs / array MACs)"
        parts = [cyc]
        if self.chunks and self.chunks > 1:
            parts.append(f"{self.chunks:,} chunks")
        if self.seconds is not None:
            parts.append(f"~{_duration(self.seconds)} on {self.backend}")
        parts.append(f"host memory ~{self.host_bytes / 2**20:,.0f} MiB")
        return ", ".join(parts)


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def rate(backend: str, cfg: AccelConfig) -> float | None:
    base = RATES.get(backend)
    return None if base is None else base * 16 / max(16, cfg.macs)


def estimate(sp, shape_a, shape_b, cfg: AccelConfig, backend: str, mapping=None) -> Estimate:
    sizes = sp.sizes(shape_a, shape_b)
    macs = math.prod(sizes.values())
    n_a, n_b = math.prod(shape_a), math.prod(shape_b)
    n_out = math.prod(sp.output_shape(shape_a, shape_b))
    host = 8 * (n_a + n_b + 3 * n_out)          # operands, result, golden + its einsum
    r = rate(backend, cfg)
    lower = -(-macs // cfg.macs)
    if r is not None and (lower / r > MAX_SECONDS or host > MAX_BYTES):
        return Estimate(lower, False, None, lower / r, host, backend)
    cycles, chunks = predict_total(sp, shape_a, shape_b, cfg, mapping)
    return Estimate(cycles, True, chunks, None if r is None else cycles / r, host, backend)
