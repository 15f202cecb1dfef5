"""Buffer contents for the MOVE/VEC unit tests: random words written over the host bus
and read back (shared by ``test_move_unit.py`` and ``test_vec_unit.py``)."""

import numpy as np

from fetta.sw_model.accel.hostmap import buffer_base
from fetta.sw_model.accel.move import BUFS, buffer_lanes


def load_buffers(be, rng, cfg, rows: int, shrink_every: int = 0) -> dict:
    """Random 16-bit words in the first ``rows`` rows of A, B and C (every
    ``shrink_every``-th row divided by 256, when given, so that small values occur);
    returns the model's copy ``{"A": bank_depth x lanes, ...}``."""
    bufs = {}
    for i, name in enumerate(BUFS):
        lanes = buffer_lanes(cfg, name)
        data = np.zeros((cfg.bank_depth, lanes), dtype=np.int64)
        data[:rows] = rng.integers(-32768, 32768, (rows, lanes))
        if shrink_every:
            data[:rows:shrink_every] //= 256
        be.write(buffer_base(i), (data[:rows].reshape(-1) & 0xFFFF).tolist())
        bufs[name] = data
    return bufs


def buffer_contents(be, cfg, name: str, rows: int) -> np.ndarray:
    """The first ``rows`` rows of buffer ``name`` read back, signed."""
    i, lanes = BUFS.index(name), buffer_lanes(cfg, name)
    words = np.array(be.read(buffer_base(i), rows * lanes), dtype=np.int64) & 0xFFFF
    return (((words + 32768) & 0xFFFF) - 32768).reshape(rows, lanes)


def assert_ab_equal(be, cfg, state: dict, rows: int, label: str) -> None:
    """Buffers A and B read back equal the model's (``state["A"]``, ``state["B"]``
    after ``run_program``) in their first ``rows`` rows; the first difference named."""
    for name in ("A", "B"):
        got, want = buffer_contents(be, cfg, name, rows), state[name][:rows]
        bad = np.argwhere(got != want)
        assert not len(bad), (f"{label} buffer {name} row/lane {tuple(bad[0])}: RTL "
                              f"{got[tuple(bad[0])]}, model {want[tuple(bad[0])]}")
