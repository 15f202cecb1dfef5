"""Chains of contractions: the public API for running a sequence of pairwise einsums
whose later steps consume earlier outputs, the same on every backend.

``run_chain(steps, tensors, *, config="tiny", backend="pysim", seed=0)``:

* ``steps``: a list of ``(spec, a_name, b_name, out_name, params)``; ``params`` a dict
  with any of ``shift`` (default 0), ``rounding`` (``floor``), ``out_bits`` (16),
  ``seed`` (default ``seed + i`` for step ``i``, modulo 2**32), and an epilogue run on
  chip by VEC instructions (resident chains only, ``sw_model/accel/vec.py``):
  ``bias`` (an input whose shape is the trailing dimensions of the output: ``y =
  saturate(out_bits, y + bias)``, broadcast), ``act`` (a dict with ``shift``,
  ``rounding``, ``out_bits``, ``seed``: the step's output becomes ``round(max(y, 0) /
  2**shift)`` saturated, the stochastic dither of element ``e`` of the output being
  ``dither_hash(seed, e)``, row-major; default seed ``seed + i + 2**31``; with
  ``slot``/``vote`` the activation's VECs take the shift from that shift slot, which
  must hold ``shift``, and vote into it: ``gather`` every VEC, the last one ``vote``),
  ``mask``
  (a tensor with as many elements, ``m``: ``y = y if m > 0 else 0`` elementwise in
  row-major order, ReLU's backward; after the bias, before the activation) and ``pre``
  (with ``act``: a name for ``y`` before the activation, an output like any other);
  ``reshape`` (a shape with as many elements: the output, and ``pre``, take it, row
  major, as a layer's output becomes the next layer's input); ``xent`` (a dict:
  ``labels`` an input of one label per row of the output's last dimension, ``grad``
  a new name, ``frac`` the logits' binary point, ``out_bits`` 16, ``bsz`` the rows,
  ``classes`` the row length, optional ``reshape`` of the gradient): after the bias,
  the softmax cross-entropy gradient of the output's rows on chip (the XENT
  instruction, ``sw_model/accel/xent.py``; ``xent_grad`` is its golden model, the
  recipe's ``softmax_xent_grad``: the first ``classes`` words of each row, 0 in the
  others; a label outside 0..classes-1 gives its row no target), named ``grad``, an
  output like any other (not with ``act``); ``slot`` (1..31) and
  ``vote`` (``none`` default, ``gather``, ``close``): the step's CONTRACTs take their
  shift from that on-chip shift slot (``sw_model/accel/shift_slots.py``; ``shift`` is
  then the value the slot must hold, the golden model's) and vote into it;
* ``tensors``: input name -> integer array (16-bit operand range; with a shift-MAC
  configuration a tensor used as a B operand holds power-of-two codes);
* every step's operands are inputs or outputs of earlier steps; output names are new.

``keep`` (resident chains): results the host reads back although later steps consume
them (e.g. an xent gradient the host sums for a bias gradient).

Returns a ``ChainResult``: every named output (NumPy int64, in its einsum shape),
cycles by phase, host words and MAC utilization, and the per-step
``ContractionResult``s. Each step's result is exactly the arithmetic contract applied
to its operands (``sw_model.arith.contraction.reference_contraction``), whatever the chain.

How it runs today: one accelerator program (or several, for contractions larger than
the buffers: output chunks, K chunks) per step, in order, through one
``harness.Session``; a step's output is read back over the host bus and written as the
next step's operand in that step's buffer layout. Cycles by phase are therefore
``compute`` (the programs' CYCLES counters), ``on_chip_moves`` (0: no move instruction
is used) and ``host_transfer`` (host-bus words at one word per cycle, the harness's
accounting).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.move import Move, MoveLevel
from fetta.sw_model.accel.shift_slots import SLOTS_MAX, as_vote
from fetta.sw_model.accel.step import StepParams, derive
from fetta.sw_model.accel.vec import Vec
from fetta.sw_model.accel.xent import N_MAX as XENT_N_MAX, Xent
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, softmax_xent_rows
from fetta.sw_model.program.resident_plan import literal_seeds

from fetta.errors import FettaError

__all__ = ["ChainResult", "run_chain", "check_chain", "load_chain_file", "has_epilogue",
           "params_of", "slot_of", "reference_chain", "xent_grad", "as_step"]

_PARAMS = ("shift", "rounding", "out_bits", "seed")
_EPILOGUE = ("bias", "mask", "act", "pre", "xent", "update")
_XENT = ("labels", "grad", "frac", "out_bits", "bsz", "classes", "reshape")
_SHAPING = ("reshape",)
# A step's shift slot (sw_model.accel.shift_slots): its CONTRACTs take the shift from
# on-chip slot ``slot``, ``shift`` being the value the slot must hold (the golden
# model's); ``vote`` (none, gather, close) as the ISA's.
_SLOT = ("slot", "vote")


def _xent(i, spec, x, shape, shapes, tensors) -> dict:
    """A checked ``xent`` epilogue of step ``i`` whose output has ``shape``."""
    if not isinstance(x, dict):
        raise ValueError(f"step {i} '{spec}': xent={x!r} is not a dict of "
                         f"{', '.join(_XENT)}")
    bad = [k for k in x if k not in _XENT]
    if bad:
        raise ValueError(f"step {i} '{spec}': xent parameter {bad[0]!r} unknown; allowed "
                         f"{', '.join(_XENT)}")
    for k in ("labels", "grad", "frac"):
        if k not in x:
            raise ValueError(f"step {i} '{spec}': xent needs {k!r}")
    if len(shape) < 2:
        raise ValueError(f"step {i} '{spec}': xent needs rows of logits; the output "
                         f"shape {tuple(shape)} has one dimension")
    rows, width = int(np.prod(shape[:-1])), int(shape[-1])
    full = {"out_bits": 16, "bsz": rows, "classes": width, **x}
    lab = full["labels"]
    if lab not in tensors:
        raise ValueError(f"step {i} '{spec}': xent labels {lab!r} is not an input; "
                         f"known {', '.join(map(repr, tensors))}")
    if tuple(shapes[lab]) != (rows,):
        raise ValueError(f"step {i} '{spec}': xent labels {lab!r} of shape "
                         f"{tuple(shapes[lab])}; expected ({rows},), one per row of "
                         f"logits")
    g = full["grad"]
    if not isinstance(g, str) or not g or g in shapes:
        raise ValueError(f"step {i} '{spec}': xent grad name {g!r} is not a new tensor "
                         f"name")
    for k in ("frac", "out_bits", "bsz", "classes"):
        v = full[k]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"step {i} '{spec}': xent {k}={v!r} is not an integer")
        full[k] = int(v)
    if not 2 <= full["classes"] <= min(XENT_N_MAX, width):
        raise ValueError(f"step {i} '{spec}': xent classes={full['classes']} out of "
                         f"range; allowed 2..{min(XENT_N_MAX, width)} (the row has "
                         f"{width})")
    try:
        Xent(Move("A", "A", 0, 0, (MoveLevel(full["classes"], 1, 1),)), full["frac"],
             full["bsz"], full["out_bits"], labels=True)
    except ValueError as exc:
        raise ValueError(f"step {i} '{spec}': {exc}") from None
    if "reshape" in full:
        full["reshape"] = _shape(i, spec, "xent reshape", full["reshape"], rows * width,
                                 "the logits'")
    return full


def _update(i, spec, items, full) -> list:
    """A checked ``update`` epilogue of step ``i``: a list of the optimizer's updates
    (``kind`` ``core``: the step's output is a parameter's gradient; ``bias``: the
    sum over the batch of the xent's gradient, or of the step's output)."""
    from fetta.sw_model.program.update import UPDATE_KEYS
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"step {i} '{spec}': update={items!r} is not a non-empty list "
                         f"of dicts")
    out = []
    for u in items:
        if not isinstance(u, dict):
            raise ValueError(f"step {i} '{spec}': update item {u!r} is not a dict")
        bad = [k for k in u if k not in UPDATE_KEYS + ("kind",)]
        if bad:
            raise ValueError(f"step {i} '{spec}': update parameter {bad[0]!r} unknown; "
                             f"allowed kind, {', '.join(UPDATE_KEYS)}")
        missing = [k for k in UPDATE_KEYS + ("kind",) if k not in u]
        if missing:
            raise ValueError(f"step {i} '{spec}': update needs {missing[0]!r}")
        if u["kind"] not in ("core", "bias"):
            raise ValueError(f"step {i} '{spec}': update kind={u['kind']!r} unknown; "
                             f"allowed core, bias")
        if u["kind"] == "bias" and not ("xent" in full or "mask" in full):
            raise ValueError(f"step {i} '{spec}': a bias update needs the step's xent "
                             f"or mask (its output gradient)")
        seeds = u["seeds"]
        if not isinstance(seeds, (list, tuple)) or len(seeds) != 2:
            raise ValueError(f"step {i} '{spec}': update seeds={seeds!r} is not two "
                             f"seeds")
        out.append({**u, "seeds": tuple(int(x) for x in seeds)})
    return out


def _shape(i, spec, what: str, value, n: int, whose: str, after: str = "") -> tuple:
    """``value`` as a shape of ``n`` elements, or a one-line ValueError."""
    try:
        new = tuple(int(d) for d in value)
    except (TypeError, ValueError):
        raise ValueError(f"step {i} '{spec}': {what}={value!r} is not a shape") from None
    if any(d < 1 for d in new) or int(np.prod(new)) != n:
        raise ValueError(f"step {i} '{spec}': {what}={new} does not have {whose} {n} "
                         f"elements{after}")
    return new


def _slot(i, spec, what: str, k) -> int:
    """``k`` as a shift slot number, or a one-line ValueError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or \
            not 1 <= int(k) <= SLOTS_MAX:
        raise ValueError(f"step {i} '{spec}': {what}={k!r} out of range; allowed "
                         f"1..{SLOTS_MAX}")
    return int(k)


