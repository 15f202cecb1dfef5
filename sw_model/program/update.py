"""The optimizer on chip: the ADAM instructions (``sw_model/accel/adam.py``) that update a
parameter tensor from its gradient where the gradient lives, and those that lay the
stored weights out for a step's contractions.

A parameter tensor's elements are numbered row-major (``e``): element ``e`` owns state
entry ``state + e`` and gets the recipe's dither index ``e`` (``FixedAdam.update`` rounds
a tensor with its flat index). The walks below visit elements in that order, cut into
strided nests (``moves.nests``), one ADAM each, whose ``state_base`` and ``index_base``
are the number of the nest's first element.

* ``update_core``: the gradient's words (``words[e]``, absolute word addresses in bank
  ``src``, e.g. a result's C layout); no destination word is written (``nowrite``: the
  next step lays the weights out with ``load_dense``).
* ``update_bias``: a bias gradient, the sum over the batch of an output gradient
  ``dy[b, j]`` (``words[b, j]``): element ``j`` reads its ``bsz`` words as the
  innermost (``reduce``) level, which must be one stride per element.
* ``load_dense``: the stored weights written densely (element ``e`` at word ``e`` from
  row ``dst_row`` of bank ``dst``), aligned with ``out_shift``/``out_bits`` (the
  contraction's 4-bit codes, or a bias aligned to its layer's output).

Cost (``VecPlan.cycles``): ``adam.adam_cycles`` of every ADAM; exact (the RTL's CYCLES).

Members: ``update_core``, ``update_bias``, ``load_dense``, ``UPDATE_KEYS``.
"""

from __future__ import annotations

import numpy as np

from ..accel.adam import Adam
from ..accel.config import AccelConfig
from ..accel.move import MOVE_LEVELS, Move, MoveLevel, buffer_lanes
from ..accel.timing import timing
from .elementwise import VecPlan
from .moves import nests

__all__ = ["update_core", "update_bias", "load_dense", "UPDATE_KEYS"]

#: The parameters of one tensor's update: its first state entry, ``lr_q`` (Q30), the
#: two seeds, the gradient's alignment to the moment frac, the master width, the
#: (1 - beta) factors in Q24.
UPDATE_KEYS = ("state", "lr", "seeds", "gshift", "w_bits", "step_shift", "b1", "b2")


def _other(bank: str) -> str:
    return "A" if bank != "A" else "B"


def _check(cfg: AccelConfig, p: dict, n: int) -> None:
    if not cfg.adam_entries:
        raise ValueError(f"config '{cfg.name}' has no update unit (adam_entries=0); the "
                         f"host updates the weights")
    missing = [k for k in UPDATE_KEYS if k not in p]
    if missing:
        raise ValueError(f"update parameters lack {missing[0]!r}; needed "
                         f"{', '.join(UPDATE_KEYS)}")
    if not (0 <= int(p["state"]) and int(p["state"]) + n <= cfg.adam_entries):
        raise ValueError(f"update state entries {p['state']}..{int(p['state']) + n - 1} "
                         f"outside the state memory; allowed 0..{cfg.adam_entries - 1}")


def _adam(mv: Move, p: dict, first: int, **kw) -> Adam:
    s0, s1 = p["seeds"]
    # after a STEP (``lr_step``, set by the resident run): the STEP's learning rate
    step = bool(p.get("lr_step"))
    return Adam(mv, state_base=int(p["state"]) + first, lr=0 if step else int(p["lr"]),
                lr_step=step, seed0=int(s0), seed1=int(s1), step_shift=int(p["step_shift"]), gshift=int(p["gshift"]),
                w_bits=int(p["w_bits"]), b1=int(p["b1"]), b2=int(p["b2"]),
                index_base=first, **kw)


