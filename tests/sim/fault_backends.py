"""Backends for the fault tests (abort, host writes while busy): one live backend of
each simulator on ``tiny`` with its direct-memory path enabled, the path that must
follow the hardware's busy rule (``sw_model/accel/hostmap.py``)."""

import numpy as np

from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.accel.hostmap import PROG_BASE, REG_BASE, Reg, buffer_base

CONFIG = "tiny"
NAMES = ("pysim", "cxxrtl", "verilator")


def make_backend(name):
    from fetta.sim.backends.base import get_backend
    return get_backend(name, CONFIG)


def gemm(seed, m=6, k=5, n=6):
    rng = np.random.default_rng(seed)
    return rng.integers(-200, 200, (m, k)), rng.integers(-200, 200, (k, n))


def load_gemm(be, a, b):
    """Compile and load ``a @ b`` (buffers and program) while idle; returns the
    compiled contraction."""
    cc = compile_contraction("mk,kn->mn", a.shape, b.shape, CONFIG)
    be.clear()
    be.write(buffer_base(0), (cc.pack_a(a).reshape(-1) & 0xFFFF).tolist())
    be.write(buffer_base(1), (cc.pack_b(b).reshape(-1) & 0xFFFF).tolist())
    be.write(PROG_BASE, cc.program)
    return cc


def read_c(be, cc):
    lanes = be.config.c_lanes
    raw = np.array(be.read(buffer_base(2), cc.c_rows * lanes), dtype=np.int64)
    raw = ((raw & 0xFFFF) ^ 0x8000) - 0x8000
    return cc.unpack_c(raw.reshape(cc.c_rows, lanes))


def golden(a, b):
    return reference_contraction("mk,kn->mn", a, b)


def clock(be, cycles):
    """Let ``cycles`` (>= 1) clock cycles pass on any backend: reads of Reg.ID
    (``cycles`` strobes + the read latency)."""
    be.read(REG_BASE + Reg.ID, cycles)


def counters_add_up(c):
    return c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                           + c["stall_drain"])
