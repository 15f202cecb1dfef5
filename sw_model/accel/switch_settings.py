"""Lane counts and the packing of 2x2 switch settings, shared by both butterfly networks.

Pure Python. ``N`` lanes, a power of two in 2..``MAX_LANES`` (64), ``n = log2 N``
(``lanes_log2``). A *stage* is a column of ``N/2`` 2x2 switches; a *settings* list is
``settings[t][s]`` (stage ``t``, switch ``s``), each a 2-bit code. Switch ``s`` of a
stage has two inputs and two outputs, called *upper* (index 0) and *lower* (index 1).

Packing (``pack_settings`` / ``unpack_settings``; the networks' ``pack_distribution`` /
``pack_reduction`` check the stage count and call it): stage-major, then switch index
within the stage, 2 bits per switch, LSB first: switch ``s`` of stage ``t`` occupies
bits ``[2*(t*N/2 + s), 2*(t*N/2 + s) + 2)`` of the configuration word. Total width:
``N * stages`` bits (``benes.distribution_n_switch_bits(N)`` /
``reduction_net.reduction_n_switch_bits(N)``).
"""

from __future__ import annotations

__all__ = ["MAX_LANES", "lanes_log2", "check_settings", "pack_settings",
           "unpack_settings"]

MAX_LANES = 64


def lanes_log2(lanes) -> int:
    """``log2(lanes)``; ``ValueError`` unless ``lanes`` is a power of two in 2..64."""
    if isinstance(lanes, bool) or not isinstance(lanes, int):
        raise ValueError(f"lanes={lanes!r} is not an integer; allowed powers of two 2..64")
    if not 2 <= lanes <= MAX_LANES or lanes & (lanes - 1):
        raise ValueError(f"lanes={lanes} is not a power of two in 2..{MAX_LANES}; allowed "
                         f"2, 4, 8, 16, 32, 64")
    return lanes.bit_length() - 1


def check_settings(lanes, settings, n_stages, what):
    """``ValueError`` (naming ``what``, the stage and the switch) unless ``settings``
    has ``n_stages`` stages of ``lanes/2`` codes in 0..3."""
    half = lanes // 2
    if len(settings) != n_stages:
        raise ValueError(f"{what} settings have {len(settings)} stages; expected {n_stages} "
                         f"for lanes={lanes}")
    for t, row in enumerate(settings):
        if len(row) != half:
            raise ValueError(f"{what} settings stage {t} has {len(row)} switches; expected "
                             f"{half} for lanes={lanes}")
        for s, code in enumerate(row):
            if code not in (0, 1, 2, 3):
                raise ValueError(f"{what} setting of stage {t} switch {s} is {code!r}; "
                                 f"allowed 0..3")


def pack_settings(lanes, settings) -> int:
    """``settings[t][s]`` packed stage-major, 2 bits per switch, LSB first."""
    half = lanes // 2
    word = 0
    for t, row in enumerate(settings):
        for s, code in enumerate(row):
            word |= code << (2 * (t * half + s))
    return word


def unpack_settings(lanes, word, n_stages) -> list[list[int]]:
    """Inverse of ``pack_settings`` for ``n_stages`` stages."""
    half = lanes // 2
    return [[(word >> (2 * (t * half + s))) & 3 for s in range(half)]
            for t in range(n_stages)]

