"""docs/datasheet.md, generated: every number in it is computed here from the code
(presets, ISA encoders, routers, compiler, timing model, register map, dither hash,
simulator flags), so it cannot drift from the design. ``python scripts/gen_docs.py datasheet``
rewrites the file; ``tests/sim/test_datasheet.py`` fails when it is out of date.
"""

from __future__ import annotations

import numpy as np

from fetta.sw_model.accel import benes, reduction_net
from fetta.sw_model.accel.config import PRESETS, get_config
from fetta.sw_model.accel.vec import (READS_DEST, VEC_FIELDS, VEC_WORDS, VW, VecOp,
                                      vec_latency)
from fetta.sw_model.accel.adam import (ADAM_FIELDS, ADAM_WORDS, AW, GSHIFT_MAX, OUT_SHIFT_MAX,
                                       STEP_SHIFT_MAX, adam_element_cycles)
from fetta.sw_model.accel.xent import (BSZ_MAX, N_MAX as XENT_N_MAX, S_MAX, S_MIN,
                                       XENT_FIELDS, XENT_WORDS, XW, xent_row_cycles)
from fetta.sw_model.accel.move import (MOVE_CHECK_PASSES, MOVE_FIELDS, MOVE_LEVELS,
                                       MOVE_TAIL, MOVE_WORDS, MW)
from fetta.sw_model.accel.hostmap import (ADDR_BITS, BUF_BASE, BUF_SPAN, ALL_COUNTERS,
                                          MAGIC, PROG_BASE, ADAM_BASE, READ_LATENCY, Ctrl, ErrorCode,
                                          Reg, Status)
from fetta.sw_model.accel.isa import (CHECK_PASSES, CONTRACT_FIELDS, CONTRACT_WORDS, COUNT_BITS,
                                      COUNT_MAX, CW, FIELD, N_LEVELS, Op, config_layout,
                                      dist_bits, header)
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, dither, dither_hash
from fetta.sw_model.accel.step import STEP_WORDS, step_cycles
from fetta.sw_model.accel.timing import OUTPUT_STAGE_LATENCY, timing
from fetta.sw_model.program.compiler import compile_contraction, mappings

__all__ = ["render", "dither_steps", "contract_fields"]

M32 = 0xFFFFFFFF
EXAMPLE_SEED, EXAMPLE_INDEX = 0x12345678, 42


def _table(head, rows) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _docs(cls):
    from .regmap import member_docs
    return member_docs(cls)


# -- numbers derived from the encoders ---------------------------------------------------
def contract_fields() -> list[tuple[int, int, int, str]]:
    """(payload word, lsb, msb, field) of CONTRACT, from the ISA's field table
    (``isa.CONTRACT_FIELDS``; loop-level fields named ``level I attr``)."""
    out = []
    for f in CONTRACT_FIELDS:
        lv, _, attr = f.name.partition(".")
        name = f"level {lv[5:]} {attr}" if attr else f.name
        out.append((int(f.word), f.lsb, f.lsb + f.width - 1, name))
    return sorted(out)


def _field_kind(name: str) -> str:
    f = FIELD[name if not name.startswith("level ") else
              "level{}.{}".format(*name.split()[1:])]
    return {"unsigned": "unsigned", "signed": "signed",
            "modular": "modulo 2^32"}[f.kind]


def dither_steps(seed: int, index: int) -> list[tuple[str, int]]:
    """The hash of ``fixedpoint.dither_hash`` one operation at a time (the test checks
    the last value equals ``dither_hash``)."""
    steps = []
    x = ((seed ^ 0x9E3779B9) + index) & M32
    steps.append(("x = (seed ^ 0x9E3779B9) + index", x))
    for rnd in (1, 2):
        for op, f in (("x = x + (x << 10)", lambda v: (v + (v << 10)) & M32),
                      ("x = x ^ (x >> 6)", lambda v: v ^ (v >> 6)),
                      ("x = x + (x << 3)", lambda v: (v + (v << 3)) & M32),
                      ("x = x ^ (x >> 11)", lambda v: v ^ (v >> 11)),
                      ("x = x + (x << 15)", lambda v: (v + (v << 15)) & M32)):
            x = f(x)
            steps.append((f"round {rnd}: {op}", x))
        if rnd == 1:
            x ^= seed
            steps.append(("x = x ^ seed", x))
    return steps


