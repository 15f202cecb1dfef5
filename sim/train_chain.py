"""A model's whole fixed-point training step — forward, loss gradient, backward — as
one chain: every layer's TT contractions (the CSSE plans' forward and backward, in
the trainer's order), the biases, ReLU with the activation requantization, the
softmax cross-entropy gradient of the logits (``xent``: the XENT instruction, labels
one word per sample) and ReLU's backward mask, all on chip as contractions and
epilogues of one resident chain (``sim.chain``); the tensors the backward reuses stay
in the buffers between the phases.

``plan_step_chain(tr, xq, wc, labels, slots=None)`` builds the chain of trainer
``tr``'s next training step on quantized inputs ``xq`` with contraction weights
``wc`` — the same specs, shifts, stochastic-rounding seeds (drawn from
``tr.next_seed`` in the trainer's order: each layer's forward contractions, its
activation, then the layers' backward contractions in reverse), output widths and
aligned biases as ``FixedPath.gradients`` — or returns None, drawing no seed, while a
shift controller of the step is not calibrated (the trainer's own step calibrates
it). With ``slots`` (controller key -> shift slot) every contraction and the
activations take their shifts from the slots and cast a closing vote, so the shifts
move on chip exactly as the trainer's controllers do.

``step_gradients(sc, outputs)`` turns the chain's outputs into what
``FixedPath.gradients`` returns (logit codes and frac, core gradients, bias
gradients): the host reads the logits (loss, accuracy), every core gradient and each
layer's output gradient ``dy``, whose sum over the batch is the bias gradient (a sum
wider than a 16-bit word, computed on the host). Fixed precision only (pow2 weights
need a shift-MAC preset and swapped operands).

With ``update`` the step's optimizer runs on chip too (``sw_model.program.update``):
each core gradient is followed by its ADAM (fixed-point Adam on the update unit's state
memory, ``sw_model/accel/adam.py``) and each layer's output gradient by its bias's
(the sum over the batch); the weights and biases the step reads are laid out from the
state memory (the chain's ``state`` inputs: 4-bit weight codes, biases aligned to
their layer's output), so the host writes neither. Parameters, seeds (the ones the
trainer's own update draws next, in its order), learning rate and moment fracs are the
trainer's ``FixedAdam``'s; state entries in its order (``state_layout``). The trainer's
own update stays the golden model: after the step the state memory must equal its
moments and master codes. Not with rank adaptation (its prior term stays on the host).

Names: ``L{l}/{tensor}`` of layer ``l``'s plan, ``L{l}/z`` a hidden layer's
pre-activation (the mask of the layer above's ``dx``), ``L{l+1}/x`` its activation,
``L{l}/dy`` the gradient at layer ``l``'s output (the xent's, or the layer above's
masked ``dx``), ``labels`` the labels.

Members: ``StepChain``, ``plan_step_chain``, ``step_keys``, ``step_gradients``,
``state_layout``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fetta.sw_model.accel.step import StepParams
from fetta.sw_model.arith.fixedpoint import dither_hash
from fetta.sw_model.train.quant_train import align, derive_seed, xent_frac
from fetta.sw_model.ttm.layers import backward_phases, layer_plans, network_cores

__all__ = ["StepChain", "plan_step_chain", "step_keys", "step_gradients", "state_layout"]


@dataclass
class StepChain:
    """One training step as a chain (``plan_step_chain``). ``frac``: binary point of
    the logits and of every gradient the host reads; ``keep``: the ``dy`` the host
    reads although the backward consumes them; per chain step its ``phase``
    (``forward``, ``input_gradient``, ``core_gradients``), ``layer`` and controller
    ``key``; ``act_keys``: the activations' controllers; ``core_shapes``."""
    steps: list
    tensors: dict
    keep: tuple
    logits: str
    frac: dict
    phases: list
    layers: list
    keys: list
    act_keys: list
    core_shapes: list
    state: dict | None = None     # inputs laid out from the state memory (``update``)
    step: StepParams | None = None  # the STEP every program opens with (``derive``)


def _parts(tr, bsz: int) -> list:
    return [layer_plans(layer.in_modes, layer.out_modes, tr.ranks[l], bsz, need_dx=l > 0,
                        planner=tr.planner) for l, layer in enumerate(tr.model.layers)]


def step_keys(tr, bsz: int) -> list[str]:
    """Every shift controller a training step of ``bsz`` rows uses, in order."""
    parts, last = _parts(tr, bsz), len(tr.model.layers) - 1
    keys = []
    for l, pt in enumerate(parts):
        keys += [f"L{l}:{st.out}" for st in pt.forward.steps]
        keys += [f"L{l}:act"] if l < last else []
    for l in reversed(range(len(parts))):
        keys += [f"L{l}:{st.out}" for st in parts[l].backward.steps]
    return keys


