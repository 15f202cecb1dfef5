"""Chain steps with an elementwise epilogue run on chip (``sim.chain``: ``bias``,
``act``, ``pre``): the bias add in place on the result in C and ReLU with the
activation requantization on its way into each reader's layout, as VEC instructions
in a resident chain. Checked against an independent NumPy oracle written here (not
the simulator's model), with cycles counted = predicted and host words = the plan's,
on pysim and (slow tier) the compiled backends; bad epilogues are refused in one line."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import check_chain, run_chain
from fetta.sim.resident import plan_resident

MASK32 = 0xFFFFFFFF


def _hash(seed, index):
    """dither_hash, written out again for the oracle (docs/isa.md)."""
    x = (np.asarray(index, np.uint64) + ((seed & MASK32) ^ 0x9E3779B9)) & MASK32
    for fold in (True, False):
        x = (x + (x << np.uint64(10))) & MASK32
        x ^= x >> np.uint64(6)
        x = (x + (x << np.uint64(3))) & MASK32
        x ^= x >> np.uint64(11)
        x = (x + (x << np.uint64(15))) & MASK32
        if fold:
            x ^= np.uint64(seed & MASK32)
    return x.astype(np.int64)


def _round(v, shift, rounding, seed):
    v = np.asarray(v, np.int64)
    if shift == 0:
        return v
    if rounding == "floor":
        return v >> shift
    if rounding == "nearest-even":
        q = v >> shift
        rem = v - (q << shift)
        half = 1 << (shift - 1)
        return q + ((rem > half) | ((rem == half) & (q & 1 == 1)))
    idx = np.arange(v.size).reshape(v.shape)
    return (v + (_hash(seed, idx) >> (32 - shift))) >> shift


def _sat(v, bits):
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _oracle(steps, tensors, seed):
    vals = {k: np.asarray(v, np.int64) for k, v in tensors.items()}
    for i, (spec, a, b, o, p) in enumerate(check_chain(steps, tensors, seed)):
        acc = np.einsum(spec, vals[a], vals[b]).astype(np.int64)
        acc = ((acc + (1 << 31)) & MASK32) - (1 << 31)
        y = _sat(_round(acc, p["shift"], p["rounding"], p["seed"]), p["out_bits"])
        if "bias" in p:
            y = _sat(y + vals[p["bias"]], p["out_bits"])
        if "mask" in p:
            y = np.where(vals[p["mask"]].reshape(y.shape) > 0, y, 0)
        if "act" in p:
            q = p["act"]
            if "pre" in p:
                vals[p["pre"]] = y
            y = _sat(_round(np.maximum(y, 0), q["shift"], q["rounding"], q["seed"]),
                     q["out_bits"])
        vals[o] = y
    return vals


def _mlp(rng, batch=4, k=40, n=12, m=10):
    tensors = {"x": rng.integers(-128, 128, (batch, k)), "w1": rng.integers(-8, 8, (k, n)),
               "b1": rng.integers(-3000, 3000, n), "w2": rng.integers(-8, 8, (n, m)),
               "b2": rng.integers(-3000, 3000, m)}
    steps = [("bk,kn->bn", "x", "w1", "h1",
              {"shift": 9, "rounding": "stochastic", "bias": "b1", "pre": "z1",
               "act": {"shift": 7, "rounding": "stochastic", "out_bits": 8}}),
             ("bn,nm->bm", "h1", "w2", "z2", {"shift": 6, "rounding": "stochastic",
                                              "bias": "b2"})]
    return steps, tensors


def _check(steps, tensors, res, label, seed=0):
    want = _oracle(steps, tensors, seed)
    for name, got in res.outputs.items():
        bad = np.argwhere(got != want[name])
        assert not len(bad), (f"{label}: {name} element {tuple(bad[0])}: chip "
                              f"{got[tuple(bad[0])]}, oracle {want[name][tuple(bad[0])]}")
    run = res.resident
    assert run.cycles["counted"] == run.cycles["predicted"]
    assert run.cycles["vec_elements"] > 0 and res.cycles["elementwise"] > 0


def test_two_layer_forward_with_bias_and_activation_on_chip():
    rng = np.random.default_rng(3)
    steps, tensors = _mlp(rng)
    res = run_chain(steps, tensors, resident=True, seed=11)
    assert set(res.outputs) == {"z1", "z2"}
    _check(steps, tensors, res, "mlp", seed=11)
    # one plan: the host writes x, w1, the biases, w2 and reads z1 and z2 only
    plan = check_chain(steps, tensors, 11)
    rp = plan_resident(plan, {k: np.shape(v) for k, v in tensors.items()},
                       res.resident.segments[0].plan.config)
    assert len(res.resident.segments) == 1
    assert res.host_words["written"] == rp.host_words["written"]
    assert res.host_words["read"] == rp.host_words["read"]
    assert res.cycles["elementwise"] == rp.vec_cycles


def test_an_activation_output_the_host_reads_comes_from_its_dense_home():
    rng = np.random.default_rng(8)
    tensors = {"x": rng.integers(-100, 100, (5, 30)), "w": rng.integers(-8, 8, (30, 7)),
               "b": rng.integers(-500, 500, (7,))}
    for rounding in ("floor", "nearest-even", "stochastic"):
        steps = [("bk,kn->bn", "x", "w", "h", {"shift": 4, "bias": "b",
                                               "act": {"shift": 5, "rounding": rounding,
                                                       "out_bits": 6, "seed": 99}})]
        res = run_chain(steps, tensors, resident=True)
        assert set(res.outputs) == {"h"}
        _check(steps, tensors, res, rounding)


def _train_layer(rng, batch=4, k=24, n=12, m=10):
    """A hidden layer's forward and the backward through it: h = act(x w1 + b1), the
    output gradient dy (an input here) back through w2, masked by ReLU's derivative
    (z > 0), then the gradient of w1."""
    tensors = {"x": rng.integers(-128, 128, (batch, k)), "w1": rng.integers(-8, 8, (k, n)),
               "b1": rng.integers(-3000, 3000, n), "w2": rng.integers(-8, 8, (n, m)),
               "dy": rng.integers(-2000, 2000, (batch, m))}
    steps = [("bk,kn->bn", "x", "w1", "h", {"shift": 9, "bias": "b1", "pre": "z",
                                           "act": {"shift": 7, "rounding": "stochastic",
                                                   "out_bits": 8}}),
             ("bn,nm->bm", "h", "w2", "y", {"shift": 6}),
             ("bm,nm->bn", "dy", "w2", "dz", {"shift": 3, "mask": "z"}),
             ("bk,bn->kn", "x", "dz", "dw1", {"shift": 8, "rounding": "stochastic"})]
    return steps, tensors


def test_relu_backward_mask_from_the_forwards_pre_activation():
    """``mask``: the pre-activation z is copied out of C densely (MOVEs) after the
    forward step and zeroes the backward gradient in place where z <= 0."""
    rng = np.random.default_rng(12)
    steps, tensors = _train_layer(rng)
    res = run_chain(steps, tensors, resident=True, seed=4)
    assert set(res.outputs) == {"y", "dw1"}
    _check(steps, tensors, res, "train layer", seed=4)
    want = _oracle(steps, tensors, 4)
    assert (want["z"] <= 0).any() and (want["dz"] == 0).sum() > (tensors["dy"] == 0).sum()


def test_a_mask_on_an_activation_output_cuts_the_chain():
    """In C the activation step holds its input, so a mask on the activation output
    itself cannot come from there: the chain is cut after it and the host writes the
    activation as the mask (still the chain's semantics)."""
    rng = np.random.default_rng(1)
    steps, tensors = _train_layer(rng)
    steps[2][4]["mask"] = "h"
    res = run_chain(steps, tensors, resident=True)
    assert len(res.resident.segments) > 1
    _check(steps, tensors, res, "mask on h")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_compiled_backends(backend):
    steps, tensors = _mlp(np.random.default_rng(5), batch=6)
    _check(steps, tensors, run_chain(steps, tensors, resident=True, backend=backend),
           backend)
    steps, tensors = _train_layer(np.random.default_rng(6))
    _check(steps, tensors, run_chain(steps, tensors, resident=True, backend=backend),
           backend)


@pytest.mark.parametrize("change, match", [
    (lambda s: s[0][4].update(bias="w2"), "bias 'w2' of shape"),
    (lambda s: s[0][4].update(bias="nope"), "bias 'nope' is not an input"),
    (lambda s: s[1][4].update(pre="z9"), "pre='z9' without act"),
    (lambda s: s[0][4].update(pre="x"), "pre name 'x' is not a new tensor name"),
    (lambda s: s[1][4].update(mask="w1"), "mask 'w1' of shape"),
    (lambda s: s[1][4].update(mask="q"), "mask 'q' is neither an input"),
    (lambda s: s[0][4]["act"].update(gain=2), "act parameter 'gain' unknown"),
    (lambda s: s[0][4]["act"].update(out_bits=17), "act VEC out_bits=17 out of range"),
])
def test_bad_epilogues_are_refused_in_one_line(change, match):
    steps, tensors = _mlp(np.random.default_rng(1))
    change(steps)
    with pytest.raises(ValueError, match=match):
        check_chain(steps, tensors)


def test_epilogues_need_a_resident_chain():
    steps, tensors = _mlp(np.random.default_rng(1))
    with pytest.raises(ValueError, match="epilogues run on chip in a resident chain"):
        run_chain(steps, tensors)


def test_an_epilogue_step_that_does_not_fit_is_refused():
    steps, tensors = _mlp(np.random.default_rng(1))
    with pytest.raises(FettaError, match="epilogue does not fit"):
        from fetta.sw_model.accel.config import AccelConfig
        cfg = AccelConfig(name="tiny-d16", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=16)
        run_chain(steps, tensors, resident=True, config=cfg)


def test_cli_chain_file_with_epilogues(tmp_path):
    """`fetta contract --chain F --resident` with bias/act/pre/mask in the file: the
    outputs are checked against the golden chain (``reference_chain``), mismatches 0;
    without --resident the epilogue is a one-line error."""
    import json
    import subprocess
    import sys
    steps, _ = _train_layer(np.random.default_rng(0))
    shapes = {"x": [4, 24], "w1": [24, 12], "b1": [12], "w2": [12, 10], "dy": [4, 10]}
    doc = {"config": "tiny",
           "tensors": {k: {"shape": v, "range": 100} for k, v in shapes.items()},
           "steps": [{"spec": s, "a": a, "b": b, "out": o, **p} for s, a, b, o, p in steps]}
    f = tmp_path / "chain.json"
    f.write_text(json.dumps(doc))
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                        str(f), "--resident", "--json", str(out)], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["mismatches"] == 0 and set(r["outputs"]) == {"y", "dw1"}
    assert r["cycles"]["elementwise"] > 0
    p = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "contract", "--chain",
                        str(f)], capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "resident chain" in p.stderr
