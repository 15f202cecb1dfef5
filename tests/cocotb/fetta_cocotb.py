"""cocotb tests of the emitted accelerator (run by test_cocotb.py through cocotb's
Python runner on Icarus and Verilator). Each test starts from power-up (the runner
starts one simulation per test module; tests run in order in it, the first one from
power-up) and checks results against the golden model.
"""

import cocotb
import numpy as np

from fetta_bus import BUSY, CLEAR, CTRL, DONE, ERROR, Bus

from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.accel.hostmap import COUNTERS, MAGIC, PROG_BASE, ErrorCode, Reg, buffer_base
from fetta.sw_model.accel.isa import Mapping

CONFIG = get_config("tiny")


def bus(dut):
    """The driver, with a clock started for this test (cocotb stops a test's tasks at
    its end; the design keeps its state between tests)."""
    return Bus(dut)


def sext16(w):
    w &= 0xFFFF
    return w - 0x10000 if w & 0x8000 else w


async def contract(b, spec, sa, sb, data_seed, **kw):
    rng = np.random.default_rng(data_seed)
    a_t = rng.integers(-3000, 3000, sa)
    b_t = rng.integers(-3000, 3000, sb)
    cc = compile_contraction(spec, sa, sb, CONFIG, **kw)
    await b.write(CTRL, [CLEAR])
    for buf, rows in ((0, cc.pack_a(a_t)), (1, cc.pack_b(b_t))):
        await b.write(buffer_base(buf), (np.asarray(rows).reshape(-1) & 0xFFFF).tolist())
    await b.write(PROG_BASE, cc.program)
    assert await b.read(PROG_BASE, len(cc.program)) == [w & 0xFFFFFFFF for w in cc.program], \
        "program memory reads back differently"
    status, err_pc = await b.run()
    assert status & (BUSY | DONE | ERROR) == DONE, f"{spec}: STATUS 0x{status:x}"
    words = await b.read(buffer_base(2), cc.c_rows * CONFIG.c_lanes)
    out = cc.unpack_c(np.array([sext16(w) for w in words]))
    kw.pop("mapping", None)
    golden = reference_contraction(spec, a_t, b_t, acc_bits=CONFIG.acc_bits, **kw)
    diff = np.argwhere(out != golden)
    assert diff.size == 0, (f"{spec} {kw}: element {tuple(diff[0])} is "
                            f"{out[tuple(diff[0])]}, golden {golden[tuple(diff[0])]}")
    lo_hi = {n: await b.read(int(r), 2) for n, r in COUNTERS.items()}
    cnt = {n: lo | (hi << 32) for n, (lo, hi) in lo_hi.items()}
    assert cnt["cycles"] == (cnt["stall_config"] + cnt["stall_fill"] +
                             cnt["mac_active_cycles"] + cnt["stall_drain"]), cnt
    assert cnt["cycles"] == cc.predicted_cycles, (cnt["cycles"], cc.predicted_cycles)


@cocotb.test()
async def t0_gemm_from_power_up(dut):
    b = bus(dut)
    assert await b.read(int(Reg.ID), 1) == [MAGIC]
    await contract(b, "ik,kj->ij", (4, 6), (6, 4), 1, shift=4)


@cocotb.test()
async def t1_permuted_batch(dut):
    await contract(bus(dut), "zbmk,kn->nzm", (2, 3, 5, 7), (7, 6), 2, shift=6,
                   rounding="nearest-even")


@cocotb.test()
async def t2_stochastic_k_split(dut):
    await contract(bus(dut), "ik,kj->ij", (2, 40), (40, 2), 3, shift=5, rounding="stochastic",
                   seed=12345, mapping=Mapping(1, 1, 4))


@cocotb.test()
async def t3_error_paths(dut):
    """Hand-encoded programs (header = opcode | payload length << 16): an illegal
    opcode after two SYNCs halts with code 1 and ERR_PC 2; a CONTRACT header with a
    wrong payload length halts with BAD_CONFIG (3) at its address."""
    b = bus(dut)
    await b.write(CTRL, [CLEAR])
    await b.write(PROG_BASE, [0x03, 0x03, 0x7E])
    status, err_pc = await b.run()
    assert status & ERROR and (status >> 8) & 0xFF == ErrorCode.ILLEGAL_OPCODE, hex(status)
    assert err_pc == 2
    await b.write(CTRL, [CLEAR])
    await b.write(PROG_BASE, [0x03, 0x02 | (5 << 16), 0, 0, 0, 0, 0, 0x04])
    status, err_pc = await b.run()
    assert (status >> 8) & 0xFF == ErrorCode.BAD_CONFIG and err_pc == 1, (hex(status), err_pc)
    await b.write(CTRL, [CLEAR])
    assert (await b.read(int(Reg.STATUS), 1))[0] & 0xFF07 == 0
