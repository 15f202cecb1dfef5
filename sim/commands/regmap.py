"""fetta regmap: the register map, generated from sw_model/accel/hostmap.py via SystemRDL.

``--format rdl`` prints the SystemRDL source; ``c`` a C header (PeakRDL-cheader),
``md`` Markdown (PeakRDL-markdown), ``json`` the compiled model as data (all to stdout
or ``-o FILE``); ``html`` writes a browsable reference into the directory ``-o DIR``
(PeakRDL-html). Offsets are bytes, 4 x the host-bus word address (``sim/regmap.py``).
"""

from __future__ import annotations

import sys

from .options import add_config

HELP = "the register map (SystemRDL, C header, HTML, Markdown, JSON) for a preset"


def add_arguments(p):
    from ..regmap import FORMATS
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="rdl | c | html | md | json")
    add_config(p, purpose="preset whose widths, depths and reset values the map shows")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="output file (directory for html); default stdout")


def run(args) -> int:
    from ..regmap import export
    if args.format == "html" and not args.output:
        raise ValueError("--format html writes a directory; give -o DIR")
    text = export(args.format, args.config, args.output)
    if args.output:
        print(f"wrote {args.output}: register map of preset {args.config} "
              f"({args.format})")
    else:
        sys.stdout.write(text)
    return 0
