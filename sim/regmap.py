"""The register map, generated from the one host-map source and exported through
SystemRDL.

Source: ``sw_model/accel/hostmap.py`` (``Reg``, ``Ctrl``, ``Status``, ``ErrorCode``, the
address regions and ``STATUS_CODE_LSB``) for names, addresses, bit positions and
meanings (each member's trailing comment there is its description), the preset
(``AccelConfig``) and the elaborated top's signal widths (``rtl.top.Accelerator``) for
field widths, memory depths and reset values. Nothing here is typed twice: a register
added to ``hostmap.Reg`` appears in every format.

Formats (``fetta regmap --format ...``):

* ``rdl``: SystemRDL 2.0 text (``systemrdl_text``), the input of everything below;
* ``c``: a C header by PeakRDL's ``peakrdl-cheader`` (struct overlay and bit macros);
* ``html``: a browsable register reference by ``peakrdl-html`` (a directory);
* ``md``: Markdown by ``peakrdl-markdown``;
* ``json``: the compiled register model walked into plain data (``regmap_json``).

Addresses: the host bus is word-addressed (``ADDR_BITS``-bit word addresses, 32-bit
data). SystemRDL addresses bytes, so every offset in the SystemRDL, C and HTML
outputs is ``4 x`` the bus word address (the JSON gives both): a CPU that maps the
bus into its byte address space word for word uses the C structs as they are; a host
on the UART bridge divides by 4.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import io
import json
import re
import tempfile
import textwrap
import tokenize
from pathlib import Path

from fetta.sw_model.accel import hostmap
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.shift_slots import PENDING_BITS, SLOT_SHIFT_BITS
from fetta.sw_model.accel.xent import XENT_LOSS_BITS
from fetta.sw_model.accel.hostmap import (BUFFER_WORD_BITS, BUF_BASE, BUF_SPAN, ALL_COUNTERS, MAGIC, MAXLOG_DEPTH,
                                    PROG_BASE, REG_BASE, STATUS_CODE_BITS, STATUS_CODE_LSB, START_PC_BITS, START_PC_LSB, Ctrl,
                                    ErrorCode, Reg, Status)

from fetta.errors import FettaError

__all__ = ["FORMATS", "member_docs", "register_model", "systemrdl_text", "compiled_rdl",
           "regmap_json", "export", "BYTES_PER_WORD"]

FORMATS = ("rdl", "c", "html", "md", "json")
BYTES_PER_WORD = hostmap.DATA_BITS // 8
UNDOCUMENTED = "(undocumented: add a trailing comment in sw_model/accel/hostmap.py)"


def member_docs(cls: type[enum.Enum]) -> dict[str, str]:
    """``{member: trailing comment}`` of an enum class in its source (the hostmap's
    comments are the register descriptions); ``UNDOCUMENTED`` where none."""
    src = textwrap.dedent(inspect.getsource(cls))
    docs, line_of = {}, {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in cls.__members__:
            line_of[tok.start[0]] = tok.string
        elif tok.type == tokenize.COMMENT and tok.start[0] in line_of:
            docs[line_of[tok.start[0]]] = tok.string.lstrip("#").strip()
    return {name: docs.get(name, UNDOCUMENTED) for name in cls.__members__}


def _flag_fields(flag: type[enum.IntFlag]) -> list[tuple[str, int]]:
    out = []
    for name, member in flag.__members__.items():
        v = int(member)
        if v & (v - 1) or not v:
            raise FettaError(f"{flag.__name__}.{name} = {v} is not one bit")
        out.append((name, v.bit_length() - 1))
    return out


def _never_elaborated(obj, seen=None) -> None:
    """The top is built only to read port widths: tell Amaranth it is not a mistake
    that it (and everything it made) is never elaborated."""
    from amaranth.hdl import Elaboratable
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Elaboratable):
        obj._MustUse__silence = True
        children = vars(obj).values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif isinstance(obj, dict):
        children = obj.values()
    else:
        return
    for child in children:
        _never_elaborated(child, seen)


def register_model(config="tiny") -> dict:
    """The map as plain data: ``{"name", "config", "registers": [...], "memories":
    [...], "enums": {...}}``; registers have ``name``, ``word`` (bus address),
    ``access`` (``r``/``w``), ``desc`` and ``fields`` (``name``, ``lsb``, ``width``,
    ``access``, ``reset``, ``desc``, optional ``enum``)."""
    from fetta.rtl.top import Accelerator, config_hash
    cfg = get_config(config)
    top = Accelerator(cfg)
    ctl = top.controller
    _never_elaborated(top)
    regdoc, ctrldoc = member_docs(Reg), member_docs(Ctrl)
    statdoc, errdoc = member_docs(Status), member_docs(ErrorCode)
    counter_regs = {int(r): name for name, r in ALL_COUNTERS.items()}
    cb = cfg.counter_bits

    def reg(name, word, access, desc, fields):
        return {"name": name, "word": REG_BASE + word, "access": access, "desc": desc,
                "fields": fields}

    def field(name, lsb, width, access, reset, desc, enum_name=None):
        f = {"name": name, "lsb": lsb, "width": width, "access": access, "reset": reset,
             "desc": desc}
        if enum_name:
            f["enum"] = enum_name
        return f

    regs = []
    for r in Reg:
        word, doc = int(r), regdoc[r.name]
        if r == Reg.ID:
            regs.append(reg("ID", word, "r", doc, [field(
                "MAGIC", 0, 32, "r", MAGIC, "identifies a fetta accelerator")]))
        elif r == Reg.CTRL:
            regs.append(reg("CTRL", word, "w", doc + "; reads 0", [
                field(n, b, 1, "w", 0, ctrldoc[n]) for n, b in _flag_fields(Ctrl)] + [
                field("START_PC", START_PC_LSB, START_PC_BITS, "w", 0,
                      "with START: the program word the run starts at (hostmap.ctrl_start; "
                      "at or past the program depth: PROGRAM_RANGE at once)")]))
        elif r == Reg.STATUS:
            fields = [field(n, b, 1, "r", 0, statdoc[n]) for n, b in _flag_fields(Status)]
            fields.append(field("ERROR_CODE", STATUS_CODE_LSB, STATUS_CODE_BITS, "r", 0,
                                "ErrorCode of the last halt; 0 while none",
                                "error_code"))
            regs.append(reg("STATUS", word, "r", doc, fields))
        elif r in (Reg.PC, Reg.ERR_PC):
            sig = ctl.pc if r == Reg.PC else ctl.err_pc
            regs.append(reg(r.name, word, "r", doc, [field(
                r.name, 0, len(sig), "r", 0, doc)]))
        elif r == Reg.CONFIG_HASH:
            regs.append(reg("CONFIG_HASH", word, "r", doc, [field(
                "HASH", 0, 32, "r", config_hash(cfg),
                f"value for this preset ({cfg.name}): sha256 of its JSON, low 32 bits")]))
        elif r == Reg.MAX_ABS:
            regs.append(reg("MAX_ABS", word, "r", doc, [field(
                "MAX", 0, BUFFER_WORD_BITS, "r", 0,
                "largest |result word| written by the program's CONTRACTs "
                "(rtl/max_abs.py); 0 after START; reads 0 without the MOVE unit")]))
        elif r == Reg.MAXLOG_COUNT:
            regs.append(reg("MAXLOG_COUNT", word, "r", doc, [field(
                "COUNT", 0, 8, "r", 0, "CONTRACT and VEC instructions completed since "
                "START, saturating at 255 (rtl/max_log.py); reads 0 without the MOVE "
                "unit")]))
        elif r == Reg.XENT_CORRECT:
            regs.append(reg("XENT_CORRECT", word, "r", doc, [field(
                "COUNT", 0, 32, "r", 0, "XENT rows with argmax == label since START "
                "(sw_model/accel/xent.py); reads 0 without the MOVE unit")]))
        elif r == Reg.SLOT_MOVED:
            regs.append(reg("SLOT_MOVED", word, "rw", doc, [field(
                "MOVED", 0, max(cfg.shift_slots, 1), "rw", 0,
                "bit k-1: shift slot k's shift moved by a vote since the bit was last "
                "cleared; write 1s to clear (sw_model/accel/shift_slots.py); reads 0 "
                "without shift slots")]))
        elif r == Reg.XENT_LOSS:
            what = ("XENT rows' cross-entropy summed in bits, Q16, since START "
                    "(fixedpoint.xent_loss_rows; wraps at 2**48); reads 0 without the "
                    "MOVE unit")
            regs.append(reg("XENT_LOSS_LO", word, "r", f"{doc}; bits 31..0", [field(
                "SUM", 0, 32, "r", 0, what)]))
            regs.append(reg("XENT_LOSS_HI", word + 1, "r", f"{doc}; bits 47..32", [field(
                "SUM", 0, XENT_LOSS_BITS - 32, "r", 0, what)]))
        elif r == Reg.MAXLOG:
            for k in range(MAXLOG_DEPTH):
                regs.append(reg(f"MAXLOG_{k}", word + k, "r", doc, [field(
                    "MAX", 0, BUFFER_WORD_BITS, "r", 0,
                    f"largest |result word| of the program's CONTRACT or VEC number {k} "
                    f"(rtl/max_log.py); 0 after START")]))
        elif r == Reg.SLOT:
            for k in range(cfg.shift_slots):
                regs.append(reg(f"SLOT_{k + 1}", word + k, "rw", doc, [
                    field("SHIFT", 0, SLOT_SHIFT_BITS, "rw", 0,
                          f"output shift of slot {k + 1} (sw_model/accel/shift_slots.py)"),
                    field("PENDING", 8, PENDING_BITS, "rw", 0,
                          "consecutive equal votes so far, signed (> 0 up, < 0 down)"),
                    field("GMAX", 16, BUFFER_WORD_BITS, "rw", 0,
                          "largest |result word| gathered since the last close")]))
        elif word in counter_regs:
            key = counter_regs[word]
            what = f"counter {key} ({cb} bits)"
            regs.append(reg(f"{r.name}_LO", word, "r", f"{doc}; bits 31..0",
                            [field("COUNT", 0, min(cb, 32), "r", 0, what)]))
            if cb > 32:
                regs.append(reg(f"{r.name}_HI", word + 1, "r",
                                f"{doc}; bits {cb - 1}..32",
                                [field("COUNT", 0, cb - 32, "r", 0, what)]))
        else:
            raise FettaError(f"hostmap.Reg.{r.name} has no register-map rule in "
                             f"sim/regmap.py; add one")
    lanes = {"A": cfg.a_lanes, "B": cfg.b_lanes, "C": cfg.c_lanes}
    mems = [{"name": "PROG", "word": PROG_BASE, "entries": cfg.prog_depth, "bits": 32,
             "access": "rw",
             "desc": "program memory: word i at PROG + i; written while idle only, "
                     "read back any time while idle"}]
    for i, (b, n) in enumerate(lanes.items()):
        mems.append({"name": f"BUF_{b}", "word": BUF_BASE + i * BUF_SPAN,
                     "entries": n * cfg.bank_depth, "bits": 32, "access": "rw",
                     "desc": f"buffer {b}: {n} banks x {cfg.bank_depth} rows of 16-bit "
                             f"words; word j is bank j % {n}, row j // {n}; writes take "
                             f"bits 15..0, reads return the word sign-extended"})
    enums = {"error_code": [(e.name, int(e), errdoc[e.name]) for e in ErrorCode]}
    return {"name": f"fetta_accel_{cfg.name}", "config": cfg.name, "registers": regs,
            "memories": mems, "enums": enums}


def _q(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def systemrdl_text(config="tiny") -> str:
    """The map as SystemRDL 2.0 (byte offsets = 4 x bus word address)."""
    model = register_model(config)
    B = BYTES_PER_WORD
    out = [f"// fetta-hdl register map, preset '{model['config']}'. Generated by "
           f"`fetta regmap` from sw_model/accel/hostmap.py; do not edit.",
           f"// Offsets are bytes: {B} x the host bus word address.", ""]
    for ename, members in model["enums"].items():
        out.append(f"enum {ename}_e {{")
        for name, value, doc in members:
            out.append(f'    {name} = {STATUS_CODE_BITS}\'d{value} {{ desc = "{_q(doc)}"; }};')
        out.append("};")
    out += ["", f"addrmap {model['name']} {{",
            f'    name = "fetta accelerator, preset {model["config"]}";',
            '    desc = "Host bus: one-cycle write strobe; one-cycle read strobe, data '
            f'valid {hostmap.READ_LATENCY} cycles later; word-addressed, byte offsets '
            f'here are {B} x the word address.";',
            "    default regwidth = 32;", "    default accesswidth = 32;", ""]
    for r in model["registers"]:
        out.append("    reg {")
        out.append(f'        name = "{r["name"]}";')
        out.append(f'        desc = "{_q(r["desc"])}";')
        for f in r["fields"]:
            props = [f"sw = {f['access']};", "hw = na;" if f["access"] == "r" else "hw = r;"]
            if f["access"] == "w" and f["width"] == 1:   # strobes; START_PC goes with START
                props.append("singlepulse;")
            if "enum" in f:
                props.append(f"encode = {f['enum']}_e;")
            props.append(f'desc = "{_q(f["desc"])}";')
            msb = f["lsb"] + f["width"] - 1
            out.append(f"        field {{ {' '.join(props)} }} {f['name']}[{msb}:{f['lsb']}]"
                       f" = {f['width']}'h{f['reset']:x};")
        out.append(f"    }} {r['name']} @ 0x{r['word'] * B:x};")
    for mm in model["memories"]:
        out += ["    external mem {",
                f'        name = "{mm["name"]}";',
                f'        desc = "{_q(mm["desc"])}";',
                f"        mementries = {mm['entries']};",
                f"        memwidth = {mm['bits']};",
                f"        sw = {mm['access']};",
                f"    }} {mm['name']} @ 0x{mm['word'] * B:x};"]
    out.append("};")
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def compiled_rdl(config="tiny"):
    """Compile ``systemrdl_text(config)`` with systemrdl-compiler; yields the top
    ``AddrmapNode`` while its source file exists (exporters read it back). Compiler
    errors become one-line FettaErrors."""
    try:
        from systemrdl import RDLCompileError, RDLCompiler
    except ImportError as exc:
        raise FettaError(f"systemrdl-compiler is not installed ({exc}); "
                         f"pip install -e . installs it")
    text = systemrdl_text(config)
    with tempfile.TemporaryDirectory(prefix="fetta-rdl-") as tmp:
        path = Path(tmp) / f"fetta_{get_config(config).name}.rdl"
        path.write_text(text)
        rdlc = RDLCompiler(message_printer=_Quiet())
        try:
            rdlc.compile_file(str(path))
            root = rdlc.elaborate()
        except RDLCompileError as exc:
            raise FettaError(f"generated SystemRDL does not compile: {exc}") from None
        yield root.top


class _Quiet:
    """systemrdl message printer that keeps errors for the exception, prints nothing."""

    def print_message(self, severity, text, src_ref):
        if severity.name in ("ERROR", "FATAL"):
            raise FettaError(f"SystemRDL: {text}")


def regmap_json(config="tiny") -> dict:
    """The compiled SystemRDL model as plain data (so the JSON is what the RDL says)."""
    with compiled_rdl(config) as top:
        return _walk(top, config)


def _walk(top, config) -> dict:
    from systemrdl.node import FieldNode, MemNode, RegNode
    regs, mems = [], []
    for node in top.children():
        base = {"name": node.inst_name, "byte_offset": node.absolute_address,
                "word": node.absolute_address // BYTES_PER_WORD,
                "desc": node.get_property("desc") or ""}
        if isinstance(node, RegNode):
            fields = []
            for f in node.fields():
                assert isinstance(f, FieldNode)
                enc = f.get_property("encode")
                item = {"name": f.inst_name, "lsb": f.lsb, "msb": f.msb,
                        "sw": f.get_property("sw").name, "reset": f.get_property("reset"),
                        "desc": f.get_property("desc") or ""}
                if enc is not None:
                    item["enum"] = {m.name: int(m) for m in enc}
                fields.append(item)
            regs.append({**base, "fields": fields})
        elif isinstance(node, MemNode):
            mems.append({**base, "entries": node.get_property("mementries"),
                         "bits": node.get_property("memwidth")})
    return {"name": top.inst_name, "config": get_config(config).name,
            "bytes_per_word": BYTES_PER_WORD, "registers": regs, "memories": mems}


def export(fmt: str, config="tiny", output: str | Path | None = None) -> str | None:
    """Produce format ``fmt`` (one of ``FORMATS``). Text formats return the text (and
    write it to ``output`` if given); ``html`` writes a directory and returns None."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} unknown; allowed {', '.join(FORMATS)}")
    if fmt == "rdl":
        text = systemrdl_text(config)
    elif fmt == "json":
        text = json.dumps(regmap_json(config), indent=2) + "\n"
    elif fmt == "html":
        if output is None:
            raise ValueError("format html writes a directory; give an output path")
        from peakrdl_html import HTMLExporter
        with compiled_rdl(config) as top:
            HTMLExporter().export(top, str(output))
        return None
    else:
        with compiled_rdl(config) as top, \
                tempfile.TemporaryDirectory(prefix="fetta-regmap-") as tmp:
            stem = f"fetta_{get_config(config).name}_regmap"
            path = Path(tmp) / (f"{stem}.h" if fmt == "c" else f"{stem}.md")
            if fmt == "c":
                from peakrdl_cheader.exporter import CHeaderExporter
                CHeaderExporter().export(top, str(path))
            else:
                from peakrdl_markdown import MarkdownExporter
                MarkdownExporter().export(top, str(path))
            text = path.read_text()
            # the exporters name the temporary input; say where it came from instead
            text = re.sub(r"fetta-(rdl|regmap)-[\w]+", "fetta regmap", text)
    if output is not None:
        Path(output).write_text(text)
    return text
