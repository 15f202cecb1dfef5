"""The reference trainer: MLPs of TTM layers in float64, bit-exact fixed point, or
power-of-two weights; optional rank adaptation; checkpoints; a results dict.

Public API
----------
``train(model, *, precision, epochs, batch, lr, seed, ..., executor, observer)`` runs a
whole training and returns the results dict (the ``fetta train --json`` schema).
``Trainer`` exposes the pieces (``train_step``, ``evaluate``, ``run``, state I/O).

The contraction executor (fixed/pow2 modes)
-------------------------------------------
Every pairwise contraction goes through one callable::

    executor(step, a_int, b_int, *, shift, rounding, out_bits, seed[, b_pow2]) -> int64

``step`` is the ``plan.Step`` (``step.spec`` is the einsum), ``a_int``/``b_int`` int64
arrays in the int16 range, ``shift``/``rounding``/``out_bits``/``seed`` the output stage
of the arithmetic contract (``acc_bits`` is 32). The default is
``default_executor`` = ``reference_contraction(step.spec, a, b, **kw)``. In ``pow2``
mode the weight operand is passed as **B** holding ``Pow2Code`` codes with
``b_pow2=Pow2Code(bits)``: when a plan step has the core as A and an activation as B,
the executor receives a step with operands and spec swapped
(``Step(out, b, a, "B,A->out")``); when both operands are cores (core-core merges of a
joint planner) A is passed decoded (plain integers) and B as codes.

The observer hook ``observer(ContractionEvent)`` is called after every contraction with
the phase, layer, step, operands, output and output-stage parameters (lock-step
verification compares a second backend against these).

Seeds, shifts and formats: ``sw_model.train.quant_train``.

Defaults and measured results (digits, seed 0, 80/20 split, 2-core machine shared with
other jobs; ``fetta train --precision P``)
------------------------------------------------------------------------------------
30 epochs, batch 64 (the last partial batch of each epoch is dropped), Adam lr 3e-3
(the paper's 1e-3 needs ~3x the epochs), He-scaled Gaussian cores, zero biases.

    float                 97.50 %   48.8 s wall (13.8 s CPU)
    fixed                 96.94 %   47.0 s wall (16.9 s CPU)
    pow2                  96.94 %   49.0 s wall (18.3 s CPU)
    float --rank-adapt    96.67 %   TT params 3072 -> 1168 (ranks [[4,3],[7]]), 14.1 s

Rank adaptation uses the paper's threshold 1e-3 and prior weight 1 (``w/lam / N``);
adaptation runs for the first 2/3 of the epochs, the last 1/3 fine-tunes at fixed ranks
without the prior (``rank_finetune``; see ``sw_model.train.rank_adapt``).
``train_accuracy`` is measured on the training mini-batches during the epoch (with the
stochastic rounding of training in fixed/pow2 modes); ``test_accuracy`` by the
inference plan with nearest-even rounding after the epoch.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..arith.contraction import reference_contraction
from .data import Dataset, load_dataset
from ..arith.fixedpoint import Format, Pow2Code, quantize, saturate, wrap
from ..ttm.models import ModelConfig, resolve_model
from ..ttm.csse import csse_planner
from ..ttm.plan import Plan, Step
from .quant_train import (FixedAdam, FixedRecipe, ShiftController, align, derive_seed,
                          requantize, softmax_xent_grad, weights_for_contraction)
from .rank_adapt import RankAdapter, shrink_layer
from ..ttm.layers import init_cores, layer_plans, ttm_backward, ttm_forward

__all__ = ["TrainConfig", "Trainer", "train", "default_executor", "ContractionEvent",
           "PRECISIONS", "DEFAULTS"]

PRECISIONS = ("float", "fixed", "pow2")

# Per-precision defaults, chosen so a digits run is well under 2 minutes on 2 cores.
DEFAULTS = {
    "float": {"epochs": 30, "lr": 3e-3},
    "fixed": {"epochs": 30, "lr": 3e-3},
    "pow2": {"epochs": 30, "lr": 3e-3},
}
DEFAULT_BATCH = 64
RANK_THRESHOLD = 1e-3
RANK_PRIOR = 1.0
RANK_FINETUNE = 1 / 3


def default_executor(step: Step, a, b, **kw) -> np.ndarray:
    """The golden model of one contraction on the accelerator."""
    return reference_contraction(step.spec, a, b, **kw)


@dataclass
class ContractionEvent:
    phase: str          # "forward" | "backward" | "eval"
    train_step: int     # global training step (eval: -1 - epoch)
    layer: int
    index: int          # contraction index within the training step / eval batch
    step: Step          # the step as given to the executor (possibly operand-swapped)
    a: np.ndarray
    b: np.ndarray
    out: np.ndarray
    shift: int
    rounding: str
    out_bits: int
    seed: int
    b_pow2: Pow2Code | None = None


@dataclass
class TrainConfig:
    precision: str = "float"
    epochs: int | None = None
    batch: int = DEFAULT_BATCH
    lr: float | None = None
    optimizer: str = "adam"
    seed: int = 0
    rank_adapt: bool = False
    rank_threshold: float = RANK_THRESHOLD
    rank_prior: float = RANK_PRIOR
    rank_finetune: float = RANK_FINETUNE
    recipe: FixedRecipe = field(default_factory=FixedRecipe)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} unknown; allowed "
                             f"{', '.join(PRECISIONS)}")
        if self.epochs is None:
            self.epochs = DEFAULTS[self.precision]["epochs"]
        if self.lr is None:
            self.lr = DEFAULTS[self.precision]["lr"]
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs {self.epochs!r} invalid; allowed an integer >= 1")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or not 1 <= self.batch <= 4096:
            raise ValueError(f"batch {self.batch!r} invalid; allowed 1..4096")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"lr {self.lr!r} invalid; allowed 0 < lr < 1")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer {self.optimizer!r} unknown; allowed adam, sgd")
        if self.optimizer == "sgd" and self.precision != "float":
            raise ValueError("optimizer sgd is float-only; fixed and pow2 use fixed-point "
                             "Adam")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or \
                not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"seed {self.seed!r} invalid; allowed 0..{2 ** 32 - 1}")
        if not 0 <= self.rank_finetune < 1:
            raise ValueError(f"rank fine-tune fraction {self.rank_finetune} invalid; "
                             f"allowed 0 <= f < 1")
        if not self.rank_prior > 0:
            raise ValueError(f"rank prior weight {self.rank_prior} invalid; allowed > 0")
        if not self.rank_threshold > 0:
            raise ValueError(f"rank threshold {self.rank_threshold} invalid; allowed > 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recipe"] = self.recipe.to_dict()
        return d


def _xent(logits: np.ndarray, labels: np.ndarray):
    z = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    loss = float(np.mean(lse - z[np.arange(len(labels)), labels]))
    p = np.exp(z - lse[:, None])
    return loss, p


class _FixedContract:
    """``contract(step, a, b)`` for execute_plan in fixed/pow2 modes: picks the shift,
    the seed and the operand order, calls the executor, votes, tracks fracs."""

    def __init__(self, tr: "Trainer", layer: int, phase: str, fracs: dict, cores: set):
        self.tr, self.layer, self.phase, self.fracs, self.cores = tr, layer, phase, fracs, cores

    def __call__(self, step: Step, a, b):
        tr, rc = self.tr, self.tr.cfg.recipe
        training = self.phase != "eval"
        out_bits = rc.grad_bits if self.phase == "backward" else rc.inter_bits
        fa, fb = self.fracs[step.a], self.fracs[step.b]
        extra = {}
        st = step
        if tr.pow2 is not None:
            a_core, b_core = step.a in self.cores, step.b in self.cores
            if a_core and not b_core:
                sa, sb = step.spec.split("->")[0].split(",")
                st = Step(step.out, step.b, step.a, f"{sb},{sa}->{step.spec.split('->')[1]}",
                          step.shape, step.macs)
                a, b = b, a
            elif a_core and b_core:
                a = tr.pow2.decode(a)
            if b_core or a_core:
                extra["b_pow2"] = tr.pow2
        key = f"L{self.layer}:{step.out}"
        ctl = tr.shifts.get(key)
        if ctl is None:
            ctl = tr.shifts[key] = ShiftController(out_bits, rc)
        if not ctl.ready:
            bv = tr.pow2.decode(b) if "b_pow2" in extra else b
            acc = wrap(np.einsum(st.spec, np.asarray(a, np.int64), np.asarray(bv, np.int64)),
                       rc.acc_bits)
            ctl.calibrate(int(np.abs(acc).max()) if acc.size else 0)
        rounding = rc.rounding if training else rc.eval_rounding
        seed = tr._next_seed() if rounding == "stochastic" else 0
        shift = ctl.shift     # the vote below may move ctl.shift for the next step
        out = np.asarray(tr.executor(st, a, b, shift=shift, rounding=rounding,
                                     out_bits=out_bits, seed=seed, **extra), dtype=np.int64)
        if training:
            ctl.observe(int(np.abs(out).max()) if out.size else 0)
        self.fracs[step.out] = fa + fb - shift
        if tr.observer is not None:
            tr.observer(ContractionEvent(self.phase, tr._event_step, self.layer,
                                         tr._contraction_index, st, a, b, out, shift,
                                         rounding, out_bits, seed, extra.get("b_pow2")))
        tr._contraction_index += 1
        return out


class Trainer:
    """Parameters, optimizer state and the training loop for one model."""

    def __init__(self, model: ModelConfig, cfg: TrainConfig, *, n_train: int,
                 executor: Callable | None = None, observer: Callable | None = None,
                 planner: Callable[..., Plan] = csse_planner):
        self.model = model
        self.planner = planner
        self.cfg = cfg
        self.n_train = int(n_train)
        self.executor = executor or default_executor
        self.observer = observer
        self.fixed = cfg.precision != "float"
        self.pow2 = Pow2Code(cfg.recipe.pow2_bits) if cfg.precision == "pow2" else None
        rng = np.random.default_rng(cfg.seed)
        cores = [init_cores(l.in_modes, l.out_modes, l.ranks, rng) for l in model.layers]
        rc = cfg.recipe
        if self.fixed:
            mfmt = Format(rc.master_bits, rc.master_frac)
            self.params = [[quantize(g, mfmt) for g in cl] for cl in cores]
            self.bias = [np.zeros(l.n_out, np.int64) for l in model.layers]
            self.opt = FixedAdam(cfg.lr)
            self.opt.init([g.shape for cl in self.params for g in cl] +
                          [b.shape for b in self.bias])
        else:
            self.params = cores
            self.bias = [np.zeros(l.n_out) for l in model.layers]
            shapes = [g.shape for cl in cores for g in cl] + [b.shape for b in self.bias]
            self.m = [np.zeros(s) for s in shapes]
            self.v = [np.zeros(s) for s in shapes]
            self.t = 0
        self.shifts: dict[str, ShiftController] = {}
        self.ranker = RankAdapter(self.real_cores(), threshold=cfg.rank_threshold) \
            if cfg.rank_adapt else None
        self.step_no = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.partial = self._fresh_partial()
        self._seed_index = 0
        self._contraction_index = 0
        self._event_step = 0

    # ----------------------------------------------------------------- helpers
    def real_cores(self) -> list[list[np.ndarray]]:
        if self.fixed:
            s = 2.0 ** -self.cfg.recipe.master_frac
            return [[g * s for g in cl] for cl in self.params]
        return self.params

    @property
    def adapting(self) -> bool:
        """Rank adaptation (prior, EM, pruning) runs in the first
        ``ceil(epochs * (1 - rank_finetune))`` epochs; the rest fine-tune at fixed ranks
        without the prior."""
        return self.ranker is not None and self.epoch < math.ceil(
            self.cfg.epochs * (1 - self.cfg.rank_finetune))

    @property
    def ranks(self) -> list[list[int]]:
        return [[int(g.shape[3]) for g in cl[:-1]] for cl in self.params]

    @property
    def tt_params(self) -> int:
        return int(sum(g.size for cl in self.params for g in cl))

    def _next_seed(self) -> int:
        s = derive_seed(self.cfg.seed, self.step_no, self._seed_index)
        self._seed_index += 1
        return s

    def _quantize_input(self, x):
        rc = self.cfg.recipe
        return quantize(x, Format(rc.input_bits, rc.input_frac))

    # ----------------------------------------------------------------- float
    def _float_forward(self, x, training: bool):
        caches = []
        h = x
        last = len(self.model.layers) - 1
        for l, layer in enumerate(self.model.layers):
            parts = layer_plans(layer.in_modes, layer.out_modes, self.ranks[l], x.shape[0],
                                need_dx=l > 0, planner=self.planner)
            y, env = ttm_forward(self.params[l], h, layer.in_modes, layer.out_modes,
                                 parts.forward if training else parts.inference)
            z = y + self.bias[l]
            caches.append((parts, {k: env[k] for k in parts.saved}, z))
            h = np.maximum(z, 0) if l < last else z
        return h, caches

    def float_gradients(self, x, labels, with_prior: bool = True):
        """Float mode: (loss, number correct, gradients) for one mini-batch, gradients
        flat in optimizer order (every core of every layer, then every bias)."""
        logits, caches = self._float_forward(x, True)
        nc = self.model.n_classes
        loss, p = _xent(logits[:, :nc], labels)
        dz = np.zeros_like(logits)
        dz[:, :nc] = p
        dz[np.arange(len(labels)), labels] -= 1
        dz /= len(labels)
        gcores, gbias = [None] * len(caches), [None] * len(caches)
        for l in reversed(range(len(caches))):
            parts, saved, _ = caches[l]
            layer = self.model.layers[l]
            gbias[l] = dz.sum(0)
            dx, gcores[l] = ttm_backward(self.params[l], saved, dz, layer.out_modes,
                                         parts.backward, need_dx=l > 0)
            if l > 0:
                dz = dx * (caches[l - 1][2] > 0)
        if with_prior and self.adapting:
            prior = self.ranker.prior_grads(self.params, self.cfg.rank_prior / self.n_train)
            gcores = [[g + p_ for g, p_ in zip(gl, pl)] for gl, pl in zip(gcores, prior)]
        correct = int((logits[:, :nc].argmax(1) == labels).sum())
        return loss, correct, [g for gl in gcores for g in gl] + gbias

    def _float_step(self, x, labels):
        loss, correct, grads = self.float_gradients(x, labels)
        self._float_update(grads)
        return loss, correct

    def _float_update(self, grads):
        flat = [g for cl in self.params for g in cl] + self.bias
        lr = self.cfg.lr
        self.t += 1
        if self.cfg.optimizer == "sgd":
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

    # ----------------------------------------------------------------- fixed
    def _contraction_weights(self):
        return [[weights_for_contraction(g, self.cfg.recipe, self.cfg.precision)
                 for g in cl] for cl in self.params]

    def _weight_frac(self) -> int:
        rc = self.cfg.recipe
        return rc.master_frac if self.pow2 is not None else rc.weight_frac

    def _fixed_forward(self, xq, wc, training: bool):
        rc = self.cfg.recipe
        h, fh = xq, rc.input_frac
        caches = []
        last = len(self.model.layers) - 1
        phase = "forward" if training else "eval"
        rounding = rc.rounding if training else rc.eval_rounding
        for l, layer in enumerate(self.model.layers):
            parts = layer_plans(layer.in_modes, layer.out_modes, self.ranks[l], xq.shape[0],
                                need_dx=l > 0, planner=self.planner)
            d = len(layer.in_modes)
            fracs = {"x": fh, **{f"g{k}": self._weight_frac() for k in range(1, d + 1)}}
            contract = _FixedContract(self, l, phase, fracs,
                                      {f"g{k}" for k in range(1, d + 1)})
            y, env = ttm_forward(wc[l], h, layer.in_modes, layer.out_modes,
                                 parts.forward if training else parts.inference, contract)
            fy = fracs["y"]
            z = saturate(y + align(self.bias[l], rc.bias_frac, fy, rc.inter_bits),
                         rc.inter_bits)
            caches.append((parts, {k: env[k] for k in parts.saved}, dict(fracs), z > 0))
            if l < last:
                r = np.maximum(z, 0)
                key = f"L{l}:act"
                ctl = self.shifts.get(key)
                if ctl is None:
                    ctl = self.shifts[key] = ShiftController(rc.act_bits, rc)
                    ctl.calibrate(int(r.max()) if r.size else 0)
                seed = self._next_seed() if rounding == "stochastic" else 0
                h = requantize(r, ctl.shift, rc.act_bits, rounding, seed)
                if training:
                    ctl.observe(int(h.max()) if h.size else 0)
                fh = fy - ctl.shift
        return z, fy, caches

    def _fixed_step(self, x, labels):
        rc = self.cfg.recipe
        wc = self._contraction_weights()
        z, fz, caches = self._fixed_forward(self._quantize_input(x), wc, True)
        nc = self.model.n_classes
        loss, _ = _xent(z[:, :nc] * 2.0 ** -fz, labels)
        dz, fdz = softmax_xent_grad(z, fz, labels, nc, rc.grad_bits)
        gcores, gbias = [None] * len(caches), [None] * len(caches)
        for l in reversed(range(len(caches))):
            parts, saved, fracs, _ = caches[l]
            layer = self.model.layers[l]
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
        prior = self.ranker.prior_grads(self.real_cores(), self.cfg.rank_prior / self.n_train) \
            if self.adapting else None
        self.opt.tick()
        i = 0
        for l, cl in enumerate(self.params):
            for k in range(len(cl)):
                g, fg = gcores[l][k]
                seeds = (self._next_seed(), self._next_seed())
                cl[k] = self.opt.update(i, cl[k], rc.master_frac, rc.master_bits, g, fg,
                                        seeds, None if prior is None else prior[l][k])
                i += 1
        for l in range(len(self.bias)):
            g, fg = gbias[l]
            seeds = (self._next_seed(), self._next_seed())
            self.bias[l] = self.opt.update(i, self.bias[l], rc.bias_frac, rc.bias_bits, g,
                                           fg, seeds)
            i += 1
        return loss, int((z[:, :nc].argmax(1) == labels).sum())

    # ----------------------------------------------------------------- public
    def train_step(self, x, labels):
        """One optimizer step on a mini-batch; returns (loss, number correct)."""
        self._seed_index = 0
        self._contraction_index = 0
        self._event_step = self.step_no
        if self.fixed:
            out = self._fixed_step(x, labels)
        else:
            out = self._float_step(x, labels)
        if self.adapting:
            self.ranker.update(self.real_cores())
        self.step_no += 1
        return out

    def predict_logits(self, x) -> np.ndarray:
        """Logits (real values) of the inference plan, in chunks of the batch size."""
        outs = []
        bs = self.cfg.batch
        for i in range(0, len(x), bs):
            xb = x[i:i + bs]
            if self.fixed:
                self._contraction_index = 0
                z, fz, _ = self._fixed_forward(self._quantize_input(xb),
                                               self._contraction_weights(), False)
                outs.append(z * 2.0 ** -fz)
            else:
                outs.append(self._float_forward(xb, False)[0])
        return np.concatenate(outs)

    def evaluate(self, x, labels) -> tuple[float, float]:
        """(loss, accuracy) on a dataset."""
        self._event_step = -1 - self.epoch
        logits = self.predict_logits(x)[:, :self.model.n_classes]
        loss, _ = _xent(logits, labels)
        return loss, float((logits.argmax(1) == labels).mean())

    def prune_ranks(self) -> bool:
        """Physically remove rank indices whose lambda fell below the threshold."""
        if not self.adapting:
            return False
        masks = self.ranker.keep_masks()
        if all(m.all() for ml in masks for m in ml):
            return False
        self.ranker.apply(masks)
        flat_idx = 0
        for l, ml in enumerate(masks):
            d = len(self.params[l])
            self.params[l] = shrink_layer(self.params[l], ml)
            if self.fixed:
                sl = slice(flat_idx, flat_idx + d)
                self.opt.m[sl] = shrink_layer(self.opt.m[sl], ml)
                self.opt.v[sl] = shrink_layer(self.opt.v[sl], ml)
            else:
                sl = slice(flat_idx, flat_idx + d)
                self.m[sl] = shrink_layer(self.m[sl], ml)
                self.v[sl] = shrink_layer(self.v[sl], ml)
            flat_idx += d
        self.model = self.model.with_ranks(self.ranks)
        return True

    @staticmethod
    def _fresh_partial() -> dict:
        return {"pos": 0, "losses": [], "correct": 0, "seen": 0}

    def run_epoch(self, data: Dataset, progress: Callable | None = None,
                  should_stop: Callable[[], bool] | None = None) -> dict | None:
        """Train the rest of the current epoch (from ``partial["pos"]``, so a
        checkpoint taken mid-epoch resumes exactly), prune, evaluate. Returns the
        epoch record, or None when ``should_stop()`` became true after a step."""
        n, bs = len(data.x_train), self.cfg.batch
        steps = max(1, n // bs)
        perm = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(n)
        part = self.partial
        while part["pos"] < steps:
            s = part["pos"]
            idx = perm[s * bs:(s + 1) * bs]
            loss, c = self.train_step(data.x_train[idx], data.y_train[idx])
            part["losses"].append(float(loss))
            part["correct"] += c
            part["seen"] += len(idx)
            part["pos"] += 1
            if progress is not None:
                progress(self.epoch, s + 1, steps)
            if should_stop is not None and should_stop():
                return None
        self.prune_ranks()
        _, test_acc = self.evaluate(data.x_test, data.y_test)
        rec = {"epoch": self.epoch + 1, "loss": float(np.mean(part["losses"])),
               "train_accuracy": part["correct"] / part["seen"], "test_accuracy": test_acc,
               "ranks": self.ranks, "tt_params": self.tt_params}
        self.history.append(rec)
        self.epoch += 1
        self.partial = self._fresh_partial()
        return rec

    # ----------------------------------------------------------------- state
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {}
        for l, cl in enumerate(self.params):
            for k, g in enumerate(cl):
                arrays[f"L{l}.core{k}"] = g
            arrays[f"L{l}.bias"] = self.bias[l]
        meta = {"model": self.model.to_dict(), "train": self.cfg.to_dict(),
                "epoch": self.epoch, "step_no": self.step_no, "history": self.history,
                "partial": self.partial,
                "shifts": {k: c.state() for k, c in self.shifts.items()}}
        if self.fixed:
            for i, (m, v) in enumerate(zip(self.opt.m, self.opt.v)):
                arrays[f"opt.m{i}"], arrays[f"opt.v{i}"] = m, v
            meta["opt"] = {"t": self.opt.t, "fm": self.opt.fm}
        else:
            for i, (m, v) in enumerate(zip(self.m, self.v)):
                arrays[f"opt.m{i}"], arrays[f"opt.v{i}"] = m, v
            meta["opt"] = {"t": self.t}
        if self.ranker is not None:
            arrays.update(self.ranker.state())
        return arrays, meta

    def load_state(self, arrays: dict, meta: dict) -> None:
        """Restore from ``state()``; the caller has checked model/config compatibility."""
        ranks = [l["ranks"] for l in meta["model"]["layers"]]
        self.model = self.model.with_ranks(ranks)
        self.params = [[np.array(arrays[f"L{l}.core{k}"]) for k in range(len(cl))]
                       for l, cl in enumerate(self.params)]
        self.bias = [np.array(arrays[f"L{l}.bias"]) for l in range(len(self.bias))]
        n = sum(len(cl) for cl in self.params) + len(self.bias)
        m = [np.array(arrays[f"opt.m{i}"]) for i in range(n)]
        v = [np.array(arrays[f"opt.v{i}"]) for i in range(n)]
        if self.fixed:
            self.opt.m, self.opt.v = m, v
            self.opt.t = int(meta["opt"]["t"])
            self.opt.fm = [None if f is None else int(f) for f in meta["opt"]["fm"]]
        else:
            self.m, self.v, self.t = m, v, int(meta["opt"]["t"])
        self.shifts = {k: ShiftController.from_state(s, self.cfg.recipe)
                       for k, s in meta["shifts"].items()}
        if self.ranker is not None:
            self.ranker = RankAdapter(self.real_cores(), threshold=self.cfg.rank_threshold)
            self.ranker.load_state(arrays)
        self.epoch = int(meta["epoch"])
        self.step_no = int(meta["step_no"])
        self.history = list(meta["history"])
        self.partial = dict(meta.get("partial") or self._fresh_partial())


class _StopOnSignal:
    """While active (main thread only), SIGINT/SIGTERM set a flag instead of raising,
    so training stops at a step boundary, the checkpoint is written atomically, and
    ``KeyboardInterrupt`` is raised; ``--resume`` then continues bit-exactly."""

    def __init__(self):
        self.flag = False
        self.saved = {}

    def __call__(self) -> bool:
        return self.flag

    def _handler(self, signum, frame):
        self.flag = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, h in self.saved.items():
            signal.signal(sig, h)
        return False


def train(model: ModelConfig | str = "digits", *, precision: str = "float",
          epochs: int | None = None, batch: int = DEFAULT_BATCH, lr: float | None = None,
          seed: int = 0, optimizer: str = "adam", rank_adapt: bool = False,
          rank_threshold: float = RANK_THRESHOLD, rank_prior: float = RANK_PRIOR,
          rank_finetune: float = RANK_FINETUNE,
          recipe: FixedRecipe | None = None,
          data: Dataset | None = None, mnist_dir=None, executor: Callable | None = None,
          observer: Callable | None = None, checkpoint=None, resume: bool = False,
          progress: Callable | None = None, backend: str = "numpy",
          on_epoch: Callable | None = None,
          planner: Callable[..., Plan] = csse_planner) -> dict:
    """Train ``model`` and return the results dict::

        {model, precision, backend, seed, epochs: [{epoch, loss, train_accuracy,
         test_accuracy, ranks, tt_params}], test_accuracy, memory, wall_seconds, ...}

    ``executor``/``observer``: see the module docstring. ``checkpoint``: path written
    atomically after every epoch; with ``resume`` an existing checkpoint is loaded
    first (it must be for the same model, precision, batch and seed).
    ``progress(epoch, step, steps)`` is called after every step. SIGINT/SIGTERM stop
    training at the next step boundary, write the checkpoint (mid-epoch state
    included) and raise KeyboardInterrupt. Bad input raises ValueError before anything
    is written."""
    from . import checkpoint as ckpt
    from .memory import memory_report
    t0 = time.perf_counter()
    cfg = TrainConfig(precision=precision, epochs=epochs, batch=batch, lr=lr, seed=seed,
                      optimizer=optimizer, rank_adapt=rank_adapt,
                      rank_threshold=rank_threshold, rank_prior=rank_prior,
                      rank_finetune=rank_finetune, recipe=recipe or FixedRecipe())
    if isinstance(model, str):
        model = resolve_model(model)
    if data is None:
        data = load_dataset(model.dataset, mnist_dir)
    if data.n_features != model.n_features:
        raise ValueError(f"dataset {data.name} has {data.n_features} features; model "
                         f"{model.name!r} expects {model.n_features}")
    if len(data.x_train) < 1 or len(data.x_test) < 1:
        raise ValueError(f"dataset {data.name} has an empty split")
    tr = Trainer(model, cfg, n_train=len(data.x_train), executor=executor,
                 observer=observer, planner=planner)
    if resume:
        if checkpoint is None:
            raise ValueError("--resume needs --checkpoint PATH")
        if ckpt.exists(checkpoint):
            arrays, meta = ckpt.load(checkpoint)
            ckpt.check_compatible(meta, model, cfg)
            tr.load_state(arrays, meta)
    with _StopOnSignal() as stop:
        while tr.epoch < cfg.epochs:
            rec = tr.run_epoch(data, progress, stop)
            if rec is None:
                if checkpoint is not None:
                    ckpt.save(checkpoint, *tr.state())
                raise KeyboardInterrupt
            if checkpoint is not None:
                ckpt.save(checkpoint, *tr.state())
            if on_epoch is not None:
                on_epoch(rec)
    final = tr.history[-1]["test_accuracy"] if tr.history else None
    return {
        "model": model.name, "precision": cfg.precision, "backend": backend,
        "seed": cfg.seed, "batch": cfg.batch, "lr": cfg.lr, "optimizer": cfg.optimizer,
        "rank_adapt": cfg.rank_adapt,
        "rank_threshold": cfg.rank_threshold if cfg.rank_adapt else None,
        "epochs": tr.history, "test_accuracy": final,
        "initial_tt_params": model.tt_params, "final_ranks": tr.ranks,
        "tt_params": tr.tt_params,
        "memory": memory_report(tr.model, cfg.precision, cfg.batch, cfg.recipe,
                                 optimizer=cfg.optimizer, planner=planner),
        "wall_seconds": time.perf_counter() - t0,
    }
