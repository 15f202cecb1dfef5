"""Host-bus address map: the one definition used by the RTL, every simulator backend,
the C++ driver generator and the UART host driver.

The host bus is word-addressed (``ADDR_BITS``-bit addresses, 32-bit data):

==========================  ===================================================
address                     meaning
==========================  ===================================================
``REG_BASE + Reg.X``        control/status/counter registers (table below)
``PROG_BASE + i``           program word ``i`` (write-only while idle)
``ADAM_BASE + 4p + k``      the update unit's state entry ``p`` (``adam_entries``
                            of them; ``sw_model.accel.adam``): ``k`` = 0 the first
                            moment ``m`` (32 bits), 1 the second moment ``v`` (32
                            bits), 2 the master code ``w`` (16 bits, written from
                            ``wdata[15:0]``, read sign-extended), 3 reads 0
``buffer_base(buf) + j``    buffer word ``j`` of buffer ``buf`` (A=0, B=1, C=2);
                            ``j = row * lanes(buf) + lane``; 16-bit words,
                            written from ``wdata[15:0]``, read sign-extended
==========================  ===================================================

Protocol (see ``rtl/host_bus.py``): a one-cycle ``write`` strobe writes ``wdata`` to
``addr``; a one-cycle ``read`` strobe returns ``rdata`` with ``rvalid`` high exactly
``READ_LATENCY`` cycles later. The accelerator accepts one strobe per cycle and never
stalls the host.

Host writes while busy (the one rule; ``rtl/top.py``, every backend's direct-memory
path (``sim/backends/base.py``: ``Backend.direct_ok``), the UART bridge, which only forwards
bus writes, and ``docs/isa.md`` follow it): a host write to program memory, to a
buffer, to the update unit's state memory or to a shift-slot register (``Reg.SLOT``) while a program runs (STATUS.BUSY) is **dropped** — it never reaches the
memory — and is recorded, sticky: STATUS bit 3 (``Status.BUS_WHILE_BUSY``) stays set
until a CLEAR, and the error code becomes ``ErrorCode.BUS_WHILE_BUSY`` (5) unless an
error is already recorded. The run does **not** halt: the dropped write cannot change
it, and a halt in the middle of a run would leave its output half written. It ends as
it would have (DONE set), but with ERROR and code 5, so a host that checks STATUS
never takes its results as those of the memory contents it meant to write.
``BUSY_WRITE_HALTS`` records the decision for code that branches on it.

Control: ``Ctrl.START`` starts a program at the program word that CTRL bits 31..16
carry with it (``ctrl_start(pc)``; 0: the first word; a word at or past the program
depth halts at once with ``ErrorCode.PROGRAM_RANGE``; ignored while busy), so several
programs can stay in program memory and each be started where it lies;
``Ctrl.CLEAR`` clears the counters, the error code, DONE and STATUS bit 3 (ignored
while busy: counters cannot be cleared under a running program); ``Ctrl.ABORT`` stops
a running program at any cycle: nothing more is issued, the pipeline drains for the
fixed tail (the controller's ``tail_cycles``), the accelerator returns to idle with
``ErrorCode.ABORTED`` (6) and DONE clear. ABORT while idle does nothing; ABORT wins
over START written in the same word.
"""

from __future__ import annotations

import enum

from ..arith.fixedpoint import wrap

__all__ = ["ADDR_BITS", "DATA_BITS", "BUFFER_WORD_BITS", "buffer_word", "READ_LATENCY", "REG_BASE", "PROG_BASE", "ADAM_BASE", "ADAM_SPAN", "BUF_BASE",
           "START_PC_LSB", "START_PC_BITS", "ctrl_start",
           "program_base",
           "BUF_SPAN", "Reg", "Ctrl", "Status", "ErrorCode", "COUNTERS", "buffer_base",
           "CONTROL_WRITES", "CONTROL_READS", "XENT_RESULT_WORDS", "LEAN_WRITES",
           "UNIT_COUNTERS", "ALL_COUNTERS", "UNIT_COUNTER_READS",
           "LEAN_READS",
           "MAGIC", "STATUS_CODE_LSB", "STATUS_CODE_BITS", "BUSY_WRITE_HALTS",
           "is_memory_address", "is_slot_address", "MAXLOG_DEPTH"]

ADDR_BITS = 24
DATA_BITS = 32
# Buffer words: operands and results are 16 bits; the bus reads a buffer word back
# sign-extended to 32 bits (``buffer_word``).
BUFFER_WORD_BITS = 16
READ_LATENCY = 2

