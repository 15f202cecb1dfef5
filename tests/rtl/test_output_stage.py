"""OutputStage (rtl/output_stage.py) against sw_model.arith.fixedpoint.output_stage.

One set of cases, run on the golden model, the RTL in pysim and the emitted Verilog in
Icarus: hand-written extremes with hand-derived results, seeded random batches (>= 100
per rounding mode per backend in the default run, >= 1000 in the slow tier) and
hypothesis-drawn batches."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_backends import (RTL_BACKENDS, assert_invalid, backend_params, first_mismatch,
                           simulate)

from fetta.rtl.output_stage import ROUNDING_CODES, OutputStage
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, output_stage, wrap

L = OutputStage.LATENCY
FLOOR, NE, ST = (ROUNDING_CODES[m] for m in ROUNDING_MODES)


def to_inputs(cases):
    """Cases ``(acc, shift, rounding_code, out_bits, seed, index[, valid])`` -> per-cycle
    inputs, plus ``L`` idle cycles so every result comes out."""
    cols = {k: [] for k in ("acc", "shift", "rounding", "out_bits", "seed", "index",
                            "valid")}
    for case in list(cases) + [(0, 0, FLOOR, 16, 0, 0, 0)] * L:
        acc, shift, rnd, ob, seed, index, *valid = case
        for k, v in zip(("acc", "shift", "rounding", "out_bits", "seed", "index"),
                        (acc, shift, rnd, ob, seed, index)):
            cols[k].append(int(v))
        cols["valid"].append(int(valid[0]) if valid else 1)
    return cols


def model(acc_bits):
    """Cycle model: ``out`` at cycle t is the contract's result for vector t - LATENCY."""
    def run(inputs):
        n = len(inputs["acc"])
        res = [int(output_stage(a, shift=s, rounding=ROUNDING_MODES[r], out_bits=o,
                                seed=sd, acc_bits=acc_bits, index=i))
               for a, s, r, o, sd, i in zip(inputs["acc"], inputs["shift"],
                                            inputs["rounding"], inputs["out_bits"],
                                            inputs["seed"], inputs["index"])]
        return {"out": ([0] * L + res)[:n], "out_valid": ([0] * L + inputs["valid"])[:n]}
    return run


def check_against_golden(backend, acc_bits, inputs, **kw):
    got = simulate(backend, lambda: OutputStage(acc_bits, **kw), model(acc_bits), inputs,
                   ["out", "out_valid"])
    want = model(acc_bits)(inputs)
    assert got == want, first_mismatch(got, want, inputs)


def random_cases(rng, n_per_mode, acc_bits):
    """A shuffled batch, ``n_per_mode`` vectors per rounding mode, mixing full-range
    accumulators, values scaled to land near the saturation edges, exact ties and the
    accumulator's extremes; random shifts, out_bits, seeds, indices, valid gaps."""
    n = 3 * n_per_mode
    mode = rng.permutation(np.repeat([FLOOR, NE, ST], n_per_mode))
    shift = rng.integers(0, acc_bits, n)
    out_bits = rng.integers(2, 17, n)
    half = 1 << (acc_bits - 1)
    full = rng.integers(-half, half, n)
    e = np.clip(shift + out_bits + rng.integers(-3, 3, n), 1, acc_bits - 1)
    scaled = (rng.random(n) * 2 - 1) * (2.0 ** e)
    scaled = np.clip(scaled.astype(np.int64), -half, half - 1)
    q = rng.integers(-2**12, 2**12, n)
    ties = wrap((q << shift) + np.where(shift > 0, 1 << np.maximum(shift - 1, 0), 0),
                acc_bits)
    extremes = rng.choice([-half, -half + 1, -1, 0, 1, half - 1], n)
    kind = rng.integers(0, 4, n)
    acc = np.choose(kind, [full, scaled, ties, extremes])
    seed = rng.integers(0, 2**32, n)
    index = rng.integers(0, 2**32, n)
    valid = (rng.random(n) > 0.1).astype(int)
    return list(zip(acc, shift, mode, out_bits, seed, index, valid))


# -- hand-written extremes, results derived by hand ---------------------------------------

