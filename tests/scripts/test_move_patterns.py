"""scripts/move_patterns.py: each destination row of a layout change is classed by how
a wider MOVE could copy it, and the script runs on a real resident step."""

import importlib.util
import json
from pathlib import Path

from fetta.sw_model.accel.move import Move, MoveLevel

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("move_patterns",
                                               ROOT / "scripts" / "move_patterns.py")
mp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mp)


def test_rows_are_classed_by_their_sources():
    lanes = 4
    row_copy = Move("C", "A", 8, 0, (MoveLevel(4, 1, 1),))            # C row 2 -> A row 0
    permuted = Move("C", "A", 15, 4, (MoveLevel(4, -1, 1),))         # C row 3 reversed
    gather = Move("C", "A", 0, 8, (MoveLevel(4, 4, 1),))             # a C column -> A row 2
    fill = Move("C", "A", 0, 12, (MoveLevel(1, 0, 4),), fill=True)   # not a copy
    got = mp.classify([row_copy, permuted, gather, fill], lanes, lanes)
    assert got == {"row copy": 4, "one source row": 4, "gather": 4}
    shifted = Move("C", "A", 9, 0, (MoveLevel(3, 1, 1),))            # lanes 1..3 -> 0..2
    assert mp.classify([shifted], lanes, lanes)["one source row"] == 3


def test_a_resident_step_is_measured(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert mp.main(["--workload", "digits", "--config", "tiny", "--batch", "8",
                    "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["words_copied"] == sum(doc["by_class"].values()) > 0
    assert 0 < doc["move_share"] < 1
    assert "words copied by MOVEs" in capsys.readouterr().out
