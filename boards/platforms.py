"""The supported boards: amaranth-boards platforms, their clocks and PLLs, and the
quirks of the open toolchain handled in one place.

=============  ============================  ============  ===========================
board          part                          oscillator    default system clock
=============  ============================  ============  ===========================
icebreaker     iCE40UP5K-SG48 (8 SB_MAC16)   12 MHz        12 MHz (no PLL)
ulx3s-85f      LFE5U-85F-6BG381 (156 MULT)   25 MHz        50 MHz (EHXPLLL)
=============  ============================  ============  ===========================

A different system clock (``fetta synth --clock-mhz``) is made by the board's PLL:
``SB_PLL40_PAD`` on the iCE40 (the 12 MHz pin feeds the PLL pad directly),
``EHXPLLL`` on the ECP5. The divider search is done here, in Python, so no PLL tool
is needed at build time.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["BOARDS", "board_info", "make_platform", "add_sync_clock", "ecp5_pll_params",
           "ice40_pll_params"]


BOARDS = {
    "icebreaker": {
        "module": "amaranth_boards.icebreaker", "cls": "ICEBreakerPlatform",
        "family": "ice40", "device": "iCE40UP5K", "osc": "clk12", "osc_hz": 12e6,
        "sys_clk_hz": 12e6, "leds": "rg", "bitstream": "top.bin",
        "programmer": ("ICEPROG", "iceprog"),
        "uart_note": "second FTDI channel, e.g. /dev/ttyUSB1",
    },
    "ulx3s-85f": {
        "module": "amaranth_boards.ulx3s", "cls": "ULX3S_85F_Platform",
        "family": "ecp5", "device": "LFE5U-85F", "osc": "clk25", "osc_hz": 25e6,
        "sys_clk_hz": 50e6, "leds": 8, "bitstream": "top.bit",
        "programmer": ("OPENFPGALOADER", "openFPGALoader"),
        "uart_note": "the FTDI US1 port, e.g. /dev/ttyUSB0",
    },
}


def board_info(board: str) -> dict:
    if board not in BOARDS:
        raise ValueError(f"board {board!r} unknown; allowed {', '.join(BOARDS)}")
    return dict(BOARDS[board], name=board)


def make_platform(board: str):
    import importlib
    info = board_info(board)
    return getattr(importlib.import_module(info["module"]), info["cls"])()


# -- PLL divider searches ---------------------------------------------------------------
def ice40_pll_params(f_in: float, f_out: float) -> dict:
    """SB_PLL40 dividers (icepll's search, SIMPLE feedback): f_out = f_in * (DIVF+1)
    / ((DIVR+1) * 2**DIVQ), PFD 10..133 MHz, VCO 533..1066 MHz."""
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f = f_vco / (1 << divq)
                err = abs(f - f_out)
                if best is None or err < best[0]:
                    best = (err, divr, divf, divq, f, f_pfd)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz; allowed about 16..275 MHz")
    err, divr, divf, divq, f, f_pfd = best
    if err / f_out > 0.01:
        raise ValueError(f"iCE40 PLL cannot make {f_out / 1e6:g} MHz within 1 % (best "
                         f"{f / 1e6:.3f} MHz); allowed outputs like 12, 24, 36, 48 MHz")
    filter_range = next(i for i, lim in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 133e6))
                        if f_pfd < lim) + 1
    return {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range,
            "f_out": f}


def ecp5_pll_params(f_in: float, f_out: float) -> dict:
    """EHXPLLL dividers (CLKOP feedback): f_out = f_in / CLKI_DIV * CLKFB_DIV,
    VCO = f_out * CLKOP_DIV in 400..800 MHz, PFD 3.125..400 MHz."""
    best = None
    for clki in range(1, 129):
        f_pfd = f_in / clki
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            f = f_pfd * clkfb
            for clkop in range(1, 129):
                f_vco = f * clkop
                if not 400e6 <= f_vco <= 800e6:
                    continue
                key = (abs(f - f_out), abs(f_vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, clki, clkfb, clkop, f)
    if best is None or best[0][0] / f_out > 0.01:
        raise ValueError(f"ECP5 PLL cannot make {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz within 1 %; allowed about 3.2..400 MHz")
    _, clki, clkfb, clkop, f = best
    return {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
            "CLKOP_CPHASE": (clkop - 1) // 2, "f_out": f}


def add_sync_clock(m: Module, platform, info: dict, sys_clk_hz: float):
    """Create the ``sync`` domain at ``sys_clk_hz`` from the board oscillator (through a
    PLL when the frequencies differ) and hold it in reset until the PLL locks.

    Returns the lock signal (constant 1 without a PLL)."""
    m.domains.sync = cd_sync = ClockDomain("sync")
    osc = platform.request(info["osc"], 0, dir="-")
    if abs(sys_clk_hz - info["osc_hz"]) < 1:
        m.submodules.osc_buf = buf = io.Buffer("i", osc)
        m.d.comb += cd_sync.clk.eq(buf.i)
        m.submodules.reset_sync = ResetSynchronizer(Const(0), domain="sync")
        return Const(1)

    locked = Signal()
    if info["family"] == "ice40":
        p = ice40_pll_params(info["osc_hz"], sys_clk_hz)
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
            p_FILTER_RANGE=p["FILTER_RANGE"],
            i_PACKAGEPIN=osc.io, i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=cd_sync.clk, o_LOCK=locked)
    else:
        m.submodules.osc_buf = buf = io.Buffer("i", osc)
        p = ecp5_pll_params(info["osc_hz"], sys_clk_hz)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{info['osc_hz'] / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{p['f_out'] / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_CPHASE"],
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
            i_RST=Const(0), i_STDBY=Const(0), i_CLKI=buf.i, o_CLKOP=cd_sync.clk,
            i_CLKFB=cd_sync.clk, i_PHASESEL0=Const(0), i_PHASESEL1=Const(0),
            i_PHASEDIR=Const(1), i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1),
            i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0), o_LOCK=locked)
    platform.add_clock_constraint(cd_sync.clk, p["f_out"])
    m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
    return locked
