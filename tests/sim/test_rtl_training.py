"""Training on the simulated accelerator (sim/rtl_training.py, `fetta train --backend
rtl`): bit-exact against the fixed-point reference trainer on pysim and cxxrtl,
lock-step verification catches an injected fault, resume after SIGINT ends with the
same weights, cycle accounting adds up, CLI errors are one line."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fetta.sim.rtl_training import (PHASES, SAMPLE_EVERY, ContractionMismatch, RtlTraining,
                              plot_cycles)
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.measured import preset_clock
from fetta.sw_model.train import checkpoint as ckpt
from fetta.sw_model.train.data import Dataset, load_dataset
from fetta.sw_model.ttm.models import model_from_dict
from fetta.sw_model.train.trainer import Trainer, TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]

# Two small TTM layers on digits: a full training step is 11 contractions of a few
# hundred cycles, so pysim runs two steps in seconds.
SMALL = model_from_dict({"name": "small", "dataset": "digits", "layers": [
    {"in_modes": [8, 8], "out_modes": [4, 4], "ranks": [2]},
    {"in_modes": [4, 4], "out_modes": [4, 4], "ranks": [2]}]})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def subset(data, n_train, n_test):
    return Dataset(data.name, data.x_train[:n_train], data.y_train[:n_train],
                   data.x_test[:n_test], data.y_test[:n_test])


def trainer_state(tr):
    arrays, meta = tr.state()
    return arrays, json.dumps(meta, sort_keys=True, default=str)


def assert_same_state(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    assert a[1] == b[1]


@pytest.fixture(scope="module")
def cxx():
    pytest.importorskip("fetta.sim.backends.cxxrtl")
    from fetta.sim.compiled.toolchain import find_compiler
    try:
        find_compiler()
    except Exception as exc:       # no C++ compiler on this machine
        pytest.skip(str(exc))
    rt = RtlTraining("tiny", sim="cxxrtl")
    yield rt.session
    rt.close()


def _two_steps(digits, resident, shift_slots=False):
    """Two training steps of SMALL (batch 4) on pysim, every contraction verified,
    ending in the numpy fixed trainer's state; returns the RTL report."""
    cfg = TrainConfig(precision="fixed", batch=4, seed=3)
    rt = RtlTraining("tiny", sim="pysim", verify="all", resident=resident,
                     shift_slots=shift_slots)
    hw = Trainer(SMALL, cfg, n_train=len(digits.x_train), executor=rt.executor,
                 observer=rt.observer)
    ref = Trainer(SMALL, cfg, n_train=len(digits.x_train))
    for s in range(2):
        x, y = digits.x_train[4 * s:4 * s + 4], digits.y_train[4 * s:4 * s + 4]
        assert hw.train_step(x, y) == ref.train_step(x, y)
    rep = rt.report()
    rt.close()
    assert_same_state(trainer_state(hw), trainer_state(ref))
    return rep


def test_pysim_two_full_steps_bit_exact(digits):
    """Two full training steps (forward, input gradient, core gradients of both
    layers) on Amaranth's simulator: every contraction verified, and the parameters,
    optimizer state and shift controllers equal the numpy fixed trainer's."""
    rep = _two_steps(digits, resident=False)
    assert rep["mismatches"] == 0 and rep["verified"] == rep["contractions"] == 22
    assert rep["steps_simulated"] == 2
    assert all(rep["cycles_per_step"][s][p] > 0 for s in range(2) for p in PHASES
               if p not in ("on_chip_moves", "elementwise"))
    # separate jobs: no MOVE, and the elementwise work runs on the host
    assert all(rep["cycles_per_step"][s][p] == 0 for s in range(2)
               for p in ("on_chip_moves", "elementwise"))
    assert rep["host_words_per_step"] == sum(
        rep["cycles_per_step"][s]["host_transfer"] for s in range(2)) / 2 > 0
    occ = rep["peak_buffer_occupancy"]
    assert set(occ) == {"a", "b", "c"} and all(0 < v <= 1 for v in occ.values())


def test_pysim_two_resident_steps_bit_exact(digits):
    """The same two steps with results kept on chip (``resident=True``): every
    contraction verified, the same trainer state as the numpy fixed trainer, MOVEs
    counted as on-chip moves, fewer host words than without residency."""
    rep, plain = _two_steps(digits, resident=True), _two_steps(digits, resident=False)
    assert rep["resident"] and rep["mismatches"] == 0 and rep["verified"] == 22
    assert rep["on_chip_results"]["moved_operands"] > 0
    assert all(s["on_chip_moves"] > 0 for s in rep["cycles_per_step"])
    assert rep["host_words_per_step"] < plain["host_words_per_step"]
    # the compute phases are the same contractions: MOVEs are counted apart
    for p in ("forward", "input_gradient", "core_gradients"):
        assert rep["cycles"][p] == plain["cycles"][p]


