"""Compiler: parameter rewrite, chunk planning, mapping search."""

import numpy as np
import pytest

from fetta.sw_model.program.compiler import (chunk_plan, compile_contraction, fits, mappings,
                               predict_cycles)
from fetta.sw_model.accel.config import PRESETS, AccelConfig
from fetta.sw_model.accel.isa import Mapping


def test_with_params_equals_fresh_compile():
    base = compile_contraction("bij,bjk->bki", (3, 5, 7), (3, 7, 6), "tiny")
    for kw in (dict(shift=3, rounding="stochastic", out_bits=9, seed=77),
               dict(shift=0, rounding="floor", out_bits=16, seed=0)):
        fresh = compile_contraction("bij,bjk->bki", (3, 5, 7), (3, 7, 6), "tiny",
                                    index_offset=11, **kw)
        assert base.with_params(index_offset=11, **kw).program == fresh.program


def test_with_params_validates():
    base = compile_contraction("ij,jk->ik", (2, 2), (2, 2), "tiny")
    with pytest.raises(ValueError, match="out_bits=17"):
        base.with_params(shift=0, rounding="floor", out_bits=17, seed=0)


def test_mappings_cover_all_factorizations():
    maps = list(mappings(PRESETS["large"]))
    assert len(maps) == len(set(maps)) == 15          # 16 = 2^4: C(4+2, 2)
    assert all(m.ga * m.gb * m.gk == 16 for m in maps)


def test_search_picks_fewest_cycles():
    best = predict_cycles("mk,kn->mn", (3, 40), (40, 3), "tiny")
    for mp in mappings(PRESETS["tiny"]):
        assert best <= predict_cycles("mk,kn->mn", (3, 40), (40, 3), "tiny", mapping=mp)


def test_chunks_are_contiguous_and_cover_output():
    cfg = AccelConfig(bank_depth=64)
    assert not fits("mbk,kn->mbn", (24, 3, 20), (20, 24), cfg)
    chunks = chunk_plan("mbk,kn->mbn", (24, 3, 20), (20, 24), cfg)
    covered = np.zeros((24, 3, 24), dtype=int)
    strides = (72, 24, 1)
    for ranges, offset in chunks:
        sl = tuple(slice(*ranges[i]) if i in ranges else slice(None) for i in "mbn")
        covered[sl] += 1
        assert offset == sum(ranges[i][0] * s for i, s in zip("mbn", strides) if i in ranges)
    assert (covered == 1).all()


def test_forced_mapping_must_cover_the_array():
    with pytest.raises(ValueError, match="ga\\*gb\\*gk=8; must equal n_ce=4"):
        compile_contraction("ij,jk->ik", (2, 2), (2, 2), "tiny", mapping=Mapping(2, 2, 2))