# -- sections ------------------------------------------------------------------------------
def _presets() -> list[str]:
    out = ["## 1. Presets", "",
           "Every figure per preset (`sw_model/accel/config.py`, `sw_model/accel/timing.py`). "
           "a/b/r bits: packed switch settings of the A and B distribution networks and of "
           "the reduction network (2 bits per switch).", ""]
    head = ["field"] + list(PRESETS)
    rows = []

    def row(label, f):
        rows.append([label] + [f(get_config(p)) for p in PRESETS])
    row("CEs x PE rows x PE cols", lambda c: f"{c.n_ce} x {c.pe_rows} x {c.pe_cols}")
    row("MACs (kind)", lambda c: f"{c.macs} ({c.mac_kind})")
    row("operand / accumulator bits", lambda c: f"{c.operand_bits} / {c.acc_bits}")
    row("A / B / C lanes (= banks)", lambda c: f"{c.a_lanes} / {c.b_lanes} / {c.c_lanes}")
    row("output stages (out_share)", lambda c: f"{c.out_lanes} ({c.out_share})")
    row("dist_pipeline / mac_pipeline", lambda c: f"{c.dist_pipeline} / {c.mac_pipeline}")
    row("A / B / reduction switch bits",
        lambda c: f"{dist_bits(c.a_lanes)} / {dist_bits(c.b_lanes)} / "
                  f"{reduction_net.reduction_n_switch_bits(c.c_lanes)}")
    row("CONFIG payload words", lambda c: timing(c).config_words)
    row("buffer rows (bank_depth)", lambda c: c.bank_depth)
    row("words per buffer A / B / C", lambda c: f"{c.a_lanes * c.bank_depth} / "
        f"{c.b_lanes * c.bank_depth} / {c.c_lanes * c.bank_depth}")
    row("program words", lambda c: c.prog_depth)
    row("counter bits", lambda c: c.counter_bits)
    row("operand latency (cycles)",
        lambda c: benes.DISTRIBUTION_LATENCY + c.dist_pipeline + c.mac_pipeline)
    row("drain cycles per tile", lambda c: c.drain_cycles)
    row("reduction latency", lambda c: reduction_net.reduction_latency(c.c_lanes))
    row("output stage latency", lambda c: OUTPUT_STAGE_LATENCY)
    row("CONTRACT tail (cycles)", lambda c: timing(c).tail)
    row("CONTRACT fixed cycles (counts all 1 / all COUNT_MAX)",
        lambda c: f"{timing(c).contract_fixed((1,) * (N_LEVELS + 1))} / "
                  f"{timing(c).contract_fixed((COUNT_MAX,) * (N_LEVELS + 1))}")
    row("CONFIG cycles", lambda c: timing(c).config_cycles())
    return out + _table(head, rows)


