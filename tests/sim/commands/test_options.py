"""``--config`` is one option, defined once (sim/commands/options.py), for every command
that takes a preset."""

import pytest

from fetta.sim.cli import build_parser
from fetta.sw_model.accel.config import PRESETS

COMMANDS = {"contract": [], "verilog": [], "regmap": ["--format", "md"], "search": ["--in", "4,4", "--out", "4,4"],
            "synth": ["--board", "icebreaker"], "probe": ["--port", "sim"],
            "train": ["--backend", "rtl"]}


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_config_checked_at_parse_time(cmd, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([cmd, *COMMANDS[cmd], "--config", "huge"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config 'huge' unknown; allowed " + ", ".join(sorted(PRESETS)) \
        in err[0], err


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_every_preset_accepted(cmd):
    parser = build_parser()
    for name in PRESETS:
        assert parser.parse_args([cmd, *COMMANDS[cmd], "--config", name]).config == name
