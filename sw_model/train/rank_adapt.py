"""Bayesian rank adaptation of TT bonds (REFERENCES.md §2).

Per layer, per inner bond k (between core k and core k+1) and rank index r there is a
variance ``lam[k][r]`` shared by core k's right slice ``G_k[..., r]`` and core k+1's left
slice ``G_{k+1}[r, ...]``:

* EM update after every optimizer step: ``lam <- lam + s * (M / (D + 1) - lam)`` with
  ``s = 0.1``, ``M`` the sum of squares of both slices and ``D`` their element count
  (log-uniform prior);
* prior gradient: each core element gets ``scale * w * (1/lam_left + 1/lam_right)``
  (a Gaussian prior N(0, lam) on each slice; boundary bonds have none).
  ``scale = 1 / N_train`` because the data loss is a mean over samples: the posterior
  ``sum_i loss_i + prior`` divided by N;
* pruning (at epoch ends): rank indices with ``lam <= threshold`` are removed by
  physically slicing both cores (and their optimizer state), keeping at least one.

The paper's threshold ``1e-3`` is used unchanged: on digits (cores of rms ~0.3, so
lam starts near 0.08) the prior drives redundant slices below it within ~10 epochs.
The trainer runs adaptation (prior, EM, pruning at epoch ends) during the first 2/3 of
the epochs and fine-tunes the pruned network without the prior for the last 1/3
(``TrainConfig.rank_finetune``): with the prior on to the end, digits lost ~3.5 points
at 75% fewer parameters; with the fine-tune it loses < 1 point (numbers in
``sw_model/train/trainer.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["RankAdapter", "shrink_layer", "DEFAULT_THRESHOLD", "EM_STEP"]

EM_STEP = 0.1
DEFAULT_THRESHOLD = 1e-3


def _slice_stats(left: np.ndarray, right: np.ndarray):
    """Sum of squares and element count per rank index of a bond."""
    m = (left ** 2).reshape(-1, left.shape[-1]).sum(0) + \
        (right ** 2).reshape(right.shape[0], -1).sum(1)
    d = left[..., 0].size + right[0].size
    return m, d


class RankAdapter:
    def __init__(self, cores_per_layer, step: float = EM_STEP,
                 threshold: float = DEFAULT_THRESHOLD):
        """``cores_per_layer``: real-valued cores (r, m, n, r) per layer; lam starts at
        each slice pair's mean square."""
        if not threshold > 0:
            raise ValueError(f"rank threshold {threshold} invalid; allowed > 0")
        self.step = float(step)
        self.threshold = float(threshold)
        self.lam = []
        for cores in cores_per_layer:
            lam_l = []
            for k in range(len(cores) - 1):
                m, d = _slice_stats(cores[k], cores[k + 1])
                lam_l.append(m / (d + 1))
            self.lam.append(lam_l)

    def update(self, cores_per_layer) -> None:
        for lam_l, cores in zip(self.lam, cores_per_layer):
            for k, lam in enumerate(lam_l):
                m, d = _slice_stats(cores[k], cores[k + 1])
                lam += self.step * (m / (d + 1) - lam)

    def prior_grads(self, cores_per_layer, scale: float) -> list[list[np.ndarray]]:
        out = []
        for lam_l, cores in zip(self.lam, cores_per_layer):
            gl = []
            for k, g in enumerate(cores):
                inv = np.zeros((g.shape[0], 1, 1, g.shape[3]))
                if k > 0:
                    inv += (1.0 / lam_l[k - 1])[:, None, None, None]
                if k < len(cores) - 1:
                    inv += (1.0 / lam_l[k])[None, None, None, :]
                gl.append(scale * g * inv)
            out.append(gl)
        return out

    def keep_masks(self) -> list[list[np.ndarray]]:
        """Per layer, per bond: boolean mask of rank indices to keep (>= 1 kept)."""
        out = []
        for lam_l in self.lam:
            ml = []
            for lam in lam_l:
                keep = lam > self.threshold
                if not keep.any():
                    keep[np.argmax(lam)] = True
                ml.append(keep)
            out.append(ml)
        return out

    def apply(self, masks) -> None:
        for li, ml in enumerate(masks):
            for k, keep in enumerate(ml):
                self.lam[li][k] = self.lam[li][k][keep]

    def state(self) -> dict[str, np.ndarray]:
        return {f"lam.L{l}.b{k}": lam for l, lam_l in enumerate(self.lam)
                for k, lam in enumerate(lam_l)}

    def load_state(self, arrays: dict) -> None:
        for l, lam_l in enumerate(self.lam):
            for k in range(len(lam_l)):
                lam_l[k] = np.array(arrays[f"lam.L{l}.b{k}"], dtype=np.float64)


def shrink_layer(arrays, masks) -> list[np.ndarray]:
    """Slice per-core arrays (r_{k-1}, m, n, r_k) of one layer to the kept rank indices
    of each inner bond (``masks[k]`` is bond k between core k and k+1)."""
    out = []
    d = len(arrays)
    for k, a in enumerate(arrays):
        if k > 0:
            a = a[masks[k - 1]]
        if k < d - 1:
            a = a[..., masks[k]]
        out.append(np.ascontiguousarray(a))
    return out
