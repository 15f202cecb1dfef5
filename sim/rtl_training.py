"""Training on the simulated accelerator: `fetta train --backend rtl`.

The reference trainer (``sw_model.train.trainer``) runs unchanged; every pairwise
contraction of a training step (forward, input gradient, core gradients, in the CSSE
plan's order) and of evaluation goes through ``RtlTraining.executor``, which runs it on
one ``sim.harness.Session`` (a live pysim or CXXRTL model). Elementwise work (bias,
ReLU, requantization, softmax, fixed-point Adam) stays in the fixed-point reference.

Lock-step verification: the trainer's observer hook sees every contraction with its
operands and output-stage parameters; ``RtlTraining.observer`` recomputes it with
``reference_contraction`` (``verify="all"``; ``"sample"`` checks a deterministic subset:
every contraction of the first training step, then those with
``(step + index) % SAMPLE_EVERY == 0`` so every plan position is checked regularly;
``"off"`` none). The first difference raises ``ContractionMismatch`` with one line:
step, phase, layer, contraction spec, element index, accelerator and reference values.

Accounting (the ``finish`` hook adds it to the results JSON):

* ``cycles``: measured accelerator cycles of the training steps, split by phase:
  ``forward``; ``input_gradient`` (backward contractions only the layer's ``dx``
  needs); ``core_gradients`` (every other backward contraction, including ones the
  joint plan shares between ``dx`` and the ``dg``); ``host_transfer`` (host-bus words
  moved, at one word per cycle — see ``sim/harness.py``); ``on_chip_moves`` (the
  MOVE instructions that bring kept results from C into the next contraction's
  layout, with ``resident=True``, ``sim/onchip.py``; 0 otherwise); ``total``. Evaluation contractions are counted apart under ``eval``.
* ``host_words_per_step``: host-bus words written and read per training step (mean).
* ``step_chains.vector_busy``: the step chains' vector-busy cycles by operation (the
  counters ``Reg.VEC`` less the others: the VEC ALU's ``vec``, ``Reg.XENT_CYCLES``,
  ``Reg.ADAM_CYCLES``), and whether they equal the model's (``timing.vector_busy``).
* ``mac_utilization``: useful MACs / (array MACs x compute cycles) over training
  contractions (``mac_utilization_with_transfer`` counts on-chip move and
  host-transfer cycles too).
* ``clock_mhz`` and simulated time and samples/s per step at that clock.
* ``on_chip_memory``: peak buffer rows and program words used vs available;
  ``peak_buffer_occupancy``: the peak rows of A, B and C as a fraction of
  ``bank_depth``.

Residency: the compiler places every contraction's operands at row 0 of buffers A and
B in that contraction's own lane layout, so the buffers hold one contraction at a time;
the session skips only rows that are already there with the same contents (e.g. a
chunked contraction's shared operand, repeated programs). With ``resident=True``
(``--resident``) results stay in C and the next contraction that reads one gets it by
MOVE instructions instead of the host writing it back (``sim/onchip.py``); the host
reads the layer results it works on (``y``, ``dx``, the core gradients:
``layers.is_root``) and, of every intermediate, one word: the largest magnitude the
adaptive-shift vote needs (``Reg.MAX_ABS``). Evaluation through ``RtlTraining.inference``
(the trainer's ``inference`` hook; ``--eval-chains``, needs ``resident=True``) runs the
whole inference pass as resident chains (
``sim.forward_chain.plan_chain``: contractions, biases and the activations on chip by
VEC epilogues), ``EVAL_CHUNK`` rows at a time, its programs at the end of program memory
(started there: a step chain's program at word 0 stays in place), once every shift of the pass is
calibrated (until then, and if a chunk does not fit the preset, the executor path);
with ``shift_slots`` its contractions take their shifts from the slots (vote none);
its logits are verified against the golden chain (``sim.chain.reference_chain``)
unless ``verify="off"``, and its cycles go to ``eval`` with the elementwise VECs as
``elementwise``.

Clock: ``--clock-mhz`` or the preset's clock (``sw_model.accel.measured.preset_clock``:
the measured Fmax of an FPGA preset's stored ``fetta synth --json`` summary, the stated
ASIC clock for a preset without a device).
"""

from __future__ import annotations

import time

import numpy as np

from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.accel.config import AccelConfig, get_config
from fetta.sw_model.accel.measured import preset_clock
from fetta.sw_model.accel.shift_slots import Vote
from fetta.sw_model.accel.timing import VECTOR_OPS
from fetta.sw_model.train.paths import DeviceStep
from fetta.sw_model.ttm.layers import backward_phases, is_root

from .jsonio import source_commit

from fetta.sim.backends.base import BACKENDS
from fetta.errors import FettaError
from .harness import Session

__all__ = ["RtlTraining", "ContractionMismatch", "VERIFY_MODES", "SIMS",
           "SAMPLE_EVERY", "PHASES", "clock_for", "plot_cycles", "EVAL_CHUNK"]

VERIFY_MODES = ("all", "sample", "off")
# Every simulator registered in sim.backends.base.BACKENDS (the compiled model first).
SIMS = ("cxxrtl", "pysim") + tuple(n for n in BACKENDS if n not in ("cxxrtl", "pysim",
                                                                      "board"))
SAMPLE_EVERY = 8
EVAL_CHUNK = 8      # rows per resident evaluation chain (digits fits `tiny` at 8, not 64)
PHASES = ("forward", "input_gradient", "core_gradients", "elementwise", "on_chip_moves",
          "host_transfer")

