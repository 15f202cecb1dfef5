"""TTM training steps as tensor networks, and programs of pairwise contractions.

This module is the contract between the contraction-sequence search (``csse``), the
trainer and the accelerator compiler:

* ``ttm_tensors(d)`` fixes the index letters of every tensor of a d-core TTM layer;
* ``networks(d)`` lists the networks of one training step (forward, input gradient,
  one per core gradient) as (output name, input names);
* a ``Plan`` is an ordered list of pairwise ``Step``s (einsum specs on named tensors);
* ``execute_plan`` runs a plan with any pairwise contraction function (float einsum,
  the fixed-point golden model, or the simulated accelerator).

Conventions (Novikov's TT-matrix): core ``g{k}`` (k = 1..d) has shape
``(r_{k-1}, m_k, n_k, r_k)`` with ``r_0 = r_d = 1`` kept as size-1 axes; ``m`` are
output modes, ``n`` input modes; ``W[m_1..m_d, n_1..n_d] = prod_k G_k[:, m_k, n_k, :]``.
Activations: ``x`` is ``(B, n_1..n_d)``, ``y`` and ``dy`` are ``(B, m_1..m_d)``;
``dx`` has ``x``'s shape and ``dg{k}`` has ``g{k}``'s.

In the networks the boundary rank axes (``r_0``, ``r_d``, both 1) are squeezed: ``g1``
enters as ``(m_1, n_1, r_1)`` and ``gd`` as ``(r_{d-1}, m_d, n_d)`` (``ttm_shapes`` gives
these network shapes; reshape a stored ``(1, m, n, r)`` core with
``core.reshape(shapes["g1"])``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Step", "Plan", "ttm_tensors", "ttm_shapes", "check_layer_shape", "networks", "step_spec",
           "chain_plan", "execute_plan", "pairwise_macs"]

_BATCH = "z"
_IN = "abcdefgh"      # n_k
_OUT = "ijklmnop"     # m_k
_RANK = "ABCDEFGHI"   # r_0 .. r_d


def ttm_tensors(d: int) -> dict[str, str]:
    """Tensor name -> index letters for a d-core layer (d <= 8)."""
    if not 1 <= d <= 8:
        raise ValueError(f"number of TT cores {d} out of range; allowed 1..8")
    t = {"x": _BATCH + _IN[:d], "y": _BATCH + _OUT[:d], "dy": _BATCH + _OUT[:d],
         "dx": _BATCH + _IN[:d]}
    for k in range(1, d + 1):
        left = _RANK[k - 1] if k > 1 else ""
        right = _RANK[k] if k < d else ""
        t[f"g{k}"] = left + _OUT[k - 1] + _IN[k - 1] + right
        t[f"dg{k}"] = t[f"g{k}"]
    return t


def check_layer_shape(in_modes, out_modes, ranks, batch) -> None:
    """The one check of a TTM layer's shape (integer lists and batch): as many out modes
    as in modes, one rank per inner bond, every entry and the batch >= 1. One-line
    ``ValueError``s naming the value and what is allowed."""
    d = len(in_modes)
    if len(out_modes) != d:
        raise ValueError(f"out modes {out_modes} have {len(out_modes)} entries; in modes "
                         f"{in_modes} have {d}; they must match")
    if len(ranks) != d - 1:
        raise ValueError(f"ranks {ranks} have {len(ranks)} entries; allowed exactly "
                         f"{d - 1} (one per inner bond) for {d} cores")
    for name, vals in (("in mode", in_modes), ("out mode", out_modes), ("rank", ranks)):
        for v in vals:
            if int(v) < 1:
                raise ValueError(f"{name} {v} in {vals} invalid; allowed >= 1")
    if int(batch) < 1:
        raise ValueError(f"batch {batch} invalid; allowed >= 1")


def ttm_shapes(in_modes, out_modes, ranks, batch: int) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape. ``ranks`` are the d-1 inner ranks (r_1..r_{d-1})."""
    in_modes, out_modes, ranks = list(in_modes), list(out_modes), list(ranks)
    d = len(in_modes)
    check_layer_shape(in_modes, out_modes, ranks, batch)
    r = [1] + [int(v) for v in ranks] + [1]
    s = {"x": (batch, *in_modes), "dx": (batch, *in_modes),
         "y": (batch, *out_modes), "dy": (batch, *out_modes)}
    for k in range(1, d + 1):
        shape = ((r[k - 1],) if k > 1 else ()) + (out_modes[k - 1], in_modes[k - 1]) + \
            ((r[k],) if k < d else ())
        s[f"g{k}"] = s[f"dg{k}"] = shape
    return {k: tuple(int(x) for x in v) for k, v in s.items()}