HAND = {
    32: [
        # (acc, shift, rounding, out_bits, seed, index) -> out
        ((5, 1, NE, 16, 0, 0), 2),                 # 2.5 -> 2 (tie to even)
        ((7, 1, NE, 16, 0, 0), 4),                 # 3.5 -> 4
        ((-5, 1, NE, 16, 0, 0), -2),               # -2.5 -> -2
        ((-7, 1, NE, 16, 0, 0), -4),               # -3.5 -> -4
        ((2, 2, NE, 16, 0, 0), 0),                 # 0.5 -> 0
        ((-2, 2, NE, 16, 0, 0), 0),                # -0.5 -> 0
        ((6, 2, NE, 16, 0, 0), 2),                 # 1.5 -> 2
        ((-6, 2, NE, 16, 0, 0), -2),               # -1.5 -> -2
        ((3, 2, NE, 16, 0, 0), 1),                 # 0.75 -> 1
        ((-100, 4, FLOOR, 16, 0, 0), -7),          # floor(-6.25)
        ((100, 4, FLOOR, 16, 0, 0), 6),
        ((123, 0, FLOOR, 16, 0, 0), 123),          # shift 0: exact in every mode
        ((-123, 0, NE, 16, 0, 0), -123),
        ((-123, 0, ST, 16, 99, 5), -123),
        ((48, 4, ST, 16, 7, 3), 3),                # exact multiple: dither cannot move it
        ((-48, 4, ST, 16, 8, 4), -3),
        ((-2**31, 31, FLOOR, 16, 0, 0), -1),       # max shift
        ((-2**31, 31, NE, 16, 0, 0), -1),
        ((-2**31, 31, ST, 16, 1, 2), -1),          # r < 2**31 keeps it at -1
        ((2**31 - 1, 31, FLOOR, 16, 0, 0), 0),
        ((2**31 - 1, 31, NE, 16, 0, 0), 1),        # 0.99999 -> 1
        ((0, 31, ST, 16, 3, 3), 0),
        ((2**30, 31, NE, 16, 0, 0), 0),            # 0.5 -> 0
        ((3 * 2**29, 31, NE, 16, 0, 0), 1),        # 0.75 -> 1
        ((32767, 0, FLOOR, 16, 0, 0), 32767),      # saturation edges, 16 bits
        ((32768, 0, FLOOR, 16, 0, 0), 32767),
        ((-32768, 0, FLOOR, 16, 0, 0), -32768),
        ((-32769, 0, FLOOR, 16, 0, 0), -32768),
        ((2**31 - 1, 0, NE, 16, 0, 0), 32767),
        ((-2**31, 0, ST, 16, 0, 0), -32768),
        ((1, 0, FLOOR, 2, 0, 0), 1),               # 2 bits: -2..1
        ((2, 0, FLOOR, 2, 0, 0), 1),
        ((-2, 0, FLOOR, 2, 0, 0), -2),
        ((-3, 0, FLOOR, 2, 0, 0), -2),
        ((255, 1, NE, 8, 0, 0), 127),              # 127.5 -> 128 -> saturates to 127
        ((-257, 1, NE, 8, 0, 0), -128),            # -128.5 -> -128, in range
        ((-259, 1, NE, 8, 0, 0), -128),            # -129.5 -> -130 -> saturates
    ],
    8: [
        ((-128, 7, FLOOR, 16, 0, 0), -1),
        ((-128, 7, NE, 16, 0, 0), -1),
        ((127, 7, NE, 16, 0, 0), 1),
        ((127, 7, FLOOR, 16, 0, 0), 0),
        ((64, 7, NE, 16, 0, 0), 0),                # 0.5 -> 0
        ((-64, 7, NE, 16, 0, 0), 0),               # -0.5 -> 0
        ((-128, 0, FLOOR, 4, 0, 0), -8),
        ((127, 0, NE, 4, 0, 0), 7),
    ],
    48: [
        ((-2**47, 47, FLOOR, 16, 0, 0), -1),
        ((3 * 2**45, 47, NE, 16, 0, 0), 1),        # 0.75 -> 1
        ((3 * 2**40, 40, ST, 16, 5, 6), 3),        # shift > 32: dither below 2**40
        ((-2**40, 40, ST, 16, 5, 7), -1),
        ((2**47 - 1, 1, NE, 16, 0, 0), 32767),
        ((2**35 + 2**34, 35, NE, 16, 0, 0), 2),    # 1.5 -> 2
        ((2**35 * 5 + 2**34, 35, NE, 16, 0, 0), 6),  # 5.5 -> 6
        ((2**35 * 4 + 2**34, 35, NE, 16, 0, 0), 4),  # 4.5 -> 4
    ],
}


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("acc_bits", sorted(HAND))
def test_hand_written_extremes(backend, acc_bits):
    cases = [c for c, _ in HAND[acc_bits]]
    inputs = to_inputs(cases)
    got = simulate(backend, lambda: OutputStage(acc_bits), model(acc_bits), inputs,
                   ["out", "out_valid"])
    want = [0] * L + [o for _, o in HAND[acc_bits]]
    assert got["out"] == want, first_mismatch(got, {"out": want}, inputs)
    assert got["out_valid"] == [0] * L + [1] * len(cases)


