"""Command-line options shared by several subcommands, defined once.

``add_config(parser, default=..., purpose=...)`` adds ``--config PRESET``: a preset
name of ``sw_model/accel/config.py`` (``PRESETS``), checked when the command line is
parsed (a one-line error naming the value and the presets); ``default=None`` lets a
command choose by context (e.g. ``fetta synth`` picks the board's preset).
"""

from __future__ import annotations

import argparse

from fetta.sw_model.accel.config import PRESETS

__all__ = ["add_config", "preset_name"]


def preset_name(value: str) -> str:
    """``--config`` value check: a preset name."""
    if value not in PRESETS:
        raise argparse.ArgumentTypeError(
            f"--config {value!r} unknown; allowed {', '.join(sorted(PRESETS))}")
    return value


def add_config(parser, *, default: str | None = "tiny",
               purpose: str = "accelerator preset", default_text: str | None = None) -> None:
    """Add ``--config PRESET`` to ``parser`` (see module doc)."""
    shown = default_text or default
    parser.add_argument("--config", default=default, type=preset_name, metavar="PRESET",
                        help=f"{purpose}: {', '.join(sorted(PRESETS))} [default {shown}]")
