"""Tensor-train-matrix (TTM) layer: forward, input gradient and core gradients as a
``Plan`` of pairwise contractions run by ``plan.execute_plan``. W is never formed in
training (``to_dense`` exists for tests only).

Layout (plan.py conventions): core k is stored ``(r_{k-1}, m_k, n_k, r_k)`` with
``r_0 = r_d = 1``; in the networks the boundary rank axes are squeezed
(``network_cores``). ``x`` is ``(B, N)`` flat with ``N = prod n_k`` (row-major over
``n_1..n_d``), ``y = x @ W.T`` is ``(B, M)``.

Phases. The step's plan (all networks: ``y``, ``dx``, every ``dg{k}``) is split by
``split_plan``: the *forward* part is every step that does not depend on ``dy`` and is
needed by ``y`` or by the backward part (so forward intermediates a joint planner
shares with the core gradients are computed once and saved); the *backward* part is
every step that depends on ``dy`` and is needed by the gradients wanted (``dx`` is
skipped for the first layer). The forward-only plan (evaluation) keeps only what ``y``
needs. Plans come from the ``planner`` the caller passes (default: the CSSE's joint
MAC-optimal plan, ``csse.csse_planner``) and are cached by (planner, shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Callable

import numpy as np

from .csse import csse_planner
from .plan import Plan, Step, execute_plan

__all__ = ["init_cores", "to_dense", "network_cores", "get_plan", "split_plan", "backward_phases", "is_root",
           "PlanParts", "layer_plans", "float_contract", "ttm_forward", "ttm_backward",
           "core_shapes", "clear_plan_cache"]

_PLAN_CACHE: dict = {}


def core_shapes(in_modes, out_modes, ranks) -> list[tuple[int, int, int, int]]:
    r = [1, *[int(v) for v in ranks], 1]
    return [(r[k], int(out_modes[k]), int(in_modes[k]), r[k + 1])
            for k in range(len(in_modes))]


def init_cores(in_modes, out_modes, ranks, rng: np.random.Generator,
               gain: float = 2.0) -> list[np.ndarray]:
    """Gaussian cores with equal variance per core such that every element of W has
    variance ``gain / N`` (He init for ReLU with gain 2): for iid cores
    ``Var(W) = prod_k sigma_k**2 * prod inner ranks``."""
    shapes = core_shapes(in_modes, out_modes, ranks)
    n = prod(int(v) for v in in_modes)
    var_w = gain / n
    sigma = (var_w / prod(int(r) for r in ranks)) ** (1.0 / (2 * len(shapes)))
    return [rng.standard_normal(s) * sigma for s in shapes]


def to_dense(cores) -> np.ndarray:
    """W (M x N) from the cores: for tests and the memory baseline only."""
    t = np.asarray(cores[0])[0]                       # (m1, n1, r1)
    m, n = t.shape[0], t.shape[1]
    for g in cores[1:]:
        t = np.einsum("abr,rcds->acbds", t, g).reshape(m * g.shape[1], n * g.shape[2],
                                                       g.shape[3])
        m, n = m * g.shape[1], n * g.shape[2]
    return t[:, :, 0]


def network_cores(cores) -> dict[str, np.ndarray]:
    """Stored ``(r, m, n, r)`` cores -> the networks' tensors ``g1..gd`` (boundary rank
    axes squeezed)."""
    d = len(cores)
    out = {}
    for k, g in enumerate(cores, start=1):
        sl = g
        if k == 1:
            sl = sl[0]
        if k == d:
            sl = sl[..., 0]
        out[f"g{k}"] = sl
    return out


def get_plan(in_modes, out_modes, ranks, batch: int,
             planner: Callable[..., Plan] = csse_planner) -> Plan:
    """The plan of one training step from ``planner(in_modes, out_modes, ranks,
    batch)``, cached by (planner, shapes)."""
    key = (planner, tuple(int(v) for v in in_modes), tuple(int(v) for v in out_modes),
           tuple(int(v) for v in ranks), int(batch))
    p = _PLAN_CACHE.get(key)
    if p is None:
        p = planner(list(key[1]), list(key[2]), list(key[3]), key[4])
        _PLAN_CACHE[key] = p
    return p


def clear_plan_cache() -> None:
    _PLAN_CACHE.clear()


def _needed(steps: list[Step], targets: set[str]) -> set[str]:
    """Names of the steps (by output) needed to compute ``targets``."""
    producer = {s.out: s for s in steps}
    need, todo = set(), list(targets)
    while todo:
        name = todo.pop()
        if name in need or name not in producer:
            continue
        need.add(name)
        s = producer[name]
        todo += [s.a, s.b]
    return need


@dataclass(frozen=True)
class PlanParts:
    """A training step's plan split into phases (see the module docstring)."""
    full: Plan
    forward: Plan          # y and the dy-free intermediates the backward reuses
    backward: Plan         # dy-dependent steps for dg{k} (and dx when wanted)
    inference: Plan        # only what y needs
    saved: tuple[str, ...]  # forward-phase tensors (incl. x, cores) the backward reads


