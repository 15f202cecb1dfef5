"""A sweep synthesis task's result for a preset, taken from the preset's stored measured
build (the JSON ``fetta synth --json`` wrote, ``sw_model/accel/synth_reports/``)."""

from fetta.sw_model.accel.measured import synth_report


def stored_synth(preset: str) -> dict:
    rep = synth_report(preset)
    raw = rep["raw"]
    logic = raw["resources"].get("LUTs") or raw["resources"]["LCs"]
    return {"board": rep["board"], "device": raw["device"], "fits": True,
            "fmax_mhz": rep["fmax_mhz"], "luts": logic["used"],
            "resources": raw["resources"]}
