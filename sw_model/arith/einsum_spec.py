"""Parsing and classification of pairwise einsum specs (``"abc,cd->abd"``).

A pairwise contraction ``A, B -> C`` has four kinds of index:

* batch: in A, B and C;
* m (free of A): in A and C, not B;
* n (free of B): in B and C, not A;
* k (summed): in A and/or B, not in C (an index in only one operand is summed over
  that operand alone; the other operand is read with stride 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

__all__ = ["Spec", "parse_spec"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Spec:
    a: str
    b: str
    out: str

    def __str__(self):
        return f"{self.a},{self.b}->{self.out}"

    @cached_property
    def batch(self) -> tuple[str, ...]:
        return tuple(i for i in self.out if i in self.a and i in self.b)

    @cached_property
    def m(self) -> tuple[str, ...]:
        return tuple(i for i in self.out if i in self.a and i not in self.b)

    @cached_property
    def n(self) -> tuple[str, ...]:
        return tuple(i for i in self.out if i in self.b and i not in self.a)

    @cached_property
    def k(self) -> tuple[str, ...]:
        seen = []
        for i in self.a + self.b:
            if i not in self.out and i not in seen:
                seen.append(i)
        return tuple(seen)

    def sizes(self, shape_a, shape_b) -> dict[str, int]:
        """Index -> size, checking the shapes against the spec."""
        shape_a, shape_b = tuple(shape_a), tuple(shape_b)
        sizes: dict[str, int] = {}
        for name, idx, shape in (("A", self.a, shape_a), ("B", self.b, shape_b)):
            if len(idx) != len(shape):
                raise ValueError(f"operand {name} shape {shape} has {len(shape)} dims; "
                                 f"spec '{self}' needs {len(idx)}")
            for i, s in zip(idx, shape):
                if int(s) < 1:
                    raise ValueError(f"index '{i}' size {s} invalid; allowed >= 1")
                if sizes.setdefault(i, int(s)) != int(s):
                    raise ValueError(f"index '{i}' has size {sizes[i]} in one operand and "
                                     f"{s} in the other")
        return sizes

    def output_shape(self, shape_a, shape_b) -> tuple[int, ...]:
        sizes = self.sizes(shape_a, shape_b)
        return tuple(sizes[i] for i in self.out)


def parse_spec(spec: str) -> Spec:
    """Parse ``"ij,jk->ik"``; raises ValueError with a one-line reason."""
    if not isinstance(spec, str):
        raise ValueError(f"einsum spec {spec!r} is not a string")
    s = spec.replace(" ", "")
    if s.count("->") != 1:
        raise ValueError(f"einsum spec '{spec}' must have exactly one '->' (pairwise "
                         f"form 'A,B->C', e.g. 'ij,jk->ik')")
    lhs, out = s.split("->")
    ops = lhs.split(",")
    if len(ops) != 2:
        raise ValueError(f"einsum spec '{spec}' has {len(ops)} operands; allowed exactly 2")
    a, b = ops
    for name, idx in (("A", a), ("B", b), ("output", out)):
        bad = [c for c in idx if c not in _LETTERS]
        if bad:
            raise ValueError(f"einsum spec '{spec}': character {bad[0]!r} in {name}; "
                             f"allowed index letters a-z, A-Z")
        if len(set(idx)) != len(idx):
            raise ValueError(f"einsum spec '{spec}': repeated index in {name} '{idx}'; "
                             f"diagonals are not supported")
    missing = [c for c in out if c not in a and c not in b]
    if missing:
        raise ValueError(f"einsum spec '{spec}': output index '{missing[0]}' is in "
                         f"neither operand")
    return Spec(a, b, out)
