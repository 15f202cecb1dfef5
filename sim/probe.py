"""The link self-test of a freshly programmed board (``fetta probe``).

``probe(backend)`` runs these steps in order over the UART link and reports each as
PASS or FAIL with what a failure means (docs/board-bringup.md):

1. ``link``: the bridge answers PING with this host's protocol version (learned: the
   bridge's maximum burst);
2. ``id``: ``Reg.ID`` reads ``MAGIC`` (the accelerator, not the bare ``memory`` design,
   sits behind the bridge);
3. ``config``: ``Reg.CONFIG_HASH`` is the hash of the preset the host plans for;
4. ``memory``: a pattern test of program memory and of buffers A, B, C over the bridge:
   every address bit toggled (one word at each power-of-two offset, each holding its
   own offset, then all read back: an aliased or stuck address line shows as a word
   holding another offset), and ``words`` words at the start and at the end of each
   region with walking-one, inverted and address-in-data patterns (stuck or shorted
   data bits); buffers store 16 bits and read back sign-extended;
5. ``contract``: a small GEMM compiled, loaded and run, its result compared element
   by element with the golden model and its CYCLES counter with the compiler's model;
6. ``link_errors``: the link's counters over the whole probe (frames, retries, NAKs by
   reason, timeouts, garbled responses): FAIL if any frame had to be retried.

A failing ``link``, ``id`` or ``config`` step ends the probe (the later steps need
the accelerator of that preset); ``contract`` runs only after ``memory`` passed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fetta.sw_model.accel.hostmap import DATA_BITS, buffer_word, MAGIC, PROG_BASE, Ctrl, Reg, buffer_base

__all__ = ["ProbeStep", "probe", "open_board", "MEANINGS"]

# What a FAIL of each step means and what to do (also in docs/board-bringup.md).
MEANINGS = {
    "link": "no fetta bridge answered: bitstream not loaded (fetta program), wrong "
            "serial port (iCEBreaker: the second FTDI channel), wrong --baud, or a "
            "bitstream with another protocol version (rebuild it)",
    "id": "the bridge answers but Reg.ID is not the accelerator's: the `memory` design "
          "(fetta synth --design memory) or another bitstream is loaded",
    "config": "the bitstream was built for another preset: pass its --config, or "
              "rebuild with fetta synth --config PRESET",
    "memory": "a memory does not keep what was written: a value read at another "
              "address than written (an aliased or stuck address bit) or a wrong bit "
              "in every failing word (a stuck data bit); rebuild, check the timing "
              "report (timing_met) and the board's clock",
    "contract": "the datapath computes wrong results or takes other cycles than the "
                "compiler's model: a bitstream that did not meet timing (fetta synth "
                "--json: timing_met false), or a build from other sources than this host",
    "link_errors": "frames had to be retried: noise or a baud-rate mismatch on the line "
                   "(CRC NAKs), or dropped bytes / USB latency (TIMEOUT NAKs, missing "
                   "responses); results are still correct, but the line is marginal",
}


@dataclasses.dataclass
class ProbeStep:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if not self.ok:
            d["meaning"] = MEANINGS[self.name]
        return d


def _regions(cfg):
    """(name, base word address, words) of program memory and the three buffers."""
    return [("program", PROG_BASE, cfg.prog_depth, 32)] + [
        (f"buffer {n}", buffer_base(i), lanes * cfg.bank_depth, 16)
        for i, (n, lanes) in enumerate((("A", cfg.a_lanes), ("B", cfg.b_lanes),
                                        ("C", cfg.c_lanes)))]


def _expect(value: int, bits: int) -> int:
    """What a word written as ``value`` reads back as (buffers: 16 bits, sign-extended)."""
    return value & 0xFFFFFFFF if bits == DATA_BITS else buffer_word(value)


def _check(be, addr, values, bits, what, problems):
    be.write(addr, values)
    got = be.read(addr, len(values))
    for i, (w, g) in enumerate(zip(values, got)):
        if g != _expect(w, bits):
            problems.append(f"{what} word 0x{addr + i:06x}: wrote 0x{w & 0xFFFFFFFF:08x}, "
                            f"read 0x{g:08x}")
            return


def memory_test(be, cfg, words: int = 32) -> list[str]:
    """The pattern test of step 4; returns the problems found (empty: pass)."""
    problems: list[str] = []
    for name, base, size, bits in _regions(cfg):
        mask = (1 << bits) - 1
        offsets = [0] + [1 << k for k in range((size - 1).bit_length())]
        for off in offsets:                                   # address lines
            be.write(base + off, [(off * 0x9E37 + 1) & mask])
        for off in offsets:
            got = be.read(base + off, 1)[0]
            want = _expect((off * 0x9E37 + 1) & mask, bits)
            if got != want:
                problems.append(f"{name} (address lines) word 0x{base + off:06x}: "
                                f"wrote 0x{want:08x}, read 0x{got:08x}")
                break
        n = min(words, size)
        for start in sorted({0, size - n}):                   # data lines, both ends
            walk = [(1 << (i % bits)) & mask for i in range(n)]
            inv = [~w & mask for w in walk]
            addr_data = [((start + i) * 0x01010101 ^ 0xA5A5A5A5) & mask for i in range(n)]
            for pat, label in ((walk, "walking one"), (inv, "walking zero"),
                               (addr_data, "address in data")):
                _check(be, base + start, pat, bits, f"{name} ({label})", problems)
    return problems


def contraction_test(be, cfg) -> str | None:
    """Step 5: a GEMM small enough for any preset; None if it matches."""
    from .harness import Session
    from fetta.sw_model.arith.contraction import reference_contraction
    from fetta.sw_model.program.compiler import predict_cycles
    rng = np.random.default_rng(2024)
    a = rng.integers(-1000, 1000, (3, 5))
    b = rng.integers(-1000, 1000, (5, 2))
    kw = dict(shift=3, rounding="stochastic", seed=77)
    s = Session(cfg, be, residency=False)
    res = s.contract("ik,kj->ij", a, b, **kw)
    want = reference_contraction("ik,kj->ij", a, b, acc_bits=cfg.acc_bits, **kw)
    bad = np.argwhere(res.output != want)
    if bad.size:
        i = tuple(bad[0])
        return (f"ik,kj->ij element {i}: board {res.output[i]}, golden {want[i]} "
                f"({len(bad)} of {want.size} differ)")
    predicted = predict_cycles("ik,kj->ij", a.shape, b.shape, cfg)
    if res.cycles != predicted:
        return f"{res.cycles} cycles; the compiler's model says {predicted}"
    return None


def probe(be, cfg, *, words: int = 32) -> list[ProbeStep]:
    """Run the probe on an open ``BoardBackend`` (opened with ``check_id=False``)."""
    from fetta.rtl.top import config_hash
    steps = [ProbeStep("link", True, f"bridge protocol {be.info['version']}, "
                                     f"max burst {be.info['max_burst']} words")]
    ident = be.read_reg(Reg.ID)
    steps.append(ProbeStep("id", ident == MAGIC, f"Reg.ID = 0x{ident:08x} "
                                                 f"(expected 0x{MAGIC:08x})"))
    if ident != MAGIC:
        return steps + [_link_step(be)]
    got, want = be.read_reg(Reg.CONFIG_HASH), config_hash(cfg) & 0xFFFFFFFF
    steps.append(ProbeStep("config", got == want,
                           f"CONFIG_HASH 0x{got:08x}; preset {cfg.name} is 0x{want:08x}"))
    if got != want:              # the memory sizes and the contraction need the preset
        return steps + [_link_step(be)]
    be.write_reg(Reg.CTRL, Ctrl.CLEAR)
    problems = memory_test(be, cfg, words)
    n_words = sum(min(words, size) for _, _, size, _ in _regions(cfg))
    steps.append(ProbeStep("memory", not problems, problems[0] + (
        f" (+{len(problems) - 1} more)" if len(problems) > 1 else "") if problems else
        f"program memory and buffers A/B/C: every address bit, {n_words} words at each "
        f"end x 3 patterns"))
    if not problems:
        err = contraction_test(be, cfg)
        steps.append(ProbeStep("contract", err is None, err or
                               "3x5 @ 5x2 GEMM, stochastic rounding: equal to the golden "
                               "model, cycles equal to the compiler's model"))
    return steps + [_link_step(be)]


def _link_step(be) -> ProbeStep:
    st = be.stats
    naks = ", ".join(f"{k} {v}" for k, v in st["naks"].items()) or "none"
    return ProbeStep("link_errors", st["retries"] == 0,
                     f"{st['frames']} frames, {st['retries']} retries, NAKs: {naks}, "
                     f"{st['timeouts']} timeouts, {st['bad_responses']} garbled")


def open_board(cfg, port: str, baud: int):
    """A ``BoardBackend`` on ``port``; ``port="sim"`` is a simulated board: the
    preset's accelerator behind the UART bridge in Amaranth's simulator (a rehearsal of
    the whole path, no hardware)."""
    from .backends.board import BoardBackend
    if port == "sim":
        from fetta.boards.host_driver import PysimUART
        from fetta.boards.top import LinkTop
        from fetta.rtl.top import Accelerator
        transport = PysimUART(LinkTop(Accelerator(cfg), divisor=4, timeout=400,
                                      max_burst=64))
        return BoardBackend(cfg, transport=transport, check_id=False)
    return BoardBackend(cfg, port=port, baud=baud, check_id=False)
