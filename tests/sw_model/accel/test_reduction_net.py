"""The reduction network (``sw_model.accel.reduction_net``): sizes and latency, the
butterfly pairing, settings packing, switch semantics and wrap, the router on random
groupings up to 64 lanes, and its errors."""

import random

import pytest

from fetta.sw_model.accel.reduction_net import (
    apply_reduction, butterfly_pair, pack_reduction, reduction_latency,
    reduction_n_switch_bits, reduction_stages, route_reduction, unpack_reduction)

ALL_LANES = (2, 4, 8, 16, 32, 64)


def _wrap(v, width):
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


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


# -- sizes, packing ----------------------------------------------------------------------

@pytest.mark.parametrize("lanes", ALL_LANES)
def test_sizes(lanes):
    n = lanes.bit_length() - 1
    stages = 1 if lanes == 2 else 5 * n - 2     # 2 lanes: one butterfly switch
    assert reduction_stages(lanes) == reduction_latency(lanes) == stages
    assert reduction_n_switch_bits(lanes) == (lanes // 2) * stages * 2


def test_hand_derived_sizes():
    # N=8: reduction 5 + 3 + 5 = 13 stages = 104 bits, 13 cycles.
    assert reduction_stages(8) == 13 and reduction_n_switch_bits(8) == 104
    # N=2: one switch, 2 bits, 1 cycle
    assert reduction_stages(2) == 1 and reduction_n_switch_bits(2) == 2


def test_butterfly_pair():
    assert butterfly_pair(0, 0) == (0, 1)
    assert butterfly_pair(3, 0) == (6, 7)
    assert butterfly_pair(1, 1) == (1, 3)
    assert butterfly_pair(2, 1) == (4, 6)
    assert butterfly_pair(3, 2) == (3, 7)


def test_pack_reduction_roundtrip():
    rng = random.Random(5)
    for lanes in ALL_LANES:
        groups, dests = _random_partition(rng, lanes)
        settings = route_reduction(lanes, groups, dests)
        word = pack_reduction(lanes, settings)
        assert word < 1 << reduction_n_switch_bits(lanes)
        assert unpack_reduction(lanes, word) == settings


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
