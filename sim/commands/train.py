"""`fetta train`: train a TTM model with the reference trainer or on the simulated
accelerator.

Backends are looked up in ``BACKENDS``: name -> ``factory(args) -> dict`` of extra
keyword arguments for ``sw_model.train.trainer.train`` (``executor``, ``observer``, ...) plus
optional ``"finish"`` (``finish(results) -> results``), ``"plot"`` (``plot(results,
path)``, an extra figure written next to ``--plot`` as ``<stem>.cycles<ext>``) and
``"close"`` callables. ``numpy`` is the golden model; ``rtl`` runs every contraction
on the accelerator (``sim/rtl_training.py``).
"""

from __future__ import annotations

from pathlib import Path

from fetta.sim.jsonio import write_json_atomic
from .options import add_config

HELP = "train a TTM network (digits or mnist-tt) in float, fixed or pow2 precision"


RTL_ONLY = ("sim", "config", "verify", "clock_mhz", "resident", "eval_chains",
            "shift_slots", "step_chains", "on_chip_update")


def _numpy_backend(args) -> dict:
    for name in RTL_ONLY:
        if getattr(args, name, None) is not None:
            raise ValueError(f"--{name.replace('_', '-')} applies to --backend rtl only")
    return {}


# Printed when --sim is not given and no Verilator is found. The times are README
# "Training on the RTL" (6 min 56 s with --sim cxxrtl, 58.0 s with Verilator) and
# "Compiled simulation" (CXXRTL first build 1-3 minutes on tiny).
CXXRTL_NOTICE = ("fetta train: {why}; using --sim cxxrtl instead (the default run takes "
                 "about 7 minutes plus a 1-3 minute first build, about 1 minute with "
                 "Verilator)")


def default_sim() -> str:
    """``--sim`` when not given: ``verilator`` if ``sim/compiled/verilator_tool.py``
    finds one (system or the PyPI wheel), else ``cxxrtl`` with a one-line notice on
    stderr."""
    import sys

    from fetta.errors import FettaError
    from fetta.sim.compiled.verilator_tool import find_verilator
    try:
        find_verilator()
    except FettaError as exc:
        why = str(exc).splitlines()[0] if str(exc) else "verilator not found"
        print(CXXRTL_NOTICE.format(why=why), file=sys.stderr)
        return "cxxrtl"
    return "verilator"


def _rtl_backend(args) -> dict:
    from ..rtl_training import SIMS, VERIFY_MODES, RtlTraining, plot_cycles
    if args.precision != "fixed":
        raise ValueError(f"--precision {args.precision} is not supported on --backend rtl; "
                         f"allowed fixed (the accelerator's integer datapath)")
    config = args.config or "tiny"
    sim = args.sim or default_sim()
    if sim not in SIMS:
        raise ValueError(f"--sim {sim!r} unknown; allowed {', '.join(SIMS)}")
    verify = args.verify or "all"
    if verify not in VERIFY_MODES:
        raise ValueError(f"--verify {verify!r} unknown; allowed {', '.join(VERIFY_MODES)}")
    if args.eval_chains and not args.resident:
        raise ValueError("--eval-chains needs --resident (the chains run resident)")
    if args.step_chains and not (args.resident and args.shift_slots):
        raise ValueError("--step-chains needs --resident and --shift-slots (the step's "
                         "intermediates and its adaptive shifts stay on chip)")
    if args.on_chip_update and not args.step_chains:
        raise ValueError("--on-chip-update needs --step-chains (the update runs in the "
                         "step's chain)")
    rt = RtlTraining(config, sim=sim, verify=verify, clock_mhz=args.clock_mhz,
                     resident=bool(args.resident), shift_slots=bool(args.shift_slots),
                     step_chains=bool(args.step_chains),
                     onchip_update=bool(args.on_chip_update))
    extra = {"inference": rt.inference} if args.eval_chains else {}
    if args.step_chains:
        extra["step_chain"] = rt.step_chain
    return {"executor": rt.executor, "observer": rt.observer, "finish": rt.finish,
            "plot": plot_cycles, "close": rt.close, **extra}


BACKENDS = {"numpy": _numpy_backend, "rtl": _rtl_backend}
PLOT_FORMATS = (".png", ".pdf", ".svg")


