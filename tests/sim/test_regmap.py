"""sim/regmap.py and `fetta regmap`: the generated map (compiled through SystemRDL)
matches the RTL's bus decoder, read register by register through the host bus; the
C header compiles; the Markdown and HTML views list every register and field."""

import enum
import json
import shutil
import subprocess

import pytest

from fetta.sim import regmap
from fetta.sim.cli import main
from fetta.sim.backends.pysim import PysimBackend
from fetta.sw_model.accel import hostmap
from fetta.sw_model.accel.hostmap import (COUNTERS, PROG_BASE, REG_BASE, Ctrl, ErrorCode, Reg, Status,
                                          buffer_base)
from fetta.sw_model.accel.isa import Op, header

# ice40: 32-bit counters (no _HI words); tiny: 48-bit counters
PRESETS = ("tiny", "ice40")
WINDOW = 64  # register words read (every Reg and the unmapped words after them)


def _fields(reg):
    return {f["name"]: f for f in reg["fields"]}


def _value(reg, word):
    return {n: (word >> f["lsb"]) & ((1 << (f["msb"] - f["lsb"] + 1)) - 1)
            for n, f in _fields(reg).items()}


def _mask(reg):
    return sum(((1 << (f["msb"] - f["lsb"] + 1)) - 1) << f["lsb"] for f in reg["fields"])


@pytest.fixture(scope="module", params=PRESETS)
def mapped(request):
    data = regmap.regmap_json(request.param)
    be = PysimBackend(request.param, bus_only=True)
    yield data, be
    be.close()


def test_every_register_reads_its_reset_value_through_the_bus(mapped):
    """Power-up: each mapped register reads the composition of its fields' resets
    (write-only ones 0); every other word of the register window reads 0."""
    data, be = mapped
    by_word = {r["word"]: r for r in data["registers"]}
    got = be.read(REG_BASE, WINDOW)
    for word in range(WINDOW):
        r = by_word.get(word)
        want = 0 if r is None or all(f["sw"] == "w" for f in r["fields"]) else \
            sum(f["reset"] << f["lsb"] for f in r["fields"])
        name = r["name"] if r else "unmapped"
        assert got[word] == want, (f"{data['config']}: word 0x{word:x} ({name}) reads "
                                   f"0x{got[word]:08x}, map says 0x{want:08x}")


def test_fields_decode_a_run_as_the_rtl_reports_it(mapped):
    """After a program that halts with an error and a dropped busy write, every
    register's bits lie inside its fields and the fields say what happened."""
    data, be = mapped
    regs = {r["name"]: r for r in data["registers"]}
    be.write(REG_BASE + Reg.CTRL, [Ctrl.CLEAR])
    be.write(PROG_BASE, [header(Op.SYNC), header(Op.SYNC), 0x7E])
    be.run(1000)
    read = {n: be.read(REG_BASE + r["word"], 1)[0] for n, r in regs.items()}
    for n, v in read.items():
        assert v & ~_mask(regs[n]) == 0, f"{n} = 0x{v:08x} has bits outside its fields"
    st = _value(regs["STATUS"], read["STATUS"])
    assert st["ERROR"] == 1 and st["DONE"] == 0 and st["BUSY"] == 0
    enum_map = _fields(regs["STATUS"])["ERROR_CODE"]["enum"]
    assert st["ERROR_CODE"] == enum_map["ILLEGAL_OPCODE"] == ErrorCode.ILLEGAL_OPCODE
    assert _value(regs["ERR_PC"], read["ERR_PC"])["ERR_PC"] == 2
    assert _value(regs["INSTRUCTIONS_LO"], read["INSTRUCTIONS_LO"])["COUNT"] == 3
    assert read["CYCLES_LO"] > 0
    assert _value(regs["ID"], read["ID"])["MAGIC"] == hostmap.MAGIC


def test_memories_sit_where_the_map_says(mapped):
    """First and last entry of program memory and of each buffer, written and read
    back at the map's addresses (buffers read sign-extended 16-bit words)."""
    data, be = mapped
    mems = {m["name"]: m for m in data["memories"]}
    assert mems["PROG"]["word"] == PROG_BASE
    be.write(REG_BASE + Reg.CTRL, [Ctrl.CLEAR])
    for i, name in enumerate(("BUF_A", "BUF_B", "BUF_C")):
        assert mems[name]["word"] == buffer_base(i)
    for name, m in mems.items():
        last = m["word"] + m["entries"] - 1
        pattern = [0x12345678, 0x9ABCDEF0] if name == "PROG" else [0x1234, 0x8001]
        be.write(m["word"], [pattern[0]])
        be.write(last, [pattern[1]])
        want = pattern if name == "PROG" else [0x1234, 0xFFFF8001]
        assert be.read(m["word"], 1) + be.read(last, 1) == want, name


@pytest.mark.parametrize("cls", [Reg, hostmap.Ctrl, Status, ErrorCode])
def test_every_hostmap_member_is_documented(cls):
    docs = regmap.member_docs(cls)
    missing = [n for n, d in docs.items() if d == regmap.UNDOCUMENTED]
    assert not missing, f"{cls.__name__} members without a comment: {missing}"


def test_every_reg_member_is_in_the_map():
    names = {r["name"] for r in regmap.register_model("tiny")["registers"]}
    for r in Reg:
        # arrays: MAXLOG_0.., SLOT_1.. (slots are numbered as the instructions name them)
        assert (r.name in names or f"{r.name}_LO" in names or f"{r.name}_0" in names
                or f"{r.name}_1" in names), r.name


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
@pytest.mark.parametrize("preset", PRESETS)
def test_c_header_compiles(preset, tmp_path):
    path = tmp_path / "regmap.h"
    assert main(["regmap", "--format", "c", "--config", preset, "-o", str(path)]) == 0
    proc = subprocess.run(["gcc", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-x", "c",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    assert f"0x{hostmap.MAGIC:x}" in text.lower()


def test_markdown_and_html_list_every_register_and_field(tmp_path):
    model = regmap.register_model("tiny")
    md = regmap.export("md", "tiny")
    regmap.export("html", "tiny", tmp_path / "html")
    html = "".join(p.read_text(errors="replace") for p in (tmp_path / "html").rglob("*")
                   if p.is_file() and p.suffix in (".js", ".html"))
    for r in model["registers"]:
        assert f"### {r['name']} register" in md, r["name"]
        assert r["name"] in html, r["name"]
        for f in r["fields"]:
            assert f"#### {f['name']} field" in md, (r["name"], f["name"])
            assert f["name"] in html, (r["name"], f["name"])
    for m in model["memories"]:
        assert m["name"] in md and m["name"] in html


def test_json_and_rdl_formats(capsys):
    assert main(["regmap", "--format", "json", "--config", "ice40"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"] == "ice40"
    counters = {f"{r.name}_HI" for r in COUNTERS.values()}
    assert not counters & {r["name"] for r in data["registers"]}     # 32-bit counters
    assert main(["regmap", "--format", "rdl"]) == 0
    assert "addrmap fetta_accel_tiny" in capsys.readouterr().out


def test_bad_format_and_html_without_output(capsys):
    with pytest.raises(SystemExit) as info:
        main(["regmap", "--format", "pdf"])
    assert info.value.code == 2
    assert main(["regmap", "--format", "html"]) == 2
    assert "give -o DIR" in capsys.readouterr().err


def test_member_docs_reads_trailing_comments():
    class E(enum.IntEnum):
        A = 1    # first
        B = 2
    assert regmap.member_docs(E) == {"A": "first", "B": regmap.UNDOCUMENTED}
