"""Energy model: energy of a training step from its event counts
(``sw_model.ttm.step_events``), with every coefficient in one table (``COEFFICIENTS``)
that also generates ``docs/energy.md`` (``python scripts/gen_docs.py energy``).

Two models, chosen by the preset:

* **ASIC** (``asic_energy``; presets without an FPGA ``device``): energy = sum over
  events of count x energy per event at the stated node (``ASIC_TECH``). Per-operation
  energies are Horowitz, ISSCC 2014 (45 nm, 0.9 V), scaled by operand width with a
  power law through the two published widths (8 and 32 bits) and SRAM accesses by
  array size with a power law through the published 8 KB and 1 MB points, per bit
  read. Not modelled: clock tree, control, leakage (Horowitz's figures are per
  operation), so this is the datapath-and-memory energy of the step.
* **FPGA** (``fpga_energy``; presets with a ``device``): power = static power of the
  device + dynamic power of the *used* resources (from the measured synthesis report:
  LUTs, FFs, DSPs, block RAMs) x clock x activity, activity from the event counts
  (DSPs: MAC-active fraction of cycles; block RAM: accesses per port-cycle; logic:
  a stated toggle rate while the array is busy); energy = power x step time.

Energies are in picojoules. Every value is a stated assumption unless its source says
it is a published figure; ``docs/energy.md`` lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import AccelConfig
from .hostmap import DATA_BITS

__all__ = ["Coefficient", "COEFFICIENTS", "coeff", "ASIC_TECH", "add_pj", "mul_pj",
           "sram_pj", "asic_energy", "fpga_energy", "markdown_table", "HOST_WORD_BITS"]

HOST_WORD_BITS = DATA_BITS   # one host-bus word


@dataclass(frozen=True)
class Coefficient:
    key: str
    value: float
    unit: str
    what: str
    source: str


HOROWITZ = "Horowitz, ISSCC 2014, 45 nm 0.9 V (REFERENCES.md §7)"

COEFFICIENTS = [
    # -- ASIC, Horowitz 45 nm --------------------------------------------------------
    Coefficient("add8", 0.03, "pJ", "8-bit integer add", HOROWITZ),
    Coefficient("add32", 0.1, "pJ", "32-bit integer add", HOROWITZ),
    Coefficient("mul8", 0.2, "pJ", "8-bit integer multiply", HOROWITZ),
    Coefficient("mul32", 3.1, "pJ", "32-bit integer multiply", HOROWITZ),
    Coefficient("sram8k", 10.0, "pJ", "64-bit read, 8 KB SRAM array", HOROWITZ),
    Coefficient("sram32k", 20.0, "pJ", "64-bit read, 32 KB SRAM array", HOROWITZ),
    Coefficient("sram1m", 100.0, "pJ", "64-bit read, 1 MB SRAM array", HOROWITZ),
    Coefficient("dram64", 1950.0, "pJ", "64 bits to/from DRAM (host transfer)",
                HOROWITZ + ": 1.3-2.6 nJ per 64 bits; the midpoint"),
    # -- ASIC, stated assumptions built on the published figures ---------------------
    Coefficient("sram_write_factor", 1.0, "x read", "SRAM write energy / read energy",
                "assumption (Horowitz gives reads)"),
    Coefficient("switch_add_equiv", 1.0, "x add(w)",
                "2x2 network switch traversal of a w-bit word (mux + pipeline register)",
                "assumption: one w-bit add; w = operand bits (distribution), "
                "accumulator bits (reduction)"),
    Coefficient("shift_add_equiv", 1.0, "x add(acc)",
                "shift MAC's barrel shift + negate (before its accumulate add)",
                "assumption: one accumulator-width add (log2 stages of muxes)"),
    Coefficient("output_stage_adds", 5.0, "x add(acc)",
                "output stage per result: dither hash (3 ops), rounding add, saturate",
                "assumption: counted as accumulator-width adds"),
    Coefficient("elementwise_adds", 1.0, "x add32",
                "one elementwise operation (bias, ReLU, requantize, loss gradient, "
                "Adam step), plus one 16-bit read and write of the C buffer",
                "assumption: one 32-bit ALU op + its operand traffic"),
    Coefficient("asic_node_nm", 45.0, "nm", "ASIC preset's technology node",
                "stated: Horowitz's node, so no node scaling is applied"),
    Coefficient("asic_clock_mhz", 500.0, "MHz", "ASIC preset's clock",
                "stated assumption (not a timing-closed figure)"),
    # -- FPGA (ECP5-85F), device model -----------------------------------------------
    Coefficient("fpga_static_w", 0.15, "W", "ECP5-85F static (standby) core power",
                "assumption of the order of the ECP5 data sheet's standby supply "
                "currents (FPGA-DS-02012, 'Supply Current (Standby)', 1.1 V core); "
                "not re-read here"),
    Coefficient("fpga_lut_pj", 0.5, "pJ", "LUT4 output toggle incl. its routing",
                "assumption (40 nm FPGA: ~0.4 pF routed net at 1.1 V)"),
    Coefficient("fpga_ff_pj", 0.2, "pJ", "flip-flop toggle incl. its clock load",
                "assumption"),
    Coefficient("fpga_dsp_pj", 8.0, "pJ", "MULT18X18D operation (16x16 multiply)",
                "assumption (hard 18x18 multiplier, 40 nm, 1.1 V)"),
    Coefficient("fpga_bram_pj", 10.0, "pJ", "DP16KD 16-bit access",
                "assumption (16 kbit block RAM port access, 40 nm)"),
    Coefficient("fpga_toggle", 0.125, "", "logic toggle rate while busy",
                "assumption: the FPGA vendors' default activity factor (12.5%)"),
    Coefficient("fpga_io_pj", 1950.0 / 2, "pJ", "host word transfer (32 bits)",
                "same off-chip figure as the ASIC (DRAM, Horowitz)"),
    # -- CPU baseline -----------------------------------------------------------------
    Coefficient("cpu_core_w", 4.4, "W", "package power per busy core when RAPL is not "
                "readable (this machine: a KVM guest, no /sys/class/powercap)",
                "assumption: AMD EPYC 7763 (Zen 3, the family/model this VM reports) "
                "280 W TDP / 64 cores, uncore share included"),
]

_BY_KEY = {c.key: c for c in COEFFICIENTS}


def coeff(key: str) -> float:
    return _BY_KEY[key].value


def _power_law(x, x0, y0, x1, y1):
    a = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** a


def add_pj(bits: int) -> float:
    """Integer add of ``bits`` bits: power law through Horowitz's 8- and 32-bit adds
    (exponent 0.87)."""
    return _power_law(bits, 8, coeff("add8"), 32, coeff("add32"))


def mul_pj(bits: int) -> float:
    """Integer multiply of two ``bits``-bit operands: power law through the 8- and
    32-bit multiplies (exponent 1.98, i.e. ~width squared)."""
    return _power_law(bits, 8, coeff("mul8"), 32, coeff("mul32"))


def sram_pj(bank_bytes: float, bits: int) -> float:
    """Read of ``bits`` bits from an SRAM array of ``bank_bytes``: the 64-bit energy
    by a power law in array size through 8 KB and 1 MB (exponent 0.47; it gives
    19.3 pJ at 32 KB against the published 20), scaled by bits / 64."""
    e64 = _power_law(bank_bytes, 8192, coeff("sram8k"), 1 << 20, coeff("sram1m"))
    return e64 * bits / 64


ASIC_TECH = {"node_nm": coeff("asic_node_nm"), "clock_mhz": coeff("asic_clock_mhz")}


def asic_energy(ev: dict, cfg: AccelConfig, elementwise_ops: int = 0) -> dict:
    """Energy (pJ) by component of the events ``ev`` (``Events.to_dict()``)."""
    ob, ab = cfg.operand_bits, cfg.acc_bits
    bank = cfg.bank_depth * 2                      # bytes per 16-bit bank
    rd = sram_pj(bank, 16)
    wr = rd * coeff("sram_write_factor")
    if cfg.mac_kind == "multiply":
        mac = mul_pj(ob) + add_pj(ab)
    else:
        mac = add_pj(ab) * (1 + coeff("shift_add_equiv"))
    e = {
        "mac": ev["array_mac_ops"] * mac,
        "buffer_read": (ev["a_reads"] + ev["b_reads"] + ev.get("move_elements", 0)) * rd,
        "buffer_write": (ev["c_writes"] + ev["host_written"] +
                         ev.get("move_elements", 0)) * wr,
        "network": ev["dist_switch_ops"] * coeff("switch_add_equiv") * add_pj(ob) +
        ev["red_switch_ops"] * coeff("switch_add_equiv") * add_pj(ab),
        "output_stage": ev["output_ops"] * coeff("output_stage_adds") * add_pj(ab),
        "elementwise": elementwise_ops * (coeff("elementwise_adds") * add_pj(32) +
                                          rd + wr),
        "host_transfer": ev["host_words"] * coeff("dram64") * HOST_WORD_BITS / 64,
    }
    e["total"] = sum(e.values())
    return e


def fpga_energy(ev: dict, cfg: AccelConfig, clock_mhz: float, resources: dict,
                cycles: int, elementwise_ops: int = 0) -> dict:
    """Energy (pJ) of a step of ``cycles`` cycles at ``clock_mhz`` on an FPGA whose
    used resources are ``resources`` (``{"LUTs", "FFs", "DSPs", "BRAMs"}``, from the
    synthesis report). ``elementwise_ops`` are priced as LUT work (4 LUT toggles and a
    block-RAM read and write each)."""
    seconds = cycles / (clock_mhz * 1e6)
    busy = min(1.0, (ev["cycles"] + ev.get("move_cycles", 0)) / cycles) if cycles else 0.0
    tog = coeff("fpga_toggle")
    per_cycle_logic = (resources.get("LUTs", 0) * coeff("fpga_lut_pj") +
                       resources.get("FFs", 0) * coeff("fpga_ff_pj")) * tog
    e = {
        "static": coeff("fpga_static_w") * seconds * 1e12,
        "logic": per_cycle_logic * busy * cycles,
        "dsp": ev["mac_active_cycles"] * min(cfg.macs, resources.get("DSPs", cfg.macs)) *
        coeff("fpga_dsp_pj"),
        "bram": (ev["a_reads"] + ev["b_reads"] + ev["c_writes"] + ev["host_written"] +
                 2 * ev.get("move_elements", 0)) * coeff("fpga_bram_pj"),
        "elementwise": elementwise_ops * (4 * coeff("fpga_lut_pj") + 2 * coeff("fpga_bram_pj")),
        "host_transfer": ev["host_words"] * coeff("fpga_io_pj"),
    }
    e["total"] = sum(e.values())
    e["average_power_w"] = e["total"] * 1e-12 / seconds if seconds else 0.0
    return e


def markdown_table() -> str:
    """``docs/energy.md``: the coefficient table and the derived per-event energies."""
    lines = [
        "# Energy model",
        "",
        "Generated by `python scripts/gen_docs.py energy` from `sw_model/accel/energy.py`",
        "(the one table of coefficients; do not edit by hand). `fetta eval` prices each training",
        "step's event counts (`sw_model/ttm/step_events.py`, exact from the compiler, checked",
        "against the RTL's counters) with these figures.",
        "",
        "| key | value | unit | what | source |",
        "|---|---:|---|---|---|",
    ]
    for c in COEFFICIENTS:
        lines.append(f"| `{c.key}` | {c.value:g} | {c.unit} | {c.what} | {c.source} |")
    lines += [
        "",
        "## Derived per-event energies (ASIC model, 45 nm)",
        "",
        "Width scaling: power laws through Horowitz's two published widths (add",
        f"exponent {math.log(coeff('add32') / coeff('add8')) / math.log(4):.2f}, multiply "
        f"exponent {math.log(coeff('mul32') / coeff('mul8')) / math.log(4):.2f}); SRAM by",
        "array size through the 8 KB and 1 MB points (exponent "
        f"{math.log(coeff('sram1m') / coeff('sram8k')) / math.log(128):.2f}), per bit "
        "read. Node: the ASIC preset is stated at",
        f"{coeff('asic_node_nm'):g} nm and {coeff('asic_clock_mhz'):g} MHz, so no node "
        "scaling is applied (scaling to another node would be",
        "a further assumption, never a measurement).",
        "",
        "| event | energy (pJ) |",
        "|---|---:|",
        f"| 16x16 multiply + 32-bit accumulate (multiply MAC) | {mul_pj(16) + add_pj(32):.3f} |",
        f"| 8x8 multiply + 32-bit accumulate | {mul_pj(8) + add_pj(32):.3f} |",
        f"| shift MAC (shift + 32-bit accumulate) | {2 * add_pj(32):.3f} |",
        f"| 16-bit add (distribution switch) | {add_pj(16):.3f} |",
        f"| 32-bit add (reduction switch) | {add_pj(32):.3f} |",
    ]
    for depth in (256, 512, 1024, 2048, 32768):
        lines.append(f"| 16-bit read, {depth}-row bank ({depth * 2:,} bytes) | "
                     f"{sram_pj(depth * 2, 16):.3f} |")
    lines += [
        f"| host word (32 bits, off chip) | {coeff('dram64') / 2:.1f} |",
        "",
        "An on-chip MOVE (resident dataflow, `sw_model/ttm/resident_step.py`) is one bank",
        "read and one bank write per word moved (`move_elements`); on the FPGA two",
        "block-RAM accesses, and its cycles count as busy.",
        "",
        "Not modelled on the ASIC: clock tree, control, leakage. On the FPGA: static",
        "power is charged for the whole step time; logic toggles at the stated rate",
        "only while the array computes; host words at the same off-chip energy.",
        "The FPGA figures are stated assumptions, not vendor power-calculator output;",
        "the CPU's energy is its measured step time x its package power",
        "(`sim/cpu_baseline.py`).",
        "",
    ]
    return "\n".join(lines)
