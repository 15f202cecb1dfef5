"""The accelerator configuration: one frozen, validated object, shared by RTL and software.

The RTL (``rtl/``) elaborates from it; the compiler and cycle model (``sw_model/``)
read the same fields, so hardware and software cannot drift (the Gemmini habit).

Geometry
--------
``n_ce`` contraction engines (CEs), each a ``pe_rows x pe_cols`` PE array. Per compute
cycle CE ``c`` takes ``pe_rows`` A values and ``pe_cols`` B values and does
``pe_rows*pe_cols`` MACs (an outer product). Derived widths:

* ``a_lanes = n_ce * pe_rows`` : A buffer banks = A distribution-network lanes
* ``b_lanes = n_ce * pe_cols`` : B buffer banks = B distribution-network lanes
* ``c_lanes = n_ce * pe_cols`` : reduction-network lanes = output stages = C banks

All three are powers of two because ``n_ce``, ``pe_rows`` and ``pe_cols`` are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["AccelConfig", "PRESETS", "get_config", "with_overrides", "DEVICES"]

MAC_KINDS = ("multiply", "shift")

# Hard DSP budgets of the FPGA parts the presets target.
DEVICES = {
    "ice40up5k": {"dsps": 8, "bram_kbits": 120},
    "ecp5-85f": {"dsps": 156, "bram_kbits": 3744},
}


def _pow2(x: int) -> bool:
    return x >= 1 and (x & (x - 1)) == 0


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of one accelerator build. Every field is validated on construction;
    a bad value raises ``ValueError`` naming the field, the value and what is allowed.

    Fields:
        name:          preset name (informational).
        n_ce:          number of contraction engines, a power of two in 2..64.
        pe_rows:       PE rows per CE, a power of two in 1..16.
        pe_cols:       PE columns per CE, a power of two in 1..16.
        operand_bits:  operand width of the MACs, 2..16 (buffer words are 16 bits).
        acc_bits:      accumulator width W_acc (wrap-around), 16..48.
        mac_kind:      "multiply" (signed multiplier) or "shift" (B operand holds
                       power-of-two codes; shifter + negation, no multiplier).
        pow2_bits:     width of a power-of-two weight code (shift MACs), 2..6.
        bank_depth:    rows per bank of each operand/result buffer (power of two).
        prog_depth:    32-bit words of program memory (power of two).
        device:        optional FPGA part whose DSP budget must hold the multipliers.
        out_share:     C lanes served by each output stage (time-shared), a power of two
                       dividing ``c_lanes``; 1 = one output stage per C lane. Each shadow
                       row then drains in ``out_share`` cycles (``drain_cycles``), which
                       trades output bandwidth for area (the output stage with its
                       dither hash is the largest per-lane block; see ``ice40``).
        dist_pipeline: extra register stages inside the A and B distribution networks
                       (0..2): each adds one cycle of operand latency per instruction
                       and shortens the buffer-to-PE path (see ``ecp5``).
        mac_pipeline:  1 registers each multiply MAC's product before the accumulate
                       (one more cycle of operand latency; multiply MACs only).
        counter_bits:  width of the performance counters, 32..48 (read as two 32-bit
                       words; the high word reads 0 below 33 bits). 32 bits wrap after
                       2**32 cycles (~86 s at 50 MHz).
        move_unit:     the MOVE instruction's unit (``rtl.move_unit``: on-chip copies
                       between buffers, the resident dataflow's path from one
                       contraction's result to the next one's operand) with the
                       vector ALU of VEC (``rtl.vector_alu``: bias add, ReLU, mask,
                       requantization on chip); without it MOVE and VEC are illegal
                       opcodes and results travel through the host.
        shift_slots:   adaptive output shifts kept on chip (``sw_model.accel.shift_slots``,
                       ``rtl.shift_slots``), 0..31; a CONTRACT or VEC names one and
                       votes on its largest result word. Needs ``move_unit`` (the max
                       log is its vote input); 0: every shift comes from the program.
        adam_entries:  entries of the update unit's state memory (``sw_model.accel.adam``,
                       ``rtl.adam_unit``: the ADAM instruction, fixed-point Adam on
                       chip; one entry per parameter element: first and second moment,
                       master code), 0 or a power of two in 16..65536; 0: no unit (ADAM
                       is an illegal opcode, the host updates the weights). Needs
                       ``move_unit`` (ADAM walks the MOVE path).
        vote_up, vote_down, vote_count: the vote rule of the slots (the recipe's
                       ``shift_up``, ``shift_down``, ``votes``): up when the largest
                       |word| exceeds ``vote_up`` of full scale, down below
                       ``vote_down``; ``vote_count`` equal votes in a row (1..7) move
                       the shift. Elaboration constants (threshold tables).
    """

    name: str = "custom"
    n_ce: int = 4
    pe_rows: int = 2
    pe_cols: int = 2
    operand_bits: int = 16
    acc_bits: int = 32
    mac_kind: str = "multiply"
    pow2_bits: int = 4
    bank_depth: int = 256
    prog_depth: int = 1024
    device: str | None = None
    out_share: int = 1
    dist_pipeline: int = 0
    mac_pipeline: int = 0
    counter_bits: int = 48
    move_unit: bool = True
    shift_slots: int = 16
    adam_entries: int = 4096
    vote_up: float = 0.9
    vote_down: float = 0.3
    vote_count: int = 3

    def __post_init__(self):
        def need_int(field, lo, hi, pow2=False):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"config field {field}={v!r} is not an integer")
            if not lo <= v <= hi:
                raise ValueError(f"config field {field}={v} out of range; allowed {lo}..{hi}")
            if pow2 and not _pow2(v):
                raise ValueError(f"config field {field}={v} is not a power of two "
                                 f"(network lanes must be powers of two); allowed "
                                 f"{', '.join(str(1 << i) for i in range(lo.bit_length() - 1, hi.bit_length()))}")

        need_int("n_ce", 2, 64, pow2=True)
        need_int("pe_rows", 1, 16, pow2=True)
        need_int("pe_cols", 1, 16, pow2=True)
        need_int("operand_bits", 2, 16)
        need_int("acc_bits", 16, 48)
        need_int("pow2_bits", 2, 6)
        need_int("bank_depth", 16, 65536, pow2=True)
        need_int("prog_depth", 64, 65536, pow2=True)
        need_int("out_share", 1, self.c_lanes, pow2=True)
        # a pipeline register needs a switch stage on each side (2 log2 N - 1 stages)
        narrow = min(self.a_lanes, self.b_lanes)
        need_int("dist_pipeline", 0, min(2, 2 * (narrow.bit_length() - 1) - 2))
        need_int("mac_pipeline", 0, 1 if self.mac_kind == "multiply" else 0)
        need_int("counter_bits", 32, 48)
        if not isinstance(self.move_unit, bool):
            raise ValueError(f"config field move_unit={self.move_unit!r} is not a bool; "
                             f"allowed true, false")
        need_int("shift_slots", 0, 31)
        if self.shift_slots and not self.move_unit:
            raise ValueError(f"config field shift_slots={self.shift_slots} needs "
                             f"move_unit=True (the max log feeds the votes); allowed 0")
        need_int("adam_entries", 0, 65536)
        if self.adam_entries and not _pow2(self.adam_entries) or 0 < self.adam_entries < 16:
            raise ValueError(f"config field adam_entries={self.adam_entries} is not 0 or a "
                             f"power of two in 16..65536")
        if self.adam_entries and not self.move_unit:
            raise ValueError(f"config field adam_entries={self.adam_entries} needs "
                             f"move_unit=True (ADAM walks the MOVE path); allowed 0")
        need_int("vote_count", 1, 7)
        for f in ("vote_up", "vote_down"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ValueError(f"config field {f}={v!r} out of range; allowed a "
                                 f"fraction 0 < {f} < 1")
        if not self.vote_down < self.vote_up:
            raise ValueError(f"config field vote_down={self.vote_down} not below "
                             f"vote_up={self.vote_up}; allowed vote_down < vote_up")
        if self.mac_kind not in MAC_KINDS:
            raise ValueError(f"config field mac_kind={self.mac_kind!r} unknown; allowed "
                             f"{', '.join(MAC_KINDS)}")
        if self.acc_bits < 2 * self.operand_bits and self.mac_kind == "multiply":
            raise ValueError(f"config field acc_bits={self.acc_bits} narrower than a "
                             f"product of two {self.operand_bits}-bit operands; allowed "
                             f">= {2 * self.operand_bits}")
        if self.device is not None:
            if self.device not in DEVICES:
                raise ValueError(f"config field device={self.device!r} unknown; allowed "
                                 f"{', '.join(DEVICES)}")
            dsps = DEVICES[self.device]["dsps"]
            if self.mac_kind == "multiply" and self.macs > dsps:
                raise ValueError(f"config field n_ce*pe_rows*pe_cols={self.macs} multiply "
                                 f"MACs do not fit {self.device} ({dsps} DSPs); allowed "
                                 f"<= {dsps}, or mac_kind='shift'")
            kbits = self.bank_depth * (self.a_lanes + self.b_lanes + self.c_lanes) * 16 / 1024
            if kbits > DEVICES[self.device]["bram_kbits"]:
                raise ValueError(f"config field bank_depth={self.bank_depth}: buffers need "
                                 f"{kbits:.0f} kbit, {self.device} has "
                                 f"{DEVICES[self.device]['bram_kbits']} kbit of block RAM")

    # -- derived geometry -------------------------------------------------------------
    @property
    def macs(self) -> int:
        return self.n_ce * self.pe_rows * self.pe_cols

    @property
    def a_lanes(self) -> int:
        return self.n_ce * self.pe_rows

    @property
    def b_lanes(self) -> int:
        return self.n_ce * self.pe_cols

    @property
    def c_lanes(self) -> int:
        return self.n_ce * self.pe_cols

    @property
    def out_lanes(self) -> int:
        """Output stages (each serves ``out_share`` C lanes in turn)."""
        return self.c_lanes // self.out_share

    @property
    def drain_cycles(self) -> int:
        """Cycles one tile's shadow accumulators take to drain: ``pe_rows`` rows of
        ``out_share`` cycles each. A tile shorter than this stalls (``stall_drain``)."""
        return self.pe_rows * self.out_share

    @property
    def addr_bits(self) -> int:
        """Row-address width of every buffer."""
        return max(1, (self.bank_depth - 1).bit_length())

    def replace(self, **changes) -> "AccelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # Fast in Amaranth's Python simulator: 4 CEs x 2x2 PEs = 16 MACs.
    "tiny": AccelConfig(name="tiny", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=1024),
    # iCE40UP5K: 2 CEs x 2x1 PEs, 4 multiply MACs on SB_MAC16 DSPs. Fits the part's
    # 5,280 logic cells with the UART bridge; 2 C lanes keep the 32-bit reduction
    # network small; one output stage serves both lanes; 32-bit counters. (2 x 4x1,
    # all 8 DSPs, needs 5,928 cells: README "FPGA builds".) No MOVE unit: it does not
    # fit beside the array (results travel through the host).
    "ice40": AccelConfig(name="ice40", n_ce=2, pe_rows=2, pe_cols=1, bank_depth=256,
                         prog_depth=256, device="ice40up5k", out_share=2,
                         counter_bits=32, move_unit=False, shift_slots=0,
                         adam_entries=0),
    # ECP5-85F (ULX3S): 2 CEs x 8x4 = 64 MACs on MULT18X18D. 8 C lanes (a 16-lane
    # reduction network of 4 CEs x 4 columns did not route: README "FPGA builds"),
    # 4 output stages for them (a tile drains in 16 cycles); the 16-lane A network
    # is cut by one pipeline register (block RAM -> 7 switch stages was too long).
    "ecp5": AccelConfig(name="ecp5", n_ce=2, pe_rows=8, pe_cols=4, bank_depth=512,
                        device="ecp5-85f", out_share=2, dist_pipeline=1, mac_pipeline=1),
    # Simulation studies: 16 CEs x 4x4 = 256 MACs; 8,192 program words hold a digits
    # training step with its optimizer as one program.
    "large": AccelConfig(name="large", n_ce=16, pe_rows=4, pe_cols=4, bank_depth=2048,
                         prog_depth=8192, adam_entries=16384),
    # ASIC class (evaluation, ``fetta eval``): 4 CEs x 16x16 = 1,024 MACs, the most the
    # 64-lane networks allow (a_lanes = b_lanes = c_lanes = 64); 32,768-row banks (4 MiB
    # per buffer, 12 MiB in all) hold every contraction of the evaluated training steps
    # at batch 64 in one program except CoMERA's largest (chunked). Node and clock are
    # stated, not measured: ``sw_model.accel.energy.ASIC_TECH``.
    "asic": AccelConfig(name="asic", n_ce=4, pe_rows=16, pe_cols=16, bank_depth=32768,
                        prog_depth=1024, adam_entries=65536),
}


