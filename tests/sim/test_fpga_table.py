"""README's FPGA build table is generated from the stored synthesis summaries."""

import subprocess
import sys
from pathlib import Path

from fetta.sim.fpga_table import BEGIN, END, per_seed, render
from fetta.sw_model.accel.measured import measured_presets, synth_report

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_is_generated():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN):readme.index(END) + len(END)] + "\n"
    assert block == render(), "README FPGA table is out of date: run python scripts/gen_docs.py"


def test_every_stored_build_has_its_row_and_clock():
    table = render()
    for name in measured_presets():
        fmax = synth_report(name)["fmax_mhz"]
        assert f"| `{name}` |" in table and f"**{fmax:.1f} MHz**" in table


def test_stored_seed_builds_show_every_seed_and_report_the_slowest():
    table = render()
    for name in measured_presets():
        raw = synth_report(name)["raw"]
        if "seeds" not in raw:
            continue
        routed = [r for r in raw["seeds"] if r["routed"]]
        slowest = min(routed, key=lambda r: r["fmax_mhz"]["sync"])
        assert raw["seed_summary"]["reported_seed"] == slowest["seed"]
        assert raw["fmax_mhz"] == slowest["fmax_mhz"]
        assert raw["critical_path"] == slowest["critical_path"]
        assert per_seed(raw) in table and f"; {len(routed)}/{len(raw['seeds'])} routed)" in table
        assert f"--seeds {','.join(str(r['seed']) for r in raw['seeds'])} --json" in table


def test_per_seed_column_names_failed_seeds():
    raw = {"seeds": [{"seed": 1, "routed": True, "fmax_mhz": {"sync": 23.84}},
                     {"seed": 2, "routed": False, "error": "nextpnr-ecp5 stopped"},
                     {"seed": 7, "routed": True, "fmax_mhz": {"sync": 23.46}}]}
    assert per_seed(raw) == "23.8 / failed / 23.5 MHz (seeds 1, 2, 7; 2/3 routed)"
    assert per_seed({"fmax_mhz": {"sync": 23.8}}) == "-"


def test_check_mode_names_a_stale_document(tmp_path):
    """--check on a copy of the tree whose README table was edited by hand fails."""
    import shutil
    for rel in ("scripts/gen_docs.py", "README.md", "docs/datasheet.md", "docs/energy.md",
                "docs/eval/eval.json", "docs/ttm/ttm-steps-tiny.json",
                *(str(p.relative_to(ROOT)) for d in ("docs/resident", "docs/train")
                  for p in (ROOT / d).glob("*.json"))):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    ok = subprocess.run([sys.executable, str(tmp_path / "scripts/gen_docs.py"), "--check"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace(" MHz** (", "0 MHz** (", 1))
    bad = subprocess.run([sys.executable, str(tmp_path / "scripts/gen_docs.py"), "--check"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "out of date: README.md" in bad.stderr
