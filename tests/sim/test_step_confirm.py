"""A training step's event counts (sw_model.ttm.step_events) against the RTL's counters:
every contraction of the digits step on the Verilator model of `tiny` — CYCLES,
MAC_ACTIVE, INSTRUCTIONS and the host words equal the model's."""

import pytest

from fetta.sim import step_confirm
from fetta.errors import FettaError
from fetta.sw_model.ttm.step_events import Events


def test_digits_step_on_tiny_equals_the_model():
    r = step_confirm.confirm_step("digits", "tiny", "verilator")
    assert r["contractions"] == 14
    assert r["cycles_rtl"] == r["cycles_model"] > 0
    assert r["mac_active_rtl"] == r["mac_active_model"] > 0
    assert r["host_words_rtl"] == r["host_words_model"] > 0


def test_a_wrong_model_count_is_reported(monkeypatch):
    real = step_confirm.contraction_events

    def off_by_one(*a, **kw):
        ev, peak = real(*a, **kw)
        return ev + Events(mac_active_cycles=1), peak
    monkeypatch.setattr(step_confirm, "contraction_events", off_by_one)
    with pytest.raises(FettaError, match=r"digits on tiny: layer 0 forward contraction "
                                         r"'.*' .*: mac_active RTL \d+ != model \d+"):
        step_confirm.confirm_step("digits", "tiny", "verilator")


def test_digits_resident_step_on_tiny_equals_the_model():
    """The step as resident chains (batch 64: layer 0 has segments and separate jobs):
    CYCLES, the MOVE counter and the host words of each layer equal the model's."""
    r = step_confirm.confirm_resident_step("digits", "tiny", "verilator")
    assert r["layers"] == 2
    assert r["cycles_rtl"] == r["cycles_model"] > 0
    assert r["move_elements_rtl"] == r["move_elements_model"] > 0
    assert r["host_words_rtl"] == r["host_words_model"] > 0


def test_a_wrong_resident_model_is_reported(monkeypatch):
    real = step_confirm.resident_step_events

    def off_by_one(*a, **kw):
        out = real(*a, **kw)
        lay = dict(out["layers"][1], move_elements=out["layers"][1]["move_elements"] + 1)
        return dict(out, layers=[out["layers"][0], lay])
    monkeypatch.setattr(step_confirm, "resident_step_events", off_by_one)
    with pytest.raises(FettaError, match=r"digits on tiny \(resident\): layer 1: "
                                         r"move_elements RTL \d+ != model \d+"):
        step_confirm.confirm_resident_step("digits", "tiny", "verilator", batch=8)
