"""Random pairwise contractions for test suites and benchmarks (reproducible)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES

__all__ = ["Case", "random_case", "random_cases"]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class Case:
    spec: str
    a: np.ndarray
    b: np.ndarray
    shift: int
    rounding: str
    out_bits: int
    seed: int

    def kwargs(self) -> dict:
        return dict(shift=self.shift, rounding=self.rounding, out_bits=self.out_bits,
                    seed=self.seed)


def random_case(rng: np.random.Generator, config="tiny", max_macs: int = 1500,
                max_size: int = 6) -> Case:
    """A random contraction that fits ``config``: 0-2 batch indices and 1-3 indices
    in each of the m, n and k groups (sometimes 0 m/n), odd sizes, permuted index
    orders on inputs and output, random output-stage parameters."""
    cfg = get_config(config)
    while True:
        letters = list(rng.permutation(list(_LETTERS)))
        groups = {}
        for g, lo, hi in (("batch", 0, 2), ("m", 0, 3), ("n", 0, 3), ("k", 1, 3)):
            groups[g] = [letters.pop() for _ in range(int(rng.integers(lo, hi + 1)))]
        if not groups["m"] and not groups["n"] and not groups["batch"]:
            continue
        sizes = {i: int(rng.integers(1, max_size + 1)) for g in groups.values() for i in g}
        macs = int(np.prod(list(sizes.values())))
        if macs > max_macs:
            continue
        a_idx = groups["batch"] + groups["m"] + groups["k"]
        b_idx = groups["batch"] + groups["n"] + groups["k"]
        # an index summed over one operand only, sometimes
        if len(groups["k"]) > 1 and rng.random() < 0.2:
            b_idx = [i for i in b_idx if i != groups["k"][0]]
        out = groups["batch"] + groups["m"] + groups["n"]
        a_idx = "".join(rng.permutation(a_idx))
        b_idx = "".join(rng.permutation(b_idx))
        out = "".join(rng.permutation(out))
        spec = f"{a_idx},{b_idx}->{out}"
        sa = tuple(sizes[i] for i in a_idx)
        sb = tuple(sizes[i] for i in b_idx)
        try:
            compile_contraction(spec, sa, sb, cfg, plan_only=True)
        except ValueError:
            continue
        hi = (1 << (cfg.operand_bits - 1))
        amp = int(rng.choice([hi, 256, 16]))
        a = rng.integers(-amp, amp, size=sa)
        if cfg.mac_kind == "shift":
            b = rng.integers(0, 1 << cfg.pow2_bits, size=sb)
            b[b == (1 << (cfg.pow2_bits - 1))] = 0
        else:
            b = rng.integers(-amp, amp, size=sb)
        rounding = str(rng.choice(ROUNDING_MODES))
        shift = int(rng.integers(0, 20))
        out_bits = int(rng.integers(2, 17))
        seed = int(rng.integers(0, 1 << 32))
        return Case(spec, a, b, shift, rounding, out_bits, seed)


def random_cases(n: int, seed: int = 0, config="tiny", **kw) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [random_case(rng, config, **kw) for _ in range(n)]