def clock_for(config: AccelConfig, clock_mhz: float | None) -> float:
    """The clock (MHz) of simulated time: ``clock_mhz`` if given, else the preset's
    (``sw_model.accel.measured.preset_clock``: measured Fmax of an FPGA preset, the
    stated ASIC clock otherwise)."""
    if clock_mhz is None:
        try:
            return preset_clock(config)[0]
        except ValueError as exc:
            raise ValueError(f"{exc}; or give --clock-mhz") from None
    if isinstance(clock_mhz, bool) or not (isinstance(clock_mhz, (int, float))
                                           and 0 < clock_mhz <= 2000):
        raise ValueError(f"--clock-mhz {clock_mhz!r} invalid; allowed 0 < MHz <= 2000")
    return float(clock_mhz)


class ContractionMismatch(FettaError):
    """The accelerator's result of a contraction differs from the golden model."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


class RtlTraining:
    """Executor + observer pair that runs a training on the simulated accelerator.

    Args:
        config: preset name or ``AccelConfig`` (default ``tiny``).
        sim: ``verilator`` (compiled, default), ``cxxrtl`` (compiled) or ``pysim``;
             or pass ``session=``.
        verify: ``all`` | ``sample`` | ``off``.
        clock_mhz: clock for simulated time (default: the preset's, ``clock_for``).
        resident: keep results on chip (``sim.onchip``; needs the MOVE unit).
        shift_slots: keep the adaptive shifts on chip (``sw_model.accel.shift_slots``):
             each controller of the trainer (``ShiftUse.key``) gets a slot at its first
             contraction, which the host writes once with the controller's calibrated
             shift and pending votes; from then on the contraction names the slot and
             votes on chip (no host shift, no MAX_ABS read), and with verification the
             slot's state after each contraction is compared with the trainer's
             controller (``ContractionMismatch`` naming slot, key and both states).
        step_chains: run each training step (once its shifts are calibrated) as one
             resident chain (``sim.train_chain``; needs ``resident`` and
             ``shift_slots``): forward, biases, activations, the loss gradient (XENT),
             ReLU masks and backward on chip, the host writing the batch, labels,
             weights and aligned biases and reading the logits, the core gradients,
             each layer's output gradient (for the bias gradients) and the slots; the
             trainer's ``step_chain`` hook. Verified (``verify`` all; ``sample``: the
             first chain step and every ``SAMPLE_EVERY``-th) against the trainer's
             own step run beside it on the golden model: logits, every gradient and
             every slot, the first difference raising ``ContractionMismatch``.
             Separate jobs (the calibrating step, an evaluation without
             ``--eval-chains``) then run at the end of program memory
             (``Session.job_program_at``), so they leave the step's program in place.
        onchip_update: with ``step_chains``, the optimizer on chip too
             (``plan_step_chain(update=True)``; a preset with the update unit,
             ``adam_entries``): each chain step lays its weights and biases out from
             the state memory and updates them there with ADAM instructions, so the
             host writes no weight; the host writes the state memory (moments, master
             codes) once, and again after a step the trainer ran itself. The trainer's
             own update stays the golden model: with ``verify`` the state memory is
             read back before the next chain step (and at ``finish``) and compared
             with the trainer's moments and master codes (``ContractionMismatch``
             naming step, tensor, element, field and both values); those reads are
             ``verify_words``, not the step's host words. Rank adaptation (its prior
             term) updates on the host: chain steps without the update then.
             With ``verify`` off the chip is trusted: the host reads the step's loss
             sum and accuracy count (``run_chain(xent_results=True)``: three words),
             ``Reg.SLOT_MOVED`` and the slots it names (the others' pending votes
             when the trainer syncs); the programs run lean and open with a STEP
             (derived seeds, the step's learning rate); logits and gradients stay on chip, and the
             trainer keeps only its step count and seeds (its parameters are read
             back from the state memory when it needs them: evaluation, checkpoints,
             a step it runs itself; ``state_words_read``).
    """

    def __init__(self, config="tiny", *, sim: str = "verilator", verify: str = "all",
                 clock_mhz: float | None = None, session: Session | None = None,
                 resident: bool = False, shift_slots: bool = False,
                 step_chains: bool = False, onchip_update: bool = False):
        self.config = get_config(config)
        if step_chains and not (resident and shift_slots):
            raise FettaError("--step-chains needs --resident and --shift-slots (the step's "
                             "intermediates and its adaptive shifts stay on chip)")
        if onchip_update and not step_chains:
            raise FettaError("--on-chip-update needs --step-chains (the update runs in "
                             "the step's chain)")
        if onchip_update and not self.config.adam_entries:
            raise FettaError(f"--on-chip-update needs a preset with the update unit; "
                             f"'{self.config.name}' has none (adam_entries=0)")
        self.onchip_update = bool(onchip_update)
        self._state_synced = False      # the state memory holds the trainer's state
        self._synced_after = None       # ... after this training step's update
        self._state_pending = None      # (step, trainer) whose update the chip ran
        self.state_writes = 0           # host words writing the state memory
        self.verify_words = 0           # host words reading it back to verify
        self.update_steps = 0
        self.updates_verified = 0
        self.state_entries = 0          # parameters in the state memory
        self.trust = self.onchip_update and verify == "off"
        self.state_reads = 0            # host words reading the parameters back
        self._slots_stale = False       # only the moved slots read since the last sync
        self.slot_sync_reads = 0        # host words reading every slot at a sync
        self._stale_keys = []
        self.step_chains = bool(step_chains)
        self._chain_fits = True
        self.chain_fallback = None      # why the step did not fit as a chain
        self.chain_steps = 0
        self._chain_step_nos: set = set()       # training steps run as one chain
        self.chain_steps_verified = 0
        self.chain_words = {"written": 0, "read": 0}
        self.vec_cycles = 0
        # the step chains' vector-busy cycles by operation (counters; and the model's)
        self.vector_busy = dict.fromkeys(VECTOR_OPS, 0)
        self.vector_busy_model = dict.fromkeys(VECTOR_OPS, 0)
        if shift_slots and not self.config.shift_slots:
            raise FettaError(f"--shift-slots needs a preset with shift slots; "
                             f"'{self.config.name}' has none (shift_slots=0)")
        self.shift_slots = bool(shift_slots)
        self._slot_of: dict[str, int] = {}      # controller key -> slot number
        self._slot_known: dict[str, tuple] = {}  # activation key -> its slot's state
        self.slot_writes = 0
        self.slots_checked = 0
        if verify not in VERIFY_MODES:
            raise ValueError(f"--verify {verify!r} unknown; allowed {', '.join(VERIFY_MODES)}")
        if session is None and sim not in SIMS:
            raise ValueError(f"--sim {sim!r} unknown; allowed {', '.join(SIMS)}")
        self.clock_mhz = clock_for(self.config, clock_mhz)
        self.verify = verify
        self.sim = session.backend.name if session is not None else sim
        t0 = time.perf_counter()
        self.session = session or Session(self.config, sim, resident=resident)
        if step_chains:
            # the contractions run as separate jobs (the first step, evaluation
            # outside chains) at the end of program memory: the step chain's program
            # at word 0 stays in place from step to step
            self.session.job_program_at = "top"
        self.resident = self.session.onchip is not None
        self.setup_seconds = time.perf_counter() - t0
        self._pending = []          # results of executor calls not yet observed
        self._group = None          # (train_step, layer) of buffered backward contractions
        self._group_rows = []       # [(out, a, b, compute cycles)]
        self.steps: dict[int, dict] = {}
        self.eval = {"compute": 0, "on_chip_moves": 0, "host_transfer": 0,
                     "contractions": 0, "elementwise": 0, "chains": 0,
                     "chains_verified": 0}
        self._chain_eval = self.resident
        self.useful_macs = 0
        self.compute_cycles = 0
        self.move_cycles = 0
        self.host_cycles = 0
        self.contractions = 0
        self.verified = 0
        self.mismatches = 0
        self.sim_seconds = 0.0

    # -- trainer hooks ----------------------------------------------------------------
    def executor(self, step, a, b, *, shift, rounding, out_bits, seed, b_pow2=None,
                 shift_use=None):
        if b_pow2 is not None and self.config.mac_kind != "shift":
            raise FettaError(f"power-of-two weights need a shift-MAC config; "
                             f"{self.config.name!r} has mac_kind {self.config.mac_kind!r}")
        if self._state_pending is not None:      # before a host step moves the trainer
            self._check_state(*self._state_pending)
        t0 = time.perf_counter()
        slot_kw = self._slot_args(shift, shift_use) if self.shift_slots else {}
        # resident: an intermediate stays on chip; the host reads its MAX_ABS only
        # (nothing with shift slots: the vote runs on chip)
        res = self.session.contract(step.spec, a, b, shift=shift, rounding=rounding,
                                    out_bits=out_bits, seed=seed,
                                    read_back=is_root(step.out) or not self.resident,
                                    **slot_kw)
        self.sim_seconds += time.perf_counter() - t0
        self._pending.append(res)
        return res.output

    def _slot_args(self, shift, use) -> dict:
        """``Session.contract`` arguments of a contraction whose shift comes from the
        trainer's controller ``use`` (a ``ShiftUse``): its slot, the vote, and at the
        controller's first contraction on this session the slot's initial state."""
        if use is None:
            raise FettaError("--shift-slots: the trainer's executor call has no "
                             "shift_use (a fixed-path trainer passes one)")
        k, init = self._slot_of.get(use.key), None
        if k is None:
            n = self.config.shift_slots
            if len(self._slot_of) >= n:
                raise FettaError(f"shift controller {use.key!r}: all {n} shift slots of "
                                 f"'{self.config.name}' are taken "
                                 f"({', '.join(self._slot_of)}); allowed {n} controllers")
            k = self._slot_of[use.key] = len(self._slot_of) + 1
            init = (shift, use.pending)
            self.slot_writes += 1
        return {"slot": k, "vote": Vote.CLOSE if use.vote else Vote.NONE,
                "slot_init": init}

    def _check_slot(self, ev) -> None:
        """The chip's slot of ``ev``'s controller against the trainer's after it."""
        k = self._slot_of.get(ev.shift_key)
        if k is None or ev.shift_after is None:
            return
        got = self.session.read_slot(k)
        self.slots_checked += 1
        want = (int(ev.shift_after[0]), int(ev.shift_after[1]), 0)
        if got == want:
            return
        self.mismatches += 1
        where = f"step {ev.train_step}" if ev.train_step >= 0 else \
            f"eval after epoch {-ev.train_step}"
        report = {"step": ev.train_step, "phase": ev.phase, "layer": ev.layer,
                  "index": ev.index, "spec": ev.step.spec, "slot": k, "key": ev.shift_key,
                  "accelerator": list(got), "reference": list(want)}
        raise ContractionMismatch(
            f"shift slot mismatch at {where} {ev.phase} layer {ev.layer} contraction "
            f"{ev.index} '{ev.step.spec}': slot {k} ({ev.shift_key}) accelerator "
            f"(shift, pending, gmax) {got} != reference {want}", report)

    def _slots_for(self, tr, keys) -> int:
        """Slots for controllers ``keys`` (new ones written with the trainer's state;
        an activation's slot rewritten when the trainer's controller moved since the
        chip last held it: a step the trainer ran itself votes on the host); host
        words written."""
        words = 0
        for key in keys:
            state = (tr.shifts[key].shift, tr.shifts[key].pending)
            if key in self._slot_known and self._slot_known[key] != state:
                words += self.session._init_slot(self._slot_of[key], state)
                self._slot_known[key] = state
                self.slot_writes += 1
            if key not in self._slot_of:
                n = self.config.shift_slots
                if len(self._slot_of) >= n:
                    raise FettaError(f"shift controller {key!r}: all {n} shift slots of "
                                     f"'{self.config.name}' are taken; allowed {n} "
                                     f"controllers")
                k = self._slot_of[key] = len(self._slot_of) + 1
                words += self.session._init_slot(k, state)
                self.slot_writes += 1
                if key.endswith(":act"):
                    self._slot_known[key] = state
        return words

    def step_chain(self, tr, xq, wc, labels):
        """The trainer's ``step_chain`` hook: its next training step as one resident
        chain (``sim.train_chain``), or None (the trainer's own step, through the
        executor) while a shift is not calibrated or when the step does not fit the
        preset as resident segments."""
        from fetta.sw_model.train.executor import default_executor
        from .chain import run_chain
        from .train_chain import plan_step_chain, step_gradients, step_keys
        if not self.step_chains or not self._chain_fits:
            return None
        keys = step_keys(tr, len(xq))
        if any(k not in tr.shifts or not tr.shifts[k].ready for k in keys):
            return None
        update = self.onchip_update and not tr.adapting
        if self._state_pending is not None:         # the previous chain step's update
            self._check_state(*self._state_pending)
        state_words = 0
        if self._synced_after != tr.step_no - 1:
            # a step the trainer ran itself (or none yet): the state memory is stale
            # (an evaluation in between changes nothing)
            self._state_synced = False
        if update and not self._state_synced:
            tr.sync_params()            # (current unless the chip updated them)
            state_words = self._write_state(tr)
        start = tr.step_state()
        golden = None
        if self.verify == "all" or (self.verify == "sample" and
                                    self.chain_steps % SAMPLE_EVERY == 0):
            ex, ob = tr.executor, tr.observer
            tr.executor, tr.observer = default_executor, None
            try:
                golden = tr.path.gradients(xq, wc, labels)
                after = {k: (tr.shifts[k].shift, tr.shifts[k].pending) for k in keys}
            finally:
                tr.executor, tr.observer = ex, ob
                tr.restore_step_state(start)
        slot_words = self._slots_for(tr, keys)
        # with the update: programs opening with a STEP (derived seeds, the step's
        # learning rate), the same every step but for its two words
        sc = plan_step_chain(tr, xq, wc, labels, slots=self._slot_of, update=update,
                             derive=update)
        trust = update and self.trust and golden is None
        keep, discard = sc.keep, ()
        if trust:       # the gradients and logits stay on chip: the loss and the
            keep = ()   # accuracy count come back (XENT_LOSS, XENT_CORRECT)
            discard = tuple(st[3] for st in sc.steps if "update" in st[4] and
                            any(u["kind"] == "core" for u in st[4]["update"]))
            discard += (sc.logits,)
            tr.param_source = self._read_params
            self._trust_tr = tr
        t0 = time.perf_counter()
        try:
            res = run_chain(sc.steps, sc.tensors, session=self.session, resident=True,
                            keep=keep, state=sc.state, discard=discard, stage=update,
                            xent_results=trust, lean=trust, step=sc.step)
        except FettaError as exc:
            if self.chain_steps or "does not fit" not in str(exc):
                raise
            self._chain_fits = False          # the trainer's own step from now on
            self.chain_fallback = str(exc)
            tr.restore_step_state(start)
            return None
        finally:
            self.sim_seconds += time.perf_counter() - t0
        # results kept by the executor path are gone; the copies of A, B and program
        # memory are right (the run marked what its programs wrote)
        self.session.invalidate(program=False, buffers=False)
        got = DeviceStep(res.resident.xent["loss"], res.resident.xent["correct"]) \
            if trust else step_gradients(sc, res.outputs)
        # the host's view of the slots: every slot, or (trusted) the ones SLOT_MOVED
        # names (the others' pending votes are read when the trainer needs them)
        slot_reads, clears = self._moved_slots(tr, keys) if trust else \
            (self._read_slots(tr, keys), 0)
        tr.contraction_index += len(sc.steps)
        if golden is not None:
            try:
                self._check_step(tr.step_no, sc, got, golden, keys, after)
            except ContractionMismatch as exc:
                where = self._locate(sc, keys, start[2])
                exc.report["first_difference"] = where
                raise ContractionMismatch(f"{exc}; {where['summary']}", exc.report) \
                    from None
        self._account_chain(tr.step_no, sc, res, slot_words + state_words + clears,
                            slot_reads)
        if update:
            self.update_steps += 1
            if golden is not None:      # compared once the trainer's update has run
                self._state_pending = (tr.step_no, tr)
        self._state_synced = update     # a step without the update leaves it stale
        self._synced_after = tr.step_no if update else None
        return got

    def _state_words(self, tr) -> np.ndarray:
        """The trainer's optimizer state as state-memory words (entry x (m, v, w, 0)),
        in ``train_chain.state_layout`` order."""
        opt = tr.path.opt
        ws = [g for cl in tr.params for g in cl] + list(tr.bias)
        words = np.zeros((sum(int(np.size(w)) for w in ws), 4), np.int64)
        words[:, 0] = np.concatenate([np.reshape(m, -1) for m in opt.m])
        words[:, 1] = np.concatenate([np.reshape(v, -1) for v in opt.v])
        words[:, 2] = np.concatenate([np.reshape(w, -1) for w in ws])
        return words

    def _read_slots(self, tr, keys) -> int:
        """Every slot of ``keys`` read into the trainer's controllers; host words."""
        for key in keys:
            shift, pending, _ = self.session.read_slot(self._slot_of[key])
            tr.shifts[key].shift, tr.shifts[key].pending = shift, pending
            if key in self._slot_known:
                self._slot_known[key] = (shift, pending)
        self._slots_stale = False
        return len(keys)

    def _moved_slots(self, tr, keys) -> tuple[int, int]:
        """The slots whose shift moved (``Reg.SLOT_MOVED``, then cleared) read into the
        trainer's controllers; the others' pending votes are stale until
        ``_read_slots`` (the trainer's ``sync_params``). Host words read, written."""
        from fetta.sw_model.accel.hostmap import REG_BASE, Reg
        be = self.session.backend
        moved = be.read(REG_BASE + Reg.SLOT_MOVED, 1)[0]
        words = 1
        for key in keys:
            k = self._slot_of[key]
            if moved >> (k - 1) & 1:
                shift, pending, _ = self.session.read_slot(k)
                tr.shifts[key].shift, tr.shifts[key].pending = shift, pending
                if key in self._slot_known:
                    self._slot_known[key] = (shift, pending)
                words += 1
        if moved:
            be.write(REG_BASE + Reg.SLOT_MOVED, [moved])
        self._slots_stale = True
        self._stale_keys = list(keys)
        return words, int(moved != 0)

    def _read_params(self):
        """The trainer's ``param_source``: parameters, biases and moments read back
        from the state memory (``state_layout`` order), and the slots' pending votes
        when only the moved slots were read."""
        from fetta.sw_model.accel.hostmap import ADAM_BASE
        from .train_chain import state_layout
        tr = self._trust_tr
        if self._slots_stale:
            self.slot_sync_reads += self._read_slots(tr, self._stale_keys)
        where = state_layout(tr)
        n = sum(k for _, k in where)
        raw = np.array(self.session.backend.read(ADAM_BASE, 4 * n), np.int64).reshape(n, 4)
        self.state_reads += 4 * n
        sx = lambda a: ((a + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)   # noqa: E731
        m, v, w = sx(raw[:, 0]), raw[:, 1], sx(raw[:, 2])
        parts = [slice(f, f + k) for f, k in where]
        nc = sum(len(cl) for cl in tr.params)
        params, i = [], 0
        for cl in tr.params:
            params.append([w[parts[i + k]] for k in range(len(cl))])
            i += len(cl)
        bias = [w[parts[nc + l]] for l in range(len(tr.bias))]
        return params, bias, [m[p] for p in parts], [v[p] for p in parts]

    def _write_state(self, tr) -> int:
        """Write the trainer's moments and master codes into the state memory; host
        words written."""
        from fetta.sw_model.accel.hostmap import ADAM_BASE
        words = self._state_words(tr)
        if len(words) > self.config.adam_entries:
            raise FettaError(f"{len(words)} parameters do not fit the state memory of "
                             f"'{self.config.name}' ({self.config.adam_entries} entries)")
        self.session.backend.write(ADAM_BASE, (words.reshape(-1) & 0xFFFFFFFF).tolist())
        self._state_synced = True
        self.state_writes += words.size
        self.state_entries = len(words)
        return int(words.size)

    def _check_state(self, step_no, tr) -> None:
        """The state memory against the trainer's optimizer after step ``step_no``'s
        update (the trainer's own, the golden model)."""
        from fetta.sw_model.accel.hostmap import ADAM_BASE
        from .train_chain import state_layout
        self._state_pending = None
        want = self._state_words(tr)
        raw = np.array(self.session.backend.read(ADAM_BASE, want.size),
                       np.int64).reshape(want.shape)
        self.verify_words += want.size
        got = raw.copy()
        for k in (0, 2):                         # m and w read back signed
            got[:, k] = ((raw[:, k] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        bad = np.argwhere(got[:, :3] != want[:, :3])
        if not len(bad):
            self.updates_verified += 1
            return
        e, f = (int(v) for v in bad[0])
        names = [f"L{l}/g{k + 1}" for l, cl in enumerate(tr.params) for k in range(len(cl))]
        names += [f"L{l}/bias" for l in range(len(tr.bias))]
        t = max(i for i, (first, _) in enumerate(state_layout(tr)) if first <= e)
        first = state_layout(tr)[t][0]
        field = ("first moment m", "second moment v", "master code w")[f]
        self.mismatches += 1
        report = {"step": step_no, "phase": "update", "tensor": names[t],
                  "element": e - first, "field": field[-1],
                  "accelerator": int(got[e, f]), "reference": int(want[e, f])}
        raise ContractionMismatch(
            f"mismatch at step {step_no} update {names[t]} element {e - first} {field}: "
            f"accelerator {int(got[e, f])} != reference {int(want[e, f])}", report)

    def _check_step(self, step_no, sc, got, golden, keys, after) -> None:
        """The chain's logits, gradients and slots against the trainer's own step."""
        z, fz, gcores, gbias = got
        wz, wfz, wcores, wbias = golden
        pairs = [("logits", len(gcores) - 1, z, fz, wz, wfz)]
        for l in range(len(gcores)):
            pairs += [(f"L{l}/dg{k}", l, g, f, wg, wf) for k, ((g, f), (wg, wf)) in
                      enumerate(zip(gcores[l], wcores[l]), start=1)]
            pairs.append((f"L{l}/bias gradient", l, *gbias[l], *wbias[l]))
        for name, layer, g, f, w, wf in pairs:
            g, w = np.asarray(g), np.asarray(w)
            if f == wf and g.shape == w.shape and np.array_equal(g, w):
                continue
            self.mismatches += 1
            if g.shape != w.shape or f != wf:
                elem, gv, rv = None, f"shape {g.shape} frac {f}", f"shape {w.shape} frac {wf}"
            else:
                elem = tuple(int(i) for i in np.argwhere(g != w)[0])
                gv, rv = int(g[elem]), int(w[elem])
            report = {"step": step_no, "phase": "step chain", "layer": layer,
                      "tensor": name, "element": elem, "accelerator": gv, "reference": rv}
            raise ContractionMismatch(
                f"mismatch at step {step_no} step chain layer {layer} {name} element "
                f"{elem}: accelerator {gv} != reference {rv}", report)
        for key in keys:
            k = self._slot_of[key]
            chip = (self.session.read_slot(k)[:2])
            self.slots_checked += 1
            if tuple(chip) != tuple(after[key]):
                self.mismatches += 1
                report = {"step": step_no, "phase": "step chain", "slot": k, "key": key,
                          "accelerator": list(chip), "reference": list(after[key])}
                raise ContractionMismatch(
                    f"shift slot mismatch at step {step_no} step chain: slot {k} ({key}) "
                    f"accelerator (shift, pending) {tuple(chip)} != reference "
                    f"{tuple(after[key])}", report)
        self.verified += len(sc.steps)
        self.chain_steps_verified += 1

    def _locate(self, sc, keys, start_ctl: dict) -> dict:
        """After a step chain's mismatch: the chain run again with every slot reset to
        the step's starting state and every intermediate read back, each compared in
        chain order with the chain's golden model (``chain.reference_chain``); the
        first difference named by chain step, phase, layer, operation (the contraction
        and its epilogues), tensor, element and both values. ``summary``: one line."""
        from .chain import check_chain, reference_chain, run_chain
        from fetta.sw_model.program.resident_plan import _makes
        # without the optimizer's updates: the rerun must not update the state again
        steps = [(s, a, b, o, {k: v for k, v in p.items() if k != "update"})
                 for s, a, b, o, p in sc.steps]
        plan = check_chain(steps, sc.tensors)
        want = reference_chain(plan, sc.tensors, self.config, step=sc.step)
        for key in keys:
            self.session._init_slot(self._slot_of[key], start_ctl[key])
        made = tuple(x for st in plan for x in _makes(st))
        try:
            res = run_chain(steps, sc.tensors, session=self.session, resident=True,
                            keep=made, step=sc.step)
        except FettaError as exc:
            return {"summary": f"the rerun reading every intermediate failed: {exc}"}
        finally:
            self.session.invalidate()
        for i, st in enumerate(plan):
            for name in _makes(st):
                got, ref = np.asarray(res.outputs[name]), want[name]
                if np.array_equal(got, ref):
                    continue
                elem = tuple(int(v) for v in np.argwhere(got != ref)[0])
                ops = "contraction" + "".join(f" + {k}" for k in
                                              ("bias", "mask", "act", "xent") if k in st[4])
                out = {"chain_step": i, "spec": st[0], "phase": sc.phases[i],
                       "layer": sc.layers[i], "operation": ops, "tensor": name,
                       "element": elem, "accelerator": int(got[elem]),
                       "reference": int(ref[elem])}
                out["summary"] = (f"first difference on chip: chain step {i} ({sc.phases[i]} "
                                  f"layer {sc.layers[i]} '{st[0]}', {ops}) {name} element "
                                  f"{elem}: accelerator {out['accelerator']} != chain "
                                  f"golden {out['reference']}")
                return out
        return {"summary": "the rerun with every intermediate read back equals the chain's "
                           "golden model at every step (the chain or the state it started "
                           "from differs from the trainer's step)"}

    def _account_chain(self, step_no, sc, res, slot_written: int, slot_read: int) -> None:
        """Cycles by phase of one step chain: each step's CONTRACT cycles to its phase
        (the HALTs to the last step's), the epilogues' to ``elementwise``, the MOVEs',
        the host words (and the slot words: written once, read every step)."""
        run = res.resident
        rec = self.steps.setdefault(step_no, dict.fromkeys(PHASES, 0))
        compute = run.cycles["compute"]
        st = self.session.stats
        for seg in run.segments:
            if seg.plan is None:
                continue
            for bank, rows in seg.plan.peak_rows.items():     # the chain's homes
                st["peak_rows"][bank.lower()] = max(st["peak_rows"][bank.lower()], rows)
            st["peak_program_words"] = max([st["peak_program_words"]] +
                                           [len(p) for p in seg.plan.programs])
            for i, cc in enumerate(seg.plan.compiled):
                c = cc.predicted_cycles - 2
                rec[sc.phases[seg.lo + i]] += c
                compute -= c
        rec[sc.phases[-1]] += compute          # HALTs and separate-job segments
        host = run.cycles["host_transfer"] + slot_written + slot_read
        rec["elementwise"] += run.cycles["elementwise"]
        rec["on_chip_moves"] += run.cycles["on_chip_moves"]
        rec["host_transfer"] += host
        self.useful_macs += run.useful_macs
        self.compute_cycles += run.cycles["compute"]
        self.move_cycles += run.cycles["on_chip_moves"]
        self.vec_cycles += run.cycles["elementwise"]
        for k in VECTOR_OPS:
            self.vector_busy[k] += run.cycles["vector_busy"][k]
            self.vector_busy_model[k] += run.cycles["vector_busy_predicted"][k]
        self.host_cycles += host
        self.chain_words["written"] += run.host_words["written"] + slot_written
        self.chain_words["read"] += run.host_words["read"] + slot_read
        self.contractions += len(sc.steps)
        self.chain_steps += 1
        self._chain_step_nos.add(step_no)

    def inference(self, tr, xq, wc):
        """The trainer's evaluation hook (``Trainer.inference``): the inference pass as
        resident chains of ``EVAL_CHUNK`` rows; ``(logit codes, frac)``, or None to let
        the trainer run its own pass (a shift not calibrated yet, not resident, or a
        chunk that does not fit)."""
        from .chain import check_chain, reference_chain, run_chain
        from .forward_chain import plan_chain
        if not self.resident:
            raise FettaError("RtlTraining.inference needs resident=True (evaluation "
                             "chains run resident)")
        if not self._chain_eval:        # a chunk did not fit: the trainer's own pass
            return None
        if plan_chain(tr, xq[:1], wc, len(xq)) is None:
            return None
        zs, frac = [], None
        slots = self._slot_of if self.shift_slots else None
        for lo in range(0, len(xq), EVAL_CHUNK):
            steps, tensors, name, frac = plan_chain(tr, xq[lo:lo + EVAL_CHUNK], wc, len(xq),
                                                    slots)
            t0 = time.perf_counter()
            try:
                # at the end of program memory: a step chain's program at word 0
                # stays (the next step rewrites only its STEP words)
                res = run_chain(steps, tensors, session=self.session, resident=True,
                                program_at="top")
            except FettaError:
                if lo:
                    raise
                self._chain_eval = False      # does not fit: the executor path
                return None
            finally:
                self.sim_seconds += time.perf_counter() - t0
            z = res.outputs[name]
            if self.verify != "off":
                want = reference_chain(check_chain(steps, tensors), tensors,
                                       self.config)[name]
                bad = np.argwhere(z != want)
                if len(bad):
                    i = tuple(int(v) for v in bad[0])
                    msg = (f"evaluation chain rows {lo}..{lo + len(z) - 1}: logits "
                           f"element {i}: accelerator {z[i]}, reference {want[i]}")
                    raise ContractionMismatch(msg, {"phase": "eval", "rows": [lo, lo + len(z)],
                                                    "element": list(map(int, i)),
                                                    "accelerator": int(z[i]),
                                                    "reference": int(want[i])})
                self.eval["chains_verified"] += 1     # at their logits
            cyc = res.cycles
            for k in ("compute", "on_chip_moves", "elementwise", "host_transfer"):
                self.eval[k] += cyc[k]
            self.eval["contractions"] += len(steps)
            self.eval["chains"] += 1
            zs.append(z)
        return np.concatenate(zs), frac

    def observer(self, ev) -> None:
        if not self._pending:
            raise FettaError("observer called without an accelerator result: the "
                             "trainer's executor is not RtlTraining.executor")
        res = self._pending.pop()
        if self._should_verify(ev):
            if self.shift_slots:        # first: a wrong shift explains a wrong result
                self._check_slot(ev)
            self._check(ev)
        self.contractions += 1
        compute = res.cycles - res.move_cycles
        if ev.phase == "eval":
            self.eval["compute"] += compute
            self.eval["on_chip_moves"] += res.move_cycles
            self.eval["host_transfer"] += res.host_cycles
            self.eval["contractions"] += 1
            return
        self.useful_macs += res.useful_macs
        self.compute_cycles += compute
        self.move_cycles += res.move_cycles
        self.host_cycles += res.host_cycles
        rec = self.steps.setdefault(ev.train_step, dict.fromkeys(PHASES, 0))
        rec["host_transfer"] += res.host_cycles
        rec["on_chip_moves"] += res.move_cycles
        if ev.phase == "forward":
            self._flush()
            rec["forward"] += compute
            return
        key = (ev.train_step, ev.layer)
        if key != self._group:
            self._flush()
            self._group = key
        self._group_rows.append((ev.step.out, ev.step.a, ev.step.b, compute))

    def _flush(self) -> None:
        """Attribute a finished layer's backward contractions to input_gradient (only
        ``dx`` needs them) or core_gradients (everything else)."""
        if self._group is None:
            return
        rows = self._group_rows
        phase = backward_phases((out, a, b) for out, a, b, _ in rows)
        rec = self.steps[self._group[0]]
        for out, _, _, cyc in rows:
            rec[phase[out]] += cyc
        self._group, self._group_rows = None, []

    def _should_verify(self, ev) -> bool:
        if self.verify == "all":
            return True
        if self.verify == "off":
            return False
        return ev.train_step == 0 or (ev.train_step + ev.index) % SAMPLE_EVERY == 0

    def _check(self, ev) -> None:
        ref = reference_contraction(ev.step.spec, ev.a, ev.b, shift=ev.shift,
                                    rounding=ev.rounding, out_bits=ev.out_bits,
                                    seed=ev.seed, acc_bits=self.config.acc_bits,
                                    b_pow2=ev.b_pow2)
        got = np.asarray(ev.out)
        self.verified += 1
        if got.shape == ref.shape and np.array_equal(got, ref):
            return
        self.mismatches += 1
        if got.shape != ref.shape:
            elem, gv, rv = None, f"shape {got.shape}", f"shape {ref.shape}"
        else:
            elem = tuple(int(i) for i in np.argwhere(got != ref)[0])
            gv, rv = int(got[elem]), int(ref[elem])
        where = f"step {ev.train_step}" if ev.train_step >= 0 else \
            f"eval after epoch {-ev.train_step}"
        report = {"step": ev.train_step, "phase": ev.phase, "layer": ev.layer,
                  "index": ev.index, "spec": ev.step.spec, "element": elem,
                  "accelerator": gv, "reference": rv, "shift": ev.shift,
                  "rounding": ev.rounding, "out_bits": ev.out_bits, "seed": ev.seed}
        raise ContractionMismatch(
            f"mismatch at {where} {ev.phase} layer {ev.layer} contraction {ev.index} "
            f"'{ev.step.spec}' element {elem}: accelerator {gv} != reference {rv} "
            f"(shift {ev.shift}, {ev.rounding}, out_bits {ev.out_bits}, seed {ev.seed})",
            report)

    # -- reports ----------------------------------------------------------------------
    def report(self) -> dict:
        self._flush()
        cfg = self.config
        per_step = [dict(v, step=k, total=sum(v.values())) for k, v in
                    sorted(self.steps.items())]
        for rec in per_step:      # after the total: a flag, not cycles
            rec["chain"] = rec["step"] in self._chain_step_nos
        cycles = {p: sum(s[p] for s in per_step) for p in PHASES}
        cycles["total"] = sum(cycles.values())
        cycles["eval"] = dict(self.eval, total=self.eval["compute"] +
                              self.eval["on_chip_moves"] + self.eval["elementwise"] +
                              self.eval["host_transfer"])
        n = len(per_step)
        mean = cycles["total"] / n if n else 0.0
        hz = self.clock_mhz * 1e6
        st = self.session.stats
        lanes = {"a": cfg.a_lanes, "b": cfg.b_lanes, "c": cfg.c_lanes}
        used = {k: st["peak_rows"][k] * lanes[k] * 2 for k in "abc"}
        avail = {k: cfg.bank_depth * lanes[k] * 2 for k in "abc"}
        used["program"], avail["program"] = st["peak_program_words"] * 4, cfg.prog_depth * 4
        used["total"], avail["total"] = sum(used.values()), sum(avail.values())
        return {
            "accelerator": {"config": cfg.to_dict(), "sim": self.sim, "macs": cfg.macs},
            "commit": source_commit(),
            "verify": self.verify, "contractions": self.contractions,
            "resident": self.resident,
            "shift_slots": {"on": self.shift_slots, "slots_used": len(self._slot_of),
                            "slot_writes": self.slot_writes,
                            "slots_checked": self.slots_checked},
            "on_chip_results": dict(self.session.onchip.stats) if self.resident else None,
            "verified": self.verified, "mismatches": self.mismatches,
            "cycles": cycles, "cycles_per_step": per_step, "steps_simulated": n,
            "mac_utilization": self.useful_macs / (cfg.macs * self.compute_cycles)
            if self.compute_cycles else 0.0,
            "mac_utilization_with_transfer": self.useful_macs / (
                cfg.macs * (self.compute_cycles + self.move_cycles + self.vec_cycles +
                            self.host_cycles))
            if self.compute_cycles else 0.0,
            # over every cycle of the training steps (contractions, elementwise, moves,
            # host transfer): the same as with_transfer, named as the issue names it
            "mac_utilization_all_cycles": self.useful_macs / (cfg.macs * cycles["total"])
            if cycles["total"] else 0.0,
            "step_chains": {"on": self.step_chains, "steps": self.chain_steps,
                            "verified": self.chain_steps_verified,
                            "fallback": self.chain_fallback,
                            "vector_busy": dict(self.vector_busy),
                            "vector_busy_model_exact":
                                self.vector_busy == self.vector_busy_model,
                            # trusted chains run lean (no CLEAR, no counter reads per
                            # program); the counters are read and checked against the
                            # model when a series closes (these words, not per step)
                            "lean": self.trust,
                            "counter_settle_words": self.session.backend.settle_reads},
            "on_chip_update": {"on": self.onchip_update, "steps": self.update_steps,
                               "verified": self.updates_verified,
                               "parameters": self.state_entries,
                               "state_words_written": self.state_writes,
                               "verify_words_read": self.verify_words,
                               "trusted": self.trust,
                               "param_words_read": self.state_reads,
                               "slot_words_read_at_sync": self.slot_sync_reads},
            "clock_mhz": self.clock_mhz,
            "simulated_seconds_per_step": mean / hz,
            "simulated_seconds_total": cycles["total"] / hz,
            "host_words": {"written": st["words_written"] + self.chain_words["written"],
                           "read": st["words_read"] + self.chain_words["read"],
                           "skipped_resident": st["words_skipped"]},
            "host_words_per_step": cycles["host_transfer"] / n if n else 0.0,
            "peak_buffer_occupancy": {k: st["peak_rows"][k] / cfg.bank_depth
                                      for k in "abc"},
            "compile_cache": {"hits": st["compile_hits"], "misses": st["compile_misses"]},
            "on_chip_memory": {"used_bytes": used, "available_bytes": avail,
                               "peak_rows": dict(st["peak_rows"]),
                               "bank_depth": cfg.bank_depth},
            "sim_wall_seconds": self.sim_seconds, "setup_seconds": self.setup_seconds,
        }

    def finish(self, results: dict) -> dict:
        if self._state_pending is not None:      # the last chain step's update
            self._check_state(*self._state_pending)
        self.session.backend.settle_counters()   # the last lean runs' counters
        rep = self.report()
        out = dict(results, **rep)
        if rep["simulated_seconds_per_step"]:
            out["accelerator_samples_per_second"] = (
                results["batch"] / rep["simulated_seconds_per_step"])
        return out

    def close(self) -> None:
        self.session.close()


def plot_cycles(results: dict, path) -> None:
    """Stacked cycles per training step by phase (one bar per step)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = results["cycles_per_step"]
    x = np.array([s["step"] for s in steps])
    fig, ax = plt.subplots(figsize=(9, 3.5))
    bottom = np.zeros(len(steps))
    for p in PHASES:
        v = np.array([s[p] for s in steps], dtype=float)
        ax.bar(x, v, bottom=bottom, width=1.0, label=p.replace("_", " "))
        bottom += v
    ax.set_xlabel("training step")
    ax.set_ylabel("cycles")
    acc = results["accelerator"]
    ax.set_title(f"{results['model']} on {acc['config']['name']} ({acc['macs']} MACs, "
                 f"{results['clock_mhz']:g} MHz: "
                 f"{results['simulated_seconds_per_step'] * 1e3:.2f} ms/step)")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
