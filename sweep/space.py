"""The space file of ``fetta sweep``: which accelerator configurations to try.

A TOML file::

    base = "tiny"                      # preset the points start from (default tiny)
    workloads = ["digits L1 64->128"]  # optional: suite layers (default: all of them)
    order = "macs"                     # optional: contraction order, macs | cycles

    [fields]                           # AccelConfig fields: a value, a list, or a range
    n_ce = [2, 4, 8]
    pe_rows = { start = 1, stop = 8, factor = 2 }    # 1, 2, 4, 8
    bank_depth = { start = 256, stop = 1024, factor = 2 }
    acc_bits = { start = 32, stop = 40, step = 8 }   # 32, 40
    mac_kind = ["multiply", "shift"]
    device = ["none", "ice40up5k"]                    # "none" = no device

    [constraints]                      # optional budgets; a point over one is invalid
    max_macs = 64                      # n_ce * pe_rows * pe_cols
    max_dsps = 156                     # multiply MACs (one hard multiplier each)
    max_buffer_kbits = 3744            # A + B + C buffers
    max_luts = 24000                   # with --synth: LUTs (iCE40 logic cells) used

The points are the Cartesian product of the field values, in file order (the first
field varies slowest). Each is validated by ``AccelConfig`` itself and then against
the constraints; an invalid point keeps the one-line reason. A malformed file raises
``SpaceError``: one line naming the file, the key, the value and what is allowed.

Members: ``Space`` (``points``, ``workloads``, ``order``, ``constraints``, ``base``),
``load_space(path)``, ``parse_space(text, name)``, ``Point`` (``overrides``,
``config`` or ``reason``, ``point_id``), ``check_constraints``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import sys
from dataclasses import dataclass, field

from fetta.sw_model.accel.config import AccelConfig, get_config, PRESETS
from fetta.sw_model.ttm.workloads import LAYERS, ORDERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Space", "Point", "SpaceError", "load_space", "parse_space", "CONSTRAINTS",
           "check_constraints", "point_id", "MAX_POINTS"]

TOP_KEYS = ("base", "workloads", "order", "fields", "constraints")
CONSTRAINTS = {
    "max_macs": "n_ce * pe_rows * pe_cols",
    "max_dsps": "multiply MACs, one hard multiplier each",
    "max_buffer_kbits": "A + B + C buffer bits / 1024",
    "max_luts": "LUTs or logic cells of the --synth build",
}
FIELDS = {f.name: f for f in dataclasses.fields(AccelConfig) if f.name != "name"}
MAX_POINTS = 100_000


class SpaceError(ValueError):
    """A malformed space file (one line)."""


def point_id(cfg: AccelConfig) -> str:
    """A stable identity of a configuration: its fields except the name."""
    d = cfg.to_dict()
    d.pop("name")
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Point:
    """One point of the space: the field overrides, and either a valid ``config`` or
    the one-line ``reason`` it is invalid."""
    overrides: dict
    config: AccelConfig | None = None
    reason: str | None = None
    id: str = ""

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.overrides.items())


@dataclass
class Space:
    base: str
    fields: dict
    workloads: list = field(default_factory=list)
    order: str = "macs"
    constraints: dict = field(default_factory=dict)
    points: list = field(default_factory=list)


def buffer_kbits(cfg: AccelConfig) -> float:
    return cfg.bank_depth * (cfg.a_lanes + cfg.b_lanes + cfg.c_lanes) * 16 / 1024


def check_constraints(cfg: AccelConfig, constraints: dict) -> str | None:
    """The one-line reason ``cfg`` breaks a budget (``max_luts`` is checked against
    synthesis results, not here), or None."""
    have = {"max_macs": cfg.macs,
            "max_dsps": cfg.macs if cfg.mac_kind == "multiply" else 0,
            "max_buffer_kbits": buffer_kbits(cfg)}
    for key, limit in constraints.items():
        if key in have and have[key] > limit:
            return (f"constraint {key}={limit}: the point needs {have[key]:g} "
                    f"({CONSTRAINTS[key]})")
    return None


def _values(name: str, spec, where: str) -> list:
    """The value list of field ``name`` from a scalar, a list or a range table."""
    kind = str(FIELDS[name].type)
    if isinstance(spec, dict):
        keys = set(spec)
        allowed = ({"start", "stop", "step"}, {"start", "stop", "factor"})
        if keys not in allowed:
            raise SpaceError(f"{where}: range {spec!r} has keys {sorted(keys)}; allowed "
                             f"{{start, stop, step}} or {{start, stop, factor}}")
        for k, v in spec.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpaceError(f"{where}: range {k}={v!r} is not an integer")
        start, stop = spec["start"], spec["stop"]
        if stop < start:
            raise SpaceError(f"{where}: range stop={stop} below start={start}; allowed "
                             f"stop >= start")
        if "step" in spec:
            if spec["step"] < 1:
                raise SpaceError(f"{where}: range step={spec['step']}; allowed >= 1")
            vals = list(range(start, stop + 1, spec["step"]))
        else:
            if spec["factor"] < 2 or start < 1:
                raise SpaceError(f"{where}: geometric range needs factor >= 2 and "
                                 f"start >= 1; got factor={spec['factor']}, start={start}")
            vals, v = [], start
            while v <= stop:
                vals.append(v)
                v *= spec["factor"]
    elif isinstance(spec, list):
        vals = spec
    else:
        vals = [spec]
    if not vals:
        raise SpaceError(f"{where}: no values; allowed a value, a non-empty list or a "
                         f"range table")
    out = []
    for v in vals:
        if kind == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpaceError(f"{where}: value {v!r} is not an integer")
        elif kind == "bool":
            if not isinstance(v, bool):
                raise SpaceError(f"{where}: value {v!r} is not a boolean (true, false)")
        elif "None" in kind:
            if not isinstance(v, str):
                raise SpaceError(f"{where}: value {v!r} is not a string (\"none\" for "
                                 f"no device)")
            v = None if v.lower() == "none" else v
        elif not isinstance(v, str):
            raise SpaceError(f"{where}: value {v!r} is not a string")
        out.append(v)
    return list(dict.fromkeys(out))


def parse_space(text: str, name: str = "<space>") -> Space:
    """Parse and expand a space file's text; see the module docstring."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{name}: not valid TOML: {exc}") from None
    for key in doc:
        if key not in TOP_KEYS:
            raise SpaceError(f"{name}: unknown key {key!r}; allowed {', '.join(TOP_KEYS)}")
    base = doc.get("base", "tiny")
    if base not in PRESETS:
        raise SpaceError(f"{name}: base={base!r} unknown; allowed {', '.join(PRESETS)}")
    order = doc.get("order", "macs")
    if order not in ORDERS:
        raise SpaceError(f"{name}: order={order!r} unknown; allowed {', '.join(ORDERS)}")
    workloads = doc.get("workloads", list(LAYERS))
    if not isinstance(workloads, list) or not workloads:
        raise SpaceError(f"{name}: workloads={workloads!r}; allowed a non-empty list of "
                         f"{', '.join(LAYERS)}")
    for w in workloads:
        if w not in LAYERS:
            raise SpaceError(f"{name}: workload {w!r} unknown; allowed "
                             f"{', '.join(LAYERS)}")
    fields = doc.get("fields", {})
    if not isinstance(fields, dict) or not fields:
        raise SpaceError(f"{name}: [fields] missing or empty; allowed AccelConfig fields "
                         f"{', '.join(FIELDS)}")
    values = {}
    for fname, spec in fields.items():
        if fname not in FIELDS:
            raise SpaceError(f"{name}: fields.{fname} is not an AccelConfig field; "
                             f"allowed {', '.join(FIELDS)}")
        values[fname] = _values(fname, spec, f"{name}: fields.{fname}")
    constraints = doc.get("constraints", {})
    if not isinstance(constraints, dict):
        raise SpaceError(f"{name}: [constraints] must be a table; allowed keys "
                         f"{', '.join(CONSTRAINTS)}")
    for key, v in constraints.items():
        if key not in CONSTRAINTS:
            raise SpaceError(f"{name}: constraints.{key} unknown; allowed "
                             f"{', '.join(CONSTRAINTS)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise SpaceError(f"{name}: constraints.{key}={v!r}; allowed a number >= 0")
    n = 1
    for v in values.values():
        n *= len(v)
    if n > MAX_POINTS:
        raise SpaceError(f"{name}: {n} points; allowed at most {MAX_POINTS}")
    space = Space(base, values, list(dict.fromkeys(workloads)), order, constraints)
    base_cfg = get_config(base)
    for combo in itertools.product(*values.values()):
        ov = dict(zip(values, combo))
        pt = Point(ov)
        label = base + "".join(f"+{k}={v}" for k, v in ov.items())
        try:
            pt.config = base_cfg.replace(name=label, **ov)
        except ValueError as exc:
            pt.reason = str(exc).splitlines()[0]
            pt.id = hashlib.sha256(json.dumps([base, ov], sort_keys=True, default=str)
                                   .encode()).hexdigest()[:16]
        else:
            pt.reason = check_constraints(pt.config, constraints)
            pt.id = point_id(pt.config)
        space.points.append(pt)
    return space


def load_space(path) -> Space:
    """Read and parse the space file at ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SpaceError(f"space file {str(path)!r}: {exc.strerror}") from None
    return parse_space(text, str(path))
