"""The trainer's number formats as two strategies behind one interface.

``PrecisionPath`` is what a ``Trainer`` asks of its number format; ``path_for(precision)``
picks the implementation (``PATHS``):

* ``FloatPath`` (``float``): float64 parameters; forward, softmax cross-entropy and
  backward in NumPy on the layers' plans; Adam (or SGD with momentum 0.9) in float64.
* ``FixedPath`` (``fixed``, ``pow2``): integer codes on the fixed-point recipe of
  ``sw_model.train.quant_train`` (master weights, activations, gradients, biases in
  their formats; shift controllers; stochastic rounding seeded per step), every
  pairwise contraction through the trainer's executor (``sw_model.train.executor``)
  with the observer told of each; fixed-point Adam (``FixedAdam``). ``pow2`` passes
  the weights as power-of-two codes.

Division of state: the ``Trainer`` owns what both share — model, config, the parameters
(``params``: per layer its TT cores; ``bias``), step and epoch counters, the seed and
contraction counters, the shift controllers and the rank adapter. A path owns the
optimizer state and computes from the trainer's state:

``init_parameters(cores)`` -> ``(params, bias)`` in its format (and sets up the
optimizer); ``real_cores()`` -> the cores as real numbers; ``train_step(x, labels)`` ->
``(loss, number correct)`` after one optimizer step; ``logits(x)`` -> real logits of the
inference plan for one chunk; ``shrink_optimizer(sl, masks)`` applies a rank pruning
to the optimizer state of the cores ``sl`` (flat optimizer order); ``optimizer_state()``
-> ``(m, v, meta)`` for checkpoints and ``load_optimizer_state(m, v, meta)`` back.
``float_gradients`` exists on the float path only (the other raises ``ValueError``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..arith.fixedpoint import Format, Pow2Code, quantize, saturate, wrap
from ..ttm.layers import layer_plans, ttm_backward, ttm_forward
from ..ttm.plan import Step
from .executor import ContractionEvent, ShiftUse
from .quant_train import (FixedAdam, ShiftController, align, loss_from_sum, requantize,
                          softmax_xent_grad, xent_loss_sum,
                          weights_for_contraction)
from .rank_adapt import shrink_layer

__all__ = ["PrecisionPath", "FloatPath", "FixedPath", "PATHS", "path_for", "softmax_xent",
           "DeviceStep"]


@dataclass(frozen=True)
class DeviceStep:
    """A training step the device ran whole, its optimizer included (the ``step_chain``
    hook's answer when the device is trusted): the batch's loss summed over its rows
    in bits, Q16 (``quant_train.xent_loss_sum``, the XENT unit's ``Reg.XENT_LOSS``),
    and its rows whose first maximum is at the label (``Reg.XENT_CORRECT``)."""
    loss_sum: int
    correct: int


def softmax_xent(logits: np.ndarray, labels: np.ndarray):
    """(mean softmax cross-entropy, softmax probabilities) of real ``logits``."""
    z = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    loss = float(np.mean(lse - z[np.arange(len(labels)), labels]))
    p = np.exp(z - lse[:, None])
    return loss, p


class PrecisionPath(ABC):
    """One number format of the trainer ``tr`` (see the module doc for the members)."""

    def __init__(self, tr):
        self.tr = tr

    @abstractmethod
    def init_parameters(self, cores) -> tuple[list, list]:
        """``(params, bias)`` in this format from the real initial ``cores``; sets up
        the optimizer state for them."""

    @abstractmethod
    def real_cores(self) -> list[list[np.ndarray]]:
        """The trainer's cores as real numbers."""

    @abstractmethod
    def train_step(self, x, labels) -> tuple[float, int]:
        """One optimizer step on a mini-batch; (loss, number correct)."""

    @abstractmethod
    def logits(self, x) -> np.ndarray:
        """Real logits of the inference plan for one chunk of inputs."""

    @abstractmethod
    def shrink_optimizer(self, sl: slice, masks) -> None:
        """Keep the optimizer state of the cores ``sl`` at the kept rank indices."""

    @abstractmethod
    def optimizer_state(self) -> tuple[list, list, dict]:
        """``(m, v, meta)``: moment arrays in flat optimizer order and scalars."""

    @abstractmethod
    def load_optimizer_state(self, m: list, v: list, meta: dict) -> None:
        """Restore what ``optimizer_state`` returned."""

    def float_gradients(self, x, labels, with_prior: bool = True):
        raise ValueError(f"float_gradients needs precision float; this trainer is "
                         f"{self.tr.cfg.precision}")


class FloatPath(PrecisionPath):
    """float64 parameters, NumPy forward/backward, Adam or SGD in float64."""

    def __init__(self, tr):
        super().__init__(tr)
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.t = 0

    def init_parameters(self, cores):
        bias = [np.zeros(l.n_out) for l in self.tr.model.layers]
        shapes = [g.shape for cl in cores for g in cl] + [b.shape for b in bias]
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]
        self.t = 0
        return cores, bias

    def real_cores(self):
        return self.tr.params

    def forward(self, x, training: bool):
        """(logits, per-layer caches) of the training (or inference) plan."""
        tr = self.tr
        caches = []
        h = x
        last = len(tr.model.layers) - 1
        for l, layer in enumerate(tr.model.layers):
            parts = layer_plans(layer.in_modes, layer.out_modes, tr.ranks[l], x.shape[0],
                                need_dx=l > 0, planner=tr.planner)
            y, env = ttm_forward(tr.params[l], h, layer.in_modes, layer.out_modes,
                                 parts.forward if training else parts.inference)
            z = y + tr.bias[l]
            caches.append((parts, {k: env[k] for k in parts.saved}, z))
            h = np.maximum(z, 0) if l < last else z
        return h, caches

    def float_gradients(self, x, labels, with_prior: bool = True):
        """(loss, number correct, gradients) for one mini-batch, gradients flat in
        optimizer order (every core of every layer, then every bias)."""
        tr = self.tr
        logits, caches = self.forward(x, True)
        nc = tr.model.n_classes
        loss, p = softmax_xent(logits[:, :nc], labels)
        dz = np.zeros_like(logits)
        dz[:, :nc] = p
        dz[np.arange(len(labels)), labels] -= 1
        dz /= len(labels)
        gcores, gbias = [None] * len(caches), [None] * len(caches)
        for l in reversed(range(len(caches))):
            parts, saved, _ = caches[l]
            layer = tr.model.layers[l]
            gbias[l] = dz.sum(0)
            dx, gcores[l] = ttm_backward(tr.params[l], saved, dz, layer.out_modes,
                                         parts.backward, need_dx=l > 0)
            if l > 0:
                dz = dx * (caches[l - 1][2] > 0)
        if with_prior and tr.adapting:
            prior = tr.ranker.prior_grads(tr.params, tr.cfg.rank_prior / tr.n_train)
            gcores = [[g + p_ for g, p_ in zip(gl, pl)] for gl, pl in zip(gcores, prior)]
        correct = int((logits[:, :nc].argmax(1) == labels).sum())
        return loss, correct, [g for gl in gcores for g in gl] + gbias

    def train_step(self, x, labels):
        loss, correct, grads = self.float_gradients(x, labels)
        self._update(grads)
        return loss, correct

    def _update(self, grads):
        tr = self.tr
        flat = [g for cl in tr.params for g in cl] + tr.bias
        lr = tr.cfg.lr
        self.t += 1
        if tr.cfg.optimizer == "sgd":
            for i, (w, g) in enumerate(zip(flat, grads)):
                self.m[i] = 0.9 * self.m[i] + g
                w -= lr * self.m[i]
            return
        b1, b2, eps = 0.9, 0.999, 1e-8
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for i, (w, g) in enumerate(zip(flat, grads)):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            w -= lr * (self.m[i] / c1) / (np.sqrt(self.v[i] / c2) + eps)

    def logits(self, x):
        return self.forward(x, False)[0]

    def shrink_optimizer(self, sl, masks):
        self.m[sl] = shrink_layer(self.m[sl], masks)
        self.v[sl] = shrink_layer(self.v[sl], masks)

    def optimizer_state(self):
        return self.m, self.v, {"t": self.t}

    def load_optimizer_state(self, m, v, meta):
        self.m, self.v, self.t = m, v, int(meta["t"])


class _FixedContract:
    """``contract(step, a, b)`` for execute_plan in fixed/pow2 modes: picks the shift,
    the seed and the operand order, calls the executor, votes, tracks fracs."""

    def __init__(self, path: "FixedPath", layer: int, phase: str, fracs: dict, cores: set):
        self.path, self.layer, self.phase, self.fracs, self.cores = (path, layer, phase,
                                                                     fracs, cores)

    def __call__(self, step: Step, a, b):
        tr, pow2 = self.path.tr, self.path.pow2
        rc = tr.cfg.recipe
        training = self.phase != "eval"
        out_bits = rc.grad_bits if self.phase == "backward" else rc.inter_bits
        fa, fb = self.fracs[step.a], self.fracs[step.b]
        extra = {}
        st = step
        if pow2 is not None:
            a_core, b_core = step.a in self.cores, step.b in self.cores
            if a_core and not b_core:
                sa, sb = step.spec.split("->")[0].split(",")
                st = Step(step.out, step.b, step.a, f"{sb},{sa}->{step.spec.split('->')[1]}",
                          step.shape, step.macs)
                a, b = b, a
            elif a_core and b_core:
                a = pow2.decode(a)
            if b_core or a_core:
                extra["b_pow2"] = pow2
        key = f"L{self.layer}:{step.out}"
        ctl = tr.shifts.get(key)
        if ctl is None:
            ctl = tr.shifts[key] = ShiftController(out_bits, rc)
        if not ctl.ready:
            bv = pow2.decode(b) if "b_pow2" in extra else b
            acc = wrap(np.einsum(st.spec, np.asarray(a, np.int64), np.asarray(bv, np.int64)),
                       rc.acc_bits)
            ctl.calibrate(int(np.abs(acc).max()) if acc.size else 0)
        rounding = rc.rounding if training else rc.eval_rounding
        seed = tr.next_seed() if rounding == "stochastic" else 0
        shift = ctl.shift     # the vote below may move ctl.shift for the next step
        use = ShiftUse(key, training, ctl.pending)
        out = np.asarray(tr.executor(st, a, b, shift=shift, rounding=rounding,
                                     out_bits=out_bits, seed=seed, shift_use=use, **extra),
                         dtype=np.int64)
        if training:
            ctl.observe(int(np.abs(out).max()) if out.size else 0)
        self.fracs[step.out] = fa + fb - shift
        if tr.observer is not None:
            tr.observer(ContractionEvent(self.phase, tr.event_step, self.layer,
                                         tr.contraction_index, st, a, b, out, shift,
                                         rounding, out_bits, seed, extra.get("b_pow2"),
                                         key, (ctl.shift, ctl.pending)))
        tr.contraction_index += 1
        return out


class FixedPath(PrecisionPath):
    """Integer codes on the fixed-point recipe, contractions through the executor,
    fixed-point Adam; ``pow2`` (the trainer's precision) passes weights as
    power-of-two codes (``self.pow2``, else None)."""

    def __init__(self, tr):
        super().__init__(tr)
        self.pow2 = Pow2Code(tr.cfg.recipe.pow2_bits) if tr.cfg.precision == "pow2" else None
        self.opt: FixedAdam | None = None

    def init_parameters(self, cores):
        tr, rc = self.tr, self.tr.cfg.recipe
        mfmt = Format(rc.master_bits, rc.master_frac)
        params = [[quantize(g, mfmt) for g in cl] for cl in cores]
        bias = [np.zeros(l.n_out, np.int64) for l in tr.model.layers]
        self.opt = FixedAdam(tr.cfg.lr)
        self.opt.init([g.shape for cl in params for g in cl] + [b.shape for b in bias])
        return params, bias

    def real_cores(self):
        s = 2.0 ** -self.tr.cfg.recipe.master_frac
        return [[g * s for g in cl] for cl in self.tr.params]

    def quantize_input(self, x):
        rc = self.tr.cfg.recipe
        return quantize(x, Format(rc.input_bits, rc.input_frac))

    def contraction_weights(self):
        cfg = self.tr.cfg
        return [[weights_for_contraction(g, cfg.recipe, cfg.precision)
                 for g in cl] for cl in self.tr.params]

    def weight_frac(self) -> int:
        rc = self.tr.cfg.recipe
        return rc.master_frac if self.pow2 is not None else rc.weight_frac

    def forward(self, xq, wc, training: bool):
        """(logit codes z, their frac, per-layer caches) of the training (or inference)
        plan on quantized inputs ``xq`` and contraction weights ``wc``."""
        tr = self.tr
        rc = tr.cfg.recipe
        h, fh = xq, rc.input_frac
        caches = []
        last = len(tr.model.layers) - 1
        phase = "forward" if training else "eval"
        rounding = rc.rounding if training else rc.eval_rounding
        for l, layer in enumerate(tr.model.layers):
            parts = layer_plans(layer.in_modes, layer.out_modes, tr.ranks[l], xq.shape[0],
                                need_dx=l > 0, planner=tr.planner)
            d = len(layer.in_modes)
            fracs = {"x": fh, **{f"g{k}": self.weight_frac() for k in range(1, d + 1)}}
            contract = _FixedContract(self, l, phase, fracs,
                                      {f"g{k}" for k in range(1, d + 1)})
            y, env = ttm_forward(wc[l], h, layer.in_modes, layer.out_modes,
                                 parts.forward if training else parts.inference, contract)
            fy = fracs["y"]
            z = saturate(y + align(tr.bias[l], rc.bias_frac, fy, rc.inter_bits),
                         rc.inter_bits)
            caches.append((parts, {k: env[k] for k in parts.saved}, dict(fracs), z > 0))
            if l < last:
                r = np.maximum(z, 0)
                key = f"L{l}:act"
                ctl = tr.shifts.get(key)
                if ctl is None:
                    ctl = tr.shifts[key] = ShiftController(rc.act_bits, rc)
                    ctl.calibrate(int(r.max()) if r.size else 0)
                seed = tr.next_seed() if rounding == "stochastic" else 0
                h = requantize(r, ctl.shift, rc.act_bits, rounding, seed)
                fh = fy - ctl.shift     # the shift h was requantized with (before the
                if training:            # vote moves it for the next step)
                    ctl.observe(int(h.max()) if h.size else 0)
        return z, fy, caches

    def gradients(self, xq, wc, labels):
        """The step's forward, loss gradient and backward on quantized inputs ``xq``
        with contraction weights ``wc``: ``(logit codes z, their frac, core gradients,
        bias gradients)``, each gradient ``(codes, frac)``, cores per layer in order."""
        tr = self.tr
        rc = tr.cfg.recipe
        z, fz, caches = self.forward(xq, wc, True)
        nc = tr.model.n_classes
        dz, fdz = softmax_xent_grad(z, fz, labels, nc, rc.grad_bits)
        gcores, gbias = [None] * len(caches), [None] * len(caches)
        for l in reversed(range(len(caches))):
            parts, saved, fracs, _ = caches[l]
            layer = tr.model.layers[l]
            d = len(layer.in_modes)
            gbias[l] = (dz.sum(0), fdz)
            fracs["dy"] = fdz
            contract = _FixedContract(self, l, "backward", fracs,
                                      {f"g{k}" for k in range(1, d + 1)})
            dx, dgs = ttm_backward(wc[l], saved, dz, layer.out_modes, parts.backward,
                                   contract, need_dx=l > 0)
            gcores[l] = [(g, fracs[f"dg{k}"]) for k, g in enumerate(dgs, start=1)]
            if l > 0:
                dz, fdz = dx * caches[l - 1][3], fracs["dx"]
        return z, fz, gcores, gbias

    def train_step(self, x, labels):
        tr = self.tr
        rc = tr.cfg.recipe
        wc = self.contraction_weights()
        xq = self.quantize_input(x)
        got = tr.step_chain(tr, xq, wc, labels) if tr.step_chain is not None else None
        if got is None and tr.params_stale:      # the trainer's own step: current ones
            tr.sync_params()
            wc = self.contraction_weights()
        nc = tr.model.n_classes
        if isinstance(got, DeviceStep):
            # the device ran the whole step, its update too: keep the step count and
            # the seeds the update drew there (the same sequence), not the parameters
            self.opt.tick()
            for _ in range(2 * (sum(len(cl) for cl in tr.params) + len(tr.bias))):
                tr.next_seed()
            tr.params_stale = True
            return loss_from_sum(got.loss_sum, len(labels)), int(got.correct)
        z, fz, gcores, gbias = got[:4] if got is not None else \
            self.gradients(xq, wc, labels)
        loss = loss_from_sum(xent_loss_sum(z, fz, labels, nc), len(labels))
        prior = tr.ranker.prior_grads(self.real_cores(), tr.cfg.rank_prior / tr.n_train) \
            if tr.adapting else None
        self.opt.tick()
        i = 0
        for l, cl in enumerate(tr.params):
            for k in range(len(cl)):
                g, fg = gcores[l][k]
                seeds = (tr.next_seed(), tr.next_seed())
                cl[k] = self.opt.update(i, cl[k], rc.master_frac, rc.master_bits, g, fg,
                                        seeds, None if prior is None else prior[l][k])
                i += 1
        for l in range(len(tr.bias)):
            g, fg = gbias[l]
            seeds = (tr.next_seed(), tr.next_seed())
            tr.bias[l] = self.opt.update(i, tr.bias[l], rc.bias_frac, rc.bias_bits, g,
                                         fg, seeds)
            i += 1
        return loss, int((z[:, :nc].argmax(1) == labels).sum())

    def logits(self, x):
        self.tr.contraction_index = 0
        xq, wc = self.quantize_input(x), self.contraction_weights()
        if self.tr.inference is not None:
            got = self.tr.inference(self.tr, xq, wc)
            if got is not None:
                z, fz = got
                return z * 2.0 ** -fz
        z, fz, _ = self.forward(xq, wc, False)
        return z * 2.0 ** -fz

    def shrink_optimizer(self, sl, masks):
        self.opt.m[sl] = shrink_layer(self.opt.m[sl], masks)
        self.opt.v[sl] = shrink_layer(self.opt.v[sl], masks)

    def optimizer_state(self):
        return self.opt.m, self.opt.v, {"t": self.opt.t, "fm": self.opt.fm}

    def load_optimizer_state(self, m, v, meta):
        self.opt.m, self.opt.v = m, v
        self.opt.t = int(meta["t"])
        self.opt.fm = [None if f is None else int(f) for f in meta["fm"]]


#: The path of each ``TrainConfig.precision``.
PATHS: dict[str, type[PrecisionPath]] = {"float": FloatPath, "fixed": FixedPath,
                                         "pow2": FixedPath}


def path_for(tr) -> PrecisionPath:
    """The number-format strategy of trainer ``tr`` (by ``tr.cfg.precision``)."""
    return PATHS[tr.cfg.precision](tr)