def xent_grad(y, labels, x: dict) -> np.ndarray:
    """The golden ``xent`` epilogue: the gradient (int64, the logits' row shape, or
    ``x["reshape"]``) of logits ``y`` with ``labels`` (one per row; outside
    0..classes-1: no target), ``sw_model.arith.fixedpoint.softmax_xent_rows`` on the
    first ``classes`` columns, 0 in the others."""
    y = np.asarray(y, dtype=np.int64)
    z = y.reshape(-1, y.shape[-1])
    n = x["classes"]
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    t = (np.arange(n)[None, :] == lab[:, None]).astype(np.int64)
    g = np.zeros_like(z)
    g[:, :n] = softmax_xent_rows(z[:, :n], t, x["frac"], x["bsz"], x["out_bits"])[0]
    return g.reshape(x.get("reshape", y.shape))


def _act(i, spec, act, seed) -> dict:
    if not isinstance(act, dict):
        raise ValueError(f"step {i} '{spec}': act={act!r} is not a dict of "
                         f"{', '.join(_PARAMS)}")
    bad = [k for k in act if k not in _PARAMS + _SLOT]
    if bad:
        raise ValueError(f"step {i} '{spec}': act parameter {bad[0]!r} unknown; allowed "
                         f"{', '.join(_PARAMS + _SLOT)}")
    full = {"shift": 0, "rounding": "floor", "out_bits": 16,
            "seed": (int(seed) + i + (1 << 31)) & 0xFFFFFFFF, **act}
    if "slot" in full:
        full["slot"] = _slot(i, spec, "act slot", full["slot"])
        full["vote"] = as_vote(full.get("vote", "none")).name.lower()
    elif "vote" in full:
        raise ValueError(f"step {i} '{spec}': act vote={full['vote']!r} needs a slot")
    try:
        Vec(Move("C", "A", 0, 0), "relu_req", **params_of(full))
    except ValueError as exc:
        raise ValueError(f"step {i} '{spec}': act {exc}") from None
    return full


