"""CE-array mapping patterns: the distribution mappings and reduction requests the
compiler issues for a ``(ga, gb, gk)`` split of the CE array.

``n_ce`` CEs of ``per_ce`` lanes each; CE ``c = (ia*gk + ik)*gb + ib`` computes the
A-tile ``ia``, B-tile ``ib`` and K-slice ``ik`` of a contraction. ``factorizations``
lists every split; ``pattern_multicast_a`` / ``pattern_multicast_b`` /
``pattern_broadcast`` are ``benes.route_distribution`` mappings (output lane -> input
lane), ``pattern_k_reduction`` a ``reduction_net.route_reduction`` request. Every one of
them routes in one pass for every factorization at N = 4..64
(``tests/sw_model/accel/test_routing.py``).
"""

from __future__ import annotations

__all__ = ["factorizations", "pattern_multicast_a", "pattern_multicast_b",
           "pattern_broadcast", "pattern_k_reduction"]


def factorizations(n_ce: int) -> list[tuple[int, int, int]]:
    """Every ``(ga, gb, gk)`` of powers of two with ``ga * gb * gk == n_ce``."""
    out = []
    ga = 1
    while ga <= n_ce:
        gb = 1
        while ga * gb <= n_ce:
            if n_ce % (ga * gb) == 0:
                out.append((ga, gb, n_ce // (ga * gb)))
            gb *= 2
        ga *= 2
    return out


def _ce_index(ia, ib, ik, gb, gk):
    return (ia * gk + ik) * gb + ib


def _multicast(n_ce, per_ce, ga, gb, gk, tile) -> list[int]:
    """Lane ``o = c*P + p`` of CE ``c = (ia*gk + ik)*gb + ib`` takes source
    ``tile(ia, ib, ik)*P + p``."""
    mapping = [0] * (n_ce * per_ce)
    for ia in range(ga):
        for ib in range(gb):
            for ik in range(gk):
                c = _ce_index(ia, ib, ik, gb, gk)
                for p in range(per_ce):
                    mapping[c * per_ce + p] = tile(ia, ib, ik) * per_ce + p
    return mapping


def pattern_multicast_a(n_ce, per_ce, ga, gb, gk) -> list[int]:
    """Distribution mapping "A": output lane ``o = c*P + p`` of CE ``c = (ia*gk + ik)*gb
    + ib`` takes source ``(ia*gk + ik)*P + p`` (each A tile copied to the ``gb`` CEs
    that differ in ``ib``)."""
    return _multicast(n_ce, per_ce, ga, gb, gk, lambda ia, ib, ik: ia * gk + ik)


def pattern_multicast_b(n_ce, per_ce, ga, gb, gk) -> list[int]:
    """Distribution mapping "B": lane ``o = c*P + p`` takes source ``(ib*gk + ik)*P + p``
    (each B tile copied across ``ia``)."""
    return _multicast(n_ce, per_ce, ga, gb, gk, lambda ia, ib, ik: ib * gk + ik)


def pattern_broadcast(n_ce, per_ce) -> list[int]:
    """Distribution mapping "one vector to all CEs": lane ``o`` takes source ``o % P``."""
    return [o % per_ce for o in range(n_ce * per_ce)]


def pattern_k_reduction(n_ce, per_ce, ga, gb, gk):
    """Reduction request of a K split over ``gk`` CEs: lane ``l = c*C + j`` (``C =
    per_ce`` output columns per CE); group ``(ia, ib, j)`` = the lanes of every ``ik``,
    its sum goes to output lane ``(ia*gb + ib)*C + j``. Returns ``(groups, dests)``."""
    groups, dests = [], []
    for ia in range(ga):
        for ib in range(gb):
            for j in range(per_ce):
                groups.append([_ce_index(ia, ib, ik, gb, gk) * per_ce + j
                               for ik in range(gk)])
                dests.append((ia * gb + ib) * per_ce + j)
    return groups, dests