def test_pysim_steps_with_shift_slots_bit_exact(digits):
    """The resident steps with the adaptive shifts on chip (``shift_slots=True``):
    every contraction names its controller's slot and votes there; every result and
    every slot's state after each contraction equal the reference trainer's; the host
    writes each slot once and reads no MAX_ABS word."""
    rep = _two_steps(digits, resident=True, shift_slots=True)
    plain = _two_steps(digits, resident=True)
    sl = rep["shift_slots"]
    assert rep["mismatches"] == 0 and rep["verified"] == 22
    assert sl["on"] and sl["slots_checked"] == 22
    assert 0 < sl["slots_used"] == sl["slot_writes"] <= 16
    assert rep["on_chip_results"]["not_read_back"] > 0
    # no MAX_ABS read for a result kept on chip; the same compute and move cycles
    assert rep["host_words"]["read"] == plain["host_words"]["read"] - \
        rep["on_chip_results"]["not_read_back"]
    s1, p1 = rep["cycles_per_step"][1], plain["cycles_per_step"][1]
    for p in ("forward", "input_gradient", "core_gradients", "on_chip_moves"):
        assert s1[p] == p1[p]


def test_shift_slots_move_the_shifts_and_a_corrupt_slot_is_reported(digits, cxx):
    """Twelve steps on the compiled model: the votes move shifts on chip, each move
    verified against the trainer's controllers; a slot changed behind the trainer's
    back is reported with its slot, key and both states."""
    cfg = TrainConfig(precision="fixed", batch=4, seed=3)
    rt = RtlTraining("tiny", session=cxx, verify="all", shift_slots=True)
    tr = Trainer(SMALL, cfg, n_train=100, executor=rt.executor, observer=rt.observer)
    first = None
    for s in range(12):
        tr.train_step(digits.x_train[4 * s:4 * s + 4], digits.y_train[4 * s:4 * s + 4])
        if first is None:
            first = {k: c.shift for k, c in tr.shifts.items()}
    moved = [k for k, c in tr.shifts.items() if k in rt._slot_of and c.shift != first[k]]
    assert moved, "no shift moved in 12 steps"
    assert rt.mismatches == 0 and rt.slots_checked == rt.contractions
    key = moved[0]
    k = rt._slot_of[key]
    sh, p, _ = cxx.read_slot(k)
    from fetta.sw_model.accel.hostmap import REG_BASE, Reg
    from fetta.sw_model.accel.shift_slots import slot_word
    # five steps off: no run of votes in one step brings it back
    cxx.backend.write(REG_BASE + Reg.SLOT + k - 1, [slot_word(sh + 5, p)])
    with pytest.raises(ContractionMismatch, match=rf"shift slot mismatch at step 12 .*"
                                                  rf"slot {k} \({key}\) accelerator"):
        tr.train_step(digits.x_train[48:52], digits.y_train[48:52])


