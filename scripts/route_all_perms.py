#!/usr/bin/env python3
"""Sweep the network routers through the functional models and report sizes and timings.

For N = 8 every one of the 40,320 permutations; for N = 4..64 every CE-array multicast
pattern (A, B for each factorization, broadcast) and the K-split reduction pattern, plus
random reduction partitions. Every route is checked in the functional model.

    python scripts/route_all_perms.py [--random 200] [--json out.json]
"""

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fetta.sw_model.accel.benes import (apply_distribution,  # noqa: E402
                                        distribution_n_switch_bits, distribution_stages,
                                        route_distribution)
from fetta.sw_model.accel.ce_patterns import (factorizations,  # noqa: E402
                                              pattern_broadcast, pattern_k_reduction,
                                              pattern_multicast_a, pattern_multicast_b)
from fetta.sw_model.accel.reduction_net import (apply_reduction,  # noqa: E402
                                                reduction_latency, reduction_n_switch_bits,
                                                route_reduction)


def _wrap(v, width):
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def all_permutations(lanes):
    ident = list(range(lanes))
    t0 = time.perf_counter()
    count = 0
    for perm in itertools.permutations(ident):
        perm = list(perm)
        if apply_distribution(lanes, route_distribution(lanes, perm), ident) != perm:
            raise SystemExit(f"permutation {perm} misrouted")
        count += 1
    return count, time.perf_counter() - t0


def patterns(lanes):
    worst, count = 0.0, 0
    per_ce = 1
    while per_ce <= 16 and lanes // per_ce >= 2:
        n_ce = lanes // per_ce
        maps = [pattern_broadcast(n_ce, per_ce)]
        reds = []
        for f in factorizations(n_ce):
            maps += [pattern_multicast_a(n_ce, per_ce, *f), pattern_multicast_b(n_ce, per_ce, *f)]
            reds.append(pattern_k_reduction(n_ce, per_ce, *f))
        for mapping in maps:
            t0 = time.perf_counter()
            settings = route_distribution(lanes, mapping)
            worst = max(worst, time.perf_counter() - t0)
            out = apply_distribution(lanes, settings, list(range(lanes)))
            if out != mapping:
                raise SystemExit(f"pattern {mapping} misrouted")
            count += 1
        for groups, dests in reds:
            t0 = time.perf_counter()
            settings = route_reduction(lanes, groups, dests)
            worst = max(worst, time.perf_counter() - t0)
            out = apply_reduction(lanes, settings, list(range(lanes)), 32)
            if any(out[d] != sum(g) for g, d in zip(groups, dests)):
                raise SystemExit(f"reduction pattern {groups} -> {dests} wrong")
            count += 1
        per_ce *= 2
    return count, worst


def random_reductions(lanes, n, rng):
    worst = 0.0
    for _ in range(n):
        order = rng.sample(range(lanes), lanes)[:rng.randint(1, lanes)]
        groups, i = [], 0
        while i < len(order):
            size = rng.randint(1, len(order) - i)
            groups.append(order[i:i + size])
            i += size
        dests = rng.sample(range(lanes), len(groups))
        values = [rng.randrange(-2 ** 15, 2 ** 15) for _ in range(lanes)]
        t0 = time.perf_counter()
        settings = route_reduction(lanes, groups, dests)
        worst = max(worst, time.perf_counter() - t0)
        out = apply_reduction(lanes, settings, values, 16)
        if any(out[d] != _wrap(sum(values[l] for l in g), 16) for g, d in zip(groups, dests)):
            raise SystemExit(f"reduction {groups} -> {dests} wrong")
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=200, help="random reductions per N")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)

    count, secs = all_permutations(8)
    result = {"n8_permutations": count, "n8_permutation_seconds": round(secs, 3),
              "lanes": {}}
    print(f"N=8: {count} permutations routed and checked in {secs:.2f} s")
    print(f"{'N':>3} {'dist stages':>11} {'dist bits':>9} {'red stages':>10} "
          f"{'red bits':>8} {'patterns':>8} {'worst ms':>8} {'rand red worst ms':>17}")
    for lanes in (4, 8, 16, 32, 64):
        n_pat, worst_pat = patterns(lanes)
        worst_red = random_reductions(lanes, args.random, rng)
        row = {"distribution_stages": distribution_stages(lanes),
               "distribution_bits": distribution_n_switch_bits(lanes),
               "reduction_latency": reduction_latency(lanes),
               "reduction_bits": reduction_n_switch_bits(lanes),
               "patterns_checked": n_pat, "pattern_worst_ms": round(worst_pat * 1e3, 3),
               "random_reduction_worst_ms": round(worst_red * 1e3, 3)}
        result["lanes"][lanes] = row
        print(f"{lanes:>3} {row['distribution_stages']:>11} {row['distribution_bits']:>9} "
              f"{row['reduction_latency']:>10} {row['reduction_bits']:>8} {n_pat:>8} "
              f"{row['pattern_worst_ms']:>8.2f} {row['random_reduction_worst_ms']:>17.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
