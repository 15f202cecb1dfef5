"""Elementwise work in flight on the RTL (``sw_model.program.elementwise``): a two-layer
forward pass of the training recipe — contraction, bias add in place on its result in
C, ReLU with the stochastic activation requantization straight into the next
contraction's operand layout, the next contraction — runs on the chip with no host
transfer of the intermediate, bit-exact with the recipe's NumPy functions and
cycle-exact with the model, on pysim and the compiled backends."""

import numpy as np
import pytest

from fetta.sim.backends.base import get_backend
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import PROG_BASE, buffer_base
from fetta.sw_model.accel.isa import HALT
from fetta.sw_model.accel.timing import timing
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.arith.fixedpoint import saturate
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.program.elementwise import in_place, to_operand, vec_map
from fetta.sw_model.program.fabric_model import run_program
from fetta.sw_model.program.moves import result_words
from fetta.sw_model.train.quant_train import requantize

CFG = get_config("tiny")
B, K, N, M = 6, 40, 12, 10
S1, S2, SA = 9, 6, 7
SEEDS = (0x1234, 0xBEEF, 0xC0DE)


def _case(seed):
    rng = np.random.default_rng(seed)
    return dict(x=rng.integers(-128, 128, (B, K)), w1=rng.integers(-8, 8, (K, N)),
                bias=rng.integers(-3000, 3000, N), w2=rng.integers(-8, 8, (N, M)))


def _recipe(t):
    """The recipe's forward pass in NumPy (``sw_model/train/paths.py``)."""
    y = reference_contraction("bk,kn->bn", t["x"], t["w1"], shift=S1,
                              rounding="stochastic", seed=SEEDS[0])
    z = saturate(y + t["bias"], 16)
    h = requantize(np.maximum(z, 0), SA, 8, "stochastic", SEEDS[1])
    out = reference_contraction("bn,nm->bm", h, t["w2"], shift=S2,
                                rounding="stochastic", seed=SEEDS[2])
    return {"z": z, "h": h, "out": out}


def _plan():
    cc1 = compile_contraction("bk,kn->bn", (B, K), (K, N), CFG, shift=S1,
                              rounding="stochastic", seed=SEEDS[0])
    cc2 = compile_contraction("bn,nm->bm", (B, N), (N, M), CFG, shift=S2,
                              rounding="stochastic", seed=SEEDS[2])
    y_words = result_words(cc1)                    # C word of y[b, n], row-major
    bias_row = cc1.b_rows                          # the bias, densely, after w1 in B
    add = in_place(CFG, "add", np.tile(np.arange(N), B), y_words, src="B", dst="C",
                   src_row=bias_row)
    act = to_operand(CFG, "relu_req", y_words, cc2, "a", (B, N), src="C", shift=SA,
                     rounding="stochastic", out_bits=8, seed=SEEDS[1])
    return cc1, cc2, bias_row, add, act


def _write(be, buf, row, rows):
    lanes = rows.shape[1]
    be.write(buffer_base(buf) + row * lanes, (rows.reshape(-1) & 0xFFFF).tolist())


def _read(be, buf, row, n_rows, lanes):
    w = np.array(be.read(buffer_base(buf) + row * lanes, n_rows * lanes), np.int64)
    return ((((w & 0xFFFF) + 32768) & 0xFFFF) - 32768).reshape(n_rows, lanes)