def is_root(name: str) -> bool:
    """A layer plan's result the trainer uses on the host: ``y``, ``dx`` or a core
    gradient ``dg{k}``; every other plan tensor is an intermediate that only later
    contractions read."""
    return name in ("y", "dx") or (name.startswith("dg") and name[2:].isdigit())


def backward_phases(steps) -> dict[str, str]:
    """Training phase of each backward contraction: ``steps`` are ``(out, a, b)``
    (output and operand names, in any order); a step whose output only ``dx`` needs
    is ``"input_gradient"``, every other (a core gradient ``dg*`` or anything it
    needs) ``"core_gradients"``. Returns output name -> phase. The one attribution
    used by the step event counts, the sweeps and training on the RTL."""
    producers = {out: (a, b) for out, a, b in steps}

    def needed_by(roots) -> set:
        seen, todo = set(), [r for r in roots if r in producers]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += [p for p in producers[n] if p in producers]
        return seen

    dx = needed_by(["dx"])
    dg = needed_by([o for o in producers if o.startswith("dg")])
    return {out: "input_gradient" if out in dx and out not in dg else "core_gradients"
            for out in producers}


def split_plan(p: Plan, d: int, need_dx: bool = True) -> PlanParts:
    dep = {"dy"}
    for s in p.steps:
        if s.a in dep or s.b in dep:
            dep.add(s.out)
    grads = {f"dg{k}" for k in range(1, d + 1)} | ({"dx"} if need_dx else set())
    missing = [g for g in grads | {"y"} if g not in {s.out for s in p.steps}]
    if missing:
        raise ValueError(f"plan from {p.meta.get('planner', 'planner')} computes no "
                         f"'{missing[0]}'; a TTM step plan must produce y, dx, dg1..dg{d}")
    bwd_need = _needed(p.steps, grads)
    y_need = _needed(p.steps, {"y"})
    fwd_need = y_need | {n for n in bwd_need if n not in dep}
    fwd = [s for s in p.steps if s.out in fwd_need]
    bwd = [s for s in p.steps if s.out in bwd_need and s.out in dep]
    inf = [s for s in p.steps if s.out in y_need]
    produced_fwd = {s.out for s in fwd}
    saved = []
    for s in bwd:
        for n in (s.a, s.b):
            if n not in dep and n not in saved and (n in produced_fwd or n == "x"):
                saved.append(n)
    return PlanParts(p, Plan(fwd, ("y",), meta=dict(p.meta, phase="forward")),
                     Plan(bwd, tuple(sorted(grads)), meta=dict(p.meta, phase="backward")),
                     Plan(inf, ("y",), meta=dict(p.meta, phase="inference")),
                     tuple(saved))


def layer_plans(in_modes, out_modes, ranks, batch: int, need_dx: bool = True,
                planner: Callable[..., Plan] = csse_planner) -> PlanParts:
    """``get_plan`` split into phases (``split_plan``), cached by (planner, shapes)."""
    key = ("parts", planner, tuple(in_modes), tuple(out_modes),
           tuple(ranks), int(batch), bool(need_dx))
    parts = _PLAN_CACHE.get(key)
    if parts is None:
        parts = split_plan(get_plan(in_modes, out_modes, ranks, batch, planner), len(in_modes),
                           need_dx)
        _PLAN_CACHE[key] = parts
    return parts


def float_contract(step: Step, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 pairwise contraction (BLAS through einsum's tensordot path)."""
    return np.einsum(step.spec, a, b, optimize=True)


def ttm_forward(cores, x: np.ndarray, in_modes, out_modes, plan: Plan,
                contract: Callable | None = None, extra: dict | None = None):
    """Run the forward (or inference) plan. ``x`` is (B, N). Returns ``(y (B, M), env)``
    where ``env`` holds every tensor computed (saved for the backward)."""
    bsz = x.shape[0]
    tensors = {"x": x.reshape(bsz, *in_modes), **network_cores(cores), **(extra or {})}
    env = execute_plan(plan, tensors, contract or float_contract)
    return env["y"].reshape(bsz, -1), env


def ttm_backward(cores, env: dict, dy: np.ndarray, out_modes, plan: Plan,
                 contract: Callable | None = None, need_dx: bool = True):
    """Run the backward plan given the forward ``env`` and ``dy`` (B, M). Returns
    ``(dx (B, N) or None, [dG_k in stored (r, m, n, r) shape])``."""
    bsz = dy.shape[0]
    tensors = dict(env)
    tensors.update(network_cores(cores))
    tensors["dy"] = dy.reshape(bsz, *out_modes)
    out = execute_plan(plan, tensors, contract or float_contract)
    grads = [out[f"dg{k}"].reshape(g.shape) for k, g in enumerate(cores, start=1)]
    dx = out["dx"].reshape(bsz, -1) if need_dx else None
    return dx, grads
