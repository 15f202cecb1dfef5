"""The space file: expansion, validation of every point, one-line errors."""

import pytest

from fetta.sim.cli import main
from fetta.sweep.space import SpaceError, parse_space

GOOD = """
base = "tiny"
workloads = ["digits L2 128->16"]
[fields]
n_ce = [2, 4, 3]
pe_rows = { start = 1, stop = 4, factor = 2 }
acc_bits = { start = 32, stop = 40, step = 8 }
[constraints]
max_macs = 16
"""


def test_expansion_and_validation():
    sp = parse_space(GOOD, "good.toml")
    assert sp.workloads == ["digits L2 128->16"] and sp.order == "macs"
    assert sp.fields == {"n_ce": [2, 4, 3], "pe_rows": [1, 2, 4], "acc_bits": [32, 40]}
    assert len(sp.points) == 3 * 3 * 2
    assert sp.points[0].overrides == {"n_ce": 2, "pe_rows": 1, "acc_bits": 32}
    by = {tuple(p.overrides.values()): p for p in sp.points}
    # AccelConfig's own reason for a bad value, one line
    assert by[(3, 1, 32)].config is None
    assert by[(3, 1, 32)].reason.startswith("config field n_ce=3 is not a power of two")
    # the constraint's reason
    assert by[(4, 4, 40)].config is not None
    assert by[(4, 4, 40)].reason == ("constraint max_macs=16: the point needs 32 "
                                     "(n_ce * pe_rows * pe_cols)")
    ok = by[(4, 2, 40)]
    assert ok.reason is None and ok.config.macs == 16 and ok.config.acc_bits == 40
    assert ok.config.bank_depth == 1024          # from the base preset
    assert len({p.id for p in sp.points}) == len(sp.points)


def test_boolean_field_values():
    sp = parse_space("[fields]\nmove_unit = [true, false]\nshift_slots = 0\n"
                     "adam_entries = 0\nn_ce = 4",
                     "b.toml")
    assert sorted(p.config.move_unit for p in sp.points) == [False, True]


@pytest.mark.parametrize("text, message", [
    ("[fields\nn_ce = 2", "bad.toml: not valid TOML: "),
    ("[fields]\nn_cee = [2]", "bad.toml: fields.n_cee is not an AccelConfig field; "
                              "allowed n_ce, pe_rows"),
    ("[fields]\nn_ce = [2, 'x']", "bad.toml: fields.n_ce: value 'x' is not an integer"),
    ("[fields]\nn_ce = []", "bad.toml: fields.n_ce: no values"),
    ("[fields]\nmove_unit = ['yes']",
     "bad.toml: fields.move_unit: value 'yes' is not a boolean (true, false)"),
    ("[fields]\nn_ce = {start = 8, stop = 2, factor = 2}",
     "bad.toml: fields.n_ce: range stop=2 below start=8"),
    ("[fields]\nn_ce = {start = 2, end = 8}", "bad.toml: fields.n_ce: range "),
    ("base = 'huge'\n[fields]\nn_ce = 2", "bad.toml: base='huge' unknown; allowed tiny"),
    ("workloads = ['mnist']\n[fields]\nn_ce = 2", "bad.toml: workload 'mnist' unknown"),
    ("[fields]\nn_ce = 2\n[constraints]\nmax_area = 3",
     "bad.toml: constraints.max_area unknown; allowed max_macs"),
    ("fields = 3", "bad.toml: [fields] missing or empty"),
    ("colour = 1\n[fields]\nn_ce = 2", "bad.toml: unknown key 'colour'"),
])
def test_malformed_space_one_line_error(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpaceError):
        parse_space(text, "bad.toml")
    assert main(["sweep", str(path), "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("fetta sweep: error: ") and message in err.replace(
        str(tmp_path) + "/", ""), err
    assert not (tmp_path / "s.db").exists()


def test_missing_space_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.toml" in err and "No such file" in err