REG_BASE = 0x000000
PROG_BASE = 0x010000
ADAM_BASE = 0x040000
ADAM_SPAN = 4 * 65536  # words: 4 per state entry, at most 65,536 entries
BUF_BASE = 0x100000
BUF_SPAN = 0x100000  # words per buffer region

MAGIC = 0xFE77A001  # value of Reg.ID: identifies a fetta accelerator on the bus


class Reg(enum.IntEnum):
    ID = 0            # read: MAGIC
    CTRL = 1          # write: Ctrl bits
    STATUS = 2        # read: Status bits | error code << 8
    PC = 3            # read: program counter (word address)
    ERR_PC = 4        # read: word address of the instruction that raised the error
    CONFIG_HASH = 5   # read: low 32 bits of the elaboration config hash
    # Counters (``counter_bits`` wide): lo word at the even address, hi word at the
    # next (bits counter_bits-1..32; absent when counter_bits is 32). Zeroed by
    # Ctrl.CLEAR only (not by START); they count on across programs.
    CYCLES = 16       # every cycle of a run: stall_config + stall_fill + mac_active + stall_drain + move + vec
    BUSY = 18         # cycles running a CONTRACT, MOVE or VEC past its payload
    MAC_ACTIVE = 20   # issue cycles: an A row and a B row enter the CE array
    STALL_DRAIN = 22  # issue cycles lost waiting for the previous tile's drain
    STALL_FILL = 24   # validate, bound/range check and tail cycles of CONTRACT, MOVE and VEC
    STALL_CONFIG = 26 # fetch, decode and payload-loading cycles of every instruction
    INSTRUCTIONS = 28 # instructions executed (fetched and decoded)
    MOVE = 30         # MOVE element cycles: one word copied (or row cleared) each
    VEC = 32          # vector-unit busy cycles: VEC element cycles (one word through the vector ALU each), XENT row cycles, ADAM element cycles
    MAX_ABS = 34      # read: largest |result word| the program's CONTRACTs wrote to C (with the MOVE unit; 0 without)
    MAXLOG_COUNT = 35 # read: CONTRACT and VEC instructions completed since START (each one's largest |result word| is in MAXLOG + k while k < MAXLOG_DEPTH; with the MOVE unit, 0 without)
    XENT_CORRECT = 36 # read: rows the program's XENTs found their first maximum at the target (argmax == label: the accuracy count; cleared by START; with the MOVE unit, 0 without)
    SLOT_MOVED = 37   # read: bit k-1 set when shift slot k's shift moved by a vote since the bit was last cleared; write (idle only, a write during a run is dropped and recorded): 1 bits clear those bits; not cleared by START or CLEAR (with shift slots, 0 without)
    XENT_LOSS = 38    # read: the program's XENT rows' cross-entropy summed in bits, Q16 (xent_loss_rows; lo word here, bits 47..32 at the next address; wraps at 2**48; cleared by START; with the MOVE unit, 0 without)
    XENT_CYCLES = 40  # the part of VEC that XENT rows took (vector-busy cycles by operation)
    ADAM_CYCLES = 42  # the part of VEC that ADAM elements took (the update unit busy)
    MAXLOG = 64       # read: MAXLOG + k, k < MAXLOG_DEPTH: largest |result word| the k-th CONTRACT or VEC of the program wrote (the adaptive-shift vote of each contraction without reading its result)
    SLOT = 96         # read/write: SLOT + k - 1, 1 <= k <= shift_slots: shift slot k (shift_slots.slot_word: shift 5..0, pending 11..8, gmax 31..16); written while idle only (a write during a run is dropped and recorded like a memory write); not cleared by START or CLEAR


MAXLOG_DEPTH = 16     # entries of the per-instruction max log (Reg.MAXLOG)

COUNTERS = {
    "cycles": Reg.CYCLES, "busy_cycles": Reg.BUSY, "mac_active_cycles": Reg.MAC_ACTIVE,
    "stall_drain": Reg.STALL_DRAIN, "stall_fill": Reg.STALL_FILL,
    "stall_config": Reg.STALL_CONFIG, "instructions": Reg.INSTRUCTIONS,
    "move_cycles": Reg.MOVE, "vec_cycles": Reg.VEC,
}
# The vector-busy cycles by operation: read (4 words) after a program with an XENT or
# an ADAM, not after every run (``CONTROL_READS`` counts ``COUNTERS`` only).
UNIT_COUNTERS = {"xent_cycles": Reg.XENT_CYCLES, "adam_cycles": Reg.ADAM_CYCLES}
ALL_COUNTERS = {**COUNTERS, **UNIT_COUNTERS}
UNIT_COUNTER_READS = 2 * len(UNIT_COUNTERS)

