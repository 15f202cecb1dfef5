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

``confirm_resident_step(workload, config, backend)`` does the same for the step run as
resident chains (``sw_model.ttm.resident_step``): every layer's chain runs on one
session with ``sim.resident.run_resident``; per layer the RTL's CYCLES (compute and
MOVEs), its MOVE counter (element cycles) and the host words (written + skipped,
read) are compared with ``resident_step_events``' layer.
"""

from __future__ import annotations

import time

import numpy as np

from fetta.errors import FettaError
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.resident_step import layer_chains, resident_step_events
from fetta.sw_model.ttm.step_events import contraction_events, step_events
from fetta.sw_model.ttm.workloads import Workload, get_workload

from .harness import Session

__all__ = ["confirm_step", "confirm_resident_step"]


def _operand(rng, shape, cfg, is_b: bool):
    if is_b and cfg.mac_kind == "shift":
        return rng.integers(0, 1 << cfg.pow2_bits, shape)
    lim = 1 << (cfg.operand_bits - 1)
    return rng.integers(-lim, lim, shape)


def _confirm(workload, config, backend, batch, seed, session, compare, label,
             summed) -> dict:
    """Open (or use) a session, run ``compare(wl, cfg, sess, rng)`` — a generator of
    ``(where, got, want)`` dicts, one per contraction or layer — and check every
    quantity RTL == model (the first difference raises ``FettaError``); the totals of
    ``summed`` quantities go into the returned dict as ``{k}_rtl``/``{k}_model``."""
    wl = workload if isinstance(workload, Workload) else get_workload(workload)
    cfg = get_config(config)
    t0 = time.perf_counter()
    sess = session or Session(cfg, backend)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    tot = {f"{k}_{w}": 0 for k in summed for w in ("rtl", "model")}
    n = 0
    t1 = time.perf_counter()
    try:
        for where, got, want in compare(wl, cfg, sess, rng):
            for k in got:
                if got[k] != want[k]:
                    raise FettaError(f"{wl.name} on {cfg.name}{label}: {where}: {k} RTL "
                                     f"{got[k]} != model {want[k]}")
            for k in summed:
                tot[f"{k}_rtl"] += got[k]
                tot[f"{k}_model"] += want[k]
            n += 1
    finally:
        if session is None:
            sess.close()
    return {"workload": wl.name, "config": cfg.name, "backend": backend, "batch": batch,
            "runs": n, **tot, "wall_seconds": time.perf_counter() - t1,
            "build_seconds": build}


def confirm_step(workload, config="tiny", backend: str = "verilator", batch: int = 64,
                 seed: int = 0, session: Session | None = None) -> dict:
    """Returns ``{"workload", "config", "backend", "contractions", "cycles_rtl",
    "cycles_model", "mac_active_rtl", "mac_active_model", "host_words_rtl",
    "host_words_model", "wall_seconds", "build_seconds"}`` (RTL == model, or raises)."""

    def compare(wl, cfg, sess, rng):
        for c in step_events(wl, cfg, batch)["contractions"]:
            sa, sb = tuple(c["shape_a"]), tuple(c["shape_b"])
            ev, _ = contraction_events(c["spec"], sa, sb, cfg)
            sess.invalidate()
            res = sess.contract(c["spec"], _operand(rng, sa, cfg, False),
                                _operand(rng, sb, cfg, True))
            hw = res.host_words
            yield (f"layer {c['layer']} {c['phase']} contraction '{c['spec']}' {sa} x {sb}",
                   {"cycles": res.cycles, "mac_active": res.counters["mac_active_cycles"],
                    "instructions": res.counters["instructions"],
                    "host_words": hw["written"] + hw["skipped"] + hw["read"]},
                   {"cycles": ev.cycles, "mac_active": ev.mac_active_cycles,
                    "instructions": ev.instructions, "host_words": ev.host_words})

    out = _confirm(workload, config, backend, batch, seed, session, compare, "",
                   ("cycles", "mac_active", "host_words"))
    out["contractions"] = out.pop("runs")
    return out


def confirm_resident_step(workload, config="tiny", backend: str = "verilator",
                          batch: int = 64, seed: int = 0,
                          session: Session | None = None) -> dict:
    """Returns ``{"workload", "config", "backend", "batch", "layers", "cycles_rtl",
    "cycles_model", "move_elements_rtl", "move_elements_model", "host_words_rtl",
    "host_words_model", "wall_seconds", "build_seconds"}`` (RTL == model, or raises
    ``FettaError`` naming the layer, the quantity and both values)."""
    from .chain import check_chain
    from .resident import run_resident

    def compare(wl, cfg, sess, rng):
        model = {lay["layer"]: lay for lay in resident_step_events(wl, cfg, batch)["layers"]}
        for layer, (steps, shapes, _) in sorted(layer_chains(wl, batch, cfg).items()):
            names = {x for _, a, b, _, _ in steps for x in (a, b)}
            cores = {n for n in names if n.split("/", 1)[1].startswith("g")}
            tensors = {k: _operand(rng, v, cfg, k in cores) for k, v in shapes.items()}
            plan = check_chain([(s, a, b, o, {"shift": 6}) for s, a, b, o, _ in steps],
                               tensors)
            run = run_resident(plan, tensors, sess)
            want, hw = model[layer], run.host_words
            yield (f"layer {layer}",
                   {"cycles": run.cycles["counted"],
                    "move_elements": run.cycles["move_elements"],
                    "host_words": hw["written"] + hw["skipped"] + hw["read"]},
                   {"cycles": want["cycles"]["compute"] + want["cycles"]["on_chip_moves"],
                    "move_elements": want["move_elements"],
                    "host_words": want["cycles"]["host_transfer"]})

    out = _confirm(workload, config, backend, batch, seed, session, compare,
                   " (resident)", ("cycles", "move_elements", "host_words"))
    out["layers"] = out.pop("runs")
    return out
