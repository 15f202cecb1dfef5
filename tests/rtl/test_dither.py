"""DitherHash (rtl/dither.py) against sw_model.arith.fixedpoint.dither_hash."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_backends import (RTL_BACKENDS, assert_invalid, backend_params, first_mismatch,
                           simulate)

from fetta.rtl.dither import DitherHash
from fetta.sw_model.arith.fixedpoint import dither_hash

M32 = 2**32 - 1

# The same anchors as tests/sw_model/arith/test_fixedpoint.py: (seed, index) -> hash word.
ANCHORS = [(0, 0, 0x8FEF9E1C), (0, 1, 0xDFED9C44), (1, 0, 0xCA4BE500),
           (M32, M32, 0xD9AB34B1), (0x12345678, 1000, 0x93109733)]


def model(inputs):
    return {"hash": dither_hash(inputs["seed"], inputs["index"]).tolist()}


def run(backend, inputs):
    return simulate(backend, DitherHash, model, inputs, ["hash"], clocked=False)


@pytest.mark.parametrize("backend", backend_params())
def test_anchors(backend):
    inputs = {"seed": [s for s, _, _ in ANCHORS], "index": [i for _, i, _ in ANCHORS]}
    assert run(backend, inputs)["hash"] == [w for _, _, w in ANCHORS]


@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
def test_random_vectors(backend):
    rng = np.random.default_rng(11)
    n = 500
    seed = rng.integers(0, 2**32, n)
    # half the indices are a counter run, as the output lanes present them
    index = np.where(np.arange(n) < n // 2, np.arange(n), rng.integers(0, 2**32, n))
    inputs = {"seed": seed.tolist(), "index": index.tolist()}
    got = run(backend, inputs)
    want = model(inputs)
    assert got == want, first_mismatch(got, want, inputs)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, M32), st.integers(0, M32)), min_size=1,
                max_size=50))
def test_hypothesis_pysim(pairs):
    inputs = {"seed": [s for s, _ in pairs], "index": [i for _, i in pairs]}
    got = run("pysim", inputs)
    assert got == model(inputs), first_mismatch(got, model(inputs), inputs)


def test_ports():
    hasher = DitherHash()
    assert [hasher.seed.shape().width, hasher.index.shape().width,
            hasher.hash.shape().width] == [32, 32, 32]
    got = simulate("pysim", lambda: hasher, model, {"seed": [0], "index": [0]}, ["hash"],
                   clocked=False)
    assert got["hash"] == [0x8FEF9E1C]


@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
@pytest.mark.parametrize("cuts", [(1, 5, 9), (0, 2, 4, 6, 8, 10), (10,)])
def test_pipelined(backend, cuts):
    # Registered after the listed HASH_STEPS: the hash of the inputs len(cuts) cycles
    # earlier, a new pair every cycle (the seed changes every cycle too).
    rng = np.random.default_rng(12)
    n = 200
    inputs = {"seed": rng.integers(0, 2**32, n).tolist(),
              "index": rng.integers(0, 2**32, n).tolist()}
    hasher = DitherHash(cuts)
    lat = hasher.latency
    assert lat == len(cuts)
    got = simulate(backend, lambda: hasher, None, inputs, ["hash"])
    want = {"hash": ([int(dither_hash(0, 0))] * lat + model(inputs)["hash"])[:n]}
    assert got["hash"][lat:] == want["hash"][lat:], first_mismatch(got, want, inputs)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("cuts", [(11,), (-1,), (1.5,)])
def test_pipelined_bad_cuts(cuts):
    assert_invalid(lambda: DitherHash(cuts), r"cuts=.* out of range; allowed 0\.\.10")
