"""`fetta alloc`: where a training step's tensors live on chip (the allocator,
``sw_model/program/allocator.py``, over ``sw_model/ttm/step_memory.py``): peak rows per
buffer bank, the placement table, micro-batches and spills with their host-word cost."""

from __future__ import annotations

import sys

from .options import add_config

HELP = ("place a training step's tensors in the on-chip buffers by liveness; print peak "
        "occupancy per bank, the placement table, micro-batches and spills")


def add_arguments(p):
    from fetta.sw_model.program.allocator import POLICIES, STRATEGIES
    from fetta.sw_model.ttm.workloads import DEFAULT_BATCH, ORDERS, WORKLOADS

    p.add_argument("--workload", required=True, choices=list(WORKLOADS),
                   help="training step to place (sw_model/ttm/workloads.py)")
    add_config(p)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of the preset, e.g. --set bank_depth=256 "
                        "(repeatable; fields: sw_model/accel/config.py)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"samples per training step (default {DEFAULT_BATCH})")
    p.add_argument("--order", default="macs", choices=ORDERS,
                   help="contraction orders: macs (default; CSSE's MAC-optimal joint plan, "
                        "what fetta train runs) or cycles (CSSE on the compiler's cycle "
                        "model, as fetta eval; minutes for mnist-tt)")
    p.add_argument("--fit", default="first", choices=STRATEGIES,
                   help="placement: lowest free base (first, default) or smallest free "
                        "gap (best)")
    p.add_argument("--policy", default="micro-batch", choices=POLICIES,
                   help="when the step does not fit: fewest micro-batches without "
                        "spills, else micro-batch 1 with spills (micro-batch, default); "
                        "or the micro-batch size with spills that moves the fewest host "
                        "words (host-words)")
    p.add_argument("--json", metavar="PATH", help="write the whole result as JSON")


def _table(title, columns, rows):
    from rich.table import Table
    t = Table(title=title, title_justify="left")
    for name, justify in columns:
        t.add_column(name, justify=justify)
    for r in rows:
        t.add_row(*[str(v) for v in r])
    return t


def _print(fit, workload: str, args, cfg, baseline: int | str) -> None:
    from rich.console import Console
    con = Console(highlight=False, soft_wrap=True)
    a = fit.allocation
    con.print(f"fetta alloc  {workload} on {cfg.name} ({cfg.bank_depth:,}-row banks), "
              f"batch {fit.batch}, plans: CSSE {args.order}, {args.fit}-fit, policy "
              f"{fit.policy}")
    runs = f"{fit.micro_batches} micro-batch{'es' if fit.micro_batches > 1 else ''} of " \
           f"{fit.micro_batch}"
    if fit.remainder is not None:
        runs += f" (the last of {fit.batch - (fit.micro_batches - 1) * fit.micro_batch})"
    con.print(f"runs per step: {runs}")
    for at in fit.attempts:
        if at["micro_batch"] == fit.micro_batch:
            continue
        why = at.get("reason") or (
            "needs " + ", ".join(f"{b} {n:,}" for b, n in at["peak_rows"].items()) + " rows"
            if "peak_rows" in at else
            f"{at['spills']} spills, {at['host_words_per_step']:,} host words per step")
        con.print(f"  micro-batch {at['micro_batch']}: {why}")
    con.print(_table(f"peak occupancy (micro-batch {fit.micro_batch})",
                     [("bank", "left"), ("peak rows / depth", "right"), ("%", "right"),
                      ("live peak", "right"), ("sum of pieces", "right"),
                      ("lane fill", "right")],
                     [(b, f"{u.peak_rows:,} / {u.depth:,}", f"{u.percent:.1f}",
                       f"{u.live_rows:,}", f"{u.total_rows:,}", f"{100 * u.lane_fill:.0f}%")
                      for b, u in a.banks.items()]))
    con.print(_table("placement (positions are contractions in execution order)",
                     [("tensor", "left"), ("kind", "left"), ("shape", "left"),
                      ("bank", "left"), ("base", "right"), ("rows", "right"),
                      ("lanes", "right"), ("live", "right")],
                     [(p.tensor, p.kind, "x".join(map(str, p.shape)), p.bank, p.base,
                       p.rows, p.lanes, f"{p.start}..{p.end}") for p in a.placements]))
    if fit.spills:
        con.print(_table("spills to the host",
                         [("tensor", "left"), ("bank", "left"), ("not resident", "right"),
                          ("idle", "right"), ("how", "left"), ("host words", "right")],
                         [(s.tensor, s.bank, f"{s.first}..{s.last}", s.idle, s.how,
                           f"{s.host_words:,}") for s in fit.spills]))
    else:
        con.print("spills: none")
    hw = a.host_words
    con.print(f"host words per run: written {hw['written']:,}, read {hw['read']:,}, "
              f"spills {hw['spill']:,}, total {hw['total']:,}; per step "
              f"{fit.host_words_per_step:,}; program breaks for spills: "
              f"{a.program_breaks}")
    con.print("the same step with every contraction a separate job (today's flow): " +
              (f"{baseline:,} host words" if isinstance(baseline, int) else
               f"not counted ({baseline})"))
    con.print(f"tensors held in both A and B: {len(a.copies)}; homes whose consumers read "
              f"different layouts: {len(a.layout_conflicts)}")


def run(args) -> int:
    from fetta.sw_model.accel.config import with_overrides
    from fetta.sw_model.ttm.step_memory import separate_job_words, step_allocation
    from fetta.sw_model.ttm.workloads import get_workload
    from ..jsonio import write_json_atomic

    if not 1 <= args.batch <= 4096:
        raise ValueError(f"--batch {args.batch} out of range; allowed 1..4096")
    cfg = with_overrides(args.config, args.set)
    wl = get_workload(args.workload)
    status = None
    if sys.stderr.isatty():
        from rich.console import Console
        status = Console(stderr=True).status("placing")
        status.start()
    try:
        fit = step_allocation(wl, cfg, args.batch, order=args.order, strategy=args.fit,
                              policy=args.policy,
                              progress=status.update if status else None)
    finally:
        if status is not None:
            status.stop()
    try:
        baseline = separate_job_words(wl, cfg, args.batch, args.order)
    except ValueError as exc:   # a contraction needs K chunks: not counted
        baseline = str(exc)
    _print(fit, wl.name, args, cfg, baseline)
    if args.json:
        write_json_atomic(args.json, {"workload": wl.name, "config": cfg.to_dict(),
                                      "order": args.order, **fit.to_dict(),
                                      "separate_job_host_words":
                                          baseline if isinstance(baseline, int) else None})
    return 0
