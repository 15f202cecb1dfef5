"""boards/probe.py and `fetta probe`: the link self-test, run through the UART bridge
on a simulated board (Amaranth's simulator running the bridge and the accelerator,
driven by the bit-level UART model), with each kind of failure injected."""

import json

import pytest

from fetta.sim import probe as P
from fetta.boards.host_driver import PysimUART
from fetta.boards.top import BusMemory, LinkTop
from fetta.sim.backends.board import BoardBackend
from fetta.sim.backends.pysim import PysimBackend
from fetta.sim.cli import main
from fetta.sw_model.accel.config import get_config

ICE40 = get_config("ice40")


def _uart_board(target, cfg=ICE40):
    return BoardBackend(cfg, transport=PysimUART(LinkTop(target, divisor=4, timeout=400,
                                                         max_burst=64)), check_id=False)


def _by_name(steps):
    return {s.name: s for s in steps}


def test_memory_design_fails_the_id_step_and_stops():
    """The bare UART-to-memory design answers PING but is not the accelerator."""
    be = _uart_board(BusMemory(256))
    steps = _by_name(P.probe(be, ICE40))
    assert steps["link"].ok and not steps["id"].ok
    assert list(steps) == ["link", "id", "link_errors"]
    assert "0xfe77a001" in steps["id"].detail
    assert "memory` design" in steps["id"].as_dict()["meaning"]


def test_board_of_another_preset_fails_the_config_step():
    from fetta.rtl.top import Accelerator
    be = _uart_board(Accelerator(ICE40))
    steps = _by_name(P.probe(be, get_config("tiny")))
    assert steps["id"].ok and not steps["config"].ok
    assert list(steps) == ["link", "id", "config", "link_errors"]
    assert steps["link_errors"].ok


def test_no_bridge_is_a_link_failure_with_its_meaning(capsys, monkeypatch):
    """Nothing answers on the port: FAIL link, exit 1, the meaning printed."""
    from fetta.errors import FettaError

    def no_board(cfg, port, baud):
        raise FettaError(f"no fetta bridge answered on {port} at {baud} baud")
    monkeypatch.setattr(P, "open_board", no_board)
    assert main(["probe", "--port", "/dev/ttyUSB9", "--config", "ice40"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  link" in out and "bitstream not loaded" in out


@pytest.mark.parametrize("stuck", [("buffer B", 0x200000 + 1, 1 << 3),
                                   ("program", 0x010000 + 1, 1 << 20)])
def test_memory_test_reports_a_stuck_data_bit(stuck):
    """A data bit stuck at 0 in one memory (reads through the accelerator's bus) is
    found and named with address, written and read values."""
    name, lo, bit = stuck
    be = PysimBackend(ICE40, bus_only=True)
    real = be.read

    def read(addr, n):
        return [w & ~bit if lo <= addr + i < lo + 0x10000 else w
                for i, w in enumerate(real(addr, n))]
    be.read = read
    problems = P.memory_test(be, ICE40, words=4)
    assert problems and problems[0].startswith(name), problems
    assert "wrote 0x" in problems[0] and "read 0x" in problems[0]
    be.read = real
    assert P.memory_test(be, ICE40, words=4) == []


def test_memory_test_finds_an_aliased_address_bit():
    """Address bit 5 of buffer A ignored on writes: the word at offset 32 lands on
    offset 0, which then reads another offset's value."""
    be = PysimBackend(ICE40, bus_only=True)
    real = be.write

    def write(addr, words):
        for i, w in enumerate(words):
            a = addr + i
            real(a & ~0x20 if 0x100000 <= a < 0x200000 else a, [w])
    be.write = write
    problems = P.memory_test(be, ICE40, words=2)
    assert problems and "buffer A (address lines)" in problems[0], problems


@pytest.mark.slow
def test_probe_command_passes_on_a_simulated_board(tmp_path, capsys):
    """Slow tier (about 4 minutes on the shared 2-core machine: some 150 frames at
    ~1,000 simulated cycles each, pysim running the bridge and the whole accelerator):
    the whole `fetta probe` path on a simulated ice40 board passes every step."""
    path = tmp_path / "probe.json"
    assert main(["probe", "--port", "sim", "--config", "ice40", "--words", "2",
                 "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["ok"] and [s["name"] for s in data["steps"]] == [
        "link", "id", "config", "memory", "contract", "link_errors"]
    assert "all steps passed" in capsys.readouterr().out


@pytest.mark.slow
def test_corrupted_frame_passes_the_data_steps_and_fails_link_errors():
    """Slow tier (as above): a frame corrupted on the line is NAKed and retried; every
    data step still passes and link_errors reports the retry."""
    from fetta.rtl.top import Accelerator
    be = _uart_board(Accelerator(ICE40))
    sent = {"n": 0}

    def corrupt(data):
        sent["n"] += 1
        if sent["n"] == 12:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
        return bytes(data)
    be.transport.corrupt = corrupt
    steps = _by_name(P.probe(be, ICE40, words=2))
    assert all(s.ok for n, s in steps.items() if n != "link_errors"), steps
    assert not steps["link_errors"].ok and "CRC 1" in steps["link_errors"].detail