def state_layout(tr) -> list[tuple]:
    """The state memory of trainer ``tr``'s parameters in its optimizer's order (every
    core of every layer, then every bias): ``(first entry, elements)`` per tensor."""
    sizes = [int(np.size(g)) for cl in tr.params for g in cl] + \
        [int(np.size(b)) for b in tr.bias]
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    return list(zip(firsts, sizes))


def plan_step_chain(tr, xq, wc, labels, slots: dict | None = None,
                    update: bool = False, derive: bool = False) -> StepChain | None:
    """Trainer ``tr``'s next training step as a chain (module docstring), or None
    (no seed drawn) while one of its shift controllers is not calibrated. ``update``:
    with the optimizer on chip (module docstring). ``derive``: the chain's seeds are
    the indices ``i`` of ``derive_seed(seed, t, i)`` and ``StepChain.step`` the STEP
    (key ``dither_hash(seed, t)``, the updates' learning rate) every program opens
    with (``run_chain(..., step=)``): the programs are the same every step but for
    the STEP's words."""
    if tr.cfg.precision != "fixed":
        raise ValueError(f"plan_step_chain needs precision fixed; the trainer is "
                         f"{tr.cfg.precision}")
    rc, layers = tr.cfg.recipe, tr.model.layers
    last, bsz = len(layers) - 1, int(xq.shape[0])
    keys = step_keys(tr, bsz)
    if len(set(keys)) != len(keys):
        raise ValueError(f"a shift controller serves two contractions of one step: "
                         f"{sorted(k for k in keys if keys.count(k) > 1)[0]!r}")
    if any(k not in tr.shifts or not tr.shifts[k].ready for k in keys):
        return None
    if slots is not None and any(k not in slots for k in keys):
        raise ValueError(f"slots has no slot for controller "
                         f"{next(k for k in keys if k not in slots)!r}")
    parts = _parts(tr, bsz)
    stochastic = rc.rounding == "stochastic"

    def draw() -> int:          # the next seed, or with ``derive`` its index
        i = tr._seed_index
        s = tr.next_seed()
        return i if derive else s

    def params(key, out_bits) -> dict:
        p = {"shift": tr.shifts[key].shift, "rounding": rc.rounding,
             "out_bits": out_bits, "seed": draw() if stochastic else 0}
        if slots is not None:
            p.update(slot=slots[key], vote="close")
        return p

    wf = tr.path.weight_frac()
    tensors = {"L0/x": np.asarray(xq, np.int64).reshape(bsz, *layers[0].in_modes),
               "labels": np.asarray(labels, np.int64).reshape(bsz)}
    steps, phases, at, step_key, fracs, frac = [], [], [], [], [], {}
    fh = rc.input_frac
    for l, layer in enumerate(layers):
        d = len(layer.in_modes)
        for k, g in network_cores(wc[l]).items():
            tensors[f"L{l}/{k}"] = np.asarray(g, np.int64)
        fr = {"x": fh, **{f"g{k}": wf for k in range(1, d + 1)}}
        ystep = None
        for st in parts[l].forward.steps:
            key = f"L{l}:{st.out}"
            p = params(key, rc.inter_bits)
            fr[st.out] = fr[st.a] + fr[st.b] - p["shift"]
            if st.out == "y":
                ystep = len(steps)
            steps.append([st.spec, f"L{l}/{st.a}", f"L{l}/{st.b}", f"L{l}/{st.out}", p])
            phases.append("forward")
            at.append(l)
            step_key.append(key)
        fy, p = fr["y"], steps[ystep][4]
        tensors[f"L{l}/bias"] = align(tr.bias[l], rc.bias_frac, fy,
                                      rc.inter_bits).reshape(layer.out_modes)
        p["bias"] = f"L{l}/bias"
        if l < last:           # the activation's seed follows the layer's contractions
            ctl = tr.shifts[f"L{l}:act"]
            act = {"shift": ctl.shift, "rounding": rc.rounding, "out_bits": rc.act_bits,
                   "seed": draw() if stochastic else 0}
            if slots is not None:
                act.update(slot=slots[f"L{l}:act"], vote="close")
            p.update(act=act, pre=f"L{l}/z", reshape=(bsz, *layers[l + 1].in_modes))
            steps[ystep][3] = f"L{l + 1}/x"
            fh = fy - ctl.shift
        else:
            p["reshape"] = (bsz, layer.n_out)
            p["xent"] = {"labels": "labels", "grad": f"L{l}/dy", "frac": fy,
                         "out_bits": rc.grad_bits, "bsz": bsz,
                         "classes": tr.model.n_classes, "reshape": (bsz, *layer.out_modes)}
            logits = steps[ystep][3]
            frac[logits] = fy
            frac[f"L{l}/dy"] = xent_frac(bsz)
        fracs.append(fr)
    for l in reversed(range(len(layers))):
        fr = dict(fracs[l], dy=frac[f"L{l}/dy"])
        bwd = parts[l].backward.steps
        phase = backward_phases((st.out, st.a, st.b) for st in bwd)
        for st in bwd:
            key = f"L{l}:{st.out}"
            p = params(key, rc.grad_bits)
            fr[st.out] = fr[st.a] + fr[st.b] - p["shift"]
            out = f"L{l}/{st.out}"
            if st.out == "dx":          # ReLU's backward, into the layer below's dy
                p.update(mask=f"L{l - 1}/z", reshape=(bsz, *layers[l - 1].out_modes))
                out = f"L{l - 1}/dy"
                frac[out] = fr["dx"]
            elif st.out.startswith("dg") and st.out[2:].isdigit():
                frac[out] = fr[st.out]
            steps.append([st.spec, f"L{l}/{st.a}", f"L{l}/{st.b}", out, p])
            phases.append(phase[st.out])
            at.append(l)
            step_key.append(key)
    state = None
    if update:
        state = _on_chip_update(tr, steps, frac, fracs, derive)
    step = None
    if derive:
        lr = tr.path.opt.lr_q(tr.path.opt.t + 1) if update else 0
        step = StepParams(int(dither_hash(int(tr.cfg.seed) & 0xFFFFFFFF, tr.step_no)), lr)
    return StepChain([tuple(s) for s in steps], tensors,
                     tuple(f"L{l}/dy" for l in range(len(layers))), logits, frac, phases,
                     at, step_key, [f"L{l}:act" for l in range(last)],
                     [[np.shape(g) for g in wc[l]] for l in range(len(layers))], state,
                     step)