@dataclass
class ChainResult:
    """Outputs and costs of a chain. ``cycles``: ``{"compute", "on_chip_moves",
    "host_transfer", "total"}``; ``host_words``: written/read/skipped summed over the
    steps; ``mac_utilization``: useful MACs / (MACs x compute cycles);
    ``mac_utilization_with_transfer``: the same over total cycles."""
    outputs: dict
    cycles: dict
    host_words: dict
    useful_macs: int
    mac_utilization: float
    mac_utilization_with_transfer: float
    config: str
    backend: str
    steps: list = field(default_factory=list, repr=False)
    wall_seconds: float = 0.0
    resident: object = field(default=None, repr=False)   # sim.resident.ResidentRun

    def to_dict(self) -> dict:
        return {"config": self.config, "backend": self.backend,
                "cycles": dict(self.cycles), "host_words": dict(self.host_words),
                "useful_macs": self.useful_macs,
                "mac_utilization": self.mac_utilization,
                "mac_utilization_with_transfer": self.mac_utilization_with_transfer,
                "outputs": {k: list(v.shape) for k, v in self.outputs.items()},
                "steps": [{"spec": r.spec, "cycles": r.cycles,
                           "predicted_cycles": r.predicted_cycles, "programs": r.chunks,
                           "mac_utilization": r.mac_utilization,
                           "host_words": dict(r.host_words)} for r in self.steps],
                "wall_seconds": self.wall_seconds}


