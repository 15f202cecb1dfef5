"""The training run of a profile-guided (``-fprofile-generate`` / ``-fprofile-use``)
build of a compiled model of ``rtl.top.Accelerator``.

    python -m fetta.sim.pgo_train <kind> <model.so> <config as JSON>

Loads the instrumented library (``kind``: ``cxxrtl`` or ``verilator``) and runs a
fixed, deterministic set of contractions through the harness: a 40x72 by 72x48 matrix
product (not the benchmark's shape) and eight random contractions of
``sim.random_cases`` (seed 2024), including bus reads of every result. The instrumented
library writes its ``.gcda`` profile when this process exits; the build then compiles
the model again with ``-fprofile-use``. The profile only steers the compiler's code
layout, inlining and branch decisions: the model computes the same thing with or
without it (the cross-simulator tests check the built model, not this run).
"""

from __future__ import annotations

import json
import sys


def train(kind: str, library: str, config: dict) -> int:
    import numpy as np

    from fetta.sw_model.accel.config import AccelConfig

    from .harness import Session
    from .random_cases import random_cases

    cfg = AccelConfig(**config)
    if kind == "verilator":
        from fetta.sim.backends.verilator import VerilatorBackend as cls
    else:
        from fetta.sim.backends.cxxrtl import CxxrtlBackend as cls
    be = cls.from_library(cfg, library)
    cycles = 0
    with Session(cfg, be) as s:
        rng = np.random.default_rng(2024)
        a = rng.integers(-3000, 3000, (40, 72))
        b = rng.integers(-3000, 3000, (72, 48))
        for rounding in ("nearest-even", "floor"):
            cycles += s.contract("mk,kn->mn", a, b, shift=9, rounding=rounding,
                                 out_bits=16, seed=11).cycles
        for case in random_cases(8, seed=2024, config=cfg):
            cycles += s.contract(case.spec, case.a, case.b, **case.kwargs()).cycles
        s.backend.counters()
    return cycles


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m fetta.sim.pgo_train <cxxrtl|verilator> <model.so> <config JSON>",
              file=sys.stderr)
        return 2
    cycles = train(argv[0], argv[1], json.loads(argv[2]))
    print(f"pgo training: {cycles} accelerator cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
