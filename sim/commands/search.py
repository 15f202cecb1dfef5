"""`fetta search`: contraction-sequence search (CSSE) for one TTM layer's training step."""

from __future__ import annotations

import json

from fetta.sw_model.ttm import csse
from .options import add_config

HELP = ("Search the cheapest pairwise contraction orders for a TTM layer's training step "
        "(forward, input gradient, core gradients), jointly, with reuse across networks.")


def add_arguments(parser):
    parser.add_argument("--in", dest="in_modes", required=True, metavar="N1,N2,..",
                        help="input modes n_k (comma-separated), e.g. 7,4,2,16")
    parser.add_argument("--out", dest="out_modes", required=True, metavar="M1,M2,..",
                        help="output modes m_k, as many as input modes, e.g. 4,4,2,16")
    parser.add_argument("--ranks", default="", metavar="R1,..",
                        help="the d-1 inner TT ranks, e.g. 16,16,16 (empty for one core)")
    parser.add_argument("--batch", default="64", metavar="B", help="batch size (default 64)")
    parser.add_argument("--cost", choices=csse.COSTS, default="macs",
                        help="macs: multiply-accumulates; memory: smallest largest "
                             "intermediate, then MACs; cycles: the compiler's cycle model "
                             "for --config")
    add_config(parser, purpose="accelerator preset for --cost cycles")
    parser.add_argument("--memory-budget", default=None, metavar="BYTES",
                        help="bound on the plan's peak live bytes (intermediates and "
                             "outputs; inputs excluded)")
    parser.add_argument("--elem-bytes", default="2", metavar="N",
                        help="bytes per element for memory accounting (default 2: 16-bit "
                             "buffer words)")
    parser.add_argument("--independent", action="store_true",
                        help="no reuse across networks: each network's own optimum")
    parser.add_argument("--steps", action="store_true", help="also print every step")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON")


def _int(text, what):
    try:
        return int(str(text))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an integer") from None


def run(args) -> int:
    budget = None if args.memory_budget is None else _int(args.memory_budget,
                                                          "memory budget")
    plan = csse.search(args.in_modes, args.out_modes, args.ranks,
                       _int(args.batch, "batch"), cost=args.cost, config=args.config,
                       memory_budget=budget, elem_bytes=_int(args.elem_bytes,
                                                             "element size"),
                       share=not args.independent)
    summary = csse.plan_summary(plan)
    _print(summary, args.steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


def _print(s: dict, steps: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    lay = s["layer"]
    title = (f"CSSE  in {lay['in_modes']} out {lay['out_modes']} ranks {lay['ranks']} "
             f"batch {lay['batch']}  cost={s['cost']}")
    t = Table(title=title)
    t.add_column("network")
    t.add_column("independent order")
    t.add_column("MACs", justify="right")
    t.add_column("joint order")
    t.add_column("new MACs in joint", justify="right")
    for n in s["networks"]:
        t.add_row(n["name"], n["order"], f"{n['macs']:,}", n["joint_order"],
                  f"{n['joint_new_macs']:,}")
    con.print(t)
    dense = s["dense_macs"]
    js = s.get("joint_search") or {}
    lines = [
        f"dense layer step (3*B*M*N)   {dense:>16,}",
        f"sum of independent optima    {s['per_network_total_macs']:>16,}  "
        f"({s['per_network_total_macs'] / dense:.3f}x dense)",
        f"joint plan                   {s['total_macs']:>16,}  "
        f"({s['total_macs'] / dense:.3f}x dense, "
        f"{s['per_network_total_macs'] / max(s['total_macs'], 1):.2f}x fewer than independent)",
        f"peak live bytes              {s['peak_bytes']:>16,}  "
        f"({s['elem_bytes']}-byte elements)",
        f"kept across networks         {', '.join(s['kept']) or '-'}",
        f"exact over                   {js.get('exact_over', 'each network alone')}",
        f"search time                  {s['search_seconds']:.3f} s",
    ]
    if s["cost"] != "macs":
        lines.insert(3, f"joint plan cost ({s['cost']})     {s['total_cost']:>16,}")
    for line in lines:
        con.print(line, highlight=False)
    if steps:
        st = Table(title="steps")
        for col in ("#", "out", "spec", "shape", "MACs", "free after"):
            st.add_column(col)
        for i, step in enumerate(s["steps"]):
            st.add_row(str(i), step["out"], step["spec"], str(tuple(step["shape"])),
                       f"{step['macs']:,}", str(s["free_after"].get(step["out"], "")))
        con.print(st)