def get_config(config) -> AccelConfig:
    """A preset name or an AccelConfig -> AccelConfig."""
    if isinstance(config, AccelConfig):
        return config
    if isinstance(config, str) and config in PRESETS:
        return PRESETS[config]
    raise ValueError(f"config {config!r} unknown; allowed presets {', '.join(PRESETS)} "
                     f"or an AccelConfig")


def with_overrides(config, settings=()) -> AccelConfig:
    """``config`` (a preset name or AccelConfig) with fields replaced from
    ``"FIELD=VALUE"`` strings (the command line's ``--set``), validated like any
    configuration; the name records the changes (``ice40+pe_rows=4``). A malformed
    item raises ``ValueError`` naming it and what is allowed."""
    cfg = get_config(config)
    settings = list(settings or ())
    if not settings:
        return cfg
    fields = {f.name: f for f in dataclasses.fields(AccelConfig) if f.name != "name"}
    changes = {}
    for item in settings:
        field, sep, raw = str(item).partition("=")
        if not sep or field not in fields:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE, FIELD one of "
                             f"{', '.join(fields)}")
        kind = str(fields[field].type)
        if kind == "int":
            try:
                changes[field] = int(raw, 0)
            except ValueError:
                raise ValueError(f"--set {item!r}: {field} takes an integer") from None
        elif kind == "float":
            try:
                changes[field] = float(raw)
            except ValueError:
                raise ValueError(f"--set {item!r}: {field} takes a number") from None
        elif kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--set {item!r}: {field} takes true or false")
            changes[field] = raw.lower() in ("true", "1")
        elif raw.lower() == "none" and "None" in kind:
            changes[field] = None
        else:
            changes[field] = raw
    label = cfg.name + "".join(f"+{k}={v}" for k, v in changes.items())
    return cfg.replace(name=label, **changes)
