"""Accelerator configuration: presets and validation errors that name the field."""

import pytest

from fetta.sw_model.accel.config import PRESETS, AccelConfig, get_config


def test_presets():
    assert PRESETS["tiny"].macs == 16 and PRESETS["tiny"].n_ce == 4
    assert PRESETS["ice40"].macs <= 8 and PRESETS["ice40"].mac_kind == "multiply"
    assert PRESETS["ecp5"].macs >= 64
    assert PRESETS["large"].macs == 256
    for cfg in PRESETS.values():
        for lanes in (cfg.a_lanes, cfg.b_lanes, cfg.c_lanes):
            assert lanes & (lanes - 1) == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_ce=0), r"n_ce=0 out of range; allowed 2\.\.64"),
    (dict(n_ce=6), r"n_ce=6 is not a power of two"),
    (dict(n_ce=128), r"n_ce=128 out of range"),
    (dict(pe_rows=3), r"pe_rows=3 is not a power of two \(network lanes"),
    (dict(pe_cols=0), r"pe_cols=0 out of range"),
    (dict(operand_bits=0), r"operand_bits=0 out of range; allowed 2\.\.16"),
    (dict(operand_bits=33), r"operand_bits=33 out of range"),
    (dict(acc_bits=64), r"acc_bits=64 out of range; allowed 16\.\.48"),
    (dict(acc_bits=24), r"acc_bits=24 narrower than a product"),
    (dict(mac_kind="fma"), r"mac_kind='fma' unknown; allowed multiply, shift"),
    (dict(bank_depth=1000), r"bank_depth=1000 is not a power of two"),
    (dict(n_ce=4, pe_rows=2, pe_cols=2, device="ice40up5k"),
     r"16 multiply MACs do not fit ice40up5k \(8 DSPs\)"),
    (dict(device="virtex"), r"device='virtex' unknown"),
    (dict(n_ce=True), r"n_ce=True is not an integer"),
    (dict(out_share=3), r"out_share=3 is not a power of two"),
    (dict(dist_pipeline=3), r"dist_pipeline=3 out of range; allowed 0\.\.2"),
    (dict(mac_kind="shift", mac_pipeline=1), r"mac_pipeline=1 out of range; allowed 0\.\.0"),
    (dict(n_ce=2, pe_rows=1, dist_pipeline=1), r"dist_pipeline=1 out of range; allowed 0\.\.0"),
    (dict(n_ce=2, pe_cols=2, out_share=8), r"out_share=8 out of range; allowed 1\.\.4"),
    (dict(adam_entries=1000), r"adam_entries=1000 is not 0 or a power of two in 16\.\.65536"),
    (dict(adam_entries=8), r"adam_entries=8 is not 0 or a power of two"),
    (dict(adam_entries=1 << 17), r"adam_entries=131072 out of range"),
    (dict(move_unit=False, shift_slots=0), r"adam_entries=4096 needs move_unit=True"),
])
def test_bad_configuration_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AccelConfig(**kwargs)


def test_shift_macs_may_exceed_the_dsp_budget():
    cfg = AccelConfig(n_ce=4, pe_rows=2, pe_cols=2, mac_kind="shift", device="ice40up5k")
    assert cfg.macs == 16


def test_out_share_sets_output_stages_and_drain_cycles():
    cfg = AccelConfig(n_ce=4, pe_rows=2, pe_cols=2)
    assert (cfg.out_lanes, cfg.drain_cycles) == (8, 2)
    cfg = cfg.replace(out_share=4)
    assert (cfg.out_lanes, cfg.drain_cycles) == (2, 8)


def test_get_config():
    assert get_config("tiny") is PRESETS["tiny"]
    with pytest.raises(ValueError, match="config 'huge' unknown; allowed presets"):
        get_config("huge")


def test_with_overrides_changes_validated_fields_and_names_them():
    from fetta.sw_model.accel.config import with_overrides
    cfg = with_overrides("ice40", ["pe_rows=4", "counter_bits=48"])
    assert (cfg.pe_rows, cfg.counter_bits, cfg.macs) == (4, 48, 8)
    assert cfg.name == "ice40+pe_rows=4+counter_bits=48"
    assert with_overrides("tiny") is PRESETS["tiny"]
    assert with_overrides("ecp5", ["device=none"]).device is None
    with pytest.raises(ValueError, match=r"--set 'pe_row=4': expected FIELD=VALUE, FIELD one of n_ce"):
        with_overrides("ice40", ["pe_row=4"])
    with pytest.raises(ValueError, match=r"pe_rows takes an integer"):
        with_overrides("ice40", ["pe_rows=four"])
    with pytest.raises(ValueError, match=r"pe_rows=3 is not a power of two"):
        with_overrides("ice40", ["pe_rows=3"])
    with pytest.raises(ValueError, match=r"16 multiply MACs do not fit ice40up5k"):
        with_overrides("ice40", ["pe_rows=8"])