def add_arguments(p) -> None:
    from fetta.sw_model.train.trainer import DEFAULT_BATCH, DEFAULTS, PRECISIONS, RANK_THRESHOLD
    p.add_argument("--backend", default="numpy",
                   help="where contractions run: numpy (golden model) or rtl (the "
                        "simulated accelerator, lock-step verified) [default numpy]")
    p.add_argument("--model", default="digits",
                   help="preset (digits, mnist-tt) or a JSON model file "
                        "(see sw_model/ttm/models.py) [default digits]")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="float64, fixed point (4-bit weights, 8-bit activations, 16-bit "
                        "gradients) or pow2 (power-of-two weights) [default float; "
                        "fixed with --backend rtl]")
    p.add_argument("--rank-adapt", action="store_true",
                   help="Bayesian rank adaptation: prune TT ranks during training")
    p.add_argument("--rank-threshold", type=float, default=RANK_THRESHOLD,
                   help=f"prune a rank index when its variance <= this "
                        f"[default {RANK_THRESHOLD:g}]")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs [default {DEFAULTS['float']['epochs']}]")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"mini-batch size [default {DEFAULT_BATCH}]")
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate [default {DEFAULTS['float']['lr']:g}]")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"),
                   help="float only: adam or sgd with momentum 0.9 [default adam]")
    p.add_argument("--seed", type=int, default=0, help="random seed [default 0]")
    p.add_argument("--json", metavar="PATH", help="write the results JSON here")
    p.add_argument("--plot", metavar="PATH", help="write loss/accuracy curves (PNG)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="save an atomic checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists")
    p.add_argument("--mnist-dir", metavar="DIR",
                   help="directory with the four MNIST IDX files (mnist-tt)")
    rtl = p.add_argument_group("rtl backend")
    rtl.add_argument("--sim", default=None,
                     help="simulator: verilator (compiled with Verilator, the fastest), "
                          "cxxrtl (compiled with CXXRTL), pysim (Amaranth's Python "
                          "simulator) or another registered simulator backend "
                          "[default verilator; cxxrtl, with a notice, if no Verilator "
                          "is found]")
    add_config(rtl, default=None, default_text="tiny")
    rtl.add_argument("--verify", default=None,
                     help="lock-step check of every contraction against the golden model: "
                          "all, sample (a deterministic subset) or off [default all]")
    rtl.add_argument("--resident", action="store_const", const=True, default=None,
                     help="keep results on chip: a result stays in buffer C and MOVE "
                          "instructions copy it into the next contraction that reads it "
                          "(sim/onchip.py); needs a preset with the MOVE unit")
    rtl.add_argument("--eval-chains", action="store_const", const=True, default=None,
                     help="with --resident: evaluate as resident chains of 8 rows, the "
                          "biases and activations on chip (sim/forward_chain.py); on "
                          "'tiny' this costs more cycles than the default (README)")
    rtl.add_argument("--shift-slots", action="store_const", const=True, default=None,
                     help="keep the adaptive shifts on chip: each contraction takes its "
                          "shift from a shift slot and votes on chip (the host writes a "
                          "slot once, at its first calibration); needs a preset with "
                          "shift slots (not ice40)")
    rtl.add_argument("--step-chains", action="store_const", const=True, default=None,
                     help="with --resident and --shift-slots: run each training step "
                          "(after the first, which calibrates the shifts) as one resident "
                          "chain: forward, biases, activations, loss gradient (XENT), "
                          "ReLU masks and backward on chip (sim/train_chain.py); the "
                          "digits step at batch 64 fits 'large', not 'tiny'")
    rtl.add_argument("--on-chip-update", action="store_const", const=True, default=None,
                     help="with --step-chains: the optimizer on chip too (the ADAM "
                          "instruction on the update unit's state memory): each step "
                          "lays its weights out from the state memory and updates them "
                          "there, the host writing no weight; verified against the "
                          "trainer's own update (not with --rank-adapt)")
    rtl.add_argument("--clock-mhz", type=float, default=None,
                     help="clock for simulated time [default: the preset's clock: the "
                          "measured Fmax of an FPGA preset, the stated ASIC clock "
                          "otherwise (sw_model/accel/measured.py)]")


def _check_out_path(flag: str, path) -> None:
    if path is None:
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path!r}: directory {str(parent)!r} does not exist")
    if Path(path).is_dir():
        raise ValueError(f"{flag} {path!r} is a directory; give a file path")


