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


@cocotb.test()
async def t4_gemm_from_the_datasheet_alone(dut):
    """A 4x5 @ 5x4 GEMM whose program is written from docs/datasheet.md only: the
    CONFIG payload of mapping (2, 2, 1) copied from its table, the CONTRACT words
    encoded by hand from its field table (section 3), operands placed and results
    read per its packing rules (sections 5, 6)."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "datasheet.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| (2, 2, 1) tiles"))
    config = [int(w, 16) for w in row.split("|")[2].split()]
    K = 5
    contract = [0 | (0 << 6) | (16 << 8),        # MODE: shift 0, floor, out_bits 16
                0,                               # SEED
                0,                               # BASE_AB: A row 0, B row 0
                0 | (K << 16),                   # BASE_C_KCOUNT: C row 0, k_count K
                1 | (1 << 16),                   # KSTRIDE: +1 row per step, A and B
                0, 0]                            # BASE_IDX, ROW_STRIDE_IDX
    contract += [1, 0, 0] * 4                    # four levels: count 1, strides 0
    program = ([0x01 | (len(config) << 16)] + config +
               [0x02 | (len(contract) << 16)] + contract + [0x04])
    rng = np.random.default_rng(11)
    a = rng.integers(-50, 50, (4, K))
    b = rng.integers(-50, 50, (K, 4))
    lanes = 8                                    # tiny: A, B, C lanes (section 1)
    a_rows = np.zeros((K, lanes), dtype=np.int64)
    b_rows = np.zeros((K, lanes), dtype=np.int64)
    a_rows[:, :4] = a.T                          # A lane ia*2 + r = m, row = k step
    b_rows[:, :4] = b                            # B lane ib*2 + j = n
    bus_ = bus(dut)
    await bus_.write(CTRL, [CLEAR])
    await bus_.write(buffer_base(0), (a_rows.reshape(-1) & 0xFFFF).tolist())
    await bus_.write(buffer_base(1), (b_rows.reshape(-1) & 0xFFFF).tolist())
    await bus_.write(PROG_BASE, program)
    status, err_pc = await bus_.run()
    assert status & (BUSY | DONE | ERROR) == DONE, (hex(status), err_pc)
    c = [sext16(w) for w in await bus_.read(buffer_base(2), 2 * lanes)]
    out = np.zeros((4, 4), dtype=np.int64)
    for r in range(2):                           # C row r, lane (ia*2 + ib)*2 + j
        for ia in range(2):
            for ib in range(2):
                for j in range(2):
                    out[ia * 2 + r, ib * 2 + j] = c[r * lanes + (ia * 2 + ib) * 2 + j]
    np.testing.assert_array_equal(out, a @ b)
