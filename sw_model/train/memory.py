"""Training-memory accounting: TT training at a given precision vs the equivalent dense
network trained in FP32.

How we count (bytes = bits / 8, summed over all layers, one training step at batch B):

* ``weights``: the copy the contractions read. fixed: 4-bit cores (pow2: 4-bit codes);
  float: FP32 cores. Biases are not here (they live only as master copies).
* ``master_weights``: fixed/pow2: 8-bit master cores + 16-bit biases; float: the FP32
  biases (the FP32 cores are the master, already in ``weights``).
* ``optimizer_state``: Adam's two moments, 32 bits each, per parameter (cores + biases).
* ``gradients``: one gradient per parameter: 16 bits (fixed) / 32 bits (float).
* ``activations``: tensors saved between forward and backward, at batch B: each layer's
  input (8-bit activations, 8-bit pixels / FP32), the forward intermediates the plan's
  backward reuses (16-bit / FP32; the chain plan recomputes, so none), and one ReLU mask
  bit per hidden unit (FP32 training saves the FP32 pre-activation instead).
* dense FP32 baseline: same layer sizes with dense W; FP32 weights, 2 FP32 Adam moments
  and an FP32 gradient per parameter, FP32 layer inputs and hidden pre-activations.

Float-mode TT is counted at FP32 (the golden model runs float64, but FP32 is what a
float accelerator would store). For ``mnist-tt`` the report also gives the paper's dense
reference, a 784-512-10 MLP (407,050 parameters), counted the same way.
"""

from __future__ import annotations

from math import prod
from typing import Callable

from ..ttm.models import ModelConfig, tt_params
from .quant_train import FixedRecipe
from ..ttm.csse import csse_planner
from ..ttm.layers import layer_plans
from ..ttm.plan import Plan

__all__ = ["memory_report", "dense_mlp_memory", "CATEGORIES"]

CATEGORIES = ("weights", "master_weights", "optimizer_state", "gradients", "activations")


def _bytes(bits: float) -> int:
    return int(-(-int(bits) // 8))


def dense_mlp_memory(sizes, batch: int) -> dict:
    """FP32 Adam training of a dense MLP with layer widths ``sizes``."""
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    acts = sum(sizes[:-1]) * batch + sum(sizes[1:-1]) * batch
    d = {"params": params, "weights": 4 * params, "master_weights": 0,
         "optimizer_state": 8 * params, "gradients": 4 * params, "activations": 4 * acts}
    d["total"] = sum(d[c] for c in CATEGORIES)
    return d


def memory_report(model: ModelConfig, precision: str = "fixed", batch: int = 64,
                  recipe: FixedRecipe | None = None, optimizer: str = "adam",
                  planner: Callable[..., Plan] = csse_planner) -> dict:
    rc = recipe or FixedRecipe()
    fixed = precision != "float"
    n_tt = sum(tt_params(l) for l in model.layers)
    n_bias = model.bias_params
    n_par = n_tt + n_bias
    if fixed:
        wbits = rc.pow2_bits if precision == "pow2" else rc.weight_bits
        weights = n_tt * wbits
        master = n_tt * rc.master_bits + n_bias * rc.bias_bits
        grads = n_par * rc.grad_bits
        opt = n_par * 2 * rc.moment_bits
    else:
        weights = n_tt * 32
        master = n_bias * 32
        grads = n_par * 32
        opt = n_par * (64 if optimizer == "adam" else 32)
    acts = 0
    last = len(model.layers) - 1
    for l, layer in enumerate(model.layers):
        parts = layer_plans(layer.in_modes, layer.out_modes, layer.ranks, batch,
                            need_dx=l > 0, planner=planner)
        in_bits = (rc.input_bits if l == 0 else rc.act_bits) if fixed else 32
        for name in parts.saved:
            if name == "x":
                acts += batch * layer.n_in * in_bits
            else:
                shape = next(s.shape for s in parts.forward.steps if s.out == name)
                acts += prod(shape) * (rc.inter_bits if fixed else 32)
        if l < last:
            acts += batch * layer.n_out * (1 if fixed else 32)
    tt = {"weights": _bytes(weights), "master_weights": _bytes(master),
          "optimizer_state": _bytes(opt), "gradients": _bytes(grads),
          "activations": _bytes(acts)}
    tt["total"] = sum(tt[c] for c in CATEGORIES)
    sizes = [model.layers[0].n_in] + [l.n_out for l in model.layers]
    dense = dense_mlp_memory(sizes, batch)
    rep = {"precision": precision, "batch": batch, "tt_params": n_tt,
           "bias_params": n_bias, "tt": tt, "dense_fp32": dense,
           "reduction_total": dense["total"] / tt["total"],
           "reduction_weights": dense["weights"] / max(1, tt["weights"]),
           "reduction_params": dense["params"] / n_par}
    if model.name == "mnist-tt":
        paper = dense_mlp_memory([784, 512, 10], batch)
        rep["dense_paper_fp32"] = paper
        rep["reduction_total_vs_paper_dense"] = paper["total"] / tt["total"]
        rep["reduction_weights_vs_paper_dense"] = paper["weights"] / max(1, tt["weights"])
    return rep