def plot_curves(results: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [e["epoch"] for e in results["epochs"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(ep, [e["loss"] for e in results["epochs"]])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax2.plot(ep, [e["train_accuracy"] for e in results["epochs"]], label="train")
    ax2.plot(ep, [e["test_accuracy"] for e in results["epochs"]], label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    fig.suptitle(f"{results['model']} {results['precision']} ({results['backend']})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(args) -> int:
    from fetta.sw_model.train import checkpoint as ckpt
    from fetta.sw_model.train.data import load_dataset
    from fetta.sw_model.ttm.models import resolve_model
    from fetta.sw_model.train.trainer import TrainConfig

    if args.backend not in BACKENDS:
        raise ValueError(f"--backend {args.backend!r} unknown; allowed "
                         f"{', '.join(BACKENDS)}")
    for flag, val in (("--json", args.json), ("--plot", args.plot),
                      ("--checkpoint", args.checkpoint)):
        _check_out_path(flag, val)
    if args.plot and Path(args.plot).suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"--plot {args.plot!r}: extension unsupported; allowed "
                         f"{', '.join(PLOT_FORMATS)}")
    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint PATH")
    if args.precision is None:
        args.precision = "fixed" if args.backend == "rtl" else "float"
    model = resolve_model(args.model)
    cfg = TrainConfig(precision=args.precision, epochs=args.epochs, batch=args.batch,
                      lr=args.lr, optimizer=args.optimizer, seed=args.seed,
                      rank_adapt=args.rank_adapt, rank_threshold=args.rank_threshold)
    data = load_dataset(model.dataset, args.mnist_dir)
    if args.resume and ckpt.exists(args.checkpoint):
        ckpt.check_compatible(ckpt.load(args.checkpoint)[1], model, cfg)
    extra = dict(BACKENDS[args.backend](args))
    finish = extra.pop("finish", None)
    plot_extra = extra.pop("plot", None)
    close = extra.pop("close", None)
    try:
        results = _train(args, cfg, model, data, extra)
    finally:
        if close is not None:
            close()
    if finish is not None:
        results = finish(results)
    mem = results["memory"]
    print(f"{results['model']} {results['precision']} on {results['backend']}: "
          f"test accuracy {results['test_accuracy'] * 100:.2f}% after "
          f"{len(results['epochs'])} epochs, TT params {results['initial_tt_params']} -> "
          f"{results['tt_params']} (ranks {results['final_ranks']}), training memory "
          f"{mem['tt']['total']} B vs {mem['dense_fp32']['total']} B dense FP32 "
          f"({mem['reduction_total']:.1f}x), {results['wall_seconds']:.1f} s")
    for line in rtl_summary(results):
        print(line)
    if args.json:
        write_json_atomic(args.json, results)
    if args.plot:
        plot_curves(results, args.plot)
        if plot_extra is not None:
            p = Path(args.plot)
            plot_extra(results, p.with_name(f"{p.stem}.cycles{p.suffix}"))
    return 0


def rtl_summary(results: dict) -> list[str]:
    """The accelerator's lines of ``fetta train``'s summary (none for a NumPy run):
    mismatches, cycles per step by phase, host words, utilization, and with step
    chains the vector unit's busy cycles per chain step by operation."""
    if "cycles" not in results:
        return []
    c = results["cycles"]
    out = [f"accelerator {results['accelerator']['config']['name']} "
           f"({results['accelerator']['sim']}): mismatches {results['mismatches']} "
           f"({results['verified']} of {results['contractions']} contractions verified), "
           f"{c['total'] / max(1, results['steps_simulated']):.0f} cycles/step "
           f"(forward {c['forward']}, input gradient {c['input_gradient']}, core "
           f"gradients {c['core_gradients']}, on-chip moves {c['on_chip_moves']}, "
           f"elementwise {c.get('elementwise', 0)}, host transfer "
           f"{c['host_transfer']} in total), "
           f"{results['host_words_per_step']:.0f} host words/step, MAC utilization "
           f"{results['mac_utilization'] * 100:.1f}% "
           f"({results['mac_utilization_with_transfer'] * 100:.1f}% with transfer), "
           f"{results['simulated_seconds_per_step'] * 1e3:.3f} ms/step at "
           f"{results['clock_mhz']:g} MHz"]
    sc = results.get("step_chains", {})
    if sc.get("vector_busy") and sc["steps"]:
        exact = "= model" if sc["vector_busy_model_exact"] else "!= model"
        out.append("vector unit busy per chain step: " + ", ".join(
            f"{k} {v / sc['steps']:.0f}" for k, v in sc["vector_busy"].items()) +
            f" ({exact})")
    return out


def _train(args, cfg, model, data, extra) -> dict:
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    from fetta.sw_model.train.trainer import train

    err = Console(stderr=True)
    steps = max(1, len(data.x_train) // cfg.batch)
    with Progress(TextColumn("[bold]train[/] epoch {task.fields[epoch]}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err, transient=False) as prog:
        task = prog.add_task("train", total=cfg.epochs * steps, epoch=1, info="")

        def progress(epoch, step, nsteps):
            prog.update(task, completed=epoch * nsteps + step, epoch=epoch + 1)

        def on_epoch(rec):
            prog.update(task, info=f"loss {rec['loss']:.4f} test "
                                   f"{rec['test_accuracy'] * 100:.2f}% "
                                   f"tt {rec['tt_params']}")

        results = train(model, precision=cfg.precision, epochs=cfg.epochs,
                        batch=cfg.batch, lr=cfg.lr, seed=cfg.seed, optimizer=cfg.optimizer,
                        rank_adapt=cfg.rank_adapt, rank_threshold=cfg.rank_threshold,
                        data=data, checkpoint=args.checkpoint, resume=args.resume,
                        progress=progress, backend=args.backend, on_epoch=on_epoch,
                        **extra)
    return results