def _run_onchip(be, t):
    """Three programs; the host writes x, w1, the bias and w2 and reads the output
    (and, for the report, h in A and z in C before the last program)."""
    cc1, cc2, bias_row, add, act = _plan()
    tm = timing(CFG)
    be.clear()
    _write(be, 0, 0, cc1.pack_a(t["x"]))
    _write(be, 1, 0, cc1.pack_b(t["w1"]))
    _write(be, 1, bias_row, t["bias"].reshape(-1, CFG.b_lanes) if N % CFG.b_lanes == 0
           else np.pad(t["bias"], (0, -N % CFG.b_lanes)).reshape(-1, CFG.b_lanes))
    be.write(PROG_BASE, cc1.program)
    st1 = be.run(1_000_000)
    assert st1.ok, hex(st1.status)
    assert st1.counters["cycles"] == cc1.predicted_cycles
    be.clear()
    be.write(PROG_BASE, add.program() + act.program() + [HALT])
    st2 = be.run(1_000_000)
    assert st2.ok, hex(st2.status)
    assert st2.counters["cycles"] == add.cycles + act.cycles + tm.fetch
    assert st2.counters["vec_cycles"] == add.elements + act.elements
    z = cc1.unpack_c(_read(be, 2, 0, cc1.c_rows, CFG.c_lanes))
    h_rows = _read(be, 0, 0, cc2.a_rows, CFG.a_lanes)
    be.clear()
    _write(be, 1, 0, cc2.pack_b(t["w2"]))
    be.write(PROG_BASE, cc2.program)
    st3 = be.run(1_000_000)
    assert st3.ok, hex(st3.status)
    assert st3.counters["cycles"] == cc2.predicted_cycles
    out = cc2.unpack_c(_read(be, 2, 0, cc2.c_rows, CFG.c_lanes))
    return {"z": z, "h_rows": h_rows, "out": out}, cc2


def _compare(got, want, cc2, label):
    for name, g, w in (("z = saturate(y + bias)", got["z"], want["z"]),
                       ("h rows in A", got["h_rows"], cc2.pack_a(want["h"])),
                       ("out", got["out"], want["out"])):
        bad = np.argwhere(np.asarray(g) != np.asarray(w))
        assert not len(bad), (f"{label}: {name} element {tuple(bad[0])}: chip "
                              f"{g[tuple(bad[0])]}, recipe {w[tuple(bad[0])]}")


def test_plan_on_the_functional_model():
    """The VEC plans on the fabric model give the recipe's z and h."""
    t = _case(1)
    want = _recipe(t)
    cc1, cc2, bias_row, add, act = _plan()
    a = cc1.pack_a(t["x"])
    b = np.zeros((CFG.bank_depth, CFG.b_lanes), np.int64)
    w1 = cc1.pack_b(t["w1"])
    b[:len(w1)] = w1
    b.reshape(-1)[bias_row * CFG.b_lanes:bias_row * CFG.b_lanes + N] = t["bias"]
    state = {}
    c = run_program(CFG, cc1.program, a, b, state=state)
    c = run_program(CFG, add.program() + act.program() + [HALT], state["A"], state["B"],
                    c, state=state)
    assert np.array_equal(cc1.unpack_c(c[:cc1.c_rows]), want["z"])
    assert np.array_equal(state["A"][:cc2.a_rows], cc2.pack_a(want["h"]))


@pytest.mark.parametrize("backend", ["pysim",
                                     pytest.param("verilator", marks=pytest.mark.slow),
                                     pytest.param("cxxrtl", marks=pytest.mark.slow)])
def test_two_layer_forward_on_chip_is_the_recipe(backend):
    with get_backend(backend, CFG) as be:
        for seed in (1, 2):
            t = _case(seed)
            got, cc2 = _run_onchip(be, t)
            _compare(got, _recipe(t), cc2, f"{backend} case {seed}")


def test_replicas_get_the_same_dither():
    """An element written to several words (replicas) is walked once per replica set,
    in element order, so every copy is the same stochastic rounding."""
    n = 20
    elem = np.r_[np.arange(n), np.arange(0, n, 3)]
    src_w = np.r_[np.arange(n), np.arange(0, n, 3)]
    dst_w = np.r_[np.arange(n), 100 + np.arange(len(range(0, n, 3)))]
    plan = vec_map(CFG, "requant", elem, src_w, dst_w, src="C", dst="A", shift=4,
                   rounding="stochastic", seed=9)
    rng = np.random.default_rng(4)
    c = np.zeros((CFG.bank_depth, CFG.c_lanes), np.int64)
    c.reshape(-1)[:n] = rng.integers(-30000, 30000, n)
    a = np.zeros((CFG.bank_depth, CFG.a_lanes), np.int64)
    b = np.zeros((CFG.bank_depth, CFG.b_lanes), np.int64)
    state = {}
    run_program(CFG, plan.program() + [HALT], a, b, c, state=state)
    flat = state["A"].reshape(-1)
    want = requantize(c.reshape(-1)[:n], 4, 16, "stochastic", 9)
    assert np.array_equal(flat[:n], want)
    assert np.array_equal(flat[100:100 + len(range(0, n, 3))], want[::3])