def networks(d: int) -> list[tuple[str, tuple[str, ...]]]:
    """The networks of one training step: (output, inputs)."""
    cores = tuple(f"g{k}" for k in range(1, d + 1))
    nets = [("y", ("x",) + cores), ("dx", ("dy",) + cores)]
    for k in range(1, d + 1):
        nets.append((f"dg{k}", ("x", "dy") + tuple(c for c in cores if c != f"g{k}")))
    return nets


@dataclass(frozen=True)
class Step:
    """One pairwise contraction ``out = einsum(spec, a, b)`` on named tensors."""
    out: str
    a: str
    b: str
    spec: str
    shape: tuple[int, ...] = ()
    macs: int = 0


@dataclass
class Plan:
    """An ordered program of pairwise steps computing ``outputs`` from inputs.

    ``free_after[name] = i`` says tensor ``name`` may be freed after step ``i`` (for
    memory accounting); ``meta`` carries costs and search info."""
    steps: list[Step]
    outputs: tuple[str, ...]
    free_after: dict[str, int] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)


def pairwise_macs(ia: str, ib: str, sizes: dict[str, int]) -> int:
    """MACs of a pairwise contraction: the product of the sizes of all indices."""
    return int(np.prod([sizes[i] for i in set(ia) | set(ib)], dtype=np.int64))


def step_spec(ia: str, ib: str, keep: set[str], order: str | None = None) -> str:
    """Spec contracting ``ia`` with ``ib``, keeping indices in ``keep``. The output
    index order is ``order`` when given (a network's final output), else the order of
    first appearance in ``ia + ib``."""
    if order is None:
        out = "".join(dict.fromkeys(i for i in ia + ib if i in keep))
    else:
        out = order
    return f"{ia},{ib}->{out}"


def chain_plan(in_modes, out_modes, ranks, batch: int) -> Plan:
    """The simple left-to-right chain for every network of the step (no reuse):
    forward ``x.g1.g2...``; input gradient ``dy.g1.g2...``; core gradient k
    ``x.dy`` first, then the other cores in order."""
    shapes = ttm_shapes(in_modes, out_modes, ranks, batch)
    d = len(list(in_modes))
    idx = ttm_tensors(d)
    sizes = {}
    for name, letters in idx.items():
        sizes.update(zip(letters, shapes[name]))
    steps: list[Step] = []
    outputs = []
    for out, inputs in networks(d):
        cur_name, cur_idx = inputs[0], idx[inputs[0]]
        rest = list(inputs[1:])
        for j, nxt in enumerate(rest):
            later = "".join(idx[t] for t in rest[j + 1:]) + idx[out]
            keep = set(later)
            last = j == len(rest) - 1
            spec = step_spec(cur_idx, idx[nxt], keep, idx[out] if last else None)
            new_idx = spec.split("->")[1]
            name = out if last else f"{out}.t{j}"
            steps.append(Step(name, cur_name, nxt, spec,
                              tuple(sizes[i] for i in new_idx),
                              pairwise_macs(cur_idx, idx[nxt], sizes)))
            cur_name, cur_idx = name, new_idx
        outputs.append(out)
    return Plan(steps, tuple(outputs), meta={"planner": "chain"})


def execute_plan(plan: Plan, tensors: dict[str, np.ndarray],
                 contract: Callable[[Step, np.ndarray, np.ndarray], np.ndarray] | None = None,
                 ) -> dict[str, np.ndarray]:
    """Run ``plan`` on ``tensors``; ``contract(step, a, b)`` defaults to float einsum.
    Returns every tensor computed (intermediates included)."""
    if contract is None:
        def contract(step, a, b):
            return np.einsum(step.spec, a, b, optimize=False)
    env = dict(tensors)
    for step in plan.steps:
        for name in (step.a, step.b):
            if name not in env:
                raise ValueError(f"plan step '{step.out}' needs tensor '{name}', which no "
                                 f"earlier step or input provides")
        env[step.out] = contract(step, env[step.a], env[step.b])
    return env