def _bus_and_registers() -> list[str]:
    from .regmap import register_model
    model = register_model("tiny")
    out = ["## 2. Host bus and registers", "",
           f"{ADDR_BITS}-bit word addresses, 32-bit data. A one-cycle `write` strobe "
           f"writes `wdata` at that rising edge; a one-cycle `read` strobe returns "
           f"`rdata` with `rvalid` high exactly {READ_LATENCY} cycles later; one strobe "
           f"per cycle, never stalls. Reset (`rst`) is synchronous; at power-up every "
           f"register starts from its initial value (no reset needed).", "",
           "Registers (preset `tiny`; `fetta regmap --format md --config PRESET` gives any "
           "preset, `--format c` a C header; with 32-bit counters the `_HI` words are "
           "absent and read 0):", ""]
    rows = []
    for r in model["registers"]:
        fields = ", ".join(f"{f['name']}[{f['lsb'] + f['width'] - 1}:{f['lsb']}]"
                           if f["width"] > 1 else f"{f['name']}[{f['lsb']}]"
                           for f in r["fields"])
        rows.append([f"0x{r['word']:06x}", r["name"], r["access"], fields, r["desc"]])
    out += _table(["word", "register", "access", "fields", "meaning"], rows)
    rows = [[f"0x{m['word']:06x}", m["name"], m["entries"], m["desc"]]
            for m in model["memories"]]
    out += ["Memories (word `i` of a region at `base + i`; regions are "
            f"0x{BUF_SPAN:x} words apart from 0x{BUF_BASE:06x}):", ""]
    out += _table(["base", "memory", "words (tiny)", "layout"], rows)
    out += [f"`ID` reads 0x{MAGIC:08X}. `CTRL` bits: " + "; ".join(
        f"{c.name} = {int(c)}: {_docs(Ctrl)[c.name]}" for c in Ctrl) + ".", "",
        "`STATUS` bits: " + "; ".join(
            f"{s.name} = {int(s)}: {_docs(Status)[s.name]}" for s in Status)
        + "; bits 15..8 the error code (section 8).", ""]
    return out


