"""A model's fixed-point inference forward pass as one chain: every layer's TT
contractions, its bias and (hidden layers) ReLU with the activation requantization as
on-chip epilogues, the layer's output reshaped into the next layer's input — the
whole pass runs resident, the host writing the quantized batch, the contraction
weights and the aligned biases and reading the logits (``sim.chain``, ``resident=True``).

``plan_chain(tr, xq, wc)`` builds the chain from the layers' inference plans and the
trainer's calibrated shifts, without running anything (None while a shift of the
pass is not calibrated yet: the trainer's own pass calibrates it): the plans' specs
and shifts, eval rounding, the output widths of the recipe; the biases aligned to each
layer output's binary point on the host (``quant_train.align``, as the recipe does
every step); the activation shifts the trainer's ``L{l}:act`` controllers'. It is
what ``fetta train --backend rtl --resident --eval-chains`` evaluates with.
``inference_chain(tr, x)`` runs the trainer's own pass first (calibrating) and returns
the chain with the trainer's logits codes, which a run of the chain must reproduce
bit for bit.

Fixed precision only (``pow2`` weights need a shift-MAC configuration and swap
operands). Names: ``L{l}/{tensor}`` of each layer's plan; ``L{l}/z`` a hidden layer's
pre-activation (``pre``), ``L{l+1}/x`` its activation, ``L{last}/y`` the logits
(batch x classes codes, as the trainer's).

Members: ``inference_chain``, ``plan_chain``.
"""

from __future__ import annotations

import numpy as np

from fetta.sw_model.train.quant_train import align
from fetta.sw_model.ttm.layers import layer_plans, network_cores

__all__ = ["inference_chain", "plan_chain"]


def inference_chain(tr, x) -> tuple[list, dict, np.ndarray]:
    """``(steps, tensors, logits codes)`` of trainer ``tr``'s inference pass on ``x``:
    the trainer runs its own pass (calibrating any shift not calibrated yet) and
    ``plan_chain`` rewrites it; a run of the chain must give the same logits."""
    if tr.cfg.precision != "fixed":
        raise ValueError(f"inference_chain needs precision fixed; the trainer is "
                         f"{tr.cfg.precision}")
    path = tr.path
    tr.contraction_index = 0
    xq, wc = path.quantize_input(x), path.contraction_weights()
    z, _, _ = path.forward(xq, wc, False)
    steps, tensors, _, _ = plan_chain(tr, xq, wc)
    return steps, tensors, np.asarray(z, dtype=np.int64)


def plan_chain(tr, xq, wc, plan_batch: int | None = None, slots: dict | None = None):
    """``(steps, tensors, logits name, logits frac)`` of trainer ``tr``'s inference pass
    on quantized inputs ``xq`` with contraction weights ``wc``, from the plans (the
    plans of ``plan_batch`` rows, default ``len(xq)``: per-sample results do not depend
    on the batch) and the calibrated shifts; None while one is not calibrated.
    ``slots`` (controller key -> shift slot): a contraction whose controller has a slot
    takes its shift from it on chip (vote none; ``shift`` stays the expected value)."""
    if tr.cfg.precision != "fixed":
        raise ValueError(f"plan_chain needs precision fixed; the trainer is "
                         f"{tr.cfg.precision}")
    rc, layers = tr.cfg.recipe, tr.model.layers
    last, bsz = len(layers) - 1, xq.shape[0]
    wf = tr.path.weight_frac()
    steps, tensors = [], {"L0/x": np.asarray(xq, np.int64).reshape(bsz,
                                                                   *layers[0].in_modes)}
    fh = rc.input_frac
    for l, layer in enumerate(layers):
        parts = layer_plans(layer.in_modes, layer.out_modes, tr.ranks[l],
                            plan_batch or bsz, need_dx=l > 0, planner=tr.planner)
        for k, g in network_cores(wc[l]).items():
            tensors[f"L{l}/{k}"] = np.asarray(g, np.int64)
        fracs = {"x": fh}
        for st in parts.inference.steps:
            ctl = tr.shifts.get(f"L{l}:{st.out}")
            if ctl is None or not ctl.ready:
                return None
            fracs[st.out] = fracs.get(st.a, wf) + fracs.get(st.b, wf) - ctl.shift
            params = {"shift": ctl.shift, "rounding": rc.eval_rounding,
                      "out_bits": rc.inter_bits, "seed": 0}
            if slots and f"L{l}:{st.out}" in slots:
                params["slot"] = slots[f"L{l}:{st.out}"]
            out = f"L{l}/{st.out}"
            if st.out == "y":
                fy = fracs["y"]
                tensors[f"L{l}/bias"] = align(tr.bias[l], rc.bias_frac, fy,
                                              rc.inter_bits).reshape(layer.out_modes)
                params["bias"] = f"L{l}/bias"
                if l < last:
                    act = tr.shifts.get(f"L{l}:act")
                    if act is None or not act.ready:
                        return None
                    params.update(act={"shift": act.shift, "rounding": rc.eval_rounding,
                                       "out_bits": rc.act_bits, "seed": 0},
                                  pre=f"L{l}/z", reshape=(bsz, *layers[l + 1].in_modes))
                    out, fh = f"L{l + 1}/x", fy - act.shift
                else:
                    params["reshape"] = (bsz, layer.n_out)
                    logits = (out, fy)
            steps.append((st.spec, f"L{l}/{st.a}", f"L{l}/{st.b}", out, params))
    return steps, tensors, *logits
