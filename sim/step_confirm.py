"""Run one evaluated training step on the RTL and compare it with the model counts.

``confirm_step(workload, config, backend)`` runs every contraction of the step that
``sw_model.ttm.step_events.step_events`` counts (same plan, same order, same operand
shapes) on one ``sim.harness.Session`` of the given backend, each on fresh residency
(``Session.invalidate``) so the host traffic is the model's no-reuse count, with
random operands in the MAC's operand range (values do not change any cycle count: the
controller's schedule depends on shapes only). Per contraction it compares the RTL's
CYCLES, MAC_ACTIVE and INSTRUCTIONS counters and the host words (written + skipped,
read) with ``contraction_events``; the first difference raises ``FettaError`` naming
the contraction, the quantity and both values.
"""

from __future__ import annotations

import time

import numpy as np

from fetta.errors import FettaError
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.step_events import contraction_events, step_events
from fetta.sw_model.ttm.workloads import Workload, get_workload

from .harness import Session

__all__ = ["confirm_step"]


def _operand(rng, shape, cfg, is_b: bool):
    if is_b and cfg.mac_kind == "shift":
        return rng.integers(0, 1 << cfg.pow2_bits, shape)
    lim = 1 << (cfg.operand_bits - 1)
    return rng.integers(-lim, lim, shape)


def confirm_step(workload, config="tiny", backend: str = "verilator", batch: int = 64,
                 seed: int = 0, session: Session | None = None) -> dict:
    """Returns ``{"workload", "config", "backend", "contractions", "cycles_rtl",
    "cycles_model", "mac_active_rtl", "mac_active_model", "host_words_rtl",
    "host_words_model", "wall_seconds", "build_seconds"}`` (RTL == model, or raises)."""
    wl = workload if isinstance(workload, Workload) else get_workload(workload)
    cfg = get_config(config)
    t0 = time.perf_counter()
    sess = session or Session(cfg, backend)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    step = step_events(wl, cfg, batch)
    tot = {"cycles_rtl": 0, "cycles_model": 0, "mac_active_rtl": 0, "mac_active_model": 0,
           "host_words_rtl": 0, "host_words_model": 0}
    t1 = time.perf_counter()
    try:
        for c in step["contractions"]:
            sa, sb = tuple(c["shape_a"]), tuple(c["shape_b"])
            ev, _ = contraction_events(c["spec"], sa, sb, cfg)
            sess.invalidate()
            res = sess.contract(c["spec"], _operand(rng, sa, cfg, False),
                                _operand(rng, sb, cfg, True))
            hw = res.host_words
            got = {"cycles": res.cycles, "mac_active": res.counters["mac_active_cycles"],
                   "instructions": res.counters["instructions"],
                   "host_words": hw["written"] + hw["skipped"] + hw["read"]}
            want = {"cycles": ev.cycles, "mac_active": ev.mac_active_cycles,
                    "instructions": ev.instructions, "host_words": ev.host_words}
            for k in got:
                if got[k] != want[k]:
                    raise FettaError(
                        f"{wl.name} on {cfg.name}: layer {c['layer']} {c['phase']} "
                        f"contraction '{c['spec']}' {sa} x {sb}: {k} RTL {got[k]} != "
                        f"model {want[k]}")
            for k in ("cycles", "mac_active", "host_words"):
                tot[f"{k}_rtl"] += got[k]
                tot[f"{k}_model"] += want[k]
    finally:
        if session is None:
            sess.close()
    return {"workload": wl.name, "config": cfg.name, "backend": backend, "batch": batch,
            "contractions": len(step["contractions"]), **tot,
            "wall_seconds": time.perf_counter() - t1, "build_seconds": build}
