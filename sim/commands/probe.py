"""fetta probe: the link self-test of a freshly programmed board (sim/probe.py).

Steps: PING the bridge, Reg.ID, CONFIG_HASH against the preset, a memory pattern test
of program memory and buffers A/B/C over the bridge, a small contraction against the
golden model, the link's error counters. Prints one line per step (PASS/FAIL, what was
seen, and for a FAIL what it means); exit 0 when every step passed, 1 otherwise.
``--port sim`` rehearses the whole path on a simulated board (no hardware).
"""

from __future__ import annotations

from fetta.sw_model.accel.config import get_config
from .options import add_config

HELP = "self-test a programmed board over its UART link (ID, memories, a contraction)"


def add_arguments(p):
    p.add_argument("--port", required=True,
                   help="serial port of the board (e.g. /dev/ttyUSB1), or 'sim' for a "
                        "simulated board")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    add_config(p, default="ice40", purpose="preset the bitstream was built for")
    p.add_argument("--words", type=int, default=32, metavar="N",
                   help="words tested at each end of each memory (default 32)")
    p.add_argument("--json", metavar="PATH", help="write the steps as JSON")


def run(args) -> int:
    from ..probe import MEANINGS, open_board, probe
    if args.words < 1:
        raise ValueError(f"--words {args.words} invalid; allowed >= 1")
    if args.baud < 1:
        raise ValueError(f"--baud {args.baud} invalid; allowed > 0")
    from ..probe import ProbeStep
    from fetta.errors import FettaError
    cfg = get_config(args.config)
    try:
        be = open_board(cfg, args.port, args.baud)
    except FettaError as exc:             # nothing answered: the link step failed
        steps = [ProbeStep("link", False, str(exc).splitlines()[0])]
    else:
        try:
            steps = probe(be, cfg, words=args.words)
        finally:
            be.close()
    for s in steps:
        print(f"{'PASS' if s.ok else 'FAIL'}  {s.name:<12} {s.detail}")
        if not s.ok:
            print(f"      {'':<12} means: {MEANINGS[s.name]}")
    ok = all(s.ok for s in steps)
    print(f"probe of {args.port} (preset {cfg.name}): "
          f"{'all steps passed' if ok else 'FAILED'}")
    if args.json:
        from ..jsonio import write_json_atomic
        write_json_atomic(args.json, {"port": args.port, "config": cfg.name, "ok": ok,
                                      "steps": [s.as_dict() for s in steps]})
    return 0 if ok else 1
