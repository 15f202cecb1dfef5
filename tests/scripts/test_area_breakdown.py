"""scripts/area_breakdown.py: parsing yosys' hierarchical stat into per-module totals."""

import importlib.util
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / "scripts" / "area_breakdown.py"
_spec = importlib.util.spec_from_file_location("area_breakdown", _path)
area = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(area)

STAT = """
=== top ===

        +----------Local Count, excluding submodules.
        |
       10 cells
        6   SB_LUT4
        4   SB_DFFSR
        2 submodules
        2   top.pe

=== top.pe ===

        +----------Local Count, excluding submodules.
        |
       70 cells
       64   SB_LUT4
       32   SB_DFFESR
        5   SB_CARRY
        1   SB_MAC16

=== design hierarchy ===

        +----------Count including submodules.
        |
      150 top
       70 top.pe
"""


def test_totals_multiply_child_instances():
    local, children = area.parse_stat(STAT, "ice40")
    assert children["top"] == {"top.pe": 2}
    assert local["top.pe"] == {"LUT": 64, "FF": 32, "CARRY": 5, "DSP": 1}
    whole = area.totals("top", local, children)
    assert whole == {"LUT": 6 + 2 * 64, "FF": 4 + 2 * 32, "CARRY": 10, "DSP": 2}


def test_stat_without_top_is_an_error():
    with pytest.raises(ValueError, match="no module 'top'"):
        area.parse_stat(STAT.replace("=== top ===", "=== other ==="), "ice40")