def update_core(cfg: AccelConfig, words, src: str, p: dict) -> VecPlan:
    """ADAMs updating the tensor whose element ``e``'s gradient is word ``words[e]``
    of bank ``src`` (parameters ``p``: ``UPDATE_KEYS``)."""
    s = np.asarray(words, dtype=np.int64).reshape(-1)
    _check(cfg, p, len(s))
    tm, out, cycles, first = timing(cfg), [], 0, 0
    for s0, _, levels in nests(s, np.zeros_like(s)):
        mv = Move(src, _other(src), s0, 0, tuple(MoveLevel(c, ss, 0) for c, ss, _ in levels))
        x = _adam(mv, p, first, nowrite=True)
        out.append(x)
        cycles += x.cycles(tm.fetch)
        first += x.elements
    return VecPlan(tuple(out), len(s), cycles)


def update_bias(cfg: AccelConfig, words, src: str, p: dict) -> VecPlan:
    """ADAMs updating a bias from ``dy`` whose element ``(b, j)`` is word ``words[b, j]``
    of bank ``src``: element ``j``'s gradient is the sum over ``b``."""
    w = np.asarray(words, dtype=np.int64)
    if w.ndim != 2:
        raise ValueError(f"bias gradient words of shape {w.shape}; expected (batch, "
                         f"elements)")
    bsz, n = w.shape
    _check(cfg, p, n)
    stride = w[1] - w[0] if bsz > 1 else np.zeros(n, np.int64)
    if bsz > 2 and not (np.diff(w, axis=0) == stride).all():
        j = int(np.flatnonzero(~(np.diff(w, axis=0) == stride).all(axis=0))[0])
        raise ValueError(f"bias gradient element {j}: its batch words are not one "
                         f"stride apart; a reduce level needs them so")
    tm, out, cycles, first = timing(cfg), [], 0, 0
    starts = w[0]
    # cut where the batch stride changes, then into nests of the starts
    cut = [0, *(np.flatnonzero(np.diff(stride)) + 1).tolist(), n]
    for lo, hi in zip(cut, cut[1:]):
        st = int(stride[lo])
        for s0, _, levels in nests(starts[lo:hi], np.zeros(hi - lo, np.int64),
                                   MOVE_LEVELS - 1):
            lv = tuple(MoveLevel(c, ss, 0) for c, ss, _ in levels) + \
                (MoveLevel(bsz, st, 0),)
            x = _adam(Move(src, _other(src), s0, 0, lv), p, first, reduce=True,
                      nowrite=True)
            out.append(x)
            cycles += x.cycles(tm.fetch)
            first += x.elements
    return VecPlan(tuple(out), n * bsz, cycles)


def load_dense(cfg: AccelConfig, n: int, state: int, *, out_shift: int, out_bits: int,
               dst: str, dst_row: int = 0) -> VecPlan:
    """ADAMs (``load``) writing the stored weights of state entries ``state..state+n-1``
    densely from row ``dst_row`` of bank ``dst``, aligned (``out_shift``,
    ``out_bits``)."""
    if not cfg.adam_entries:
        raise ValueError(f"config '{cfg.name}' has no update unit (adam_entries=0); the "
                         f"host writes the weights")
    if not (0 <= state and state + n <= cfg.adam_entries):
        raise ValueError(f"state entries {state}..{state + n - 1} outside the state "
                         f"memory; allowed 0..{cfg.adam_entries - 1}")
    tm, out, cycles = timing(cfg), [], 0
    base = dst_row * buffer_lanes(cfg, dst)
    d = base + np.arange(n, dtype=np.int64)
    first = 0
    for d0, _, levels in nests(d, np.zeros(n, np.int64)):
        mv = Move(_other(dst), dst, 0, d0, tuple(MoveLevel(c, 0, ds) for c, ds, _ in levels))
        x = Adam(mv, state_base=state + first, lr=0, seed0=0, seed1=0, step_shift=0,
                 out_shift=int(out_shift), out_bits=int(out_bits), load=True)
        out.append(x)
        cycles += x.cycles(tm.fetch)
        first += x.elements
    return VecPlan(tuple(out), n, cycles)
