"""The controller's CONTRACT decoder layouts are generated from the ISA field table."""

import pytest
from amaranth import Const, signed, unsigned
from amaranth.sim import Simulator

from fetta.rtl.isa_layout import word_layout, word_view
from fetta.sw_model.accel.isa import CONTRACT_FIELDS, CONTRACT_WORDS, CW, Contract, Level


def test_every_field_is_in_its_word_layout():
    for f in CONTRACT_FIELDS:
        lay = word_layout(f.word)
        member = lay[f.name.rpartition(".")[2]]
        assert member.offset == f.lsb, f.name
        assert member.shape == (signed if f.signed else unsigned)(f.width), f.name


def test_views_decode_an_encoded_contract():
    c = Contract(shift=7, rounding="nearest-even", out_bits=12, base_a=11, base_b=22,
                 base_c=33, k_count=44, k_stride_a=-2, k_stride_b=3, acc_continue=True,
                 levels=(Level(5, -6, 7, -8, 9),) + tuple(Level() for _ in range(3)))
    words = c.encode()[1:]
    mode = word_view(CW.MODE, Const(words[CW.MODE], 32))
    kst = word_view(CW.KSTRIDE, Const(words[CW.KSTRIDE], 32))
    lvl = word_view(CW.LEVELS, Const(words[CW.LEVELS], 32))
    got = {}

    async def bench(ctx):
        got.update(shift=ctx.get(mode.shift), out_bits=ctx.get(mode.out_bits),
                   cont=ctx.get(mode.acc_continue), hold=ctx.get(mode.acc_hold),
                   ksa=ctx.get(kst.k_stride_a), ksb=ctx.get(kst.k_stride_b),
                   count=ctx.get(lvl.count), sa=ctx.get(lvl.stride_a))

    from amaranth import Module
    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert got == dict(shift=7, out_bits=12, cont=1, hold=0, ksa=-2, ksb=3, count=5, sa=-6)


def test_word_without_fields_is_refused():
    with pytest.raises(ValueError, match=f"payload word {CONTRACT_WORDS} has no CONTRACT field"):
        word_layout(CONTRACT_WORDS)
