"""Loading a bitstream onto a board with the platform's own programmer.

============  =================  ===================================================
board         programmer         command
============  =================  ===================================================
icebreaker    iceprog            ``iceprog top.bin`` (SPI flash; survives power off)
ulx3s-85f     openFPGALoader     ``openFPGALoader -b ulx3s -m top.bit`` (SRAM)
============  =================  ===================================================

The programmer is looked up as the environment variable amaranth-boards uses
(``ICEPROG``, ``OPENFPGALOADER``) or on ``PATH``; a missing one is a one-line error
that says how to get it. Neither is on PyPI (nor needed by ``fetta synth``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fetta.errors import FettaError

from .platforms import board_info

__all__ = ["program", "default_bitstream", "programmer_command"]

INSTALL_HINT = {
    "iceprog": "apt install fpga-icestorm (or build icestorm)",
    "openFPGALoader": "apt install openfpgaloader",
}


def default_bitstream(board: str) -> Path:
    """Where ``fetta synth --board BOARD`` (default options) leaves its bitstream."""
    info = board_info(board)
    config = "ice40" if info["family"] == "ice40" else "ecp5"
    return Path(f"build/{board}-accelerator-{config}") / info["bitstream"]


def programmer_command(board: str, bitstream: Path) -> list[str]:
    info = board_info(board)
    var, tool = info["programmer"]
    exe = os.environ.get(var) or tool
    if shutil.which(exe) is None:
        where = f"${var}={exe}" if os.environ.get(var) else f"{tool} on PATH"
        raise FettaError(f"programmer {tool} not found ({where}); install it "
                         f"({INSTALL_HINT[tool]}) or set {var}")
    if info["family"] == "ice40":
        return [exe, str(bitstream)]
    return [exe, "-b", "ulx3s", "-m", str(bitstream)]


def program(board: str, bitstream=None) -> Path:
    """Program ``bitstream`` (default: the last default ``fetta synth`` build)."""
    bitstream = Path(bitstream) if bitstream else default_bitstream(board)
    if not bitstream.is_file():
        raise FettaError(f"bitstream {bitstream} not found; build it with "
                         f"`fetta synth --board {board}` or pass --bitstream PATH")
    argv = programmer_command(board, bitstream)
    result = subprocess.run(argv)
    if result.returncode != 0:
        raise FettaError(f"{argv[0]} failed with exit code {result.returncode} "
                         f"(is the board connected and its USB port accessible?)")
    return bitstream
