"""The emitted Verilog behaves the same from power-up in Icarus -g2005, Icarus -g2012
and Verilator (rtl/emit.py, sim/bus_replay.py).

Each trace starts a fresh simulation with no reset (registers at their initializers)
and begins with a different kind of contraction, recorded through ``Session`` on pysim:
its reads (results, status, ERR_PC, every counter) must come back identical in every
simulator, and pysim's results are checked against the golden model first.
"""

import numpy as np
import pytest

from fetta.sim.bus_replay import (RecordingBackend, available_simulators, compare_replay,
                                  run_replay)
from fetta.sim.harness import Session
from fetta.sim.backends.pysim import PysimBackend
from fetta.rtl.emit import emit_verilog, evaluate_at_time_zero
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.accel.hostmap import PROG_BASE, REG_BASE, ErrorCode, Reg, ctrl_start
from fetta.sw_model.accel.isa import Mapping, Op, header

CONFIG = "tiny"
HAVE = available_simulators()


def _contract(s, spec, sa, sb, data_seed, **kw):
    rng = np.random.default_rng(data_seed)
    a = rng.integers(-2000, 2000, sa)
    b = rng.integers(-2000, 2000, sb)
    res = s.contract(spec, a, b, **kw)
    kw.pop("mapping", None)
    golden = reference_contraction(spec, a, b, acc_bits=s.config.acc_bits, **kw)
    assert np.array_equal(res.output, golden), f"pysim differs from golden on {spec}"


def _error_program(s):
    """An illegal opcode after a SYNC: halts with ILLEGAL_OPCODE, ERR_PC = 1."""
    be = s.backend
    be.clear()
    be.write(PROG_BASE, [header(Op.SYNC), 0x7E])
    st = be.run(1000)
    assert st.error == ErrorCode.ILLEGAL_OPCODE and st.err_pc == 1
    be.read_reg(Reg.PC)


def _start_words(s):
    """A program started where it lies (CTRL bits 31..16): SYNC and an illegal opcode at
    words 600, 601 halt with ERR_PC 601; a start word past program memory (written
    raw) halts at once with PROGRAM_RANGE, ERR_PC = the program depth."""
    be, depth = s.backend, s.config.prog_depth
    be.clear()
    be.write(PROG_BASE + 600, [header(Op.SYNC), 0x7E])
    st = be.run(1000, start=600)
    assert st.error == ErrorCode.ILLEGAL_OPCODE and st.err_pc == 601
    be.clear()
    be.write(REG_BASE + Reg.CTRL, [ctrl_start(depth)])
    for _ in range(8):
        status = be.read_reg(Reg.STATUS)
    assert (status >> 8) == ErrorCode.PROGRAM_RANGE and be.read_reg(Reg.ERR_PC) == depth


# trace name -> what runs first after power-up (then a GEMM, checking persistence)
TRACES = {
    "gemm": lambda s: _contract(s, "ik,kj->ij", (4, 6), (6, 4), 1, shift=4),
    "permuted_batch": lambda s: _contract(s, "zbmk,kn->nzm", (2, 3, 5, 7), (7, 6), 2,
                                          shift=6, rounding="nearest-even"),
    "stochastic_ksplit": lambda s: _contract(s, "ik,kj->ij", (2, 40), (40, 2), 3,
                                             shift=5, rounding="stochastic", seed=99,
                                             mapping=Mapping(1, 1, 4)),
    "error_first": _error_program,
    "start_words": _start_words,
}


@pytest.fixture(scope="module")
def design():
    from fetta.rtl.top import Accelerator
    return emit_verilog(Accelerator(get_config(CONFIG)), name="fetta_accel")


@pytest.fixture(scope="module")
def traces():
    out = {}
    for name, first in TRACES.items():
        rec = RecordingBackend(PysimBackend(CONFIG))
        with Session(CONFIG, rec) as s:
            first(s)
            _contract(s, "ik,kj->ij", (3, 5), (5, 4), 10, shift=3)
        out[name] = rec.ops
    return out


@pytest.mark.parametrize("simulator", ["iverilog-2005", "iverilog-2012", "verilator"])
@pytest.mark.parametrize("trace", list(TRACES))
def test_same_from_power_up(trace, simulator, design, traces):
    if simulator not in HAVE:
        pytest.skip(f"{simulator} tools not installed; .ci/run installs them")
    ops = traces[trace]
    got = run_replay(design, ops, simulator)
    problems = compare_replay(ops, got, simulator)
    assert not problems, f"{trace}: " + "; ".join(problems[:5])


def test_raw_yosys_output_differs_under_icarus_2012(traces):
    """Why the fix exists: yosys' own time-0 trick does not fire under -g2012, and the
    first contraction after power-up reads back wrong results."""
    if "iverilog-2012" not in HAVE:
        pytest.skip("Icarus Verilog not installed; .ci/run installs it")
    from amaranth.back import verilog
    from fetta.rtl.top import Accelerator
    raw = verilog.convert(Accelerator(get_config(CONFIG)), name="fetta_accel",
                          emit_src=False)
    assert evaluate_at_time_zero(raw) != raw
    ops = traces["gemm"]
    assert compare_replay(ops, run_replay(raw, ops, "iverilog-2012"), "iverilog-2012")


def test_fix_keeps_one_register_per_module_and_is_idempotent_on_plain_text():
    text = ("module m;\n  reg \\$auto$verilog_backend.cc:1:dump_module$3 = 0;\n"
            "  always @* begin\n    if (\\$auto$verilog_backend.cc:1:dump_module$3 ) "
            "begin end\n  end\nendmodule\n")
    fixed = evaluate_at_time_zero(text)
    assert "dump_module$3 = 0;" not in fixed
    assert fixed.index("initial \\$auto$verilog_backend.cc:1:dump_module$3 = 1'b0;") > \
        fixed.index("always @*")
    plain = "module n;\n  assign x = 1;\nendmodule\n"
    assert evaluate_at_time_zero(plain) == plain
