"""Reading VCD waveforms (vcdvcd) into per-cycle values, signed decode, plots."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass

from fetta.errors import FettaError

__all__ = ["Trace", "load_vcd", "gtkw_signals", "to_int"]


def to_int(bits: str, signed: bool = False) -> int | None:
    """A VCD binary string -> int (None for x/z). Signed values are sign-extended
    by hand (vcdvcd gives raw bits)."""
    if any(c in "xXzZ" for c in bits):
        return None
    v = int(bits, 2)
    if signed and bits and bits[0] == "1" and len(bits) > 1:
        v -= 1 << len(bits)
    return v


@dataclass
class Trace:
    name: str
    width: int
    changes: list    # [(cycle, int or None)]

    def value_at(self, cycle: int):
        cur = None
        for c, v in self.changes:
            if c > cycle:
                break
            cur = v
        return cur


def gtkw_signals(vcd_path: str) -> list[str]:
    """Signal names listed in the GTKWave save file next to ``vcd_path`` (if any)."""
    gtkw = os.path.splitext(vcd_path)[0] + ".gtkw"
    if not os.path.exists(gtkw):
        return []
    out = []
    with open(gtkw) as f:
        for line in f:
            line = line.strip()
            if line.startswith("bench."):
                out.append(re.sub(r"\[\d+:\d+\]$", "", line))
    return out


def load_vcd(path: str, patterns: list[str] | None = None, signed: bool = False,
             ) -> tuple[list[Trace], int]:
    """Traces of the signals matching ``patterns`` (fnmatch on the full dotted name or
    its last component; default: the .gtkw list, else top-level signals) and the
    number of clock cycles recorded. Times are converted to cycles of
    ``bench.top.clk`` (rising edges)."""
    from vcdvcd import VCDVCD
    if not os.path.exists(path):
        raise FettaError(f"VCD file {path!r} not found")
    try:
        header = VCDVCD(path, only_sigs=True)
    except Exception as exc:   # vcdvcd raises bare exceptions on malformed input
        raise FettaError(f"VCD file {path!r} unreadable: {exc}") from None
    names = list(header.signals)
    if not names:
        raise FettaError(f"VCD file {path!r} has no signals")
    if patterns:
        chosen = [n for n in names if any(fnmatch.fnmatch(n, p) or
                                          fnmatch.fnmatch(n.rsplit(".", 1)[-1], p)
                                          for p in patterns)]
        if not chosen:
            raise FettaError(f"no signal matches {patterns}; e.g. "
                             f"{', '.join(names[:5])}")
    else:
        chosen = [n for n in gtkw_signals(path) if n in names] or \
            [n for n in names if n.count(".") == 2][:20]
    clk = next((n for n in names if n.endswith(".clk")), None)
    want = sorted(set(chosen + ([clk] if clk else [])))
    v = VCDVCD(path, signals=want)
    rises = []
    if clk:
        rises = [t for t, b in v[clk].tv if b == "1"]
    period = (rises[1] - rises[0]) if len(rises) > 1 else 1
    first = rises[0] if rises else 0

    def cycle_of(t):
        return max(0, (t - first) // period + (1 if t >= first else 0))

    traces = []
    for n in chosen:
        sig = v[n]
        width = int(sig.size) if str(sig.size).isdigit() else 1
        traces.append(Trace(n, width, [(int(cycle_of(t)), to_int(b, signed))
                                       for t, b in sig.tv]))
    return traces, len(rises)
