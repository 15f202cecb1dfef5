"""The digits model's fixed-point inference pass on the RTL: separate jobs vs one
resident chain with on-chip epilogues, measured.

A digits trainer (fixed precision, seed 0) takes ``--steps`` training steps in NumPy;
its inference pass on the first ``--batch`` test images then runs twice on the same
backend:

* separate jobs — every contraction its own program, operands written and results
  read by the host, which also does the elementwise work (bias add, ReLU,
  requantization, the reshape between layers), as ``fetta train --backend rtl``
  evaluates today;
* resident — ``sim.forward_chain.inference_chain``: one chain whose bias and
  activation run on chip as VEC epilogues (``run_chain(..., resident=True)``); the
  host writes the quantized batch, the weights and the aligned biases and reads the
  logits (and a hidden layer's activation where the chain is cut into segments).

Both must reproduce the trainer's logits bit for bit (the script fails otherwise); the
resident run's counted cycles equal its model. Reported: cycles by phase, host words,
segments.

    python scripts/inference_report.py [--batch 8] [--steps 3] [--config tiny]
        [--backend verilator] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fetta.sim.chain import check_chain, params_of, reference_chain, run_chain
from fetta.sim.forward_chain import inference_chain
from fetta.sim.harness import Session
from fetta.sim.jsonio import source_commit, write_json_atomic
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.train.data import load_digits_split
from fetta.sw_model.train.trainer import TrainConfig, Trainer
from fetta.sw_model.ttm.models import get_model


def separate_jobs(plan, tensors, cfg, backend) -> dict:
    """Every contraction of ``plan`` a separate job on the operands the recipe gives
    it (the host doing the epilogues); cycles and host words summed."""
    values = reference_chain(plan, tensors, cfg)
    out = {"compute": 0, "written": 0, "read": 0, "programs": 0}
    with Session(cfg, backend) as sess:
        for spec, a, b, o, p in plan:
            res = sess.contract(spec, values[a], values[b], **params_of(p))
            want = reference_chain([(spec, a, b, o, params_of(p))], values, cfg)[o]
            if not np.array_equal(res.output.reshape(want.shape), want):
                raise SystemExit(f"separate job '{spec}' differs from the recipe")
            out["compute"] += res.cycles
            out["written"] += res.host_words["written"]
            out["read"] += res.host_words["read"]
            out["programs"] += res.chunks
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--backend", default="verilator")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cfg = get_config(args.config)
    d = load_digits_split()
    tr = Trainer(get_model("digits"), TrainConfig(precision="fixed", seed=0),
                 n_train=len(d.x_train))
    for i in range(args.steps):
        sl = slice(i * 64, (i + 1) * 64)
        tr.train_step(d.x_train[sl], d.y_train[sl])
    steps, tensors, z = inference_chain(tr, d.x_test[:args.batch])
    plan = check_chain(steps, tensors)
    t0 = time.perf_counter()
    jobs = separate_jobs(plan, tensors, cfg, args.backend)
    res = run_chain(steps, tensors, config=cfg, backend=args.backend, resident=True)
    wall = time.perf_counter() - t0
    if not np.array_equal(res.outputs["L1/y"], z):
        raise SystemExit("resident inference differs from the trainer's logits")
    run = res.resident
    assert run.cycles["counted"] == run.cycles["predicted"]
    jobs_transfer = jobs["written"] + jobs["read"]
    doc = {"config": cfg.name, "backend": args.backend, "batch": args.batch,
           "train_steps": args.steps, "commit": source_commit(), "contractions": len(plan),
           "separate": {"compute": jobs["compute"], "host_transfer": jobs_transfer,
                        "total": jobs["compute"] + jobs_transfer,
                        "host_words": jobs_transfer, "programs": jobs["programs"]},
           "resident": {**{k: res.cycles[k] for k in ("compute", "on_chip_moves",
                                                      "elementwise", "host_transfer",
                                                      "total")},
                        "host_words": res.host_words["written"] + res.host_words["read"],
                        "programs": sum(len(s.plan.programs) for s in run.segments
                                        if s.plan),
                        "segments": [[s.lo, s.hi] for s in run.segments]},
           "logits_equal_trainer": True, "wall_seconds": wall}
    s, r = doc["separate"], doc["resident"]
    print(f"digits inference, batch {args.batch}, {cfg.name}, {args.backend}: logits equal "
          f"the trainer's on both paths")
    print(f"  separate jobs: {s['programs']} programs, compute {s['compute']:,} + host "
          f"{s['host_transfer']:,} = {s['total']:,} cycles")
    print(f"  resident:      {r['programs']} programs in {len(r['segments'])} segments, "
          f"compute {r['compute']:,} + moves {r['on_chip_moves']:,} + elementwise "
          f"{r['elementwise']:,} + host {r['host_transfer']:,} = {r['total']:,} cycles")
    if args.json:
        write_json_atomic(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
