"""Model configurations: MLPs of TTM layers (bias + ReLU between layers, softmax
cross-entropy on the last layer's first ``n_classes`` outputs).

A model is data, not code: ``ModelConfig`` lists the layers' TT shapes and the dataset;
the trainer (``sw_model.train.trainer``) owns the parameters. Presets:

* ``digits`` (default): scikit-learn's offline 8x8 digits, 64 = [4,4,4] -> 128 = [4,8,4]
  (ranks [8,8], ReLU) -> 16 = [4,4] logits (10 used), input modes [16,8], rank 8.
* ``mnist-tt``: the low-precision tensor-training paper's model exactly (REFERENCES.md
  §2): MNIST padded to 28x32 = 896; fc1 in [7,4,2,16] -> out [4,4,2,16], ranks
  [16,16,16], ReLU; fc2 in [32,16] -> out [1,16], rank 16; 16 logits, 10 used.
  14,272 TT weights + 528 biases.

Custom models come from a JSON file (``model_from_json``)::

    {"name": "my-net", "dataset": "digits",
     "layers": [{"in_modes": [4,4,4], "out_modes": [4,8,4], "ranks": [8,8]},
                {"in_modes": [16,8], "out_modes": [4,4], "ranks": [8]}]}

Every layer except the last has a ReLU. ``validate`` checks that the first layer's
input modes multiply to the dataset's feature count, that consecutive layers agree,
that the last layer has at least ``n_classes`` outputs and that ranks are >= 1.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

__all__ = ["LayerSpec", "ModelConfig", "PRESETS", "DATASETS", "get_model",
           "model_from_json", "model_from_dict", "tt_params", "dense_params"]

# dataset name -> (feature count after padding, number of classes)
DATASETS = {"digits": (64, 10), "mnist": (896, 10)}


def _ints(name: str, values) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} {values!r} invalid; allowed a list of integers")
    out = []
    for v in values:
        try:
            if isinstance(v, bool):
                raise TypeError
            out.append(operator.index(v))
        except TypeError:
            raise ValueError(f"{name} {list(values)!r} invalid; entries must be "
                             f"integers") from None
    return tuple(out)


@dataclass(frozen=True)
class LayerSpec:
    """One TTM layer: y = W x + b with W (prod out_modes x prod in_modes) held as cores
    (r_{k-1}, out_modes[k], in_modes[k], r_k); ``ranks`` are the d-1 inner ranks."""

    in_modes: tuple[int, ...]
    out_modes: tuple[int, ...]
    ranks: tuple[int, ...]
    relu: bool = True   # informational: the trainer applies ReLU after every layer but the last

    def __post_init__(self):
        object.__setattr__(self, "in_modes", _ints("in modes", self.in_modes))
        object.__setattr__(self, "out_modes", _ints("out modes", self.out_modes))
        object.__setattr__(self, "ranks", _ints("ranks", self.ranks))
        d = len(self.in_modes)
        if not 1 <= d <= 8:
            raise ValueError(f"layer has {d} cores (in modes {list(self.in_modes)}); "
                             f"allowed 1..8")
        if len(self.out_modes) != d:
            raise ValueError(f"out modes {list(self.out_modes)} have {len(self.out_modes)} "
                             f"entries but in modes {list(self.in_modes)} have {d}; they "
                             f"must match")
        if len(self.ranks) != d - 1:
            raise ValueError(f"ranks {list(self.ranks)} have {len(self.ranks)} entries; "
                             f"allowed exactly {d - 1} for {d} cores")
        for name, vals in (("in mode", self.in_modes), ("out mode", self.out_modes),
                           ("rank", self.ranks)):
            for v in vals:
                if v < 1:
                    raise ValueError(f"{name} {v} invalid; allowed >= 1")

    @property
    def n_in(self) -> int:
        return prod(self.in_modes)

    @property
    def n_out(self) -> int:
        return prod(self.out_modes)

    def with_ranks(self, ranks) -> "LayerSpec":
        return LayerSpec(self.in_modes, self.out_modes, tuple(ranks), self.relu)

    def to_dict(self) -> dict:
        return {"in_modes": list(self.in_modes), "out_modes": list(self.out_modes),
                "ranks": list(self.ranks), "relu": self.relu}


def tt_params(layer: LayerSpec) -> int:
    r = (1, *layer.ranks, 1)
    return sum(r[k] * layer.out_modes[k] * layer.in_modes[k] * r[k + 1]
               for k in range(len(layer.in_modes)))


def dense_params(layer: LayerSpec) -> int:
    return layer.n_in * layer.n_out


@dataclass(frozen=True)
class ModelConfig:
    name: str
    dataset: str
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        self.validate()

    @property
    def n_features(self) -> int:
        return DATASETS[self.dataset][0]

    @property
    def n_classes(self) -> int:
        return DATASETS[self.dataset][1]

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset {self.dataset!r} unknown; allowed "
                             f"{', '.join(DATASETS)}")
        if not self.layers:
            raise ValueError(f"model {self.name!r} has no layers; allowed >= 1")
        if self.layers[0].n_in != self.n_features:
            raise ValueError(f"model {self.name!r}: first layer in modes "
                             f"{list(self.layers[0].in_modes)} multiply to "
                             f"{self.layers[0].n_in}, but dataset {self.dataset} has "
                             f"{self.n_features} features; they must be equal")
        for i in range(1, len(self.layers)):
            a, b = self.layers[i - 1], self.layers[i]
            if a.n_out != b.n_in:
                raise ValueError(f"model {self.name!r}: layer {i} out modes "
                                 f"{list(a.out_modes)} multiply to {a.n_out} but layer "
                                 f"{i + 1} in modes {list(b.in_modes)} multiply to "
                                 f"{b.n_in}; they must be equal")
        if self.layers[-1].n_out < self.n_classes:
            raise ValueError(f"model {self.name!r}: last layer has {self.layers[-1].n_out} "
                             f"outputs; allowed >= {self.n_classes} (classes)")

    @property
    def ranks(self) -> list[list[int]]:
        return [list(l.ranks) for l in self.layers]

    @property
    def tt_params(self) -> int:
        return sum(tt_params(l) for l in self.layers)

    @property
    def bias_params(self) -> int:
        return sum(l.n_out for l in self.layers)

    def with_ranks(self, ranks) -> "ModelConfig":
        return ModelConfig(self.name, self.dataset,
                           tuple(l.with_ranks(r) for l, r in zip(self.layers, ranks)))

    def to_dict(self) -> dict:
        return {"name": self.name, "dataset": self.dataset,
                "layers": [l.to_dict() for l in self.layers]}


def _mlp(name, dataset, shapes) -> ModelConfig:
    layers = [LayerSpec(i, o, r, relu=(j < len(shapes) - 1))
              for j, (i, o, r) in enumerate(shapes)]
    return ModelConfig(name, dataset, tuple(layers))


PRESETS: dict[str, ModelConfig] = {
    "digits": _mlp("digits", "digits", [((4, 4, 4), (4, 8, 4), (8, 8)),
                                        ((16, 8), (4, 4), (8,))]),
    "mnist-tt": _mlp("mnist-tt", "mnist", [((7, 4, 2, 16), (4, 4, 2, 16), (16, 16, 16)),
                                           ((32, 16), (1, 16), (16,))]),
}


def get_model(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"model preset {name!r} unknown; allowed {', '.join(PRESETS)} "
                         f"(or a JSON model file)")
    return PRESETS[name]


def model_from_dict(d: dict) -> ModelConfig:
    if not isinstance(d, dict):
        raise ValueError("model description must be a JSON object with 'dataset' and "
                         "'layers'")
    for key in ("dataset", "layers"):
        if key not in d:
            raise ValueError(f"model description lacks '{key}'; required keys: dataset, "
                             f"layers")
    if not isinstance(d["layers"], list) or not d["layers"]:
        raise ValueError("model 'layers' must be a non-empty list")
    shapes = []
    for j, l in enumerate(d["layers"]):
        if not isinstance(l, dict) or not {"in_modes", "out_modes", "ranks"} <= set(l):
            raise ValueError(f"model layer {j + 1} must be an object with in_modes, "
                             f"out_modes, ranks")
        shapes.append((l["in_modes"], l["out_modes"], l["ranks"]))
    return _mlp(str(d.get("name", "custom")), str(d["dataset"]), shapes)


def model_from_json(path) -> ModelConfig:
    """Load a custom model; ValueError (one line) on a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"model file {str(p)!r} not found; give a preset "
                         f"({', '.join(PRESETS)}) or an existing JSON file")
    try:
        d = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"model file {str(p)!r} is not valid JSON: "
                         f"{str(exc).splitlines()[0]}") from None
    return model_from_dict(d)


def resolve_model(spec: str) -> ModelConfig:
    """A preset name, or a path to a JSON model file (anything ending in .json or
    containing a path separator)."""
    if spec in PRESETS:
        return PRESETS[spec]
    if spec.endswith(".json") or "/" in spec:
        return model_from_json(spec)
    return get_model(spec)
