"""The distribution network (``sw_model.accel.benes``): Benes topology and sizes,
settings packing, switch semantics, the router on every permutation of 8 lanes, every
multicast of 4, random (partial) permutations up to 64 lanes, and its errors."""

import itertools
import random

import pytest

from fetta.sw_model.accel.benes import (
    DISTRIBUTION_LATENCY, apply_distribution, benes_wiring, distribution_n_switch_bits,
    distribution_stages, pack_distribution, route_distribution, unpack_distribution)

ALL_LANES = (2, 4, 8, 16, 32, 64)


def _delivers(lanes, settings, mapping):
    out = apply_distribution(lanes, settings, list(range(lanes)))
    return all(src is None or out[d] == src for d, src in enumerate(mapping))


# -- topology, sizes, packing ----------------------------------------------------------

@pytest.mark.parametrize("lanes", ALL_LANES)
def test_sizes(lanes):
    n = lanes.bit_length() - 1
    assert distribution_stages(lanes) == 2 * n - 1
    assert distribution_n_switch_bits(lanes) == (lanes // 2) * (2 * n - 1) * 2
    assert DISTRIBUTION_LATENCY == 1


def test_hand_derived_sizes():
    # N=8: Benes 2*3-1 = 5 stages of 4 switches, 2 bits each = 40 bits
    assert distribution_n_switch_bits(8) == 40


@pytest.mark.parametrize("lanes", ALL_LANES)
def test_wiring_is_permutation(lanes):
    for perm in benes_wiring(lanes):
        assert sorted(perm) == list(range(lanes))


def test_wiring_n4():
    # unshuffle after stage 0, shuffle after stage 1 (its inverse)
    assert benes_wiring(4) == ((0, 2, 1, 3), (0, 2, 1, 3))


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


def test_routing_is_remembered_but_every_call_gets_its_own_settings():
    """A request's routing is computed once per process; each call returns a new list
    (a caller may modify it), and a bool lane is still refused after the int request
    it equals was routed."""
    mapping = [1, 0, 3, 2, 5, 4, 7, 6]
    first = route_distribution(8, mapping)
    first[0][0] ^= 1
    again = route_distribution(8, mapping)
    assert again != first and _delivers(8, again, mapping)
    with pytest.raises(ValueError, match=r"mapping\[1\]=True is not an input lane"):
        route_distribution(8, [1, True, 3, 2, 5, 4, 7, 6])