def test_cxxrtl_short_run_bit_exact_and_reports(digits, cxx, tmp_path):
    """4 steps of the default digits model (batch 64) plus evaluation on the compiled
    model end with the numpy fixed trainer's weights; the report adds up."""
    data = subset(digits, 256, 64)
    rt = RtlTraining("tiny", session=cxx, verify="all", clock_mhz=100.0)
    res = train("digits", precision="fixed", epochs=1, data=data, backend="rtl",
                executor=rt.executor, observer=rt.observer,
                checkpoint=tmp_path / "rtl.npz")
    res = rt.finish(res)
    want = train("digits", precision="fixed", epochs=1, data=data,
                 checkpoint=tmp_path / "np.npz")
    assert res["test_accuracy"] == want["test_accuracy"]
    assert res["epochs"] == want["epochs"]
    a, b = ckpt.load(tmp_path / "rtl.npz")[0], ckpt.load(tmp_path / "np.npz")[0]
    for k in b:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert res["mismatches"] == 0 and res["verified"] == res["contractions"]
    c = res["cycles"]
    assert c["total"] == sum(c[p] for p in PHASES)
    assert c["total"] == sum(s["total"] for s in res["cycles_per_step"])
    assert res["steps_simulated"] == 4 and c["eval"]["contractions"] > 0
    # layer 1's input gradient is its own phase; layer 0 has none (need_dx=False)
    assert 0 < c["input_gradient"] < c["core_gradients"]
    assert 0 < res["mac_utilization"] <= 1
    assert res["mac_utilization_with_transfer"] < res["mac_utilization"]
    assert res["clock_mhz"] == 100.0
    assert res["simulated_seconds_per_step"] == pytest.approx(c["total"] / 4 / 100e6)
    mem = res["on_chip_memory"]
    assert 0 < mem["used_bytes"]["total"] <= mem["available_bytes"]["total"]
    assert res["compile_cache"]["hits"] > res["compile_cache"]["misses"]
    json.dumps(res)
    plot_cycles(res, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def flip_at(executor, target: int):
    """An executor that adds 1 to element [0, ..., 0] of its ``target``-th result."""
    calls = {"n": 0}

    def wrapped(step, a, b, **kw):
        out = np.array(executor(step, a, b, **kw))
        if calls["n"] == target:
            out[(0,) * out.ndim] += 1
            wrapped.fault = (step.spec, int(out[(0,) * out.ndim]))
        calls["n"] += 1
        return out
    return wrapped


def test_verify_reports_injected_fault(digits, cxx):
    """One flipped element in contraction 3 of step 1 stops training with a report
    naming step, phase, contraction, element and both values."""
    cfg = TrainConfig(precision="fixed", batch=4, seed=5)
    rt = RtlTraining("tiny", session=cxx, verify="all")
    ex = flip_at(rt.executor, 11 + 3)     # 11 contractions per step
    tr = Trainer(SMALL, cfg, n_train=100, executor=ex, observer=rt.observer)
    tr.train_step(digits.x_train[:4], digits.y_train[:4])
    with pytest.raises(ContractionMismatch) as e:
        tr.train_step(digits.x_train[4:8], digits.y_train[4:8])
    spec, bad = ex.fault
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("mismatch at step 1 ") and f"'{spec}'" in msg
    assert f"contraction 3 '{spec}' element (0, " in msg
    assert f"accelerator {bad} != reference {bad - 1}" in msg
    r = e.value.report
    assert (r["step"], r["index"], r["spec"]) == (1, 3, spec)
    assert r["accelerator"] - r["reference"] == 1 and set(r["element"]) == {0}
    assert rt.mismatches == 1


def test_verify_off_and_sample(digits, cxx):
    cfg = TrainConfig(precision="fixed", batch=4, seed=5)
    for mode in ("off", "sample"):
        rt = RtlTraining("tiny", session=cxx, verify=mode)
        # contraction 1 of step 1: (1 + 1) % SAMPLE_EVERY != 0, so sample skips it
        tr = Trainer(SMALL, cfg, n_train=100, executor=flip_at(rt.executor, 12),
                     observer=rt.observer)
        for s in range(3):
            tr.train_step(digits.x_train[4 * s:4 * s + 4], digits.y_train[4 * s:4 * s + 4])
        assert rt.mismatches == 0
        checked = 11 + sum(1 for s in (1, 2) for i in range(11)
                           if (s + i) % SAMPLE_EVERY == 0)
        assert rt.verified == (0 if mode == "off" else checked)


def test_sigint_checkpoint_and_resume_give_the_same_weights(digits, cxx, tmp_path):
    """SIGINT in the middle of epoch 1 writes a checkpoint; --resume (a fresh session)
    finishes with the weights of an uninterrupted run."""
    data = subset(digits, 48, 16)
    kw = dict(precision="fixed", epochs=2, batch=8, data=data, backend="rtl")
    rt = RtlTraining("tiny", session=cxx)
    train(SMALL, executor=rt.executor, observer=rt.observer,
          checkpoint=tmp_path / "full.npz", **kw)

    def interrupt(epoch, step, steps):
        if (epoch, step) == (0, 3):
            os.kill(os.getpid(), signal.SIGINT)

    rt = RtlTraining("tiny", session=cxx)
    part = tmp_path / "part.npz"
    with pytest.raises(KeyboardInterrupt):
        train(SMALL, executor=rt.executor, observer=rt.observer, checkpoint=part,
              progress=interrupt, **kw)
    assert ckpt.load(part)[1]["partial"]["pos"] == 3
    cxx.invalidate()
    rt = RtlTraining("tiny", session=cxx)
    train(SMALL, executor=rt.executor, observer=rt.observer, checkpoint=part,
          resume=True, **kw)
    a, b = ckpt.load(part), ckpt.load(tmp_path / "full.npz")
    for k in b[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    assert a[1]["history"] == b[1]["history"]


def fetta(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "fetta.sim.cli", "train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, needle", [
    (["--backend", "rtl", "--sim", "verilog"], "--sim 'verilog' unknown; allowed cxxrtl, pysim"),
    (["--backend", "rtl", "--verify", "maybe"], "--verify 'maybe' unknown"),
    (["--backend", "rtl", "--precision", "float"], "--precision float is not supported"),
    (["--backend", "rtl", "--config", "huge"], "--config 'huge' unknown"),
    (["--backend", "rtl", "--clock-mhz", "-5"], "--clock-mhz -5.0 invalid"),
    (["--backend", "numpy", "--sim", "pysim"], "--sim applies to --backend rtl only"),
    (["--backend", "fpga"], "--backend 'fpga' unknown; allowed numpy, rtl"),
])
def test_cli_bad_input_one_line(args, needle, tmp_path):
    js = tmp_path / "r.json"
    p = fetta(*args, "--epochs", "1", "--json", str(js))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert not js.exists()


@pytest.mark.slow
def test_cli_rtl_epoch_matches_numpy(tmp_path):
    """One epoch of the default digits model via the CLI (default simulator,
    verilator): mismatches 0, the
    numpy fixed trainer's JSON epochs, the RTL fields and both plots."""
    js, png = tmp_path / "rtl.json", tmp_path / "rtl.png"
    p = fetta("--backend", "rtl", "--epochs", "1", "--json", str(js), "--plot", str(png))
    assert p.returncode == 0, p.stderr
    assert "mismatches 0" in p.stdout
    r = json.loads(js.read_text())
    p = fetta("--backend", "numpy", "--precision", "fixed", "--epochs", "1", "--json",
              str(tmp_path / "np.json"))
    assert p.returncode == 0, p.stderr
    n = json.loads((tmp_path / "np.json").read_text())
    assert r["epochs"] == n["epochs"] and r["precision"] == "fixed"
    for key in ("cycles", "mac_utilization", "mismatches", "clock_mhz",
                "simulated_seconds_per_step", "on_chip_memory"):
        assert key in r
    assert r["mismatches"] == 0 and r["clock_mhz"] == preset_clock(get_config("tiny"))[0]
    assert png.is_file() and (tmp_path / "rtl.cycles.png").is_file()


@pytest.mark.parametrize("shift_slots", [False, True])
def test_resident_evaluation_runs_as_chains(digits, shift_slots):
    """With ``resident=True`` the evaluation pass runs as resident chains of
    ``EVAL_CHUNK`` rows (contractions, biases and activations on chip) once its shifts
    are calibrated: the test accuracy equals the numpy fixed trainer's, the logits are
    verified against the golden chain, and the elementwise VECs are counted. With
    ``shift_slots`` the chains' contractions read their shifts from the slots the
    training votes moved."""
    from fetta.sim.rtl_training import EVAL_CHUNK
    data = subset(digits, 128, 40)
    rt = RtlTraining("tiny", sim="verilator", verify="all", resident=True,
                     shift_slots=shift_slots)
    res = train("digits", precision="fixed", epochs=2, data=data, backend="rtl",
                executor=rt.executor, observer=rt.observer, inference=rt.inference)
    res = rt.finish(res)
    rt.close()
    want = train("digits", precision="fixed", epochs=2, data=data)
    assert [h["test_accuracy"] for h in res["epochs"]] == \
        [h["test_accuracy"] for h in want["epochs"]]
    ev = res["cycles"]["eval"]
    assert ev["chains"] >= 40 // EVAL_CHUNK and ev["elementwise"] > 0
    assert ev["chains_verified"] == ev["chains"]
    assert res["mismatches"] == 0 and res["verified"] == res["contractions"]
    assert res["shift_slots"]["on"] == shift_slots


def test_resident_evaluation_mismatch_is_reported(digits, monkeypatch):
    """A logit that differs from the golden chain stops the run with one line naming
    the rows, the element and both values."""
    import fetta.sim.chain as chain
    real = chain.reference_chain

    def off_by_one(plan, tensors, config):
        out = real(plan, tensors, config)
        out["L1/y"] = out["L1/y"].copy()
        out["L1/y"][0, 0] += 1
        return out

    monkeypatch.setattr(chain, "reference_chain", off_by_one)
    data = subset(digits, 128, 16)
    rt = RtlTraining("tiny", sim="verilator", verify="all", resident=True)
    try:
        with pytest.raises(ContractionMismatch,
                           match=r"evaluation chain rows 0\.\.7: logits element \(0, 0\)"):
            train("digits", precision="fixed", epochs=2, data=data, backend="rtl",
                  executor=rt.executor, observer=rt.observer, inference=rt.inference)
    finally:
        rt.close()
