"""K-chunk plans (sw_model/program/kchunk.py): boxes partition K, the plan run on the
functional fabric model (accumulators carried between programs) equals the golden
contraction, costs agree with the compiler and CSSE."""

import itertools

import numpy as np
import pytest

from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.isa import MODE_CONTINUE, MODE_HOLD, Contract, CW
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.program.fabric_model import run_program
from fetta.sw_model.program.kchunk import k_boxes, kchunk_plan, needs_kchunks, predict_total
from fetta.sw_model.ttm.contraction_costs import cycles_cost

D16 = AccelConfig(name="tiny-d16", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=16)


@pytest.mark.parametrize("spec,shape_a,shape_b,cap", [
    ("mk,kn->mn", (2, 100), (100, 3), 64),
    ("bkj,njk->nb", (2, 9, 13), (3, 13, 9), 20),
    ("bkj,njk->nb", (2, 9, 13), (3, 13, 9), 5),
])
def test_boxes_partition_the_reduction(spec, shape_a, shape_b, cap):
    sp = parse_spec(spec)
    sizes = sp.sizes(shape_a, shape_b)
    seen = np.zeros([sizes[i] for i in sp.k], dtype=int)
    for box in k_boxes(sp, sizes, cap):
        sl = tuple(slice(*box[i]) if i in box else slice(None) for i in sp.k)
        assert seen[sl].size <= cap
        seen[sl] += 1
    assert (seen == 1).all()


def test_flags_encode_in_mode_and_survive_with_params():
    w = Contract(shift=3, acc_continue=True, acc_hold=True).encode()
    assert w[1 + CW.MODE] & MODE_CONTINUE and w[1 + CW.MODE] & MODE_HOLD
    cc = compile_contraction("mk,kn->mn", (2, 8), (8, 2), D16, acc_hold=True)
    cc2 = cc.with_params(shift=5, rounding="floor", out_bits=12, seed=1)
    words = [w for w in cc2.program]
    mode = words[words.index(next(w for w in words if w & 0xFF == 2)) + 1 + CW.MODE]
    assert mode & MODE_HOLD and not mode & MODE_CONTINUE and mode & 0x3F == 5


def test_needs_kchunks_only_when_one_element_does_not_fit():
    sp = parse_spec("mk,kn->mn")
    assert not needs_kchunks(sp, {"m": 100, "k": 64, "n": 100}, D16)   # output chunks
    assert needs_kchunks(sp, {"m": 1, "k": 65, "n": 1}, D16)


@pytest.mark.parametrize("spec,shape_a,shape_b,kw", [
    ("mk,kn->mn", (3, 150), (150, 5), dict(shift=4, rounding="stochastic", seed=7)),
    ("bkj,njk->nb", (2, 9, 13), (3, 13, 9), dict(shift=3, out_bits=12)),
    ("zkm,k->mz", (2, 200, 3), (200,), dict(shift=2, rounding="nearest-even")),
])
def test_plan_on_fabric_model_is_bit_exact(spec, shape_a, shape_b, kw):
    """Every program of the plan, compiled as the harness does, run on the functional
    model with the accumulators carried over, reproduces the golden result, also when
    the 32-bit sums wrap."""
    sp = parse_spec(spec)
    rng = np.random.default_rng(len(spec))
    a = rng.choice([-32768, 32767, 1234], shape_a)
    b = rng.choice([-32768, 32767, -77], shape_b)
    plan = kchunk_plan(sp, shape_a, shape_b, D16)
    out = np.zeros(sp.output_shape(shape_a, shape_b), dtype=np.int64)
    state, cycles = {}, 0
    for tile, box, first, last in plan.runs():
        r = {**tile, **box}
        sa, sb = plan.shapes(tile, box)
        cc = compile_contraction(sp, sa, sb, D16, mapping=plan.mapping,
                                 lanes=(plan.im, plan.in_), idx_strides=plan.idx_strides,
                                 index_offset=plan.index_offset(tile),
                                 acc_continue=not first, acc_hold=not last, **kw)
        cycles += cc.predicted_cycles
        ta = a[tuple(slice(*r[i]) if i in r else slice(None) for i in sp.a)]
        tb = b[tuple(slice(*r[i]) if i in r else slice(None) for i in sp.b)]
        c = run_program(D16, cc.program, cc.pack_a(ta), cc.pack_b(tb), state=state)
        if last:
            out[tuple(slice(*tile[i]) for i in sp.out)] = cc.unpack_c(c[:cc.c_rows])
        else:
            assert not c.any()                     # a held chunk writes nothing
    np.testing.assert_array_equal(out, reference_contraction(spec, a, b, **kw))
    assert cycles == plan.predicted_cycles
    assert predict_total(sp, shape_a, shape_b, D16) == (cycles, plan.programs)


def test_csse_cycles_cost_covers_long_reductions():
    cost = cycles_cost(D16)
    c = cost("mk,kn->mn", (3, 150), (150, 5))
    assert c == predict_total("mk,kn->mn", (3, 150), (150, 5), D16)[0] < float("inf")