def _on_chip_update(tr, steps, frac: dict, fracs: list, derive: bool = False) -> dict:
    """Attach the optimizer's updates to the chain's ``steps`` (in place) and return its
    ``state`` inputs (module docstring)."""
    opt, rc, layers = tr.path.opt, tr.cfg.recipe, tr.model.layers
    if tr.adapting:
        raise ValueError("the optimizer on chip has no rank-adaptation prior term; "
                         "rank adaptation updates on the host")
    if opt is None or any(f is None for f in opt.fm):
        raise ValueError("the optimizer's moment fracs are set by its first update; "
                         "run a step on the host first")
    where = state_layout(tr)
    idx0 = tr._seed_index          # the trainer's update draws its seeds next
    lr = opt.lr_q(opt.t + 1)
    by_out = {st[3]: st for st in steps}
    ncores = sum(len(cl) for cl in tr.params)
    state = {}
    for i, (first, _) in enumerate(where):
        seeds = (idx0 + 2 * i, idx0 + 2 * i + 1) if derive else \
            (derive_seed(tr.cfg.seed, tr.step_no, idx0 + 2 * i),
             derive_seed(tr.cfg.seed, tr.step_no, idx0 + 2 * i + 1))
        if i < ncores:
            l, k = next((l, k) for l, cl in enumerate(tr.params) for k in range(len(cl))
                        if sum(len(c) for c in tr.params[:l]) + k == i)
            name, fw, bits, kind = f"L{l}/dg{k + 1}", rc.master_frac, rc.master_bits, "core"
            fg = frac[name]
            state[f"L{l}/g{k + 1}"] = {"state": first,
                                       "out_shift": rc.master_frac - rc.weight_frac,
                                       "out_bits": rc.weight_bits}
        else:
            l = i - ncores
            name, fw, bits, kind = f"L{l}/dy", rc.bias_frac, rc.bias_bits, "bias"
            fg = frac[name]
            state[f"L{l}/bias"] = {"state": first,
                                   "out_shift": rc.bias_frac - fracs[l]["y"],
                                   "out_bits": rc.inter_bits}
        st = by_out.get(name)
        if st is None:          # an xent gradient: its logits step makes it
            st = next(s for s in steps if s[4].get("xent", {}).get("grad") == name)
        st[4].setdefault("update", []).append(
            {"kind": kind, "state": first, "lr": lr, "seeds": seeds,
             "gshift": opt.fm[i] - fg, "w_bits": bits, "step_shift": opt.R + opt.L - fw,
             "b1": opt.b1q, "b2": opt.b2q})
    return state


def step_gradients(sc: StepChain, outputs: dict):
    """``(logit codes, frac, core gradients, bias gradients)`` from a run's outputs,
    as ``FixedPath.gradients`` returns them (each gradient ``(codes, frac)``)."""
    z = np.asarray(outputs[sc.logits], np.int64)
    gcores, gbias = [], []
    for l, shapes in enumerate(sc.core_shapes):
        gcores.append([(np.asarray(outputs[f"L{l}/dg{k}"], np.int64).reshape(s),
                        sc.frac[f"L{l}/dg{k}"]) for k, s in enumerate(shapes, start=1)])
        dy = np.asarray(outputs[f"L{l}/dy"], np.int64)
        gbias.append((dy.reshape(dy.shape[0], -1).sum(0), sc.frac[f"L{l}/dy"]))
    return z.reshape(z.shape[0], -1), sc.frac[sc.logits], gcores, gbias
