"""sim/iverilog.py: the Icarus vector runner itself (the RTL unit tests use it as a
backend; these check its sampling convention and its errors)."""


import pytest
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sim import iverilog
from fetta.errors import FettaError

needs_iverilog = pytest.mark.icarus


class Delay(wiring.Component):
    """q = d one cycle later; y = -d combinationally."""

    d: In(signed(8))
    q: Out(signed(8))
    y: Out(signed(9))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.d)
        m.d.comb += self.y.eq(-self.d)
        return m


def test_to_signed():
    assert iverilog.to_signed(0xFF, 8) == -1
    assert iverilog.to_signed(0x7F, 8) == 127
    assert iverilog.to_signed(0x180, 8) == -128
    assert iverilog.to_signed(1, 1) == -1


@needs_iverilog
def test_sampling_convention_and_signed_decode():
    got = iverilog.run_iverilog(Delay(), {"d": [5, -3, -128, 127]})
    assert got == {"q": [0, 5, -3, -128], "y": [-5, 3, 128, -127]}


@needs_iverilog
def test_keep_dir_keeps_the_build(tmp_path):
    iverilog.run_iverilog(Delay(), {"d": [1]}, ["q"], keep_dir=tmp_path)
    assert {"dut.v", "tb.v", "inputs.hex", "outputs.txt"} <= {p.name for p in
                                                              tmp_path.iterdir()}


def test_missing_iverilog_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(iverilog.shutil, "which", lambda tool: None)
    dut = Delay()
    with pytest.raises(FettaError) as info:
        iverilog.run_iverilog(dut, {"d": [1]})
    assert str(info.value) == ("iverilog not found on PATH; install Icarus Verilog "
                               "(Debian/Ubuntu: apt-get install iverilog)")
    dut._MustUse__silence = True  # never elaborated, on purpose


@needs_iverilog
@pytest.mark.parametrize("inputs, outputs, pattern", [
    ({}, None, r"missing \['d'\]"),
    ({"d": [1], "e": [2]}, None, r"unknown \['e'\]"),
    ({"d": [1]}, ["d"], r"outputs \['d'\] invalid"),
])
def test_bad_requests(inputs, outputs, pattern):
    dut = Delay()
    with pytest.raises(ValueError, match=pattern):
        iverilog.run_iverilog(dut, inputs, outputs)
    dut._MustUse__silence = True  # rejected before elaboration, on purpose
