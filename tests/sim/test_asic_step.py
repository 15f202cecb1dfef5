"""The ASIC-class preset's RTL (4 CEs x 16x16 = 1,024 MACs, 64-lane networks) built with
Verilator and one training step of the digits workload run on it: every contraction's
CYCLES, MAC_ACTIVE, INSTRUCTIONS counters and host words equal the model."""

import pytest

from fetta.sim.step_confirm import confirm_step


@pytest.mark.slow
def test_digits_step_on_asic_equals_the_model():
    """Slow: the Verilator build of the 1,024-MAC top takes tens of minutes on 2 cores
    (cached afterwards)."""
    r = confirm_step("digits", "asic", "verilator")
    assert r["contractions"] == 14
    assert r["cycles_rtl"] == r["cycles_model"] > 0
    assert r["mac_active_rtl"] == r["mac_active_model"] > 0
    assert r["host_words_rtl"] == r["host_words_model"] > 0