def _isa() -> list[str]:
    out = ["## 3. Instructions", "",
           "Header word: opcode in bits 7..0, payload length (words that follow) in bits "
           "31..16.", ""]
    out += _table(["opcode", "name", "header word (no payload)"],
                  [[f"0x{int(o):02x}", o.name, f"0x{header(o):08x}"] for o in Op])
    cfg = get_config("tiny")
    lay = config_layout(cfg, reduction_net.reduction_n_switch_bits(cfg.c_lanes))
    out += ["### CONFIG payload (word ranges per preset)", ""]
    rows = []
    for p in PRESETS:
        c = get_config(p)
        lay = config_layout(c, reduction_net.reduction_n_switch_bits(c.c_lanes))
        rows.append([p] + [f"{a}..{a + n - 1}" if n > 1 else str(a)
                           for a, n in lay.values()])
    out += _table(["preset"] + list(lay), rows)
    out += ["Word 0 (mapping): `log2 ga` bits 3..0, `log2 gb` bits 7..4, `log2 gk` bits "
            "11..8, e.g. " + ", ".join(f"(ga, gb, gk) = ({m.ga}, {m.gb}, {m.gk}) -> "
                                       f"0x{m.word():03x}" for m in mappings(cfg)) +
            f" for `tiny` ({cfg.n_ce} CEs). Packed settings fill words LSB first, "
            "stage-major, switch within stage: switch `s` of stage `t` is bits "
            "`2*(t*N/2 + s)`, +1 of the packed value (N = lanes). The last "
            "`c_lanes` words are each output lane's flat-index offset (the stochastic "
            "dither input).", ""]
    out += [f"### CONTRACT payload ({CONTRACT_WORDS} words; `CW` offsets " +
            ", ".join(f"{w.name} = {int(w)}" for w in CW) + ")", ""]
    out += _table(["word", "bits", "field", "kind"],
                  [[w, f"{hi}..{lo}", name, _field_kind(name)]
                   for w, lo, hi, name in contract_fields()])
    out += ["Signed fields (strides) are two's complement. `rounding`: " +
            ", ".join(f"{i} {m}" for i, m in enumerate(ROUNDING_MODES)) +
            f", {len(ROUNDING_MODES)} illegal. Counts are 1..{(1 << COUNT_BITS) - 1}. "
            "`acc_continue`: a tile's first step adds to the sums the PE accumulators "
            "hold (they keep them between instructions and programs) instead of "
            "restarting them; `acc_hold`: a tile's last step is not drained (nothing is "
            "written to C, the sums stay in the accumulators). Neither changes the "
            "timing; the compiler uses them for reductions longer than the buffers "
            "hold, one one-tile CONTRACT per K chunk (`sw_model/program/kchunk.py`).", ""]
    out += [f"### MOVE payload ({MOVE_WORDS} words; `MW` offsets " +
            ", ".join(f"{w.name} = {int(w)}" for w in MW) + ")", ""]
    rows = []
    for f in MOVE_FIELDS:
        if f.name.startswith("level") and not f.name.startswith("level0."):
            continue
        name = f.name.replace("level0.", f"level i (0..{MOVE_LEVELS - 1}).")
        word = f"{f.word} + 3i" if f.name.startswith("level") else str(f.word)
        rows.append([word, f"{f.lsb + f.width - 1}..{f.lsb}", name, f.kind])
    out += _table(["word", "bits", "field", "kind"], rows)
    out += ["`src`, `dst`: 0 A, 1 B, 2 C (3 illegal; a copy needs two different "
            "buffers). Word address `w` of a buffer = bank `w % lanes`, row "
            "`w // lanes`. For every point of the nest (level 0 outermost): "
            "`dst[dst_base + sum c_i dst_stride_i] = src[src_base + sum c_i "
            "src_stride_i]`; with `fill` the destination word's whole row is cleared "
            "and nothing is read. Presets without the unit (`move_unit` false: " +
            (", ".join(p for p in PRESETS if not get_config(p).move_unit) or "none") +
            ") treat MOVE as an illegal opcode (`sw_model/accel/move.py`).", ""]
    out += [f"### VEC payload ({VEC_WORDS} words: the MOVE payload, then `VW` offsets " +
            ", ".join(f"{w.name} = {int(w)}" for w in VW) + ")", ""]
    out += _table(["word", "bits", "field", "kind"],
                  [[str(f.word), f"{f.lsb + f.width - 1}..{f.lsb}", f.name, f.kind]
                   for f in VEC_FIELDS])
    out += ["`op`: " + ", ".join(f"{int(o)} {o.name}" for o in VecOp) +
            f" ({len(VecOp)}.. illegal); `rounding` as CONTRACT's; `out_bits` 2..16; the "
            "MOVE part's `fill` must be 0. Element `e` (issue order) writes "
            "`saturate(out_bits, f(a, b))`, `a` its source word, `b` the destination's "
            "old word (read by " + ", ".join(o.name for o in sorted(READS_DEST)) +
            "; `sw_model/accel/vec.py`). Same presets as MOVE.", ""]
    out += [f"### XENT payload ({XENT_WORDS} words: the MOVE payload, then `XW` offsets " +
            ", ".join(f"{w.name} = {int(w)}" for w in XW) + ")", ""]
    out += _table(["word", "bits", "field", "kind"],
                  [[str(f.word), f"{f.lsb + f.width - 1}..{f.lsb}", f.name, f.kind]
                   for f in XENT_FIELDS])
    out += [f"Innermost level: the classes of a row (2..{XENT_N_MAX}); outer levels: the "
            f"rows. `s` = the logits' frac - 2 ({S_MIN}..{S_MAX}), `bsz` 2..{BSZ_MAX}, "
            "`out_bits` 2..16; every other bit and the RESERVED word 0; `fill` 0. Per "
            "row the softmax cross-entropy gradient of the source logits against the "
            "destination's targets (one-hot, or with `labels` the label index in the "
            "row's first word) is written to the destination; XENT_CORRECT counts the "
            "rows whose first maximum is the target (`sw_model/accel/xent.py`). Same "
            "presets as MOVE.", ""]
    out += [f"### ADAM payload ({ADAM_WORDS} words: the MOVE payload, then `AW` offsets " +
            ", ".join(f"{w.name} = {int(w)}" for w in AW) + ")", ""]
    out += _table(["word", "bits", "field", "kind"],
                  [[str(f.word), f"{f.lsb + f.width - 1}..{f.lsb}", f.name, f.kind]
                   for f in ADAM_FIELDS])
    out += ["Source: the gradient (with `reduce` the innermost level's points summed per "
            "element); element `e` updates state entry `state_base + e` (first and "
            "second moment, master code: `sw_model/arith/adam.py`, the recipe's "
            "`FixedAdam`) and writes `align(w, out_shift, 0, out_bits)` to the "
            "destination word of its last point (with `load` only that, from the stored "
            f"`w`). `gshift` and `out_shift` signed (-{GSHIFT_MAX}..{GSHIFT_MAX}, "
            f"-{OUT_SHIFT_MAX}..{OUT_SHIFT_MAX}), `step_shift` 0..{STEP_SHIFT_MAX}, "
            "`w_bits` and `out_bits` 2..16, `b1`/`b2` 0..2**24; `fill` 0. State entries "
            "per preset (`adam_entries`, host window at `hostmap.ADAM_BASE`): " +
            ", ".join(f"{n} {c.adam_entries:,}" for n, c in PRESETS.items()) +
            " (0: no unit, ADAM illegal; `sw_model/accel/adam.py`).", ""]
    out += [f"### STEP payload ({STEP_WORDS} words: KEY, LR)", "",
            "From STEP to HALT every seed word (a CONTRACT's SEED, a VEC's SEED, an "
            "ADAM's SEED0 and SEED1) names an index `i` and the seed used is "
            "`dither_hash(KEY, i)`; an ADAM with `lr_step` uses LR (Q30). START clears "
            f"the mode. `{step_cycles()}` cycles. With the MOVE unit "
            "(`sw_model/accel/step.py`).", ""]
    return out


