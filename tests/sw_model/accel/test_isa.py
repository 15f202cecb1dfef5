"""The CONTRACT field table (``isa.CONTRACT_FIELDS``): encoding, decoding and the
bound-check schedule all follow it."""

import pytest
from hypothesis import given, settings, strategies as st

from fetta.sw_model.accel.isa import (CHECK_PASSES, CONTRACT_FIELDS, CONTRACT_WORDS,
                                      COUNT_MAX, CW, FIELD, MODE_BITS, MODE_CONTINUE,
                                      MODE_HOLD, N_LEVELS, Contract, Level, Op,
                                      check_cycles, decode_header)
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES


def _value(f):
    if f.kind == "signed":
        return st.integers(-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1)
    return st.integers(0, (1 << f.width) - 1)


@st.composite
def contracts(draw):
    v = {f.name: draw(_value(f)) for f in CONTRACT_FIELDS}
    v["rounding"] = ROUNDING_MODES[v["rounding"] % len(ROUNDING_MODES)]
    v["acc_continue"], v["acc_hold"] = bool(v["acc_continue"]), bool(v["acc_hold"])
    # shift slots: a slot replaces the shift field; a vote needs a slot; code 3 illegal
    v["vote"] %= 3
    if v["slot"]:
        v["shift"] = 0
    else:
        v["vote"] = 0
    levels = tuple(Level(**{a: v.pop(f"level{i}.{a}") for a in
                            ("count", "stride_a", "stride_b", "stride_c", "stride_idx")})
                   for i in range(N_LEVELS))
    return Contract(levels=levels, **v)


@settings(max_examples=200, deadline=None)
@given(contracts())
def test_decode_inverts_encode(c):
    words = c.encode()
    assert decode_header(words[0]) == (Op.CONTRACT, CONTRACT_WORDS)
    assert Contract.decode(words[1:]) == c
    assert Contract.decode(words[1:]).encode() == words


def test_fields_by_hand():
    """Spot checks of the layout the datasheet documents (docs/isa.md)."""
    c = Contract(shift=5, rounding="stochastic", out_bits=8, seed=0xDEADBEEF, base_a=3,
                 base_b=0x1234, base_c=7, k_count=9, k_stride_a=-1, k_stride_b=2,
                 base_idx=-1, row_stride_idx=6, acc_hold=True,
                 levels=(Level(2, -3, 4, 5, -7),) + tuple(Level() for _ in range(3)))
    w = c.encode()[1:]
    assert w[CW.MODE] == 5 | (2 << 6) | (8 << 8) | MODE_HOLD
    assert w[CW.SEED] == 0xDEADBEEF
    assert w[CW.BASE_AB] == 3 | (0x1234 << 16)
    assert w[CW.BASE_C_KCOUNT] == 7 | (9 << 16)
    assert w[CW.KSTRIDE] == 0xFFFF | (2 << 16)
    assert w[CW.BASE_IDX] == 0xFFFFFFFF and w[CW.ROW_STRIDE_IDX] == 6
    assert w[CW.LEVELS:CW.LEVELS + 3] == [2 | (0xFFFD << 16), 4 | (5 << 16), (-7) & 0xFFFFFFFF]
    assert (MODE_BITS, MODE_CONTINUE, MODE_HOLD) == (22, 1 << 13, 1 << 14)
    s = Contract(slot=9, vote="close", out_bits=16).encode()[1:]
    assert s[CW.MODE] == (16 << 8) | (9 << 15) | (2 << 20)


@pytest.mark.parametrize("name, value", [("shift", 64), ("base_a", -1), ("k_stride_b", 1 << 15),
                                         ("level3.count", 1 << 16)])
def test_out_of_range_field_names_itself(name, value):
    c = Contract()
    if name.startswith("level"):
        lv = list(c.levels)
        lv[3] = Level(count=value)
        c = Contract(levels=tuple(lv))
    else:
        c = Contract(**{name: value})
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}={value} out of range"):
        c.encode()


def test_check_passes_read_the_table():
    """Every bound-check pass reads the stride field the table places there."""
    for ps in CHECK_PASSES:
        names = [f.name for f in CONTRACT_FIELDS if f.word == ps.word]
        f = next(FIELD[n] for n in names if "stride" in n and
                 (ps.field == "full" or FIELD[n].lsb == {"lo": 0, "hi": 16}[ps.field]))
        assert f.kind in ("signed", "modular")
        lvl = "k" if ps.level == N_LEVELS else f"level{ps.level}."
        assert f.name.startswith(lvl) and f.name.endswith(f"stride_{ps.stream}"), (ps, f)


def test_decode_rejects_wrong_length():
    with pytest.raises(ValueError, match="CONTRACT payload of 3 words"):
        Contract.decode([0, 0, 0])


def test_check_cycles_follow_the_counts():
    """A pass takes bit_length(count - 1) Horner steps + 1 accumulate cycle, + 1."""
    assert check_cycles((1,) * (N_LEVELS + 1)) == len(CHECK_PASSES) + 1 == 19
    assert check_cycles() == check_cycles((COUNT_MAX,) * (N_LEVELS + 1)) == 18 * 14 + 1
    # level 0 count 2 (1 bit) in passes a, b, c, idx; k_count 9 (4 bits) in a, b
    assert check_cycles((2, 1, 1, 1, 9)) == 18 + 4 * 1 + 2 * 4 + 1
    assert Contract(k_count=9, levels=(Level(2),) + (Level(),) * 3).counts == (2, 1, 1, 1, 9)
    with pytest.raises(ValueError, match="4 loop counts; the bound check takes exactly 5"):
        check_cycles((1,) * 4)
    with pytest.raises(ValueError, match="count=0 out of range; allowed 1..8191"):
        check_cycles((1, 1, 0, 1, 1))
