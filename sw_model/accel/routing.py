"""Former home of the two butterfly networks; kept for the modules that still import
their names from here. Computes nothing itself: every name below is re-exported from
the module that defines it, and new code imports from those modules directly.

Where each concept lives
------------------------
* ``sw_model.accel.switch_settings``: lane counts (``lanes_log2``, 2..64 lanes), the
  settings list ``settings[t][s]`` and its packing (stage-major, 2 bits per switch).
* ``sw_model.accel.benes``: the distribution network, an N-lane Benes network —
  topology (``benes_stages``, ``benes_wiring``), latency (``DISTRIBUTION_LATENCY``),
  configuration width (``distribution_n_switch_bits``), router
  (``route_distribution``), packing (``pack_distribution``, ``unpack_distribution``)
  and functional model (``apply_distribution``).
* ``sw_model.accel.reduction_net``: the reduction network (Benes gather, butterfly
  adders, Benes scatter) — latency (``reduction_latency``), configuration width
  (``reduction_n_switch_bits``), router (``route_reduction``), packing
  (``pack_reduction``, ``unpack_reduction``) and functional model
  (``apply_reduction``).
* ``sw_model.accel.ce_patterns``: the CE-array mapping patterns the compiler issues
  (``factorizations``, ``pattern_*``).

Re-exported here: the names ``sw_model/accel/isa.py``, ``sw_model/accel/timing.py``,
``sw_model/program/compiler.py``, ``sw_model/program/fabric_model.py``,
``rtl/controller.py`` and ``rtl/fabric_control.py`` read from ``routing`` (and
``rtl/controller_props.py``, ``rtl/top.py``, ``rtl/ce_array.py`` may).
"""

from __future__ import annotations

from .benes import (DISTRIBUTION_LATENCY, apply_distribution, distribution_n_switch_bits,
                    pack_distribution, route_distribution, unpack_distribution)
from .reduction_net import (apply_reduction, pack_reduction, reduction_latency,
                            reduction_n_switch_bits, route_reduction, unpack_reduction)

__all__ = [
    "DISTRIBUTION_LATENCY", "distribution_n_switch_bits", "route_distribution",
    "pack_distribution", "unpack_distribution", "apply_distribution",
    "reduction_latency", "reduction_n_switch_bits", "route_reduction",
    "pack_reduction", "unpack_reduction", "apply_reduction",
]