# Host-bus words of one program run besides data: CLEAR and START written; STATUS,
# ERR_PC and the 64-bit COUNTERS read back (what ``sim.backends`` ``Backend.run`` and
# the harness do per run; every host-word count uses these).
CONTROL_WRITES = 2
CONTROL_READS = 2 + 2 * len(COUNTERS)
# A lean run (``Backend.run(counters=False)``, a series of them with one CLEAR and the
# counters read once at its end, checked in aggregate against the cycle model): START
# written, STATUS read (ERR_PC too when it reports an error).
LEAN_WRITES = 1
LEAN_READS = 1
# Host-bus words of a batch's XENT results: XENT_CORRECT and XENT_LOSS (lo, hi).
XENT_RESULT_WORDS = 3


class Ctrl(enum.IntFlag):
    START = 1          # start executing at the program word in bits 31..16 (idle only)
    CLEAR = 2          # clear counters, error code, done flag, bit 3 (idle only)
    ABORT = 4          # stop a running program; back to idle with ErrorCode.ABORTED


# CTRL bits 31..16 written with START: the program word the run starts at.
START_PC_LSB = 16
START_PC_BITS = 16


def ctrl_start(pc: int = 0) -> int:
    """The CTRL word that starts the loaded program at program word ``pc``."""
    pc = int(pc)
    if not 0 <= pc < 1 << START_PC_BITS:
        raise ValueError(f"start word {pc} out of range; allowed 0..{(1 << START_PC_BITS) - 1}")
    return int(Ctrl.START) | pc << START_PC_LSB


def program_base(program_at, length: int, depth: int) -> int:
    """The program word a program of ``length`` words is written at and started from
    (``ctrl_start``): ``program_at`` an int, or ``"top"``: flush against the end of
    program memory (``depth`` words), so it leaves a program held from word 0 in place
    as far as both fit."""
    if program_at == "top":
        return max(0, depth - length)
    if isinstance(program_at, bool) or not isinstance(program_at, int) or \
            not 0 <= program_at < depth:
        raise ValueError(f"program_at {program_at!r} invalid; allowed 'top' or a "
                         f"program word 0..{depth - 1}")
    return program_at


class Status(enum.IntFlag):
    BUSY = 1           # a program is running
    DONE = 2           # halted normally (HALT) since the last START
    ERROR = 4          # halted with an error; code in bits 15..8
    BUS_WHILE_BUSY = 8 # sticky: a host write to a memory was dropped during a run


class ErrorCode(enum.IntEnum):
    NONE = 0               # no error since the last START or CLEAR
    ILLEGAL_OPCODE = 1     # an instruction header with an unknown opcode
    ADDRESS_RANGE = 2      # an operand/result loop would leave its buffer
    BAD_CONFIG = 3         # a mapping the array cannot run
    PROGRAM_RANGE = 4      # the program ran off the end of program memory
    BUS_WHILE_BUSY = 5     # host wrote a buffer or program word during a run
    ABORTED = 6            # the host stopped the run with Ctrl.ABORT


# The run goes on after a dropped write (the module docstring gives the reason).
BUSY_WRITE_HALTS = False


def is_memory_address(addr: int) -> bool:
    """True for program-memory, state-memory and buffer addresses; registers are not memories (the
    busy rule also drops writes to the shift-slot registers, ``is_slot_address``)."""
    return addr >= PROG_BASE


def is_slot_address(addr: int, shift_slots: int) -> bool:
    """True for the shift-slot registers of a config with ``shift_slots`` slots."""
    return REG_BASE + Reg.SLOT <= addr < REG_BASE + Reg.SLOT + shift_slots


# STATUS bits 15..8: the ErrorCode of the last halt (0 while none).
STATUS_CODE_LSB = 8
STATUS_CODE_BITS = 8


def buffer_word(value: int) -> int:
    """What a buffer word holding ``value`` reads back as on the bus: its low
    ``BUFFER_WORD_BITS`` bits, sign-extended to a ``DATA_BITS`` bus word (unsigned)."""
    return int(wrap(int(value), BUFFER_WORD_BITS)) & ((1 << DATA_BITS) - 1)


def buffer_base(buf: int) -> int:
    if buf not in (0, 1, 2):
        raise ValueError(f"buffer {buf} unknown; allowed 0 (A), 1 (B), 2 (C)")
    return BUF_BASE + buf * BUF_SPAN
