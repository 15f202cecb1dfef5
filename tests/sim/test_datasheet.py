"""sim/datasheet.py: docs/datasheet.md is what the code generates, and the numbers it
derives (CONTRACT layout, dither steps) agree with the encoders and the golden hash."""

from pathlib import Path

import numpy as np
import pytest

from fetta.sim import datasheet
from fetta.sw_model.accel.isa import Contract, Level
from fetta.sw_model.arith.fixedpoint import dither_hash

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasheet.md"


def test_datasheet_is_up_to_date():
    assert DOC.read_text() == datasheet.render(), \
        "docs/datasheet.md is out of date: run python scripts/gen_docs.py datasheet"


@pytest.mark.parametrize("seed, index", [(0x12345678, 42), (0, 0), (0xFFFFFFFF, 2**31 + 7)])
def test_dither_steps_end_in_the_golden_hash(seed, index):
    steps = datasheet.dither_steps(seed, index)
    assert len(steps) == 12
    assert steps[-1][1] == int(dither_hash(seed, index))


def test_contract_field_table_decodes_an_instruction():
    """Reading each field back at the table's bit positions gives the encoded value."""
    rng = np.random.default_rng(3)
    values = {"shift": 17, "out_bits": 9, "seed": 0xDEADBEEF, "base_a": 513,
              "base_b": 7, "base_c": 300, "k_count": 4095, "k_stride_a": -3,
              "k_stride_b": 5, "base_idx": 123456, "row_stride_idx": 99,
              "acc_continue": True, "acc_hold": False}
    levels = tuple(Level(int(rng.integers(1, 999)), -i - 1, i + 2, -7, 1000 + i)
                   for i in range(4))
    words = Contract(rounding="stochastic", levels=levels, **values).encode()[1:]
    # the shift-slot fields (a slot replaces the shift field, so a second instruction)
    slotted = Contract(**dict(values, shift=0), slot=21, vote="gather").encode()[1:]
    words[0] |= slotted[0] & ~((1 << 6) - 1)
    values.update(slot=21, vote=1)
    want = dict(values, rounding=2)
    for i, lv in enumerate(levels):
        for f in ("count", "stride_a", "stride_b", "stride_c", "stride_idx"):
            want[f"level {i} {f}"] = getattr(lv, f)
    seen = set()
    for w, lo, hi, name in datasheet.contract_fields():
        width = hi - lo + 1
        raw = (words[w] >> lo) & ((1 << width) - 1)
        v = want[name]
        assert raw == v & ((1 << width) - 1), (name, raw, v)
        seen.add(name)
    assert seen == set(want)
