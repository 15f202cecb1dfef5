"""Short digits trainings on the RTL for the step-chain tests: ``small_digits`` (the
first ``steps`` batches of the training set and 32 test samples) and
``train_on_rtl`` (``fetta.sim.rtl_training.RtlTraining`` on ``tiny`` with Verilator,
its hooks in the trainer, the finished report)."""

from fetta.sim.rtl_training import RtlTraining
from fetta.sw_model.train.data import Dataset
from fetta.sw_model.train.trainer import train

BATCH = 8


def small_digits(digits, steps: int) -> Dataset:
    n = BATCH * steps
    return Dataset(digits.name, digits.x_train[:n], digits.y_train[:n],
                   digits.x_test[:32], digits.y_test[:32])


def train_on_rtl(data, epochs: int = 1, **options) -> dict:
    """``epochs`` of fixed-point digits at batch ``BATCH``, seed 0, on the RTL with
    ``RtlTraining("tiny", sim="verilator", resident=True, shift_slots=True,
    step_chains=True, **options)``; the report of ``finish``."""
    rt = RtlTraining("tiny", sim="verilator", resident=True, shift_slots=True,
                     step_chains=True, **options)
    try:
        r = train("digits", precision="fixed", epochs=epochs, batch=BATCH, seed=0,
                  data=data,
                  executor=rt.executor, observer=rt.observer, step_chain=rt.step_chain,
                  backend="rtl")
        return rt.finish(r)
    finally:
        rt.close()
