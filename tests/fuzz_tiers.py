"""Example counts of the property-based (hypothesis) fuzz tests, one place for all.

Every fuzz property runs ``DEFAULT`` examples in the default tier (derandomized: the
same examples on every run, so the default tier is reproducible) and ``SLOW``
(>= 10,000) examples under ``-m slow`` (random; hypothesis keeps failing examples in
its database). A property whose single example is expensive (a simulator run) may
use a smaller default, stated where it is used."""

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
