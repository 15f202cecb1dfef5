"""The fabric's functional model agrees with the golden model and with the RTL."""

import numpy as np
import pytest

from fetta.sim.harness import run_contraction
from fetta.sim.random_cases import random_cases
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.accel.config import PRESETS
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.program.fabric_model import run_program

CASES = random_cases(30, seed=777)


def model_output(case, config="tiny"):
    cfg = PRESETS[config] if isinstance(config, str) else config
    cc = compile_contraction(case.spec, case.a.shape, case.b.shape, cfg, **case.kwargs())
    c = run_program(cfg, cc.program, cc.pack_a(case.a), cc.pack_b(case.b))
    return cc.unpack_c(c[:cc.c_rows])


@pytest.mark.parametrize("idx", range(len(CASES)))
def test_model_matches_golden(idx):
    case = CASES[idx]
    np.testing.assert_array_equal(model_output(case),
                                  reference_contraction(case.spec, case.a, case.b,
                                                        **case.kwargs()))


@pytest.mark.parametrize("config", ["ecp5", "large"])
def test_model_matches_golden_on_bigger_arrays(config):
    for case in random_cases(5, seed=31, config=config):
        np.testing.assert_array_equal(model_output(case, config),
                                      reference_contraction(case.spec, case.a, case.b,
                                                            **case.kwargs()))


@pytest.mark.parametrize("idx", range(5))
def test_model_matches_rtl(idx):
    case = CASES[idx]
    rtl = run_contraction(case.spec, case.a, case.b, **case.kwargs())
    np.testing.assert_array_equal(model_output(case), rtl.output)
