"""`fetta demo`: push random vectors through the simulated MAC and output stage, and
check every number against the golden model (the Quick-start job until training lands).

The MAC accumulates ``a*b`` for ``--vectors`` cycles (a running dot product, wrapped
to 32 bits); after every step the output stage shifts, rounds and saturates the
running sum, with the step number as the dither index. The golden values come from
``sw_model.arith.fixedpoint``; the hardware runs in Amaranth's Python simulator.
"""

from __future__ import annotations

import json

import numpy as np

from fetta.sw_model.arith.fixedpoint import (ROUNDING_MODES, check_out_bits, check_rounding,
                                 check_shift, check_width, output_stage, wrap)

HELP = ("push random vectors through the simulated MAC and output stage and check them "
        "bit for bit against the golden model")

MAX_VECTORS = 10_000
OPERAND_BITS = 16
ACC_BITS = 32
SHOWN_ROWS = 10


def add_arguments(parser):
    parser.add_argument("--vectors", type=int, default=16, metavar="N",
                        help=f"number of (a, b) pairs to accumulate, 1..{MAX_VECTORS} "
                             f"(default 16)")
    parser.add_argument("--seed", type=int, default=1, metavar="S",
                        help="seed of the random operands and of the stochastic-rounding "
                             "dither, 0..2**32-1 (default 1)")
    parser.add_argument("--rounding", default="nearest-even", metavar="MODE",
                        help=f"output rounding: {', '.join(ROUNDING_MODES)} "
                             f"(default nearest-even)")
    parser.add_argument("--shift", type=int, default=8, metavar="S",
                        help=f"output right shift, 0..{ACC_BITS - 1} (default 8)")
    parser.add_argument("--out-bits", type=int, default=16, metavar="B",
                        help="output width the result saturates to, 2..16 (default 16)")
    parser.add_argument("--operand-bits", type=int, default=8, metavar="W",
                        help=f"operands are drawn from the signed W-bit range, "
                             f"1..{OPERAND_BITS} (default 8; the MAC is "
                             f"{OPERAND_BITS}x{OPERAND_BITS})")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the vectors and results as JSON to PATH")


def simulate(a, b, *, shift, rounding, out_bits, seed):
    """Run the RTL in Amaranth's simulator.

    Returns (acc after each step, out for each step, cycles simulated, stage latency)."""
    from amaranth import Elaboratable, Module
    from amaranth.sim import Simulator

    from fetta.rtl.mac import MAC
    from fetta.rtl.output_stage import ROUNDING_CODES, OutputStage

    class DemoTop(Elaboratable):
        def __init__(self):
            self.mac = MAC(OPERAND_BITS, ACC_BITS)
            self.stage = OutputStage(ACC_BITS)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mac = self.mac
            m.submodules.stage = self.stage
            m.d.comb += self.stage.acc.eq(self.mac.acc)
            return m

    top = DemoTop()
    mac, stage = top.mac, top.stage
    n = len(a)
    accs, outs = [], []
    cycles = n + OutputStage.LATENCY + 1

    async def testbench(ctx):
        ctx.set(stage.shift, shift)
        ctx.set(stage.rounding, ROUNDING_CODES[rounding])
        ctx.set(stage.out_bits, out_bits)
        ctx.set(stage.seed, seed)
        for k in range(cycles):
            # Step k feeds (a[k], b[k]) to the MAC; the sum after step k-1 is in
            # mac.acc now and enters the output stage with dither index k-1.
            ctx.set(mac.en, k < n)
            ctx.set(mac.clear, k == 0)
            if k < n:
                ctx.set(mac.a, int(a[k]))
                ctx.set(mac.b, int(b[k]))
            ctx.set(stage.valid, 1 <= k <= n)
            ctx.set(stage.index, max(k - 1, 0))
            if 1 <= k <= n:
                accs.append(ctx.get(mac.acc))
            if ctx.get(stage.out_valid):
                outs.append(ctx.get(stage.out))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return accs, outs, cycles, OutputStage.LATENCY


def run(args) -> int:
    n = check_width(args.vectors, "--vectors", 1, MAX_VECTORS)
    seed = args.seed
    if not 0 <= seed < (1 << 32):
        raise ValueError(f"--seed={seed} out of range; allowed 0..{(1 << 32) - 1}")
    rounding = check_rounding(args.rounding, "--rounding")
    shift = check_shift(args.shift, ACC_BITS, "--shift")
    out_bits = check_out_bits(args.out_bits, "--out-bits")
    bits = check_width(args.operand_bits, "--operand-bits", 1, OPERAND_BITS)

    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1))
    a = rng.integers(lo, hi, n)
    b = rng.integers(lo, hi, n)
    exact = np.cumsum(a * b)
    golden_acc = wrap(exact, ACC_BITS)
    golden = output_stage(exact, shift=shift, rounding=rounding, out_bits=out_bits,
                          seed=seed, acc_bits=ACC_BITS, index=np.arange(n))

    accs, outs, cycles, latency = simulate(a, b, shift=shift, rounding=rounding,
                                  out_bits=out_bits, seed=seed)
    ok = [acc == int(ga) and out == int(g)
          for acc, out, ga, g in zip(accs, outs, golden_acc, golden)]
    ok += [False] * (n - len(ok))
    matches = sum(ok)

    print(f"MAC {OPERAND_BITS}x{OPERAND_BITS} -> acc {ACC_BITS} bits (wrap), output stage: "
          f"shift {shift}, {rounding}, saturate to {out_bits} bits, seed {seed}")
    print(f"{'step':>5} {'a':>7} {'b':>7} {'acc':>12} {'out':>7} {'golden':>7}")
    rows = list(range(n)) if n <= SHOWN_ROWS + 2 else \
        list(range(SHOWN_ROWS)) + [None, n - 1]
    for k in rows:
        if k is None:
            print(f"{'...':>5}  ({n - SHOWN_ROWS - 1} more steps)")
            continue
        acc = accs[k] if k < len(accs) else "-"
        out = outs[k] if k < len(outs) else "-"
        mark = "" if ok[k] else "  MISMATCH"
        print(f"{k:>5} {a[k]:>7} {b[k]:>7} {acc:>12} {out:>7} {golden[k]:>7}{mark}")
    print(f"simulated {cycles} cycles in Amaranth's simulator "
          f"(output stage latency {latency})")
    print(f"bit-exact: {matches}/{n}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "vectors": n, "matches": matches, "bit_exact": matches == n,
                "shift": shift, "rounding": rounding, "out_bits": out_bits, "seed": seed,
                "acc_bits": ACC_BITS, "a": a.tolist(), "b": b.tolist(), "acc": accs,
                "out": outs, "golden": golden.tolist(),
            }, f, indent=1)
    if matches != n:
        k = ok.index(False)
        print(f"first mismatch at step {k}")
        return 1
    return 0
