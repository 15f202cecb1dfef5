"""sim/jsonio.py: atomic JSON writes, one-line errors, the source commit."""

import json

import pytest

from fetta.errors import FettaError
from fetta.sim.jsonio import source_commit, write_json_atomic


def test_write_replaces_atomically(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]      # no temp file left


def test_unwritable_folder_is_one_line(tmp_path):
    with pytest.raises(FettaError, match=r"cannot write .*missing/r\.json: No such file"):
        write_json_atomic(tmp_path / "missing" / "r.json", {})


def test_failed_dump_keeps_previous_file(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}
    assert len(list(tmp_path.iterdir())) == 1


def test_source_commit_is_a_short_hash_in_a_checkout():
    c = source_commit()
    assert c is None or (4 <= len(c) <= 40 and int(c, 16) >= 0)
