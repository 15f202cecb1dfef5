"""Every generated document in the tree is what the code and the stored runs generate
(``scripts/gen_docs.py --check``: datasheet, energy table, README's FPGA, RTL training
and evaluation tables)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_documents_are_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
