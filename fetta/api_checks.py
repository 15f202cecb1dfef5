"""The validation layer at the public API edge: ``run_contraction``,
``Session.contract`` and every backend's ``read``/``write`` check their arguments
here, once, before anything is compiled or touches a simulator.

Each check returns the value normalized (plain ``int``, ``Spec``, ``Mapping``, int64
operand arrays) or raises a one-line ``TypeError`` (wrong kind of value) or
``ValueError`` (right kind, outside what is allowed) naming the value and what is
allowed. NumPy integer scalars are taken as integers; ``bool``, floats and strings
are not (``True`` is not the seed 1, ``"5"`` not the number 5).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.arith.contraction import check_operand
from fetta.sw_model.arith.einsum_spec import Spec, parse_spec
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, Pow2Code
from fetta.sw_model.accel.hostmap import ADDR_BITS
from fetta.sw_model.accel.isa import Mapping

__all__ = ["check_int", "check_contract_args", "check_run_params", "check_bus_write",
           "check_bus_read"]

_ADDR_LIMIT = 1 << ADDR_BITS


def check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    """``value`` as a Python int in ``lo..hi`` (``hi=None``: no upper bound)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral,
                                                                    np.integer)):
        allowed = f"an integer {lo}..{hi}" if hi is not None else f"an integer >= {lo}"
        raise TypeError(f"{name}={value!r} ({type(value).__name__}) invalid; allowed "
                        f"{allowed}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={v} out of range; allowed {allowed}")
    return v


def _spec(spec) -> Spec:
    if isinstance(spec, Spec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"spec={spec!r} ({type(spec).__name__}) invalid; allowed an "
                        f"einsum string such as 'mk,kn->mn'")
    return parse_spec(spec)


def _mapping(mapping, cfg: AccelConfig) -> Mapping | None:
    if mapping is None:
        return None
    if isinstance(mapping, Mapping):
        fields = (mapping.ga, mapping.gb, mapping.gk)
    elif isinstance(mapping, (tuple, list)) and len(mapping) == 3:
        fields = tuple(mapping)
    else:
        raise TypeError(f"mapping={mapping!r} invalid; allowed None, a Mapping or "
                        f"(ga, gb, gk) with ga*gb*gk = n_ce = {cfg.n_ce}")
    ga, gb, gk = (check_int(f"mapping {n}", v, 1, cfg.n_ce)
                  for n, v in zip(("ga", "gb", "gk"), fields))
    return Mapping(ga, gb, gk).check(cfg)


def _operand(name: str, x, bits: int) -> np.ndarray:
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise TypeError(f"operand {name}={x!r} invalid; allowed an integer array")
    arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if arr.dtype.kind not in "iu":
        raise TypeError(f"operand {name} dtype {arr.dtype} invalid; allowed integer "
                        f"arrays")
    if arr.ndim == 0:
        raise ValueError(f"operand {name} is a scalar; allowed arrays with >= 1 dims")
    return check_operand(name, arr, bits)


def check_contract_args(cfg: AccelConfig, spec, a, b, *, shift, rounding, out_bits, seed,
                        mapping, max_cycles) -> dict:
    """All arguments of one contraction, normalized (keys as the arguments)."""
    sp = _spec(spec)
    a = _operand("A", a, cfg.operand_bits)
    if cfg.mac_kind == "shift":
        if not isinstance(b, np.ndarray) and (b is None or isinstance(b, (str, bytes))):
            raise TypeError(f"operand B={b!r} invalid; allowed an array of power-of-two "
                            f"codes")
        b = Pow2Code(cfg.pow2_bits).check(np.asarray(b))
    else:
        b = _operand("B", b, cfg.operand_bits)
    sp.sizes(a.shape, b.shape)
    out = dict(spec=sp, a=a, b=b)
    out.update(check_run_params(cfg, shift=shift, rounding=rounding, out_bits=out_bits,
                                seed=seed, mapping=mapping, max_cycles=max_cycles))
    return out


def check_run_params(cfg: AccelConfig, *, shift, rounding, out_bits, seed, mapping,
                     max_cycles) -> dict:
    """The scalar arguments of a contraction (no operands), normalized."""
    if not isinstance(rounding, str) or rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding={rounding!r} unknown; allowed "
                         f"{', '.join(ROUNDING_MODES)}")
    out = dict(shift=check_int("shift", shift, 0, cfg.acc_bits - 1),
               rounding=rounding,
               out_bits=check_int("out_bits", out_bits, 2, 16),
               seed=check_int("seed", seed, 0, (1 << 32) - 1),
               mapping=_mapping(mapping, cfg),
               max_cycles=None if max_cycles is None else
               check_int("max_cycles", max_cycles, 1))
    return out


def check_bus_read(addr, count) -> tuple[int, int]:
    """A host-bus read of ``count`` words from ``addr``, inside the address space."""
    addr = check_int("addr", addr, 0, _ADDR_LIMIT - 1)
    count = check_int("count", count, 0, _ADDR_LIMIT - addr)
    return addr, count


def check_bus_write(addr, words: Sequence[int]) -> tuple[int, np.ndarray]:
    """A host-bus write: ``words`` as uint32 (each an integer -2**31..2**32-1, i.e. a
    signed or an unsigned 32-bit value), inside the address space."""
    addr = check_int("addr", addr, 0, _ADDR_LIMIT - 1)
    if isinstance(words, (str, bytes)) or words is None:
        raise TypeError(f"words={words!r} invalid; allowed a sequence of integers")
    arr = words if isinstance(words, np.ndarray) else np.asarray(list(words))
    if arr.size == 0:
        return addr, np.zeros(0, dtype=np.uint32)
    if arr.dtype.kind not in "iu":
        bad = next((w for w in arr.reshape(-1).tolist()
                    if isinstance(w, bool) or not isinstance(w, numbers.Integral)),
                   arr.reshape(-1)[0])
        raise TypeError(f"bus word {bad!r} invalid; allowed integers "
                        f"{-(1 << 31)}..{(1 << 32) - 1}")
    arr = arr.reshape(-1)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < -(1 << 31) or hi > (1 << 32) - 1:
        bad = lo if lo < -(1 << 31) else hi
        raise ValueError(f"bus word {bad} out of range; allowed {-(1 << 31)}.."
                         f"{(1 << 32) - 1}")
    if addr + arr.size > _ADDR_LIMIT:
        raise ValueError(f"bus write of {arr.size} words at {addr:#x} runs past the "
                         f"address space; allowed up to {_ADDR_LIMIT - 1:#x}")
    return addr, (arr.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