def _timing() -> list[str]:
    return ["## 4. Timing", "",
            "CONFIG: `2 + payload + 1` cycles. CONTRACT: `2 + "
            f"{CONTRACT_WORDS} + 1 + check` (fetch, payload, validate, bound check) + "
            "one issue per (tile, k step) + drain stalls + tail; a drain stall of "
            "`drain_cycles - ksteps` is added per tile after the first when `ksteps < "
            "drain_cycles`. The bound check is `1 + sum over its "
            f"{len(CHECK_PASSES)} passes of (bit_length(count - 1) + 1)`, the count "
            "being the pass's loop level's (`isa.check_cycles`): "
            f"{len(CHECK_PASSES)} + 1 when every count is 1, at most "
            f"{len(CHECK_PASSES)} x ({COUNT_BITS} + 1) + 1. MOVE: `2 + {MOVE_WORDS} + 1 "
            "+ check` (fetch, payload, validate, range check) + one cycle per element + "
            f"{MOVE_TAIL} (the last write), the range check over its "
            f"{len(MOVE_CHECK_PASSES)} passes by the same rule (`move.move_check_cycles`: "
            f"{len(MOVE_CHECK_PASSES)} + 1 to {len(MOVE_CHECK_PASSES)} x ({COUNT_BITS} + "
            "1) + 1). VEC: a MOVE's with its "
            f"{VEC_WORDS}-word payload and a tail of `vec_tail(op)` = {MOVE_TAIL} + the "
            f"ALU latency ({vec_latency('requant')} for REQUANT, 0 for the others). "
            f"XENT: a MOVE's fixed part with its {XENT_WORDS}-word payload, then "
            f"`xent_row_cycles(n)` = {xent_row_cycles(0)} + {xent_row_cycles(1) - xent_row_cycles(0)} n per row of `n` "
            f"classes ({xent_row_cycles(10)} for 10), then 1 (the last write) + "
            f"{MOVE_TAIL} (`xent.xent_cycles`). "
            f"ADAM: a MOVE's fixed part with its {ADAM_WORDS}-word payload, then "
            f"`adam_element_cycles(r)` = {adam_element_cycles(0)} + r per element of `r` "
            f"gradient words ({adam_element_cycles(1)} for 1; with `load` "
            f"{adam_element_cycles(0, True)} + r), then 1 + {MOVE_TAIL} "
            "(`adam.adam_cycles`). "
            "SYNC and HALT: 2 "
            "cycles. Per-preset constants: section 1. The compiler's "
            "`predict_cycles` is this model; tests compare it with the RTL's CYCLES "
            "counter on every random contraction.", ""]


