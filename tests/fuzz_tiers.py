"""Example counts of the property-based (hypothesis) fuzz tests, one place for all.

Every fuzz property runs ``DEFAULT`` examples in the default tier (derandomized: the
same examples on every run, so the default tier is reproducible) and ``SLOW``
(>= 10,000) examples under ``-m slow`` (random; hypothesis keeps failing examples in
its database). A property whose single example is expensive (a simulator run) may
use a smaller default, stated where it is used.

The fuzz tests that drive a live simulator share ``backend_fixture`` (one backend of
each simulator per module) and ``skip_slow_pysim`` (the slow tier runs on the compiled
backends only)."""

import pytest
from hypothesis import HealthCheck, settings

DEFAULT = 300
SLOW = 10_000


def tier(n: int = DEFAULT, *, slow: bool = False):
    """``@settings`` for a fuzz test: ``n`` derandomized examples, or ``SLOW`` random
    ones when ``slow``; no deadline (shared machines), no too-slow health check."""
    extra = {} if slow else {"database": None}
    return settings(max_examples=SLOW if slow else n, deadline=None,
                    derandomize=not slow, **extra,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])


SIMULATORS = ("verilator", "cxxrtl", "pysim")


def backend_fixture(config):
    """A module-scoped fixture ``be``: one live backend of ``config`` per simulator."""
    @pytest.fixture(scope="module", params=list(SIMULATORS))
    def be(request):
        from fetta.sim.backends.base import get_backend
        b = get_backend(request.param, config)
        yield b
        b.close()
    return be


def skip_slow_pysim(be) -> None:
    """The slow tier's 10,000 examples run on the compiled backends: on Amaranth's
    simulator a run is ~1,000x slower, so it keeps its default-tier examples only."""
    if be.name == "pysim":
        pytest.skip("pysim: default-tier examples only (a run is ~1,000x slower)")
