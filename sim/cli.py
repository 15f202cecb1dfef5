"""The `fetta` command line: one entry point, one module per subcommand.

Each subcommand lives in ``sim/commands/<name>.py`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Bad input raises ``ValueError`` or
``FettaError``; ``main`` prints it as one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from fetta.sw_model import __version__

from fetta.errors import FettaError

# Order shown in --help.
SUBCOMMANDS = ("train", "contract", "search", "alloc", "sweep", "verilog", "regmap", "synth",
               "program", "probe", "wave", "bench", "eval", "demo")


def _available():
    for name in SUBCOMMANDS:
        modname = f"fetta.sim.commands.{name}"
        if importlib.util.find_spec(modname) is not None:
            yield name, modname


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage is in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fetta",
        description="fetta-hdl: a cycle-accurate Amaranth accelerator that trains "
                    "tensor-train (TTM) networks, bit-exact against a NumPy reference.")
    parser.add_argument("--version", action="version", version=f"fetta-hdl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, modname in _available():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        rc = int(args._run(args) or 0)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        # The reader closed the pipe (e.g. ``| head``): stop quietly with the shell's
        # SIGPIPE status; whatever the command had not finished is not claimed done.
        try:    # later writes (the interpreter's final flush) go nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):       # stdout is not a file descriptor
            pass
        return 141
    except (FettaError, ValueError, FileNotFoundError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"fetta {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fetta {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
