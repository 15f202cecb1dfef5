"""The optimizer on chip (``plan_step_chain(update=True)``, ``RtlTraining(onchip_update=
True)``): a short digits training on the RTL whose steps lay their weights out from the
update unit's state memory and update them there (ADAM) equals the NumPy fixed trainer
with every step's state memory verified against the trainer's own update; a wrong
state word is reported naming step, tensor, element and field; the chain plans need
the unit."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import check_chain
from fetta.sim.rtl_training import ContractionMismatch, RtlTraining
from fetta.sim.train_chain import plan_step_chain, state_layout
from fetta.sw_model.accel.adam import Adam
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import ADAM_BASE
from fetta.sw_model.accel.isa import Op, instructions
from fetta.sw_model.accel.step import StepParams
from fetta.sw_model.arith.fixedpoint import dither_hash
from fetta.sw_model.program.resident_plan import literal_seeds, plan_segments
from fetta.sw_model.train.data import load_dataset
from fetta.sw_model.train.trainer import TrainConfig, Trainer, train
from fetta.sw_model.ttm.models import resolve_model

from rtl_train_runs import BATCH, small_digits, train_on_rtl


@pytest.fixture(scope="module")
def digits():
    return load_dataset(resolve_model("digits").dataset, None)


def _trainer(digits, **kw):
    return Trainer(resolve_model("digits"), TrainConfig(precision="fixed", batch=BATCH,
                                                        seed=0), n_train=len(digits.x_train),
                   **kw)


def test_the_step_chain_carries_every_update_and_loads_every_parameter(digits):
    tr = _trainer(digits)
    tr.train_step(digits.x_train[:BATCH], digits.y_train[:BATCH])
    x, y = digits.x_train[BATCH:2 * BATCH], digits.y_train[BATCH:2 * BATCH]
    xq, wc = tr.path.quantize_input(x), tr.path.contraction_weights()
    start = tr.step_state()
    plan_step_chain(tr, xq, wc, y)
    drawn = tr.step_state()
    tr.restore_step_state(start)
    sc = plan_step_chain(tr, xq, wc, y, update=True)
    # the update's seeds are the ones the trainer's own update draws next: not drawn
    assert tr.step_state() == drawn
    ups = [u for *_, p in sc.steps for u in p.get("update", ())]
    layout = state_layout(tr)
    assert sorted(u["state"] for u in ups) == [first for first, _ in layout]
    assert [u["kind"] for u in ups].count("bias") == len(tr.bias)
    assert set(sc.state) == {f"L{l}/g{k + 1}" for l, cl in enumerate(tr.params)
                             for k in range(len(cl))} | {f"L{l}/bias"
                                                         for l in range(len(tr.bias))}
    # derived: the same chain with the seeds' indices and the STEP's key and rate
    tr.restore_step_state(start)
    sd = plan_step_chain(tr, xq, wc, y, update=True, derive=True)
    assert tr.step_state() == drawn
    assert sd.step == StepParams(int(dither_hash(0, tr.step_no)), ups[0]["lr"])
    assert literal_seeds(check_chain(sd.steps, sd.tensors), sd.step) == \
        check_chain(sc.steps, sc.tensors)
    plan = check_chain(sc.steps, sc.tensors)
    shapes = {k: np.shape(v) for k, v in sc.tensors.items()}
    segs = plan_segments(plan, shapes, get_config("tiny"), state=sc.state)
    adams = []
    for sg in segs:
        assert sg.plan is not None
        # the host writes no parameter: they are loaded from the state memory
        assert not any(h.tensor in sc.state for h in sg.plan.input_homes())
        for prog in sg.plan.programs:
            adams += [Adam.decode(payload) for _, op, payload in instructions(prog)
                      if op == Op.ADAM]
    updated = sum(a.elements for a in adams if not a.load)
    assert updated == sum(n for _, n in layout)
    with pytest.raises(ValueError, match="no update unit"):
        plan_segments(plan, shapes, get_config("tiny").replace(adam_entries=0),
                      state=sc.state)


def test_training_with_the_optimizer_on_chip_equals_the_numpy_trainer(digits):
    data = small_digits(digits, 4)
    r = train_on_rtl(data, verify="all", onchip_update=True)
    ref = train("digits", precision="fixed", epochs=1, batch=BATCH, seed=0, data=data)
    assert r["mismatches"] == 0
    assert r["on_chip_update"]["steps"] == 3 and r["on_chip_update"]["verified"] == 3
    n = 3216                         # digits' parameters: 3,072 in cores, 144 biases
    assert r["on_chip_update"]["state_words_written"] == 4 * n     # once, after step 0
    assert r["test_accuracy"] == ref["test_accuracy"]
    assert r["epochs"][-1]["loss"] == ref["epochs"][-1]["loss"]
    steps = r["cycles_per_step"]
    assert all(s["elementwise"] > 0 for s in steps[1:])
    busy = r["step_chains"]["vector_busy"]            # by operation, as the model says
    assert r["step_chains"]["vector_busy_model_exact"] and min(busy.values()) > 0
    assert sum(busy.values()) < sum(s["elementwise"] for s in steps if s["chain"])


def test_a_wrong_state_word_is_reported_with_tensor_element_and_field(digits):
    rt = RtlTraining("tiny", sim="verilator", verify="all", resident=True,
                     shift_slots=True, step_chains=True, onchip_update=True)
    be = rt.session.backend
    try:
        tr = _trainer(digits, executor=rt.executor, observer=rt.observer,
                      step_chain=rt.step_chain)
        for i in range(2):
            tr.train_step(digits.x_train[i * BATCH:(i + 1) * BATCH],
                          digits.y_train[i * BATCH:(i + 1) * BATCH])
        # a fault in the second moment of entry 7 (L0/g1 element 7) after step 1's update
        v = be.read(ADAM_BASE + 4 * 7 + 1, 1)[0]
        be.write(ADAM_BASE + 4 * 7 + 1, [v ^ 0x100])
        with pytest.raises(ContractionMismatch, match=r"mismatch at step 1 update L0/g1 "
                                                      r"element 7 second moment v: "
                                                      r"accelerator \d+ != reference \d+"):
            tr.train_step(digits.x_train[2 * BATCH:3 * BATCH],
                          digits.y_train[2 * BATCH:3 * BATCH])
    finally:
        rt.close()


def test_on_chip_update_needs_step_chains_and_the_unit():
    with pytest.raises(FettaError, match="--on-chip-update needs --step-chains"):
        RtlTraining("tiny", sim="verilator", resident=True, shift_slots=True,
                    onchip_update=True)


def test_a_trusted_chip_returns_only_loss_and_accuracy_and_trains_the_same(digits):
    """With verification off the logits and gradients stay on chip (the loss sum and
    the accuracy count come back, and the slots), the trainer keeps only its step
    count and seeds and reads the parameters back from the state memory to evaluate:
    the same loss and accuracy as the NumPy fixed trainer, and fewer host words per
    step than verified."""
    data = small_digits(digits, 4)
    runs = {v: train_on_rtl(data, verify=v, onchip_update=True) for v in ("off", "all")}
    ref = train("digits", precision="fixed", epochs=1, batch=BATCH, seed=0, data=data)
    trusted = runs["off"]
    assert trusted["on_chip_update"]["trusted"] and trusted["on_chip_update"]["steps"] == 3
    assert trusted["on_chip_update"]["param_words_read"] == 4 * 3216   # one evaluation
    # the slots' pending votes read once too, at that sync (between steps: the moved)
    assert trusted["on_chip_update"]["slot_words_read_at_sync"] == \
        trusted["shift_slots"]["slots_used"]
    assert trusted["test_accuracy"] == ref["test_accuracy"]
    assert trusted["epochs"][-1]["loss"] == ref["epochs"][-1]["loss"]
    chain = [s for s in trusted["cycles_per_step"] if s["chain"]]
    checked = [s for s in runs["all"]["cycles_per_step"] if s["chain"]]
    # step by step: the same chain without the gradients read back
    assert len(chain) == len(checked) == 3
    assert all(a["host_transfer"] < b["host_transfer"] for a, b in zip(chain, checked))
    # trusted chains run lean: their counters were read and checked in aggregate
    assert trusted["step_chains"]["lean"] and not runs["all"]["step_chains"]["lean"]
    assert trusted["step_chains"]["counter_settle_words"] > 0


def test_the_state_memory_is_written_once_across_epochs(digits):
    """An evaluation between chain steps leaves the state memory current (written
    once, after the first step); a step the trainer runs itself makes it stale."""
    r = train_on_rtl(small_digits(digits, 3), verify="all", onchip_update=True,
                     epochs=2)
    assert r["mismatches"] == 0 and r["on_chip_update"]["steps"] == 5
    assert r["on_chip_update"]["state_words_written"] == 4 * 3216
