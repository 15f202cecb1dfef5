"""Routers and functional models of the distribution and reduction networks."""

import itertools
import random
import time

import pytest

from fetta.sw_model.accel.routing import (
    DISTRIBUTION_LATENCY, apply_distribution, apply_reduction, benes_wiring,
    butterfly_pair, distribution_n_switch_bits, distribution_stages, factorizations,
    pack_distribution, pack_reduction, pattern_broadcast, pattern_k_reduction,
    pattern_multicast_a, pattern_multicast_b, reduction_latency, reduction_n_switch_bits,
    reduction_stages, route_distribution, route_reduction, unpack_distribution,
    unpack_reduction)

ALL_LANES = (2, 4, 8, 16, 32, 64)


def _wrap(v, width):
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def _delivers(lanes, settings, mapping):
    out = apply_distribution(lanes, settings, list(range(lanes)))
    return all(src is None or out[d] == src for d, src in enumerate(mapping))


def _random_partition(rng, lanes):
    """Random groups over a random subset of lanes, random distinct destinations."""
    order = list(range(lanes))
    rng.shuffle(order)
    used = order[:rng.randint(1, lanes)]
    groups, i = [], 0
    while i < len(used):
        size = rng.choice([1, 2, 2, 3, 4, len(used) - i])
        size = max(1, min(size, len(used) - i))
        groups.append(used[i:i + size])
        i += size
    return groups, rng.sample(range(lanes), len(groups))


def _all_ce_cases():
    """(lanes, n_ce, per_ce) with lanes = n_ce*per_ce in 4..64, n_ce >= 2."""
    for lanes in (4, 8, 16, 32, 64):
        per_ce = 1
        while per_ce <= 16 and lanes // per_ce >= 2:
            yield lanes, lanes // per_ce, per_ce
            per_ce *= 2


# -- topology, sizes, packing ----------------------------------------------------------

