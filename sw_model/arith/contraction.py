"""The golden model of one pairwise contraction on the accelerator.

``reference_contraction`` is exactly what the hardware computes for an einsum: exact
integer products summed, wrapped to ``acc_bits``, then the shared output stage with the
dither indexed by the flat row-major position in the *output tensor*.
"""

from __future__ import annotations

import numpy as np

from .einsum_spec import parse_spec
from .fixedpoint import Pow2Code, check_width, output_stage

__all__ = ["reference_contraction", "check_operand"]


def check_operand(name: str, x, bits: int = 16) -> np.ndarray:
    """An operand as int64, every value inside the signed ``bits`` range."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise ValueError(f"operand {name} dtype {x.dtype} invalid; allowed integer arrays")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    # the range is checked on the values as given (a uint64 2**64-1 is not -1)
    if x.size and (int(x.min()) < lo or int(x.max()) > hi):
        v = int(x.min()) if int(x.min()) < lo else int(x.max())
        raise ValueError(f"operand {name} value {v} out of range; allowed {lo}..{hi}")
    return x.astype(np.int64)


def reference_contraction(spec, a, b, *, shift: int = 0, rounding: str = "floor",
                          out_bits: int = 16, seed: int = 0, acc_bits: int = 32,
                          operand_bits: int = 16, b_pow2: Pow2Code | None = None):
    """Golden result of ``spec`` on integer operands ``a`` and ``b``.

    With ``b_pow2`` set, ``b`` holds power-of-two weight codes (the shift-MAC variant)."""
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    check_width(operand_bits, "operand_bits")
    a = check_operand("A", a, operand_bits)
    if b_pow2 is not None:
        b = b_pow2.decode(np.asarray(b))
    else:
        b = check_operand("B", b, operand_bits)
    sp.sizes(a.shape, b.shape)
    acc = np.einsum(f"{sp.a},{sp.b}->{sp.out}", a, b, optimize=False).astype(np.int64)
    return output_stage(acc, shift=shift, rounding=rounding, out_bits=out_bits,
                        seed=seed, acc_bits=acc_bits)
