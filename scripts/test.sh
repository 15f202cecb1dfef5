#!/usr/bin/env bash
# Install the project with its test extras and run the default test tier.
# Extra arguments go to pytest (e.g. `-m slow`, `-m synth`, `-m "slow or synth"`).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test,data,synth,board,formal]"
python3 -m pytest -q -n 2 "$@"
