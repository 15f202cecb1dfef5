"""The clock of every preset, and the measured FPGA build figures it comes from — the
one table of Fmax per preset (training reports, ``fetta eval``, the README's FPGA
table via ``scripts/gen_docs.py`` all read it).

``preset_clock(cfg)`` -> ``(MHz, source)``: a preset with a ``device`` (an FPGA preset)
runs at the measured Fmax of its stored synthesis summary (``ValueError`` naming the
command to run when there is none); a preset without one is an ASIC-class array at
the stated clock of the energy model (``energy.ASIC_TECH``, not a measurement).

Measured FPGA build figures are read from the synthesis summaries stored in
``sw_model/accel/synth_reports/<preset>.json`` — the JSON ``fetta synth --board B
--config PRESET --seeds 1,2,3 --json PATH`` writes (YoWASP yosys + nextpnr; the single-run
keys are the slowest routed seed's), with the machine-local ``bitstream``/``build_dir``
keys removed and ``rtl_commit`` added. Nothing here is typed by hand: to refresh a
figure, re-run that command and store its JSON (CONTRIBUTING.md, "A preset").

``synth_report(preset)`` -> ``{"fmax_mhz": float (the system clock domain's achieved
Fmax), "resources": {"LUTs", "FFs", "DSPs", "BRAMs": used count}, "board", "source",
"raw": the stored summary}``; ``ValueError`` for a preset with no stored report.

``used_resources(resources)``: the used count of every resource of a summary's
``resources`` (``{name: {"used", "available"}}``, as ``fetta synth`` and ``fetta
sweep --synth`` record them); an iCE40 build's logic cells (one LUT4 each) count as
its ``LUTs``, the name the FPGA energy model prices.
"""

from __future__ import annotations

import json
from importlib import resources

__all__ = ["synth_report", "measured_presets", "preset_clock", "used_resources"]

_DIR = "synth_reports"


def measured_presets() -> list[str]:
    root = resources.files("fetta.sw_model.accel") / _DIR
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def synth_report(preset: str) -> dict:
    path = resources.files("fetta.sw_model.accel") / _DIR / f"{preset}.json"
    if not path.is_file():
        raise ValueError(f"no measured synthesis report for preset {preset!r}; measured: "
                         f"{', '.join(measured_presets()) or 'none'} (run fetta synth "
                         f"--config {preset} --json and store it in sw_model/accel/{_DIR}/)")
    raw = json.loads(path.read_text())
    fmax = raw["fmax_mhz"]
    clock = fmax.get("sync", min(fmax.values()))
    return {"fmax_mhz": float(clock), "resources": used_resources(raw["resources"]),
            "board": raw.get("board"),
            "source": f"fetta synth --board {raw.get('board')} --config {preset}: "
                      f"sw_model/accel/{_DIR}/{preset}.json",
            "raw": raw}


def used_resources(resources: dict) -> dict:
    """Resource name -> used count (module doc)."""
    used = {k: v["used"] for k, v in resources.items() if isinstance(v, dict)}
    if "LUTs" not in used and "LCs" in used:
        used["LUTs"] = used["LCs"]
    return used


def preset_clock(cfg) -> tuple[float, str]:
    """(MHz, where it comes from) for an ``AccelConfig`` (module doc)."""
    if cfg.device is not None:
        rep = synth_report(cfg.name)
        return rep["fmax_mhz"], f"measured Fmax ({rep['source']})"
    from .energy import ASIC_TECH
    return float(ASIC_TECH["clock_mhz"]), ("stated ASIC clock (sw_model/accel/energy.py "
                                           "asic_clock_mhz)")