@pytest.mark.parametrize("backend", backend_params())
def test_latency_is_stated_latency(backend):
    # One element every third cycle: out_valid is valid delayed by exactly LATENCY.
    cases = [(100 * k, 2, FLOOR, 16, 0, 0, int(k % 3 == 0)) for k in range(9)]
    inputs = to_inputs(cases)
    got = simulate(backend, lambda: OutputStage(32), model(32), inputs,
                   ["out", "out_valid"])
    assert got["out_valid"] == [0] * L + [1, 0, 0] * 3
    assert got["out"][L:L + 9] == [25 * k for k in range(9)]


# -- seeded random batches -------------------------------------------------------------------

DEFAULT_PER_MODE = 120  # x 3 acc widths = 360 per rounding mode per backend
SLOW_PER_MODE = 1000    # x 6 acc widths = 6000 per rounding mode per backend


@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
@pytest.mark.parametrize("acc_bits", [8, 32, 48])
def test_random_vectors(backend, acc_bits):
    rng = np.random.default_rng(1000 + acc_bits)
    cases = random_cases(rng, DEFAULT_PER_MODE, acc_bits)
    assert [c[2] for c in cases].count(ST) == DEFAULT_PER_MODE
    check_against_golden(backend, acc_bits, to_inputs(cases))


@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
def test_steady_seed_variant(backend):
    """``steady_seed=True`` (the CE array's use: one seed per instruction, not
    pipelined along): the same results while the seed is held; blocks of vectors with
    one seed each, the seed changing only after the pipeline has emptied."""
    rng = np.random.default_rng(4242)
    cases = []
    for _ in range(6):
        seed = int(rng.integers(0, 2**32))
        block = random_cases(rng, 20, 32)
        cases += [(a, sh, md, ob, seed, ix, v) for a, sh, md, ob, _, ix, v in block]
        cases += [(0, 0, FLOOR, 16, seed, 0, 0)] * L       # drain before the next seed
    check_against_golden(backend, 32, to_inputs(cases), steady_seed=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
@pytest.mark.parametrize("acc_bits", [8, 16, 24, 32, 40, 48])
def test_random_vectors_slow(backend, acc_bits):
    rng = np.random.default_rng(2000 + acc_bits)
    check_against_golden(backend, acc_bits,
                         to_inputs(random_cases(rng, SLOW_PER_MODE, acc_bits)))


@st.composite
def batches(draw):
    acc_bits = draw(st.integers(8, 48))
    half = 1 << (acc_bits - 1)
    vector = st.tuples(st.integers(-half, half - 1), st.integers(0, acc_bits - 1),
                       st.sampled_from([FLOOR, NE, ST]), st.integers(2, 16),
                       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                       st.integers(0, 1))
    return acc_bits, draw(st.lists(vector, min_size=1, max_size=60))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_hypothesis_pysim(batch):
    acc_bits, cases = batch
    check_against_golden("pysim", acc_bits, to_inputs(cases))


# -- hardware-only behaviour and parameters -------------------------------------------------

@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
def test_out_of_contract_codes_are_defined(backend):
    # Documented in the OutputStage docstring; the golden model rejects these inputs.
    cases = {
        32: [((100, 4, 3, 16, 0, 0), 6),           # rounding code 3 acts as floor
             ((5, 0, FLOOR, 0, 0, 0), 1),          # out_bits 0 and 1 act as 2
             ((-5, 0, FLOOR, 1, 0, 0), -2),
             ((40000, 0, FLOOR, 31, 0, 0), 32767),  # out_bits > 16 acts as 16
             ((-40000, 0, FLOOR, 17, 0, 0), -32768)],
        48: [((-2**47, 60, FLOOR, 16, 0, 0), -1),   # shift > 47 acts as 47
             ((3 * 2**45, 63, NE, 16, 0, 0), 1)],
    }
    for acc_bits, hand in cases.items():
        inputs = to_inputs([c for c, _ in hand])
        got = simulate(backend, lambda: OutputStage(acc_bits), None, inputs, ["out"])
        assert got["out"] == [0] * L + [o for _, o in hand]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_ports_and_latency_attribute():
    stage = OutputStage(48)
    assert OutputStage.LATENCY == stage.LATENCY == 4
    assert stage.shift.shape().width == 6 and stage.acc.shape().signed
    assert stage.out.shape().width == 16 and stage.out.shape().signed
    assert ROUNDING_CODES == {"floor": 0, "nearest-even": 1, "stochastic": 2}


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("acc_bits, pattern", [
    (7, r"acc_bits=7 .*8\.\.48"), (49, r"acc_bits=49 .*8\.\.48"),
    (32.0, r"acc_bits=32\.0 is not an integer")])
def test_invalid_parameters(acc_bits, pattern):
    assert_invalid(lambda: OutputStage(acc_bits), pattern)
