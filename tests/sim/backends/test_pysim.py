"""pysim backend lifecycle: a backend that is built and closed unused leaves nothing
behind (no unstarted command-server coroutine warning at exit)."""

import gc
import warnings

from fetta.sim.backends.pysim import PysimBackend


def test_unused_backend_closes_without_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = PysimBackend("tiny")
        b.close()
        del b
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], \
        [str(w.message) for w in caught]


def test_backend_still_serves_after_lazy_start():
    b = PysimBackend("tiny")
    try:
        b.write(0x100000, [5, -3])
        assert b.read(0x100000, 2) == [5, (-3) & 0xFFFFFFFF]
    finally:
        b.close()
