"""The stochastic-rounding dither hash in hardware."""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DitherHash", "HASH_STEPS", "add_dither_hash"]

_GOLDEN = 0x9E3779B9

# The steps of ``sw_model.arith.fixedpoint.dither_hash``, in order (the pipeline cut points of
# ``add_dither_hash`` are indices into this tuple):
#   ("init",)     x = (seed ^ 0x9E3779B9) + index      one 32-bit adder
#   ("add", k)    x = x + (x << k)                      one (32-k)-bit adder
#   ("xsr", k)    x = x ^ (x >> k)                      one level of XORs
#   ("seed",)     x = x ^ seed                          one level of XORs
HASH_STEPS = (
    ("init",),
    ("add", 10), ("xsr", 6), ("add", 3), ("xsr", 11), ("add", 15), ("seed",),
    ("add", 10), ("xsr", 6), ("add", 3), ("xsr", 11), ("add", 15),
)


def _check_cuts(cuts) -> tuple:
    cuts = tuple(sorted(set(cuts)))
    if any(not isinstance(c, int) or not 0 <= c < len(HASH_STEPS) - 1 for c in cuts):
        raise ValueError(f"cuts={cuts} out of range; allowed 0..{len(HASH_STEPS) - 2}")
    return cuts


def add_dither_hash(m: Module, seed, index, name: str = "dither", cuts=(),
                    steady_seed: bool = False) -> Signal:
    """Add ``sw_model.arith.fixedpoint.dither_hash(seed, index)`` of two 32-bit values to
    ``m``; return the 32-bit hash signal.

    ``cuts`` lists indices into ``HASH_STEPS`` after which the running value is
    registered (``m.d.sync``; the seed travels along while a later step needs it), so
    the returned hash belongs to the inputs of ``len(cuts)`` cycles earlier. With no
    cuts the hash is combinational (a chain of seven adders). ``steady_seed``: the
    caller holds ``seed`` constant while values are in flight, so it is not
    registered along (later steps read it directly).

    Every step gets its own signal: each step reads its input twice, so one nested
    expression would be duplicated exponentially when it is lowered."""
    cuts = _check_cuts(cuts)
    last_seed_use = max(i for i, op in enumerate(HASH_STEPS) if op[0] in ("init", "seed"))
    stage = 0
    x = None
    for i, op in enumerate(HASH_STEPS):
        if op[0] == "init":
            value = (seed ^ _GOLDEN) + index
        elif op[0] == "add":
            value = x + (x << op[1])
        elif op[0] == "xsr":
            value = x ^ (x >> op[1])
        else:
            value = x ^ seed
        x = Signal(32, name=f"{name}_x{i}")
        m.d.comb += x.eq(value)
        if i in cuts:
            stage += 1
            x_reg = Signal(32, name=f"{name}_s{stage}_x", reset_less=True)
            m.d.sync += x_reg.eq(x)
            x = x_reg
            if i < last_seed_use and not steady_seed:
                seed_reg = Signal(32, name=f"{name}_s{stage}_seed", reset_less=True)
                m.d.sync += seed_reg.eq(seed)
                seed = seed_reg
    return x


class DitherHash(wiring.Component):
    """The counter-based dither hash of ``sw_model.arith.fixedpoint.dither_hash``.

    Computes ``hash = dither_hash(seed, index)``: two rounds of Jenkins' one-at-a-time
    final mix over ``(seed ^ 0x9E3779B9) + index`` with the seed folded in twice, all
    mod 2**32 (the module docstring of ``sw_model.arith.fixedpoint`` is the definition).

    Latency: ``len(cuts)`` cycles (``self.latency``). The default ``cuts=()`` is
    combinational, a chain of seven 32-bit adders; ``cuts`` registers the value after
    the listed ``HASH_STEPS`` (e.g. ``(1, 5, 9)``: at most two adders per stage, as
    ``rtl.output_stage.OutputStage`` uses it). Fully pipelined either way.

    Members:
        seed:  In(32), the per-instruction dither seed.
        index: In(32), the flat row-major output index (mod 2**32).
        hash:  Out(32), the hash word.
    """

    def __init__(self, cuts=()):
        self.cuts = _check_cuts(cuts)
        self.latency = len(self.cuts)
        super().__init__({
            "seed": In(32),
            "index": In(32),
            "hash": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.hash.eq(add_dither_hash(m, self.seed, self.index,
                                                 cuts=self.cuts))
        return m