def check_chain(steps, tensors, seed: int = 0) -> list[tuple]:
    """Validate a chain; returns ``[(spec, a, b, out, params)]`` with every parameter
    filled in. Raises ValueError (one line naming the step and value) on bad input."""
    if not isinstance(steps, (list, tuple)) or not steps:
        raise ValueError(f"steps={steps!r}: expected a non-empty list of "
                         f"(spec, a_name, b_name, out_name, params)")
    if not isinstance(tensors, dict):
        raise ValueError(f"tensors is a {type(tensors).__name__}; expected a dict "
                         f"name -> integer array")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r} is not an integer")
    shapes = {k: np.shape(v) for k, v in tensors.items()}
    out = []
    for i, st in enumerate(steps):
        if not isinstance(st, (list, tuple)) or len(st) not in (4, 5):
            raise ValueError(f"step {i}: {st!r} is not (spec, a_name, b_name, out_name, "
                             f"params)")
        spec, a, b, o = st[:4]
        params = dict(st[4]) if len(st) == 5 and st[4] is not None else {}
        sp = parse_spec(spec)
        for role, name in (("A", a), ("B", b)):
            if name not in shapes:
                raise ValueError(f"step {i} '{spec}': operand {role} {name!r} is neither "
                                 f"an input nor an earlier output; known "
                                 f"{', '.join(map(repr, shapes)) or 'none'}")
        if not isinstance(o, str) or not o:
            raise ValueError(f"step {i} '{spec}': output name {o!r} is not a string")
        if o in shapes:
            raise ValueError(f"step {i} '{spec}': output name {o!r} is already a tensor; "
                             f"output names must be new")
        bad = [k for k in params if k not in _PARAMS + _EPILOGUE + _SHAPING + _SLOT]
        if bad:
            raise ValueError(f"step {i} '{spec}': parameter {bad[0]!r} unknown; allowed "
                             f"{', '.join(_PARAMS + _EPILOGUE + _SHAPING + _SLOT)}")
        if "slot" in params:
            _slot(i, spec, "slot", params["slot"])
            params["vote"] = as_vote(params.get("vote", "none")).name.lower()
        elif "vote" in params:
            raise ValueError(f"step {i} '{spec}': vote={params['vote']!r} needs a slot")
        full = {"shift": 0, "rounding": "floor", "out_bits": 16,
                "seed": (int(seed) + i) & 0xFFFFFFFF, **params}
        if full["rounding"] not in ROUNDING_MODES:
            raise ValueError(f"step {i} '{spec}': rounding={full['rounding']!r} unknown; "
                             f"allowed {', '.join(ROUNDING_MODES)}")
        shapes[o] = sp.output_shape(shapes[a], shapes[b])
        if "bias" in full:
            bias = full["bias"]
            if bias not in tensors:
                raise ValueError(f"step {i} '{spec}': bias {bias!r} is not an input; "
                                 f"known {', '.join(map(repr, tensors))}")
            tail = shapes[o][len(shapes[o]) - len(shapes[bias]):]
            if len(shapes[bias]) > len(shapes[o]) or tuple(tail) != tuple(shapes[bias]):
                raise ValueError(f"step {i} '{spec}': bias {bias!r} of shape "
                                 f"{tuple(shapes[bias])} is not the trailing dimensions "
                                 f"of the output's {tuple(shapes[o])}")
        if "mask" in full:
            m = full["mask"]
            if m not in shapes:
                raise ValueError(f"step {i} '{spec}': mask {m!r} is neither an input nor "
                                 f"an earlier output")
            if int(np.prod(shapes[m])) != int(np.prod(shapes[o])):
                raise ValueError(f"step {i} '{spec}': mask {m!r} of shape "
                                 f"{tuple(shapes[m])} does not have the output's "
                                 f"{int(np.prod(shapes[o]))} elements")
        if "act" in full:
            full["act"] = _act(i, spec, full["act"], seed)
        if "pre" in full:
            pre = full["pre"]
            if "act" not in full:
                raise ValueError(f"step {i} '{spec}': pre={pre!r} without act; pre names "
                                 f"the output before the activation")
            if not isinstance(pre, str) or not pre or pre in shapes:
                raise ValueError(f"step {i} '{spec}': pre name {pre!r} is not a new "
                                 f"tensor name")
            shapes[pre] = shapes[o]
        if "reshape" in full:
            new = _shape(i, spec, "reshape", full["reshape"], int(np.prod(shapes[o])),
                         "the output's", f" {tuple(shapes[o])}")
            full["reshape"] = new
            for name in (o, full.get("pre")):
                if name:
                    shapes[name] = new
        if "xent" in full:
            if "act" in full:
                raise ValueError(f"step {i} '{spec}': xent and act on one step; xent "
                                 f"reads the logits, act makes an activation")
            full["xent"] = _xent(i, spec, full["xent"], shapes[o], shapes, tensors)
            shapes[full["xent"]["grad"]] = full["xent"].get("reshape", shapes[o])
        if "update" in full:
            full["update"] = _update(i, spec, full["update"], full)
        out.append((str(sp), a, b, o, full))
    return out