@pytest.mark.parametrize("lanes", ALL_LANES)
def test_sizes(lanes):
    n = lanes.bit_length() - 1
    assert distribution_stages(lanes) == 2 * n - 1
    assert distribution_n_switch_bits(lanes) == (lanes // 2) * (2 * n - 1) * 2
    stages = 1 if lanes == 2 else 5 * n - 2     # 2 lanes: one butterfly switch
    assert reduction_stages(lanes) == reduction_latency(lanes) == stages
    assert reduction_n_switch_bits(lanes) == (lanes // 2) * stages * 2
    assert DISTRIBUTION_LATENCY == 1


def test_hand_derived_sizes():
    # N=8: Benes 2*3-1 = 5 stages of 4 switches, 2 bits each = 40 bits;
    # reduction 5 + 3 + 5 = 13 stages = 104 bits, 13 cycles.
    assert distribution_n_switch_bits(8) == 40
    assert reduction_stages(8) == 13 and reduction_n_switch_bits(8) == 104
    # N=2: one switch, 2 bits, 1 cycle
    assert reduction_stages(2) == 1 and reduction_n_switch_bits(2) == 2


@pytest.mark.parametrize("lanes", ALL_LANES)
def test_wiring_is_permutation(lanes):
    for perm in benes_wiring(lanes):
        assert sorted(perm) == list(range(lanes))


def test_wiring_n4():
    # unshuffle after stage 0, shuffle after stage 1 (its inverse)
    assert benes_wiring(4) == ((0, 2, 1, 3), (0, 2, 1, 3))


def test_butterfly_pair():
    assert butterfly_pair(0, 0) == (0, 1)
    assert butterfly_pair(3, 0) == (6, 7)
    assert butterfly_pair(1, 1) == (1, 3)
    assert butterfly_pair(2, 1) == (4, 6)
    assert butterfly_pair(3, 2) == (3, 7)


def test_packing_order():
    # switch s of stage t at bit offset 2*(t*N/2 + s), LSB first
    lanes = 4
    settings = [[0, 0] for _ in range(distribution_stages(lanes))]
    settings[1][1] = 3
    assert pack_distribution(lanes, settings) == 3 << (2 * (1 * 2 + 1))
    settings[0][0] = 2
    word = pack_distribution(lanes, settings)
    assert word == (3 << 6) | 2
    assert unpack_distribution(lanes, word) == settings


def test_pack_reduction_roundtrip():
    rng = random.Random(5)
    for lanes in ALL_LANES:
        groups, dests = _random_partition(rng, lanes)
        settings = route_reduction(lanes, groups, dests)
        word = pack_reduction(lanes, settings)
        assert word < 1 << reduction_n_switch_bits(lanes)
        assert unpack_reduction(lanes, word) == settings


# -- distribution: switch semantics ---------------------------------------------------

def test_switch_codes_n2():
    assert apply_distribution(2, [[0]], ["a", "b"]) == ["a", "b"]
    assert apply_distribution(2, [[1]], ["a", "b"]) == ["b", "a"]
    assert apply_distribution(2, [[2]], ["a", "b"]) == ["a", "a"]
    assert apply_distribution(2, [[3]], ["a", "b"]) == ["b", "b"]


# -- distribution: permutations ------------------------------------------------------

def test_all_permutations_n8():
    """All 40,320 permutations of 8 lanes route (and only with pass/swap)."""
    lanes = 8
    ident = list(range(lanes))
    count = 0
    for perm in itertools.permutations(ident):
        perm = list(perm)
        settings = route_distribution(lanes, perm)
        assert apply_distribution(lanes, settings, ident) == perm, perm
        assert all(code < 2 for row in settings for code in row), perm
        count += 1
    assert count == 40320


def test_all_multicasts_n4():
    """Every one of the 4**4 multicast mappings of 4 lanes routes."""
    for mapping in itertools.product(range(4), repeat=4):
        mapping = list(mapping)
        assert _delivers(4, route_distribution(4, mapping), mapping), mapping


@pytest.mark.parametrize("lanes", ALL_LANES)
def test_random_permutations(lanes):
    rng = random.Random(lanes)
    for _ in range(200):
        perm = list(range(lanes))
        rng.shuffle(perm)
        settings = route_distribution(lanes, perm)
        assert apply_distribution(lanes, settings, list(range(lanes))) == perm


@pytest.mark.parametrize("lanes", ALL_LANES)
def test_partial_permutations(lanes):
    rng = random.Random(100 + lanes)
    for _ in range(100):
        perm = list(range(lanes))
        rng.shuffle(perm)
        mapping = [src if rng.random() < 0.6 else None for src in perm]
        assert _delivers(lanes, route_distribution(lanes, mapping), mapping)


# -- distribution: CE-array multicast patterns ---------------------------------------

def test_factorizations():
    assert sorted(factorizations(4)) == [(1, 1, 4), (1, 2, 2), (1, 4, 1), (2, 1, 2),
                                        (2, 2, 1), (4, 1, 1)]
    for n_ce in (2, 4, 8, 16, 32, 64):
        fs = factorizations(n_ce)
        assert len(set(fs)) == len(fs)
        assert all(a * b * k == n_ce for a, b, k in fs)


def test_pattern_formulas():
    # n_ce=4, P=2, ga=gb=2, gk=1: CE c = ia*2 + ib, lane o = c*2 + p
    assert pattern_multicast_a(4, 2, 2, 2, 1) == [0, 1, 0, 1, 2, 3, 2, 3]
    assert pattern_multicast_b(4, 2, 2, 2, 1) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert pattern_broadcast(4, 2) == [0, 1] * 4


@pytest.mark.parametrize("lanes,n_ce,per_ce", list(_all_ce_cases()))
def test_ce_multicast_patterns_route_fast(lanes, n_ce, per_ce):
    """Patterns A, B (every factorization) and broadcast route, each < 50 ms."""
    patterns = [pattern_broadcast(n_ce, per_ce)]
    for f in factorizations(n_ce):
        patterns += [pattern_multicast_a(n_ce, per_ce, *f),
                     pattern_multicast_b(n_ce, per_ce, *f)]
    for mapping in patterns:
        elapsed = []
        for _ in range(3):  # best of three: the bound is on the router, not on CI load
            t0 = time.perf_counter()
            settings = route_distribution(lanes, mapping)
            elapsed.append(time.perf_counter() - t0)
        assert _delivers(lanes, settings, mapping), mapping
        assert min(elapsed) < 0.05, (mapping, elapsed)


# -- distribution: errors ---------------------------------------------------------------

def test_unroutable_multicast_is_rejected():
    # Output switches (0,1), (2,3), (4,5) need sources {0,1}, {1,2}, {2,0}; with both
    # siblings of every input switch in use each source enters exactly one half of the
    # Benes network and the two sources of an output switch must come from different
    # halves: 0, 1, 2 pairwise different halves, impossible with two halves.
    with pytest.raises(ValueError, match=r"unroutable: output lane \d+ cannot receive "
                                         r"input lane \d+"):
        route_distribution(8, [0, 1, 1, 2, 2, 0, 3, 3])


@pytest.mark.parametrize("lanes,mapping,msg", [
    (6, [0] * 6, "lanes=6 is not a power of two"),
    (128, [0] * 128, "lanes=128 is not a power of two"),
    (4, [0, 1, 2], "has 3 entries; expected lanes=4"),
    (4, [0, 1, 4, 3], r"mapping\[2\]=4 is not an input lane"),
    (4, [0, -1, 2, 3], r"mapping\[1\]=-1 is not an input lane"),
])
def test_bad_distribution_requests(lanes, mapping, msg):
    with pytest.raises(ValueError, match=msg):
        route_distribution(lanes, mapping)


def test_bad_settings():
    with pytest.raises(ValueError, match="expected 3 for lanes=4"):
        apply_distribution(4, [[0, 0]], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="stage 0 switch 1 is 4"):
        pack_distribution(4, [[0, 4], [0, 0], [0, 0]])


# -- reduction --------------------------------------------------------------------------

def test_reduction_switch_codes_n2():
    # N=2: the network is one butterfly switch (pass, swap, add-upper, add-lower)
    assert apply_reduction(2, [[2]], [5, 7], 8)[0] == 12
    assert apply_reduction(2, [[3]], [5, 7], 8) == [5, 12]
    assert apply_reduction(2, [[1]], [5, 7], 8) == [7, 5]
    assert apply_reduction(2, [[0]], [5, 7], 8) == [5, 7]
    assert apply_reduction(2, [[2]], [100, 100], 8) == [-56, 100]  # wraps
    # every request routes to the one code that serves it
    assert route_reduction(2, [[0, 1]], [0]) == [[2]]
    assert route_reduction(2, [[1, 0]], [1]) == [[3]]
    assert route_reduction(2, [[0], [1]], [0, 1]) == [[0]]
    assert route_reduction(2, [[0], [1]], [1, 0]) == [[1]]
    assert route_reduction(2, [[1]], [0]) == [[1]]
    assert route_reduction(2, [[0]], [0]) == [[0]]


@pytest.mark.parametrize("lanes", ALL_LANES)
def test_random_reductions(lanes):
    rng = random.Random(7 * lanes)
    width = 16
    for _ in range(150):
        groups, dests = _random_partition(rng, lanes)
        settings = route_reduction(lanes, groups, dests)
        values = [rng.randrange(-2 ** 15, 2 ** 15) for _ in range(lanes)]
        out = apply_reduction(lanes, settings, values, width)
        for members, d in zip(groups, dests):
            assert out[d] == _wrap(sum(values[l] for l in members), width), (groups, dests)


@pytest.mark.parametrize("lanes", ALL_LANES)
def test_full_partition_singletons_and_one_group(lanes):
    rng = random.Random(lanes)
    values = [rng.randrange(-1000, 1000) for _ in range(lanes)]
    perm = rng.sample(range(lanes), lanes)
    # every lane its own group: a permutation
    out = apply_reduction(lanes, route_reduction(lanes, [[l] for l in range(lanes)], perm),
                          values, 32)
    assert all(out[perm[l]] == values[l] for l in range(lanes))
    # one group of all lanes
    out = apply_reduction(lanes, route_reduction(lanes, [list(range(lanes))], [lanes - 1]),
                          values, 32)
    assert out[lanes - 1] == sum(values)


@pytest.mark.parametrize("lanes,n_ce,per_ce", list(_all_ce_cases()))
def test_ce_k_reduction_pattern(lanes, n_ce, per_ce):
    rng = random.Random(lanes * 100 + per_ce)
    for f in factorizations(n_ce):
        groups, dests = pattern_k_reduction(n_ce, per_ce, *f)
        settings = route_reduction(lanes, groups, dests)
        values = [rng.randrange(-2 ** 31, 2 ** 31) for _ in range(lanes)]
        out = apply_reduction(lanes, settings, values, 32)
        for members, d in zip(groups, dests):
            assert out[d] == _wrap(sum(values[l] for l in members), 32)


def test_reduction_permutation_stages_use_pass_swap_only():
    rng = random.Random(3)
    lanes, n = 16, 4
    for _ in range(50):
        settings = route_reduction(lanes, *_random_partition(rng, lanes))
        benes = settings[:2 * n - 1] + settings[3 * n - 1:]
        assert all(code < 2 for row in benes for code in row)


@pytest.mark.parametrize("groups,dests,msg", [
    ([[0, 1]], [0, 1], "1 groups but 2 destinations"),
    ([[0, 1], []], [0, 1], "group 1 is empty"),
    ([[0, 1], [1, 2]], [0, 1], "lane 1 is in groups 0 and 1"),
    ([[0, 9]], [0], "group 0 has lane 9; allowed 0..7"),
    ([[0], [1]], [3, 3], "output lane 3 is the destination of groups 0 and 1"),
    ([[0]], [8], "destination of group 0 is 8; allowed 0..7"),
])
def test_bad_reduction_requests(groups, dests, msg):
    with pytest.raises(ValueError, match=msg):
        route_reduction(8, groups, dests)
