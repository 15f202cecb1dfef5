"""The reference trainer: MLPs of TTM layers in float64, bit-exact fixed point, or
power-of-two weights; optional rank adaptation; checkpoints; a results dict.

Public API
----------
``train(model, *, precision, epochs, batch, lr, seed, ..., executor, observer)`` runs a
whole training and returns the results dict (the ``fetta train --json`` schema).
``Trainer`` exposes the pieces (``train_step``, ``evaluate``, ``run_epoch``, state I/O).

Number formats: the trainer owns the parameters, counters, shift controllers and the
rank adapter, and delegates every format-specific computation (initial parameters,
the training step, inference logits, optimizer state) to its ``PrecisionPath``
(``sw_model.train.paths``: ``FloatPath`` for ``float``, ``FixedPath`` for ``fixed`` and
``pow2``). The contraction executor and observer hook of the fixed/pow2 modes
(``default_executor``, ``ContractionEvent``): ``sw_model.train.executor``.

Seeds, shifts and formats: ``sw_model.train.quant_train``.

Defaults: 30 epochs, batch 64 (the last partial batch of each epoch is dropped), Adam lr
3e-3 (the paper's 1e-3 needs ~3x the epochs), He-scaled Gaussian cores, zero biases.
The accuracies and times these defaults reach are measured in README ("Reference
trainer", ``fetta train --precision P``).

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

from .data import Dataset, load_dataset
from ..ttm.models import ModelConfig, resolve_model
from ..ttm.csse import csse_planner
from ..ttm.plan import Plan
from .executor import ContractionEvent, default_executor
from .paths import path_for, softmax_xent
from .quant_train import FixedRecipe, ShiftController, derive_seed
from .rank_adapt import RankAdapter, shrink_layer
from ..ttm.layers import init_cores

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


class Trainer:
    """Parameters, optimizer state and the training loop for one model; the number
    format's computations are delegated to ``self.path`` (``paths.PrecisionPath``)."""

    def __init__(self, model: ModelConfig, cfg: TrainConfig, *, n_train: int,
                 executor: Callable | None = None, observer: Callable | None = None,
                 planner: Callable[..., Plan] = csse_planner,
                 inference: Callable | None = None, step_chain: Callable | None = None):
        self.model = model
        #: ``step_chain(trainer, xq, wc, labels) -> (z, frac, core gradients, bias
        #: gradients) or None``: a fixed-mode training step's forward, loss gradient
        #: and backward besides the trainer's own (None: the trainer's own, through
        #: the executor; ``sim.rtl_training`` runs it as one resident chain); or
        #: ``paths.DeviceStep(loss_sum, correct)``: the device ran the whole step and
        #: updated the parameters itself (the trainer then keeps only the optimizer's
        #: step count and seeds, and its parameters are stale until ``sync_params``)
        self.step_chain = step_chain
        #: ``param_source() -> (params, bias, m, v)``: where the parameters and the
        #: optimizer's moments live when the device updated them (``sync_params``)
        self.param_source = None
        self.params_stale = False
        #: ``inference(trainer, xq, wc) -> (logit codes, frac) or None``: an
        #: evaluation path of the fixed modes besides the executor's (None: the
        #: trainer's own pass; ``sim.rtl_training`` runs it as resident chains)
        self.inference = inference
        self.planner = planner
        self.cfg = cfg
        self.n_train = int(n_train)
        self.executor = executor or default_executor
        self.observer = observer
        self.path = path_for(self)
        rng = np.random.default_rng(cfg.seed)
        cores = [init_cores(l.in_modes, l.out_modes, l.ranks, rng) for l in model.layers]
        self.params, self.bias = self.path.init_parameters(cores)
        self.shifts: dict[str, ShiftController] = {}
        self.ranker = RankAdapter(self.real_cores(), threshold=cfg.rank_threshold) \
            if cfg.rank_adapt else None
        self.step_no = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.partial = self._fresh_partial()
        self._seed_index = 0
        #: Contraction index within the current training step / eval batch, and the
        #: step number the observer's events carry (eval: ``-1 - epoch``).
        self.contraction_index = 0
        self.event_step = 0

    # ----------------------------------------------------------------- helpers
    def real_cores(self) -> list[list[np.ndarray]]:
        return self.path.real_cores()

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

    def next_seed(self) -> int:
        """The next stochastic-rounding seed of the current training step."""
        s = derive_seed(self.cfg.seed, self.step_no, self._seed_index)
        self._seed_index += 1
        return s

    def step_state(self) -> tuple:
        """What a training step's gradients advance besides the parameters: the seed
        and contraction counters and every shift controller's ``(shift, pending)``
        (``restore_step_state`` puts it back, e.g. after a golden run of the step)."""
        return (self._seed_index, self.contraction_index,
                {k: (c.shift, c.pending) for k, c in self.shifts.items()})

    def restore_step_state(self, state: tuple) -> None:
        """Undo what ran since ``step_state()`` returned ``state`` (controllers made
        since then are dropped)."""
        self._seed_index, self.contraction_index, ctl = state
        for k in [k for k in self.shifts if k not in ctl]:
            del self.shifts[k]
        for k, (shift, pending) in ctl.items():
            self.shifts[k].shift, self.shifts[k].pending = shift, pending

    def float_gradients(self, x, labels, with_prior: bool = True):
        """Float mode: (loss, number correct, gradients) for one mini-batch, gradients
        flat in optimizer order (every core of every layer, then every bias);
        ``ValueError`` in the other modes."""
        return self.path.float_gradients(x, labels, with_prior)

    # ----------------------------------------------------------------- public
    def train_step(self, x, labels):
        """One optimizer step on a mini-batch; returns (loss, number correct)."""
        self._seed_index = 0
        self.contraction_index = 0
        self.event_step = self.step_no
        out = self.path.train_step(x, labels)
        if self.adapting:
            self.ranker.update(self.real_cores())
        self.step_no += 1
        return out

    def sync_params(self) -> None:
        """After steps the device updated itself: parameters and moments read back
        from it (``param_source``); nothing when they are current."""
        if not self.params_stale:
            return
        if self.param_source is None:
            raise RuntimeError("the parameters were updated on the device and no "
                               "param_source reads them back")
        params, bias, m, v = self.param_source()
        self.params = [[np.asarray(g, np.int64).reshape(old.shape) for g, old in
                        zip(cl, ocl)] for cl, ocl in zip(params, self.params)]
        self.bias = [np.asarray(b, np.int64).reshape(old.shape)
                     for b, old in zip(bias, self.bias)]
        self.path.opt.m = [np.asarray(a, np.int64).reshape(o.shape)
                           for a, o in zip(m, self.path.opt.m)]
        self.path.opt.v = [np.asarray(a, np.int64).reshape(o.shape)
                           for a, o in zip(v, self.path.opt.v)]
        self.params_stale = False

    def predict_logits(self, x) -> np.ndarray:
        """Logits (real values) of the inference plan, in chunks of the batch size."""
        self.sync_params()
        outs = []
        bs = self.cfg.batch
        for i in range(0, len(x), bs):
            outs.append(self.path.logits(x[i:i + bs]))
        return np.concatenate(outs)

    def evaluate(self, x, labels) -> tuple[float, float]:
        """(loss, accuracy) on a dataset."""
        self.event_step = -1 - self.epoch
        logits = self.predict_logits(x)[:, :self.model.n_classes]
        loss, _ = softmax_xent(logits, labels)
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
            self.path.shrink_optimizer(slice(flat_idx, flat_idx + d), ml)
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
        self.sync_params()
        arrays = {}
        for l, cl in enumerate(self.params):
            for k, g in enumerate(cl):
                arrays[f"L{l}.core{k}"] = g
            arrays[f"L{l}.bias"] = self.bias[l]
        meta = {"model": self.model.to_dict(), "train": self.cfg.to_dict(),
                "epoch": self.epoch, "step_no": self.step_no, "history": self.history,
                "partial": self.partial,
                "shifts": {k: c.state() for k, c in self.shifts.items()}}
        m, v, opt_meta = self.path.optimizer_state()
        for i, (mi, vi) in enumerate(zip(m, v)):
            arrays[f"opt.m{i}"], arrays[f"opt.v{i}"] = mi, vi
        meta["opt"] = opt_meta
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
        self.path.load_optimizer_state(m, v, meta["opt"])
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
          observer: Callable | None = None, inference: Callable | None = None,
          step_chain: Callable | None = None, checkpoint=None, resume: bool = False,
          progress: Callable | None = None, backend: str = "numpy",
          on_epoch: Callable | None = None,
          planner: Callable[..., Plan] = csse_planner) -> dict:
    """Train ``model`` and return the results dict::

        {model, precision, backend, seed, epochs: [{epoch, loss, train_accuracy,
         test_accuracy, ranks, tt_params}], test_accuracy, memory, wall_seconds, ...}

    ``executor``/``observer``: see ``sw_model.train.executor``. ``checkpoint``: path
    written atomically after every epoch; with ``resume`` an existing checkpoint is
    loaded first (it must be for the same model, precision, batch and seed).
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
                 observer=observer, planner=planner, inference=inference,
                 step_chain=step_chain)
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