def as_step(step) -> StepParams | None:
    """``step`` (None, a ``StepParams`` or ``{"key", "lr"}``) as ``StepParams``."""
    if step is None or isinstance(step, StepParams):
        return step
    if isinstance(step, dict) and set(step) <= {"key", "lr"} and "key" in step:
        return StepParams(int(step["key"]), int(step.get("lr", 0)))
    raise ValueError(f"step={step!r} is not a STEP's {{'key', 'lr'}}")


def reference_chain(plan, tensors, config, step=None) -> dict:
    """Every tensor of a checked chain by the golden model: each step's
    ``reference_contraction``, its epilogue by ``vec.vec_alu`` (the bias broadcast,
    the activation's dither index the output's flat index), its ``reshape``. ``step``:
    the chain runs after a STEP (its seeds are indices:
    ``resident_plan.literal_seeds``)."""
    from fetta.sw_model.accel.vec import vec_alu
    from fetta.sw_model.arith.contraction import reference_contraction
    from fetta.sw_model.arith.fixedpoint import Pow2Code

    cfg = get_config(config)
    pow2 = Pow2Code(cfg.pow2_bits) if cfg.mac_kind == "shift" else None
    values = {k: np.asarray(v, dtype=np.int64) for k, v in tensors.items()}
    for spec, a, b, o, p in literal_seeds(plan, as_step(step)):
        y = reference_contraction(spec, values[a], values[b], acc_bits=cfg.acc_bits,
                                  b_pow2=pow2, **params_of(p))
        if "bias" in p:
            y = vec_alu("add", np.broadcast_to(values[p["bias"]], y.shape), y,
                        out_bits=p["out_bits"])
        if "mask" in p:
            y = vec_alu("mask", values[p["mask"]].reshape(y.shape), y,
                        out_bits=p["out_bits"])
        if "act" in p:
            if "pre" in p:
                values[p["pre"]] = y.reshape(p.get("reshape", y.shape))
            y = vec_alu("relu_req", y, **params_of(p["act"]))
        values[o] = y.reshape(p.get("reshape", y.shape))
        if "xent" in p:
            x = p["xent"]
            values[x["grad"]] = xent_grad(values[o], values[x["labels"]], x)
    return values


