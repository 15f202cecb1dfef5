"""The host bus: the one memory-mapped port through which every backend (pysim,
compiled model, UART bridge) loads programs and data, starts runs and reads counters.

Address map and register meanings: ``sw_model/accel/hostmap.py``.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.hostmap import ADDR_BITS, DATA_BITS

__all__ = ["HostBusSignature"]


class HostBusSignature(wiring.Signature):
    """Host-bus signature, seen from the host (initiator).

    Members:
        addr:   word address (``ADDR_BITS``).
        wdata:  write data (32 bits).
        write:  one-cycle write strobe; ``wdata`` lands at ``addr`` on this clock edge.
        read:   one-cycle read strobe for ``addr``.
        rdata:  read data, valid while ``rvalid``.
        rvalid: high for one cycle, exactly ``READ_LATENCY`` cycles after ``read``.

    The accelerator's port is ``In(HostBusSignature())``; a bridge (UART) driving it
    has ``Out(HostBusSignature())``.
    """

    def __init__(self):
        super().__init__({
            "addr": Out(ADDR_BITS),
            "wdata": Out(DATA_BITS),
            "write": Out(1),
            "read": Out(1),
            "rdata": In(DATA_BITS),
            "rvalid": In(1),
        })
