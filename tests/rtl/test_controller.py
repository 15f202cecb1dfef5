"""Controller: error register, halting, untouched buffers, counters."""

import numpy as np
import pytest

from fetta.sim.backends.pysim import PysimBackend
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.accel.hostmap import PROG_BASE, ErrorCode, Reg, Status, buffer_base
from fetta.sw_model.accel.isa import CW, HALT, Op, header

CFG = "tiny"


@pytest.fixture(scope="module")
def be():
    b = PysimBackend(CFG)
    yield b
    b.close()


def _prepare(be):
    """Load a valid GEMM and fill C with a sentinel pattern."""
    rng = np.random.default_rng(0)
    a = rng.integers(-50, 50, (6, 5))
    b = rng.integers(-50, 50, (5, 6))
    cc = compile_contraction("mk,kn->mn", a.shape, b.shape, CFG)
    be.clear()
    be.write(buffer_base(0), (cc.pack_a(a).reshape(-1) & 0xFFFF).tolist())
    be.write(buffer_base(1), (cc.pack_b(b).reshape(-1) & 0xFFFF).tolist())
    n_c = be.config.bank_depth * be.config.c_lanes
    sentinel = [(0x5A5A + i) & 0xFFFF for i in range(n_c)]
    be.write(buffer_base(2), sentinel)
    return cc, sentinel


def _c_contents(be):
    n_c = be.config.bank_depth * be.config.c_lanes
    return [w & 0xFFFF for w in be.read(buffer_base(2), n_c)]


def _contract_word(cc, field):
    """Program index of CONTRACT payload word ``field``."""
    start = 1 + (cc.program[0] >> 16)       # after the CONFIG header and payload
    assert cc.program[start] & 0xFF == Op.CONTRACT
    return start + 1 + field


def _run(be, program):
    be.write(PROG_BASE, program)
    return be.run(100_000)


def test_good_program_runs_and_sets_done(be):
    cc, sentinel = _prepare(be)
    st = _run(be, cc.program)
    assert st.ok and st.status & Status.DONE
    assert _c_contents(be) != sentinel


def test_illegal_opcode_halts_with_code_and_leaves_buffers(be):
    cc, sentinel = _prepare(be)
    st = _run(be, [header(Op.SYNC), 0x000000FF, HALT])
    assert st.error == ErrorCode.ILLEGAL_OPCODE
    assert st.err_pc == 1
    assert not st.status & Status.DONE
    assert _c_contents(be) == sentinel


@pytest.mark.parametrize("field,value", [
    (CW.BASE_C_KCOUNT, None),   # C writes would run past the end of buffer C
    (CW.BASE_AB, None),         # A reads would run past the end of buffer A
])
def test_out_of_range_address_halts_before_writing(be, field, value):
    cc, sentinel = _prepare(be)
    prog = list(cc.program)
    w = _contract_word(cc, field)
    depth = be.config.bank_depth
    if field == CW.BASE_C_KCOUNT:
        prog[w] = (prog[w] & 0xFFFF0000) | (depth - 1)          # base_c = last row
    else:
        prog[w] = (prog[w] & 0xFFFF0000) | (depth - 2)          # base_a near the end
    st = _run(be, prog)
    assert st.error == ErrorCode.ADDRESS_RANGE
    assert st.err_pc == _contract_word(cc, 0) - 1
    assert _c_contents(be) == sentinel
    assert st.counters["mac_active_cycles"] == 0


def test_negative_stride_below_zero_is_rejected(be):
    cc, sentinel = _prepare(be)
    prog = list(cc.program)
    w = _contract_word(cc, CW.KSTRIDE)
    prog[w] = (prog[w] & 0xFFFF0000) | 0xFFFF      # k stride of A = -1 from base 0
    st = _run(be, prog)
    assert st.error == ErrorCode.ADDRESS_RANGE
    assert _c_contents(be) == sentinel


@pytest.mark.parametrize("what", ["out_bits", "shift", "rounding", "count0", "mapping",
                                  "length"])
def test_unrunnable_configuration_is_bad_config(be, what):
    cc, sentinel = _prepare(be)
    prog = list(cc.program)
    mode = _contract_word(cc, CW.MODE)
    if what == "out_bits":
        prog[mode] = (prog[mode] & ~(0x1F << 8)) | (17 << 8)
    elif what == "shift":
        prog[mode] = (prog[mode] & ~0x3F) | 32          # acc_bits = 32
    elif what == "rounding":
        prog[mode] |= 3 << 6
    elif what == "count0":
        kw = _contract_word(cc, CW.BASE_C_KCOUNT)
        prog[kw] &= 0x0000FFFF
    elif what == "mapping":
        prog[1] = 0x000             # ga*gb*gk = 1 != n_ce
    elif what == "length":
        prog[0] = header(Op.CONFIG, (prog[0] >> 16) - 1)
    st = _run(be, prog)
    assert st.error == ErrorCode.BAD_CONFIG, what
    assert _c_contents(be) == sentinel


def test_running_off_program_memory(be):
    _prepare(be)
    depth = be.config.prog_depth
    be.write(PROG_BASE, [header(Op.SYNC)] * depth)
    st = be.run(100_000)
    assert st.error == ErrorCode.PROGRAM_RANGE


@pytest.mark.parametrize("spare", [0, 1])
def test_payload_running_off_program_memory(be, spare):
    """A CONTRACT whose payload would end one word past program memory is rejected
    at decode (err_pc = its header); one that ends exactly on the last word runs
    into the next fetch, which is past the end."""
    cc, sentinel = _prepare(be)
    depth = be.config.prog_depth
    start = 1 + (cc.program[0] >> 16)
    contract = cc.program[start:start + 1 + (cc.program[start] >> 16)]
    config = cc.program[:start]
    at = depth - len(contract) + 1 - spare   # spare=1: the payload just fits
    prog = config + [header(Op.SYNC)] * (at - len(config)) + contract
    prog = prog[:depth]
    st = _run(be, prog)
    assert st.error == ErrorCode.PROGRAM_RANGE
    if spare:
        assert st.err_pc == depth                 # the fetch after the last word
        assert _c_contents(be) != sentinel        # the contraction itself ran
    else:
        assert st.err_pc == at
        assert _c_contents(be) == sentinel


def test_recovers_after_error(be):
    cc, _ = _prepare(be)
    _run(be, [0xEE])
    st = _run(be, cc.program)
    assert st.ok


def test_id_register(be):
    assert be.read_reg(Reg.ID) == 0xFE77A001


def test_rejected_config_is_not_committed(be):
    """A CONFIG rejected with BAD_CONFIG leaves the previous configuration: a later
    program without its own CONFIG runs with the last *accepted* settings (it ran with
    the rejected network settings before CONFIG was validated before commit)."""
    cc, _ = _prepare(be)
    st = _run(be, cc.program)
    assert st.ok
    good = _c_contents(be)
    start = 1 + (cc.program[0] >> 16)
    contract_only = cc.program[start:]            # CONTRACT ... HALT, no CONFIG
    n_cfg = cc.program[0] >> 16
    bad_config = [cc.program[0], 0x000] + [w ^ 0xFFFFFFFF for w in cc.program[2:start]]
    assert len(bad_config) == n_cfg + 1
    _prepare(be)
    st = _run(be, bad_config + [HALT])
    assert st.error == ErrorCode.BAD_CONFIG and st.err_pc == 0
    _prepare(be)
    st = _run(be, contract_only)
    assert st.ok
    assert _c_contents(be) == good
