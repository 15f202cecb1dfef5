"""The closed tensor network of one TTM layer's training step, as bitmasks.

Add the missing tensor to any network of a training step (forward ``y``, input gradient
``dx``, core gradients ``dg1..dgd``; see ``sw_model.ttm.plan.networks``) and you get the
same *closed* network ``{x, dy, g1..gd}`` in which every index appears in exactly two
tensors (``z``: x,dy; ``n_k``: x,g_k; ``m_k``: dy,g_k; ``r_k``: g_k,g_{k+1}); each
network's output is the index set of the one tensor it leaves out. So the result of
contracting a subset ``S`` of the leaves is the same tensor in every network that
contains ``S``: its indices are the cut between ``S`` and the rest of the closed
network. ``StepNetwork`` numbers the leaves ``x=0, dy=1, g_k=k+1`` and denotes a node
(an intermediate) by the bitmask of its leaves; it computes a node's cut, element
count, index letters, shape, and the einsum spec and MACs of contracting two nodes.

Layouts: leaves keep their ``plan.ttm_tensors`` index order; an intermediate's indices
are in the global order ``z, n_1..n_d, m_1..m_d, r_1..r_{d-1}``; a network output is
in the network's output order.

Also here: the layer description's validation (``parse_int_list``,
``validate_layer``: one-line ``ValueError``s, 1..``MAX_CORES`` TT cores) and the MAC
count of the equivalent dense layer's step (``dense_macs``).
"""

from __future__ import annotations

import math

from . import plan as _plan

__all__ = ["MAX_CORES", "StepNetwork", "parse_int_list", "validate_layer", "dense_macs"]

MAX_CORES = 8


# --------------------------------------------------------------------------- input

def parse_int_list(text, what: str) -> list[int]:
    """``"7,4,2,16"`` (or an iterable of ints) -> ``[7, 4, 2, 16]``; an empty string is
    ``[]``. Raises ``ValueError`` naming ``what`` and the bad value."""
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
    else:
        parts = list(text)
    out = []
    for p in parts:
        if isinstance(p, bool):
            raise ValueError(f"{what} {text!r}: entry {p!r} is not an integer")
        if isinstance(p, int):
            out.append(p)
            continue
        if isinstance(p, float) and p.is_integer():
            out.append(int(p))
            continue
        try:
            out.append(int(str(p)))
        except ValueError:
            raise ValueError(f"{what} {text!r}: entry {p!r} is not an integer") from None
    return out


def validate_layer(in_modes, out_modes, ranks, batch) -> tuple[list[int], list[int],
                                                               list[int], int]:
    """Check a layer description; return it as int lists. One-line ``ValueError``s."""
    in_modes = parse_int_list(in_modes, "in modes")
    out_modes = parse_int_list(out_modes, "out modes")
    ranks = parse_int_list(ranks, "ranks")
    if isinstance(batch, bool) or not isinstance(batch, int):
        try:
            b = int(str(batch))
        except ValueError:
            raise ValueError(f"batch {batch!r} is not an integer") from None
        batch = b
    d = len(in_modes)
    if not 1 <= d <= MAX_CORES:
        raise ValueError(f"in modes {in_modes} give {d} TT cores; allowed 1..{MAX_CORES}")
    _plan.check_layer_shape(in_modes, out_modes, ranks, batch)
    return in_modes, out_modes, ranks, batch


def dense_macs(in_modes, out_modes, batch) -> int:
    """MACs of the dense layer's step: forward, input gradient, weight gradient."""
    return 3 * int(batch) * math.prod(in_modes) * math.prod(out_modes)


# --------------------------------------------------------------------------- network

class StepNetwork:
    """The closed network ``{x, dy, g1..gd}`` of one layer, with bitmask helpers.

    Leaves are numbered ``x=0, dy=1, g_k=k+1``; a node is a bitmask of leaves. ``roots``
    maps each step network's output name to the mask of its inputs."""

    def __init__(self, in_modes, out_modes, ranks, batch):
        self.in_modes, self.out_modes, self.ranks, self.batch = validate_layer(
            in_modes, out_modes, ranks, batch)
        d = self.d = len(self.in_modes)
        self.idx = _plan.ttm_tensors(d)
        self.shapes = _plan.ttm_shapes(self.in_modes, self.out_modes, self.ranks, batch)
        self.sizes: dict[str, int] = {}
        for name, letters in self.idx.items():
            self.sizes.update(zip(letters, self.shapes[name]))
        self.leaves = ["x", "dy"] + [f"g{k}" for k in range(1, d + 1)]
        self.n = len(self.leaves)
        self.full = (1 << self.n) - 1
        self.leaf_bit = {name: 1 << i for i, name in enumerate(self.leaves)}
        # Global index order for intermediates.
        self.letters = ("z" + _plan._IN[:d] + _plan._OUT[:d] + _plan._RANK[1:d])
        ibit = {c: 1 << i for i, c in enumerate(self.letters)}
        lmask = [sum(ibit[c] for c in self.idx[t]) for t in self.leaves]
        # Each index is on exactly two leaves, so the cut of S is the XOR of its leaves.
        cut = [0] * (1 << self.n)
        for s in range(1, 1 << self.n):
            low = s & -s
            cut[s] = cut[s ^ low] ^ lmask[low.bit_length() - 1]
        self.cut = cut
        self._isize = [self.sizes[c] for c in self.letters]
        self._prod: dict[int, int] = {}
        self.roots: dict[str, int] = {}
        self.outputs: list[str] = []
        for out, inputs in _plan.networks(d):
            self.roots[out] = sum(self.leaf_bit[t] for t in inputs)
            self.outputs.append(out)
        self.root_out = {m: o for o, m in self.roots.items()}

    # sizes and names -------------------------------------------------------------
    def prod(self, imask: int) -> int:
        p = self._prod.get(imask)
        if p is None:
            p = 1
            i = 0
            m = imask
            while m:
                if m & 1:
                    p *= self._isize[i]
                m >>= 1
                i += 1
            self._prod[imask] = p
        return p

    def elements(self, s: int) -> int:
        """Elements of the tensor a node denotes."""
        return self.prod(self.cut[s])

    def is_leaf(self, s: int) -> bool:
        return s & (s - 1) == 0

    def leaf_names(self, s: int) -> list[str]:
        return [t for i, t in enumerate(self.leaves) if s >> i & 1]

    def node_name(self, s: int) -> str:
        if s in self.root_out:
            return self.root_out[s]
        return ".".join(self.leaf_names(s))

    def indices(self, s: int) -> str:
        """Index letters of node ``s`` in its layout."""
        if self.is_leaf(s):
            return self.idx[self.leaves[s.bit_length() - 1]]
        if s in self.root_out:
            return self.idx[self.root_out[s]]
        m = self.cut[s]
        return "".join(c for i, c in enumerate(self.letters) if m >> i & 1)

    def shape(self, s: int) -> tuple[int, ...]:
        return tuple(self.sizes[c] for c in self.indices(s))

    def spec(self, a: int, b: int) -> str:
        return f"{self.indices(a)},{self.indices(b)}->{self.indices(a | b)}"

    def macs(self, a: int, b: int) -> int:
        return self.prod(self.cut[a] | self.cut[b])

    def tree_str(self, s: int, splits: dict[int, tuple[int, int]]) -> str:
        if self.is_leaf(s):
            return self.leaves[s.bit_length() - 1]
        a, b = splits[s]
        return f"({self.tree_str(a, splits)},{self.tree_str(b, splits)})"