def params_of(params) -> dict:
    """A checked step's contraction parameters (shift, rounding, out_bits, seed)."""
    return {k: params[k] for k in _PARAMS if k in params}


def slot_of(params) -> dict:
    """A checked step's shift-slot parameters (``slot``, ``vote``), if any."""
    return {k: params[k] for k in _SLOT if k in params}


def has_epilogue(params) -> bool:
    """True when a checked step's ``params`` carry an epilogue (bias, mask, act)."""
    return any(k in params for k in _EPILOGUE)


def run_chain(steps, tensors, *, config="tiny", backend="pysim", seed: int = 0,
              session=None, resident: bool = False, stage: bool = False, keep=(),
              state=None, discard=(), xent_results: bool = False, lean: bool = False,
              step=None, program_at=0, **backend_options) -> ChainResult:
    """Run a chain of contractions on the accelerator (module docstring).
    ``session`` reuses an open ``harness.Session`` (its config and backend win).
    ``resident=True`` keeps every intermediate on chip (``sim.resident``): the
    outputs returned are then the ones no step consumes and those named in ``keep``
    (read back although a later step consumes them); with ``stage=True`` the host
    writes each input densely (one word per element) and MOVEs lay it out; ``state``
    (``{input: {"state", "out_shift", "out_bits"}}``) names inputs the update unit lays
    out from its state memory instead of the host (their ``tensors`` value is what
    the golden model uses: the state memory must hold it); ``discard`` names results
    no step consumes that the host does not read (resident chains);
    ``xent_results``: the host reads the XENTs' accuracy count and loss sum
    (``ChainResult.resident.xent``, ``sim.resident.run_resident``); ``lean``: its
    programs run lean (no CLEAR, no counter reads: ``run_resident``); ``step``
    (``{"key", "lr"}``, resident chains): every program opens with that STEP
    (``sw_model/accel/step.py``), the steps' seeds are indices the key derives the
    seeds from (``literal_seeds``) and the updates take the STEP's learning rate
    (their ``lr`` must equal it): a training step's programs stay the same from
    step to step but for the STEP's two words. ``program_at`` (resident chains): the
    program word its programs are written at and started from (an int, or ``"top"``:
    the end of program memory; ``hostmap.program_base``).

    ``update`` epilogues (resident chains, configurations with the update unit): a
    list of optimizer updates run right after the step (``sw_model.program.update``:
    ADAM instructions on the step's result where it is in C, or, ``kind`` ``bias``,
    the sum over the batch of its xent gradient or masked output); they change only
    the update unit's state memory, so the chain's outputs do not show them."""
    from .harness import Session

    t0 = time.perf_counter()
    plan = check_chain(steps, tensors, seed)
    cfg = get_config(config)
    step = as_step(step)
    if step is not None and not resident:
        raise ValueError("step (a STEP opening every program) needs resident=True")
    if program_at != 0 and not resident:
        raise ValueError(f"program_at={program_at!r} places resident programs; pass "
                         f"resident=True (separate jobs start at word 0)")
    if not resident:
        for i, (spec, _, _, _, params) in enumerate(plan):
            if has_epilogue(params):
                raise ValueError(f"step {i} '{spec}': bias/act epilogues run on chip in a "
                                 f"resident chain; pass resident=True")
    own = session is None
    sess = Session(cfg, backend, **backend_options) if own else session
    if resident:
        from .resident import run_resident
        try:
            run = run_resident(plan, tensors, sess, stage=stage, keep=keep, state=state,
                               discard=discard, xent_results=xent_results, lean=lean,
                               step=step, program_at=program_at)
        finally:
            if own:
                sess.close()
        cfg = sess.config
        cyc = run.cycles
        busy = cyc["compute"] + cyc["on_chip_moves"] + cyc["elementwise"]
        return ChainResult(
            outputs=run.outputs, cycles={k: cyc[k] for k in ("compute", "on_chip_moves",
                                                             "elementwise",
                                                             "host_transfer", "total")},
            host_words=run.host_words, useful_macs=run.useful_macs,
            mac_utilization=run.useful_macs / (cfg.macs * busy) if busy else 0.0,
            mac_utilization_with_transfer=run.useful_macs / (cfg.macs * cyc["total"]),
            config=cfg.name, backend=sess.backend.name, steps=[],
            wall_seconds=time.perf_counter() - t0, resident=run)
    try:
        values = {k: np.asarray(v) for k, v in tensors.items()}
        results = []
        for spec, a, b, o, params in plan:
            res = sess.contract(spec, values[a], values[b], **params_of(params),
                                **slot_of(params))
            values[o] = res.output.reshape(params.get("reshape", res.output.shape))
            results.append(res)
    finally:
        if own:
            sess.close()
    cfg = sess.config
    compute = sum(r.cycles for r in results)
    words = {k: sum(r.host_words[k] for r in results) for k in ("written", "read",
                                                                  "skipped")}
    transfer = words["written"] + words["read"]
    useful = sum(r.useful_macs for r in results)
    total = compute + transfer
    return ChainResult(
        outputs={o: values[o] for _, _, _, o, _ in plan},
        cycles={"compute": compute, "on_chip_moves": 0, "host_transfer": transfer,
                "total": total},
        host_words=words, useful_macs=useful,
        mac_utilization=useful / (cfg.macs * compute) if compute else 0.0,
        mac_utilization_with_transfer=useful / (cfg.macs * total) if total else 0.0,
        config=cfg.name, backend=results[0].backend, steps=results,
        wall_seconds=time.perf_counter() - t0)


