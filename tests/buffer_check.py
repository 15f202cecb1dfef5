"""Every word of buffers A, B and C read back from a backend and compared with a
model's copy (the fuzz tests of the MOVE-path instructions share it)."""

import numpy as np

from fetta.sw_model.accel.hostmap import buffer_base
from fetta.sw_model.accel.move import BUFS, buffer_lanes


def assert_buffers_equal(be, cfg, bufs: dict, context) -> None:
    """Fail naming the buffer, the word and both values at the first word of the
    backend's A, B or C that differs from ``bufs`` (bank_depth x lanes arrays)."""
    for i, b in enumerate(BUFS):
        words = buffer_lanes(cfg, b) * cfg.bank_depth
        got = np.array(be.read(buffer_base(i), words), dtype=np.int64)
        got = ((got & 0xFFFF) ^ 0x8000) - 0x8000
        want = bufs[b].reshape(-1)
        bad = np.flatnonzero(got != want)
        assert not len(bad), (f"buffer {b} word {bad[0]}: RTL {got[bad[0]]}, model "
                              f"{want[bad[0]]} ({context})")
