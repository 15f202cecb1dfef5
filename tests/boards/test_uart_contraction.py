"""A full contraction through the UART link in pysim: the real ``Accelerator`` behind
the UART bridge, driven by ``BoardBackend`` over a bit-level UART model, checked
bit-exact against the golden model -- with corrupted and truncated frames injected
on the way (they must be NAKed and retried, never land in a buffer)."""

import numpy as np
import pytest

from fetta.boards.host_driver import PysimUART
from fetta.sim.backends.board import BoardBackend
from fetta.boards.top import LinkTop
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.arith.contraction import reference_contraction

pytest.importorskip("fetta.rtl.top")
pytest.importorskip("fetta.sim.harness")


def test_contraction_over_uart_is_bit_exact_despite_corrupted_frames():
    from fetta.rtl.top import Accelerator
    from fetta.sim.harness import Session

    cfg = get_config("tiny")
    uart = PysimUART(LinkTop(Accelerator(cfg), divisor=4, timeout=400, max_burst=64))
    be = BoardBackend(cfg, transport=uart)          # PINGs, checks Reg.ID == MAGIC

    sent = {"n": 0}

    def corrupt(data):
        sent["n"] += 1
        if sent["n"] == 3:                          # the A buffer write: flip a bit
            data = bytearray(data)
            data[len(data) // 2] ^= 0x04
        if sent["n"] == 6:                          # the B buffer write: cut short
            data = data[:len(data) // 3]
        return bytes(data)

    uart.corrupt = corrupt
    rng = np.random.default_rng(7)
    a = rng.integers(-120, 120, (4, 6))
    b = rng.integers(-120, 120, (6, 5))
    kw = dict(shift=2, rounding="nearest-even", out_bits=12)
    with Session(cfg, backend=be) as s:
        res = s.contract("ik,kj->ij", a, b, **kw)
    want = reference_contraction("ik,kj->ij", a, b, acc_bits=cfg.acc_bits, **kw)
    np.testing.assert_array_equal(res.output, want)
    assert res.cycles > 0 and res.backend == "board"
    st = be.stats
    assert st["retries"] == 2 and st["naks"] == {"CRC": 1, "TIMEOUT": 1}


def test_board_built_for_another_config_is_refused():
    from fetta.rtl.top import Accelerator
    from fetta.errors import FettaError
    uart = PysimUART(LinkTop(Accelerator("tiny"), divisor=4, timeout=400, max_burst=16))
    with pytest.raises(FettaError, match=r"built for another configuration .*config "
                                         r"'ice40'"):
        BoardBackend("ice40", transport=uart)