def _networks() -> list[str]:
    out = ["## 5. Lane wiring and networks", "",
           "CE `c = (ia*gk + ik)*gb + ib` for mapping `(ga, gb, gk)`: PE row `r` of CE "
           "`c` is A-network output lane `c*pe_rows + r`, PE column `j` is B-network "
           "output lane `c*pe_cols + j`, and column `j` of CE `c` is reduction-network "
           "input lane `c*pe_cols + j`; reduction output lane `d` feeds output stage "
           "`d % out_lanes` and C bank `d`.", "",
           "Benes distribution network of N lanes: `2 log2 N - 1` stages of N/2 switches; "
           "switch `s` reads stage positions `2s` (upper) and `2s+1` (lower); output "
           "position `p` of stage `t` feeds position `wiring[t][p]` of stage `t+1`. "
           "Distribution codes: " + ", ".join(
               f"{v} {n}" for n, v in (("pass", benes.DIST_PASS),
                                       ("swap", benes.DIST_SWAP),
                                       ("upper to both", benes.DIST_BCAST_UPPER),
                                       ("lower to both", benes.DIST_BCAST_LOWER))) +
           ". Reduction codes: " + ", ".join(
               f"{v} {n}" for n, v in (
                   ("pass", reduction_net.RED_PASS), ("swap", reduction_net.RED_SWAP),
                   ("add, sum on upper", reduction_net.RED_ADD_UPPER),
                   ("add, sum on lower", reduction_net.RED_ADD_LOWER))) +
           " (the Benes blocks of the reduction network use bit 0 only).", ""]
    for lanes in sorted({n for p in PRESETS for n in (get_config(p).a_lanes,
                                                        get_config(p).b_lanes,
                                                        get_config(p).c_lanes)}):
        used = [p for p in PRESETS if lanes in (get_config(p).a_lanes,
                                                 get_config(p).b_lanes,
                                                 get_config(p).c_lanes)]
        out += [f"**{lanes} lanes** ({', '.join(used)}): Benes "
                f"{benes.benes_stages(lanes)} stages; reduction "
                f"{reduction_net.reduction_stages(lanes)} stages (" +
                ", ".join(f"{k} {i}"
                          for k, i in reduction_net.reduction_stage_kinds(lanes)) +
                f"), latency {reduction_net.reduction_latency(lanes)}.", ""]
        if lanes > 2 and lanes <= 16:
            out += _table(["stage t", "wiring[t] (position p -> next stage)"],
                          [[t, " ".join(map(str, w))]
                           for t, w in enumerate(benes.benes_wiring(lanes))])
        if lanes <= 16 and lanes > 2:
            kinds = reduction_net.reduction_stage_kinds(lanes)
            pairs = [[t, f"butterfly bit {i}: " + " ".join(
                f"({u},{lo})" for u, lo in (reduction_net.butterfly_pair(s, i)
                                            for s in range(lanes // 2)))]
                     for t, (k, i) in enumerate(kinds) if k == "butterfly"]
            out += _table(["reduction stage", "switch s pairs lanes (upper, lower)"], pairs)
    cfg = get_config("tiny")
    out += ["CONFIG words the compiler emits for a GEMM on `tiny` under every mapping "
            "(payload words after the header, hex):", ""]
    rows = []
    for mp in mappings(cfg):
        cc = compile_contraction("ik,kj->ij", (8, 8), (8, 8), cfg, mapping=mp)
        n = cc.program[0] >> 16
        rows.append([f"({mp.ga}, {mp.gb}, {mp.gk}) {mp.mode}",
                     " ".join(f"{w:08x}" for w in cc.program[1:1 + n])])
    return out + _table(["mapping", "CONFIG payload"], rows)


def _packing() -> list[str]:
    cfg = get_config("tiny")
    sa, sb = (3, 5), (5, 2)
    cc = compile_contraction("ik,kj->ij", sa, sb, cfg)
    a = np.arange(np.prod(sa)).reshape(sa) + 100
    b = np.arange(np.prod(sb)).reshape(sb) + 200
    pa, pb = cc.pack_a(a), cc.pack_b(b)
    mp = cc.mapping
    out = ["## 6. Buffer packing", "",
           "A buffer *row* is one word in every bank; buffer word `j` is bank "
           "`j % lanes`, row `j // lanes`. Per reduction step the array reads one A row "
           "and one B row: A lane `(ia*gk + ik)*pe_rows + r` holds M index "
           "`tile*ga*pe_rows + ia*pe_rows + r` at K step `ks` of K chunk `ik`, rows "
           "ordered (outer levels..., tile, k step); B likewise with `gb`, `pe_cols`. "
           "Lanes a mapping does not read are 0. C rows hold one PE row of a tile: "
           "lane `d` is output lane `d` (section 5). `CompiledContraction.pack_a/pack_b/"
           "unpack_c` are the reference.", "",
           f"Example, `tiny`, `ik,kj->ij` with A {sa} = `100 + 5 i + k`, B {sb} = "
           f"`200 + 2 k + j`: mapping ({mp.ga}, {mp.gb}, {mp.gk}), {cc.ksteps} k steps, "
           f"{cc.a_rows} A rows, {cc.b_rows} B rows, {cc.c_rows} C rows.", ""]
    out += _table(["A row"] + [f"bank {i}" for i in range(cfg.a_lanes)],
                  [[r] + list(map(int, v)) for r, v in enumerate(pa)])
    out += _table(["B row"] + [f"bank {i}" for i in range(cfg.b_lanes)],
                  [[r] + list(map(int, v)) for r, v in enumerate(pb)])
    return out


def _output_stage() -> list[str]:
    steps = dither_steps(EXAMPLE_SEED, EXAMPLE_INDEX)
    h = int(dither_hash(EXAMPLE_SEED, EXAMPLE_INDEX))
    out = ["## 7. Output stage and the dither hash", "",
           "`out = saturate(out_bits, round(wrap(acc, acc_bits) / 2**shift))`; floor, "
           "nearest-even or stochastic `floor((acc + r) / 2**shift)`. Latency: "
           f"{OUTPUT_STAGE_LATENCY} cycles in every preset (section 1). The dither `r` "
           "is the top `shift` bits of a 32-bit hash of (SEED, flat output index); the "
           "flat index of a result is `BASE_IDX + sum(c_i * level_i stride_idx) + "
           "row * ROW_STRIDE_IDX + lane_index[lane]`. All arithmetic mod 2^32:", "",
           f"Test vector: seed = 0x{EXAMPLE_SEED:08x}, index = {EXAMPLE_INDEX}.", ""]
    out += _table(["step", "x"], [[s, f"0x{v:08x}"] for s, v in steps])
    out += [f"hash = 0x{h:08x}; dither for shift 4 = hash >> 28 = "
            f"{int(dither(EXAMPLE_SEED, EXAMPLE_INDEX, 4))}, for shift 12 = "
            f"{int(dither(EXAMPLE_SEED, EXAMPLE_INDEX, 12))}.", ""]
    return out


def _control() -> list[str]:
    err = _docs(ErrorCode)
    cnt = _docs(Reg)
    out = ["## 8. Control, counters, errors", "",
           "**START** runs from program word 0 (idle only); the program runs until HALT "
           "(sets DONE) or an error. **SYNC** waits for nothing: a CONTRACT has drained "
           "every result into C before the next instruction is fetched, so SYNC costs "
           "its fetch (2 cycles) and marks a point a host may rely on. **HALT** sets "
           "DONE and returns to idle. Configuration (CONFIG) persists across programs.",
           "",
           "Counters (read lo then hi word; cleared by CLEAR only, never by START, so "
           "they accumulate over programs until cleared). `cycles = stall_config + "
           "stall_fill + mac_active + stall_drain + move`:", ""]
    out += _table(["counter", "register", "counts"],
                  [[n, f"0x{int(r):02x}", cnt[r.name]] for n, r in ALL_COUNTERS.items()])
    out += ["Errors 1-4 halt at once: STATUS.ERROR set, the code in STATUS bits 15..8, "
            "ERR_PC = the program counter when the error was raised; nothing is "
            "written to C for a CONTRACT that fails its checks. Code 5 does not halt: "
            "the host write is dropped, STATUS bit 3 stays set until CLEAR, the run goes "
            "on (docs/isa.md). Code 6: ABORT stopped the run, which drains and goes "
            "idle. CLEAR (while idle) zeroes the code, DONE, bit 3 and the counters.", ""]
    err_pc = {
        "ILLEGAL_OPCODE": "the header's address",
        "ADDRESS_RANGE": "the CONTRACT's or MOVE's header (raised by the bound or "
                         "range check, before any read or write)",
        "BAD_CONFIG": "the header of the CONFIG/CONTRACT/MOVE with a wrong payload "
                      "length, a mapping that does not cover the CEs, or a field out "
                      "of range (out_bits, shift, rounding 3, a count of 0, a buffer "
                      "code 3 or a copy within one buffer)",
        "PROGRAM_RANGE": "the header whose payload would pass the last program word, "
                         f"or the program depth when fetch runs past the end",
        "BUS_WHILE_BUSY": "the instruction running when the write was dropped",
        "ABORTED": "the instruction running when ABORT was written",
    }
    out += _table(["code", "name", "when", "ERR_PC"],
                  [[int(e), e.name, err[e.name], err_pc.get(e.name, "unchanged")]
                   for e in ErrorCode])
    out += ["**Program memory readback**: while idle, reading `0x%06x + i` returns "
            "program word `i` (the port is the controller's while a program runs). "
            "Buffer words read back sign-extended from 16 bits." % PROG_BASE,
            "",
            "**Update unit state memory**: while idle, `0x%06x + 4p + k` reads and "
            "writes state entry `p` (`adam_entries` per preset): k = 0 the first moment "
            "(32 bits), 1 the second moment (32 bits), 2 the master code (16 bits, "
            "written from bits 15..0, read sign-extended), 3 reads 0; a write during a "
            "run is dropped and recorded like a memory write." % ADAM_BASE, ""]
    return out


def _simulators() -> list[str]:
    from .bus_replay import SIMULATORS, VERILATOR_FLAGS as REPLAY_FLAGS
    from .backends.verilator import VERILATOR_FLAGS
    out = ["## 9. Simulators", "",
           "The same Verilog (`fetta verilog`, every `always @*` evaluated at time 0) "
           "runs identically from power-up in each; `tests/sim/test_power_up.py` "
           "replays the same bus traffic in all three, `tests/cocotb/` runs a cocotb "
           "testbench on Icarus and Verilator.", ""]
    out += _table(["simulator", "what"], [[k, v] for k, v in SIMULATORS.items()])
    out += ["Replay build flags (Verilator): `" + " ".join(REPLAY_FLAGS) + "`. "
            "Verilator backend (`--sim verilator`): `" + " ".join(VERILATOR_FLAGS) +
            "`. Python backends: `pysim` (Amaranth's simulator), `cxxrtl` (compiled "
            "CXXRTL), `verilator`, `board` (UART).", ""]
    return out


def render() -> str:
    lines = ["# fetta-hdl datasheet", "",
             "Generated by `python scripts/gen_docs.py datasheet` from the code "
             "(`sim/datasheet.py`); do not edit. Prose that explains the design: "
             "`docs/isa.md`.", ""]
    for part in (_presets, _bus_and_registers, _isa, _timing, _networks, _packing,
                 _output_stage, _control, _simulators):
        lines += part()
    return "\n".join(lines).rstrip() + "\n"
