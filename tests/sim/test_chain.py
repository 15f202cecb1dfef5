"""run_chain (sim/chain.py): random chains of contractions (producer output feeding a
consumer operand, permuted, batched, with reductions longer than the buffers) against
an independent oracle written here in plain Python integers, on every backend."""

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from fetta.sim.chain import check_chain, run_chain
from fetta.sw_model.accel.config import AccelConfig

M32 = 0xFFFFFFFF


# -- the oracle: the arithmetic contract from its definition ----------------------------
def _hash(seed, index):
    """The 32-bit dither hash of (seed, flat index), from its definition in docs."""
    x = (index + (seed ^ 0x9E3779B9)) & M32
    for fold in (True, False):
        x = (x + (x << 10)) & M32
        x ^= x >> 6
        x = (x + (x << 3)) & M32
        x ^= x >> 11
        x = (x + (x << 15)) & M32
        if fold:
            x ^= seed
    return x


def oracle_step(spec, a, b, shift, rounding, out_bits, seed):
    acc = np.einsum(spec, np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    acc = np.asarray(acc, dtype=object)
    out = np.empty(acc.shape, dtype=np.int64)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    for flat, idx in enumerate(np.ndindex(acc.shape)):
        v = int(acc[idx]) & M32
        v = v - (1 << 32) if v >> 31 else v                    # wrap to 32 bits
        if rounding == "floor":
            q = v >> shift
        elif rounding == "nearest-even":
            q = round(Fraction(v, 1 << shift))                   # Python: half to even
        else:
            d = _hash(seed, flat)
            d = d >> (32 - shift) if shift <= 32 else d << (shift - 32)
            q = (v + (d if shift else 0)) >> shift
        out[idx] = min(hi, max(lo, q))
    return out


def oracle_chain(steps, tensors, seed=0):
    vals = dict(tensors)
    for spec, a, b, o, p in check_chain(steps, tensors, seed):
        vals[o] = oracle_step(spec, vals[a], vals[b], **p)
    return vals


# -- random chains --------------------------------------------------------------------
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def random_chain(rng, n_steps=3, max_size=5):
    """Step 0 multiplies two random inputs; each later step contracts the previous
    output with a new input: each of its dimensions is summed, batched (also in the
    new input) or kept, new input-only dimensions are added, operand side and every
    index order are random."""
    letters = iter(rng.permutation(list(LETTERS)))
    amp = int(rng.choice([32768, 300]))
    tensors, steps = {}, []

    def new(name, shape):
        tensors[name] = rng.integers(-amp, amp, size=shape)

    sizes = {}
    prev, prev_idx = None, None
    for i in range(n_steps):
        if prev is None:
            k = [next(letters) for _ in range(rng.integers(1, 3))]
            m = [next(letters) for _ in range(rng.integers(1, 3))]
            n = [next(letters) for _ in range(rng.integers(0, 2))]
            for c in k + m + n:
                sizes[c] = int(rng.integers(1, max_size + 1))
            x_idx = "".join(rng.permutation(m + k))
            new(f"x{i}", [sizes[c] for c in x_idx])
            cur, cur_idx = f"x{i}", x_idx
            w_idx = "".join(rng.permutation(k + n))
            out = "".join(rng.permutation(m + n))
        else:
            cur, cur_idx = prev, prev_idx
            roles = {c: str(rng.choice(["k", "b", "m"])) for c in cur_idx}
            if not any(r != "k" for r in roles.values()):
                roles[cur_idx[0]] = "m"
            n = [next(letters) for _ in range(rng.integers(0, 3))]
            for c in n:
                sizes[c] = int(rng.integers(1, max_size + 1))
            w_idx = "".join(rng.permutation([c for c in cur_idx if roles[c] in "kb"] + n))
            out = "".join(rng.permutation([c for c in cur_idx if roles[c] != "k"] + n))
            if not w_idx:                       # the new operand needs an index
                c = next(letters)
                sizes[c] = int(rng.integers(1, max_size + 1))
                w_idx = c
        new(f"w{i}", [sizes[c] for c in w_idx])
        if rng.random() < 0.5:
            spec, a, b = f"{cur_idx},{w_idx}->{out}", cur, f"w{i}"
        else:
            spec, a, b = f"{w_idx},{cur_idx}->{out}", f"w{i}", cur
        p = {"shift": int(rng.integers(0, 16)),
             "rounding": str(rng.choice(["floor", "nearest-even", "stochastic"])),
             "out_bits": int(rng.integers(8, 17))}
        steps.append((spec, a, b, f"t{i}", p))
        prev, prev_idx = f"t{i}", out
    return steps, tensors


def check(steps, tensors, res, seed=0):
    want = oracle_chain(steps, tensors, seed)
    assert set(res.outputs) == {s[3] for s in steps}
    for (spec, _, _, o, _) in steps:
        got = res.outputs[o]
        assert got.shape == want[o].shape, (o, got.shape, want[o].shape)
        diff = np.argwhere(got != want[o])
        if diff.size:
            i = tuple(diff[0])
            pytest.fail(f"step {o} '{spec}' element {i}: accelerator {got[i]} != oracle "
                        f"{want[o][i]}")
    for r in res.steps:
        assert r.cycles == r.predicted_cycles, (r.spec, r.cycles, r.predicted_cycles)
    c = res.cycles
    assert c["total"] == c["compute"] + c["on_chip_moves"] + c["host_transfer"]
    assert c["host_transfer"] == res.host_words["written"] + res.host_words["read"]


def long_k_chain():
    """x (2 x 4500) . w (4500 x 3): the reduction does not fit tiny's buffers (K
    chunks); its output feeds a batched, permuted second step."""
    rng = np.random.default_rng(7)
    tensors = {"x": rng.integers(-32768, 32768, (2, 4500)),
               "w": rng.integers(-32768, 32768, (4500, 3)),
               "v": rng.integers(-500, 500, (3, 2, 4))}
    steps = [("mk,kn->nm", "x", "w", "h", {"shift": 14, "rounding": "stochastic"}),
             ("nm,nmj->jm", "h", "v", "y", {"shift": 3, "rounding": "nearest-even",
                                              "out_bits": 12})]
    return steps, tensors


@pytest.fixture(scope="module")
def pysim_session():
    from fetta.sim.harness import Session
    with Session("tiny", "pysim") as s:
        yield s


@pytest.mark.parametrize("idx", range(4))
def test_random_chains_pysim(idx, pysim_session):
    steps, tensors = random_chain(np.random.default_rng(100 + idx))
    res = run_chain(steps, tensors, seed=idx, session=pysim_session)
    check(steps, tensors, res, seed=idx)


def test_chain_with_reduction_longer_than_buffers_pysim():
    cfg = AccelConfig(name="tiny-d16", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=16)
    rng = np.random.default_rng(3)
    tensors = {"x": rng.integers(-32768, 32768, (2, 100)),
               "w": rng.integers(-32768, 32768, (100, 2)),
               "v": rng.integers(-900, 900, (2, 3))}
    steps = [("mk,kn->nm", "x", "w", "h", {"shift": 12, "rounding": "stochastic"}),
             ("nm,nj->mj", "h", "v", "y", {"shift": 2})]
    res = run_chain(steps, tensors, config=cfg, backend="pysim", seed=5)
    assert res.steps[0].chunks > 1
    check(steps, tensors, res, seed=5)


@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_chains_on_compiled_backends(backend):
    """The same random chains and a long-K chain on the compiled models (cached
    builds of tiny; a first build takes minutes)."""
    for idx in range(3):
        steps, tensors = random_chain(np.random.default_rng(200 + idx))
        check(steps, tensors, run_chain(steps, tensors, backend=backend, seed=idx),
              seed=idx)
    steps, tensors = long_k_chain()
    res = run_chain(steps, tensors, backend=backend)
    assert res.steps[0].chunks > 1
    check(steps, tensors, res)


def test_oracle_is_not_the_reference_model_but_agrees_with_it():
    """The oracle above is written independently; on a random case both agree, and a
    perturbed operand changes the oracle's answer (it is not vacuous)."""
    from fetta.sw_model.arith.contraction import reference_contraction
    rng = np.random.default_rng(1)
    a, b = rng.integers(-32768, 32768, (3, 40)), rng.integers(-32768, 32768, (40, 4))
    for rounding in ("floor", "nearest-even", "stochastic"):
        kw = dict(shift=20, rounding=rounding, out_bits=13, seed=77)
        o = oracle_step("ik,kj->ji", a, b, **kw)
        np.testing.assert_array_equal(o, reference_contraction("ik,kj->ji", a, b, **kw))
        b2 = b.copy()
        b2[0, 0] = b2[0, 0] + 4096 if b2[0, 0] < 0 else b2[0, 0] - 4096
        assert (oracle_step("ik,kj->ji", a, b2, **kw) != o).any()


@pytest.mark.parametrize("steps,msg", [
    ([("ij,jk->ik", "x", "nope", "y", {})], "operand B 'nope' is neither"),
    ([("ij,jk->ik", "x", "x2", "x", {})], "output name 'x' is already a tensor"),
    ([("ij,jk->ik", "x", "x2", "y", {"shfit": 1})], "parameter 'shfit' unknown"),
    ([("ij,jk->ik", "x", "x2", "y", {"rounding": "up"})], "rounding='up' unknown"),
    ([], "expected a non-empty list"),
])
def test_bad_chains_one_line_errors(steps, msg):
    tensors = {"x": np.ones((2, 2), int), "x2": np.ones((2, 2), int)}
    with pytest.raises(ValueError, match=msg):
        run_chain(steps, tensors)


def test_cli_runs_chain_file(tmp_path):
    doc = {"config": "tiny",
           "tensors": {"x": {"shape": [3, 5]}, "w": {"shape": [5, 4], "range": 300},
                       "v": {"data": [[1, -2], [3, 4], [5, 6], [-7, 8]]}},
           "steps": [{"spec": "ik,kj->ji", "a": "x", "b": "w", "out": "h", "shift": 4},
                     {"spec": "ji,jn->in", "a": "h", "b": "v", "out": "y",
                      "rounding": "stochastic", "shift": 2}]}
    f = tmp_path / "chain.json"
    f.write_text(json.dumps(doc))
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                        str(f), "--json", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["mismatches"] == 0 and r["outputs"] == {"h": [4, 3], "y": [3, 2]}
    assert r["cycles"]["total"] == r["cycles"]["compute"] + r["cycles"]["host_transfer"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"steps": [], "tensors": {}}')
    p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                        str(bad)], capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_cli_runs_chain_file_resident_and_staged(tmp_path):
    """`fetta contract --chain F --resident --stage`: digits layer 1 at batch 4 on tiny
    (every input staged: its layouts hold more words than elements) runs as one
    resident program, its outputs checked against the reference, counted cycles
    equal to the model; --stage without --resident is a one-line error."""
    from fetta.sw_model.ttm.resident_step import layer_chains
    from fetta.sw_model.ttm.workloads import get_workload
    steps, shapes, _ = layer_chains(get_workload("digits"), 4, "tiny")[1]
    doc = {"config": "tiny",
           "tensors": {k: {"shape": list(v), "range": 64} for k, v in shapes.items()},
           "steps": [{"spec": s, "a": a, "b": b, "out": o, "shift": 6}
                     for s, a, b, o, _ in steps]}
    f = tmp_path / "chain.json"
    f.write_text(json.dumps(doc))
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                        str(f), "--random", "3", "--resident", "--stage", "--json",
                        str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "resident, 1 program(s), staged " in p.stdout
    counted = [ln for ln in p.stdout.splitlines() if ln.startswith("cycles counted")][0]
    n, pred = counted.split()[2], counted.split("predicted ")[1].rstrip(")")
    assert n == pred
    r = json.loads(out.read_text())
    assert r["mismatches"] == 0 and r["cycles"]["on_chip_moves"] > 0
    assert set(r["outputs"]) == {"L1/y", "L1/dx", "L1/dg1", "L1/dg2"}   # nothing reads them
    p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                        str(f), "--stage"], capture_output=True, text=True)
    assert p.returncode == 2 and "--stage needs --resident" in p.stderr
    # the same resident chain written at the end of program memory and started there
    p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                        str(f), "--random", "3", "--resident", "--program-at", "top",
                        "--json", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    counted = [ln for ln in p.stdout.splitlines() if ln.startswith("cycles counted")][0]
    assert counted.split()[2] == counted.split("predicted ")[1].rstrip(")")
    assert json.loads(out.read_text())["mismatches"] == 0
    for argv, msg in ((["--program-at", "5"], "--program-at needs --resident"),
                      (["--resident", "--program-at", "low"],
                       "--program-at 'low' invalid; allowed 'top' or a program word "
                       "0..1023"),
                      (["--resident", "--program-at", "1024"],
                       "program_at 1024 invalid; allowed 'top' or a program word "
                       "0..1023")):
        p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                            str(f), *argv], capture_output=True, text=True)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert msg in p.stderr, p.stderr
