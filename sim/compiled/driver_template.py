"""The C++ host-bus driver shared by both compiled simulators.

``cxx_driver_template.cc`` implements the host-bus protocol (register and buffer
reads/writes, ``run`` until ``busy`` falls, memory pokes and peeks) against a small
macro interface; each simulator fills in a *prelude* (its model type and the macros),
the C++ member names of the top's ports, and whether each sampled output is read
before or after the clock edge. ``port_names`` gives the RTLIL names of the ports the
driver uses (bus, clock/reset, ``busy``); ``fill_driver`` does the substitution, plus
the host-bus constants (``READ_LATENCY``, the ``CTRL`` address and ``START`` bit).
"""

from pathlib import Path

from fetta.errors import FettaError
from fetta.sw_model.accel.hostmap import READ_LATENCY, Ctrl, Reg

__all__ = ["DRIVER_TEMPLATE", "port_names", "fill_driver"]

DRIVER_TEMPLATE = Path(__file__).with_name("cxx_driver_template.cc")


def port_names(top) -> dict[str, str]:
    """RTLIL port names of the bus, clock/reset and status ports of ``top``."""
    names = {
        "clk": "clk", "rst": "rst",
        "addr": "bus__addr", "wdata": "bus__wdata", "write": "bus__write",
        "read": "bus__read", "rdata": "bus__rdata", "rvalid": "bus__rvalid",
        "busy": "busy",
    }
    members = top.signature.members
    if "bus" not in members or "busy" not in members:
        raise FettaError(f"top {type(top).__name__} has no 'bus' and 'busy' members; "
                         f"the compiled backend needs bus: In(HostBusSignature()) and "
                         f"busy: Out(1)")
    return names


def fill_driver(prelude: str, members: dict[str, str], pre: dict[str, bool]) -> str:
    """The driver template with ``prelude``, the simulator's port member names
    (``members``: role -> C++ member) and output sampling (``pre``: role -> sampled
    before the edge) filled in, plus the host-bus constants."""
    text = DRIVER_TEMPLATE.read_text().replace("@PRELUDE@", prelude)
    subst = {f"@{k.upper()}@": v for k, v in members.items()}
    subst.update({f"@PRE_{k.upper()}@": str(int(v)) for k, v in pre.items()})
    subst["@READ_LATENCY@"] = str(READ_LATENCY)
    subst["@CTRL_ADDR@"] = str(int(Reg.CTRL))
    subst["@CTRL_START@"] = str(int(Ctrl.START))
    for k, v in subst.items():
        text = text.replace(k, v)
    if "@" in text:
        raise FettaError(f"driver template has an unfilled placeholder near "
                         f"{text[text.index('@'):][:30]!r}")
    return text