def load_chain_file(path, rng_seed: int = 0) -> tuple[list, dict, dict]:
    """Read a chain file (JSON): ``{"steps": [{"spec", "a", "b", "out", "shift"?,
    "rounding"?, "out_bits"?, "seed"?}, ...], "tensors": {name: {"shape": [...],
    "range": R?} or {"data": nested list}}, "config"?, "seed"?}``. Tensors given by
    shape are drawn uniformly from ``[-R, R)`` (default 1000) with ``rng_seed``.
    Returns ``(steps, tensors, options)``; raises FettaError naming what is wrong."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise FettaError(f"chain file {str(path)!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise FettaError(f"chain file {str(path)!r} is not JSON: {exc.msg} at line "
                         f"{exc.lineno}") from None
    if not isinstance(doc, dict) or "steps" not in doc or "tensors" not in doc:
        raise FettaError(f"chain file {str(path)!r}: expected an object with 'steps' and "
                         f"'tensors'")
    rng = np.random.default_rng(rng_seed)
    tensors = {}
    for name, t in doc["tensors"].items():
        if isinstance(t, dict) and "data" in t:
            tensors[name] = np.asarray(t["data"], dtype=np.int64)
        elif isinstance(t, dict) and "shape" in t:
            r = int(t.get("range", 1000))
            tensors[name] = rng.integers(-r, r, size=tuple(int(d) for d in t["shape"]))
        else:
            raise FettaError(f"chain file {str(path)!r}: tensor {name!r} needs 'shape' or "
                             f"'data'")
    steps = []
    for i, s in enumerate(doc["steps"]):
        if not isinstance(s, dict) or not {"spec", "a", "b", "out"} <= set(s):
            raise FettaError(f"chain file {str(path)!r}: step {i} needs 'spec', 'a', 'b', "
                             f"'out'")
        steps.append((s["spec"], s["a"], s["b"], s["out"],
                      {k: s[k] for k in s if k not in ("spec", "a", "b", "out")}))
    opts = {k: doc[k] for k in ("config", "seed") if k in doc}
    return steps, tensors, opts
