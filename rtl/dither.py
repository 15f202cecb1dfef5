"""The stochastic-rounding dither hash in hardware."""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DitherHash", "add_dither_hash"]

_GOLDEN = 0x9E3779B9


def add_dither_hash(m: Module, seed, index, name: str = "dither") -> Signal:
    """Add ``sw_model.fixedpoint.dither_hash(seed, index)`` of two 32-bit values to the
    combinational domain of ``m``; return the 32-bit hash signal.

    Every step gets its own signal: each step reads its input twice, so one nested
    expression would be duplicated exponentially when it is lowered."""
    steps = 0

    def step(value):
        nonlocal steps
        sig = Signal(32, name=f"{name}_x{steps}")
        steps += 1
        m.d.comb += sig.eq(value)
        return sig

    x = step((seed ^ _GOLDEN) + index)
    for fold in (True, False):
        x = step(x + (x << 10))
        x = step(x ^ (x >> 6))
        x = step(x + (x << 3))
        x = step(x ^ (x >> 11))
        x = step(x + (x << 15))
        if fold:
            x = step(x ^ seed)
    return x


class DitherHash(wiring.Component):
    """The counter-based dither hash of ``sw_model.fixedpoint.dither_hash``.

    Computes ``hash = dither_hash(seed, index)``: two rounds of Jenkins' one-at-a-time
    final mix over ``(seed ^ 0x9E3779B9) + index`` with the seed folded in twice, all
    mod 2**32 (the module docstring of ``sw_model.fixedpoint`` is the definition).

    Latency: 0 cycles (combinational; a chain of seven 32-bit adders, so users that
    need speed register the result, as ``rtl.output_stage.OutputStage`` does).

    Members:
        seed:  In(32), the per-instruction dither seed.
        index: In(32), the flat row-major output index (mod 2**32).
        hash:  Out(32), the hash word.
    """

    def __init__(self):
        super().__init__({
            "seed": In(32),
            "index": In(32),
            "hash": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.hash.eq(add_dither_hash(m, self.seed, self.index))
        return m
