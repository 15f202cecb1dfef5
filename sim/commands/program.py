"""fetta program: load a bitstream onto a board with the platform's programmer."""

from __future__ import annotations

HELP = "program a board with a bitstream built by `fetta synth` (iceprog / openFPGALoader)"


def add_arguments(p):
    from fetta.boards.platforms import BOARDS
    p.add_argument("--board", required=True, choices=sorted(BOARDS), help="target board")
    p.add_argument("--bitstream", metavar="PATH",
                   help="bitstream file (default: the default `fetta synth` build's)")


def run(args) -> int:
    from fetta.boards.platforms import board_info
    from fetta.boards.program import program
    path = program(args.board, args.bitstream)
    print(f"programmed {args.board} with {path}; the UART link is on "
          f"{board_info(args.board)['uart_note']}")
    return 0
