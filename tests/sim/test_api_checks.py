"""One validation layer at the public API edge (``fetta/api_checks.py``): every bad
argument of ``run_contraction``, ``Session.contract`` and a backend's ``read``/
``write`` is a one-line ``TypeError``/``ValueError`` naming the value and what is
allowed -- never accepted silently, never an error from deep inside."""

import numpy as np
import pytest

from fetta.sim.harness import Session, run_contraction
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.accel.hostmap import buffer_base
from fetta.sw_model.accel.isa import Mapping

A = np.arange(6).reshape(2, 3)
B = np.arange(12).reshape(3, 4)
SPEC = "mk,kn->mn"

# (keyword overrides, error type, text the message must contain)
BAD_CALLS = [
    (dict(seed=1.9), TypeError, "seed=1.9"),
    (dict(seed="5"), TypeError, "seed='5'"),
    (dict(seed=True), TypeError, "seed=True"),
    (dict(seed=None), TypeError, "seed=None"),
    (dict(seed=-1), ValueError, "seed=-1"),
    (dict(seed=1 << 32), ValueError, "seed=4294967296"),
    (dict(shift=32), ValueError, "shift=32"),
    (dict(shift=2.0), TypeError, "shift=2.0"),
    (dict(out_bits=17), ValueError, "out_bits=17"),
    (dict(out_bits=np.float32(8)), TypeError, "out_bits="),
    (dict(rounding="up"), ValueError, "rounding='up'"),
    (dict(rounding=None), ValueError, "rounding=None"),
    (dict(spec=None), TypeError, "spec=None"),
    (dict(spec=5), TypeError, "spec=5"),
    (dict(spec="mk,kn"), ValueError, "mk,kn"),
    (dict(mapping=(2, 2, 2)), ValueError, "ga*gb*gk"),
    (dict(mapping="2,2,1"), TypeError, "mapping='2,2,1'"),
    (dict(mapping=(2, 2.0, 1)), TypeError, "mapping gb=2.0"),
    (dict(max_cycles=0), ValueError, "max_cycles=0"),
    (dict(max_cycles=10.5), TypeError, "max_cycles=10.5"),
    (dict(a=np.array([[2 ** 64 - 1]], dtype=np.uint64), b=np.ones((1, 1), int)),
     ValueError, "18446744073709551615"),
    (dict(a=np.ones((2, 3)) * 0.5), TypeError, "dtype float64"),
    (dict(a=None), TypeError, "operand A=None"),
    (dict(a=np.ones((2, 4), int)), ValueError, "size"),
    (dict(b=[[1 << 15] * 4] * 3), ValueError, "32768"),
]


def _call(fn, kw):
    args = dict(spec=SPEC, a=A, b=B)
    args.update(kw)
    return fn(args.pop("spec"), args.pop("a"), args.pop("b"), **args)


@pytest.fixture(scope="module")
def session():
    with Session("tiny", "pysim") as s:
        yield s


@pytest.mark.parametrize("kw,exc,text", BAD_CALLS, ids=[str(c[0])[:40] for c in BAD_CALLS])
def test_bad_contract_argument_is_one_line_error(session, kw, exc, text):
    for fn in (run_contraction, session.contract):
        with pytest.raises(exc) as info:
            _call(fn, kw)
        msg = str(info.value)
        assert text in msg and "\n" not in msg, msg


def test_numpy_integer_arguments_are_taken_exactly(session):
    """np.int8(8) for out_bits overflowed to a hardware BAD_CONFIG (int8 << 8)."""
    kw = dict(shift=np.int8(1), out_bits=np.int8(8), seed=np.uint32(7),
              rounding="stochastic")
    res = session.contract(SPEC, A, B, mapping=(2, 2, 1), **kw)
    want = reference_contraction(SPEC, A, B, shift=1, out_bits=8, seed=7,
                                 rounding="stochastic")
    np.testing.assert_array_equal(res.output, want)
    assert res.mapping == Mapping(2, 2, 1)


@pytest.mark.parametrize("addr,words,exc", [
    (-1, [0], ValueError), (1 << 24, [0], ValueError), (2.0, [0], TypeError),
    (buffer_base(0), [1.5], TypeError), (buffer_base(0), [1 << 32], ValueError),
    (buffer_base(0), [-(1 << 31) - 1], ValueError), (buffer_base(0), "ab", TypeError),
    (buffer_base(0), [True], TypeError), ((1 << 24) - 1, [0, 0], ValueError),
])
def test_bad_bus_write_is_one_line_error(session, addr, words, exc):
    with pytest.raises(exc) as info:
        session.backend.write(addr, words)
    assert "\n" not in str(info.value) and "allowed" in str(info.value)


@pytest.mark.parametrize("addr,count,exc", [
    (-1, 1, ValueError), (0, -1, ValueError), (0, 1.0, TypeError),
    ((1 << 24) - 1, 2, ValueError), (None, 1, TypeError),
])
def test_bad_bus_read_is_one_line_error(session, addr, count, exc):
    with pytest.raises(exc) as info:
        session.backend.read(addr, count)
    assert "\n" not in str(info.value) and "allowed" in str(info.value)
