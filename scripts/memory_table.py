#!/usr/bin/env python3
"""Print the training-memory table of a model (default mnist-tt): TT training in fixed
point (and float, pow2) vs the dense network trained in FP32.

    python scripts/memory_table.py [--model mnist-tt] [--batch 64] [--json PATH]

How bytes are counted: ``sw_model/train/memory.py`` (module docstring).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fetta.sw_model.train.memory import CATEGORIES, memory_report  # noqa: E402
from fetta.sw_model.ttm.models import resolve_model  # noqa: E402


def table(model_name: str, batch: int) -> tuple[str, dict]:
    model = resolve_model(model_name)
    reps = {p: memory_report(model, p, batch) for p in ("fixed", "pow2", "float")}
    base = reps["fixed"]
    cols = [("TT fixed", reps["fixed"]["tt"]), ("TT pow2", reps["pow2"]["tt"]),
            ("TT FP32", reps["float"]["tt"]), ("dense FP32", base["dense_fp32"])]
    if "dense_paper_fp32" in base:
        cols.append(("784-512-10 FP32", base["dense_paper_fp32"]))
    lines = [f"Training memory, {model.name}, batch {batch} (bytes)", ""]
    lines.append("| category | " + " | ".join(c for c, _ in cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for cat in CATEGORIES + ("total",):
        lines.append(f"| {cat} | " + " | ".join(f"{d[cat]:,}" for _, d in cols) + " |")
    params = [reps["fixed"]["tt_params"] + reps["fixed"]["bias_params"]] * 3 + \
        [base["dense_fp32"]["params"]] + \
        ([base["dense_paper_fp32"]["params"]] if "dense_paper_fp32" in base else [])
    lines.append("| parameters | " + " | ".join(f"{p:,}" for p in params) + " |")
    lines.append("")
    ref_name, ref = (("784-512-10 FP32", base["dense_paper_fp32"])
                     if "dense_paper_fp32" in base else ("dense FP32", base["dense_fp32"]))
    for prec in ("fixed", "pow2", "float"):
        tt = reps[prec]["tt"]
        lines.append(f"{ref_name} / TT {prec}: total {ref['total'] / tt['total']:.1f}x, "
                     f"weights {ref['weights'] / tt['weights']:.1f}x, weights+master "
                     f"{ref['weights'] / (tt['weights'] + tt['master_weights']):.1f}x")
    return "\n".join(lines), reps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist-tt")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    try:
        text, reps = table(args.model, args.batch)
    except ValueError as exc:
        print(f"memory_table: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(reps, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
