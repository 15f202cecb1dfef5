"""Routers, settings packing and functional models of the two butterfly networks.

Pure Python (no Amaranth, no NumPy needed): the RTL in ``rtl/distribution.py`` and
``rtl/reduction.py`` reads its topology from this module, and the functional models
here apply exactly the switch semantics the RTL implements, so a settings list means
the same thing in the compiler, the model and the gateware.

Conventions shared by both networks
-----------------------------------
``N`` lanes, a power of two in 2..64, ``n = log2 N``. A *stage* is a column of ``N/2``
2x2 switches; a *settings* list is ``settings[t][s]`` (stage ``t``, switch ``s``), each a
2-bit code. Switch ``s`` of a stage has two inputs and two outputs, called *upper*
(index 0) and *lower* (index 1).

Packing (``pack_distribution`` / ``pack_reduction``): stage-major, then switch index
within the stage, 2 bits per switch, LSB first: switch ``s`` of stage ``t`` occupies
bits ``[2*(t*N/2 + s), 2*(t*N/2 + s) + 2)`` of the configuration word. Total width:
``distribution_n_switch_bits(N)`` / ``reduction_n_switch_bits(N)``.

Benes topology (the distribution network, and the two permutation blocks of the
reduction network): ``2n - 1`` stages. In stage ``t`` switch ``s`` reads positions
``2s`` (upper) and ``2s + 1`` (lower) of the stage's input vector and writes the same
positions of its output vector; output position ``p`` of stage ``t`` then feeds input
position ``benes_wiring(N)[t][p]`` of stage ``t + 1``. For ``t < n - 1`` the wiring is
an *unshuffle* within aligned blocks of ``N >> t`` positions (even positions to the
block's upper half, odd to its lower half); for ``t >= n - 1`` it is the inverse
(*shuffle*) of the wiring after stage ``2n - 3 - t``. Recursively: stage 0 feeds two
Benes networks of ``N/2`` lanes (upper half, lower half of the positions), whose outputs
are merged by the last stage; the last stage writes output lanes ``2s``/``2s + 1``.
"""

from __future__ import annotations

__all__ = [
    "DIST_PASS", "DIST_SWAP", "DIST_BCAST_UPPER", "DIST_BCAST_LOWER",
    "RED_PASS", "RED_SWAP", "RED_ADD_UPPER", "RED_ADD_LOWER",
    "DISTRIBUTION_LATENCY",
    "lanes_log2", "benes_stages", "benes_wiring",
    "distribution_stages", "distribution_n_switch_bits",
    "route_distribution", "pack_distribution", "unpack_distribution",
    "apply_distribution",
    "reduction_stages", "reduction_latency", "reduction_n_switch_bits",
    "reduction_stage_kinds", "butterfly_pair",
    "route_reduction", "pack_reduction", "unpack_reduction", "apply_reduction",
    "pattern_multicast_a", "pattern_multicast_b", "pattern_broadcast",
    "pattern_k_reduction", "factorizations",
]

# Distribution switch codes: what (upper out, lower out) carry.
DIST_PASS = 0          # (upper in, lower in)
DIST_SWAP = 1          # (lower in, upper in)
DIST_BCAST_UPPER = 2   # (upper in, upper in)
DIST_BCAST_LOWER = 3   # (lower in, lower in)

# Reduction switch codes. In the reduction network's permutation (Benes) stages only
# bit 0 matters (0 pass, 1 swap; 2 acts as 0 and 3 as 1, no adders there); in its
# butterfly stages all four apply.
RED_PASS = 0           # (a, b)
RED_SWAP = 1           # (b, a)
RED_ADD_UPPER = 2      # (a + b, b): the sum on the upper output, lower passes its input
RED_ADD_LOWER = 3      # (a, a + b): the sum on the lower output, upper passes its input

#: Cycles from ``inputs`` to ``outputs`` of the distribution network (combinational
#: switch stages and one output register).
DISTRIBUTION_LATENCY = 1

MAX_LANES = 64


def lanes_log2(lanes) -> int:
    """``log2(lanes)``; ``ValueError`` unless ``lanes`` is a power of two in 2..64."""
    if isinstance(lanes, bool) or not isinstance(lanes, int):
        raise ValueError(f"lanes={lanes!r} is not an integer; allowed powers of two 2..64")
    if not 2 <= lanes <= MAX_LANES or lanes & (lanes - 1):
        raise ValueError(f"lanes={lanes} is not a power of two in 2..{MAX_LANES}; allowed "
                         f"2, 4, 8, 16, 32, 64")
    return lanes.bit_length() - 1


# ------------------------------------------------------------------------------------
# Benes topology
# ------------------------------------------------------------------------------------

def benes_stages(lanes: int) -> int:
    """Switch stages of an N-lane Benes network: ``2*log2(N) - 1``."""
    return 2 * lanes_log2(lanes) - 1


def benes_wiring(lanes: int) -> tuple[tuple[int, ...], ...]:
    """``w[t][p]``: output position ``p`` of stage ``t`` feeds input position
    ``w[t][p]`` of stage ``t + 1``, for ``t`` in ``0 .. 2n - 3`` (see module doc)."""
    n = lanes_log2(lanes)
    return _benes_wiring(lanes, n)


_WIRING_CACHE: dict = {}


def _benes_wiring(lanes, n):
    key = lanes
    if key not in _WIRING_CACHE:
        def unshuffle(block):
            perm = []
            for p in range(lanes):
                base, j = p - p % block, p % block
                perm.append(base + (j // 2 if j % 2 == 0 else block // 2 + j // 2))
            return perm

        wiring = []
        for t in range(2 * n - 2):
            if t < n - 1:
                wiring.append(tuple(unshuffle(lanes >> t)))
            else:
                fwd = unshuffle(lanes >> (2 * n - 3 - t))
                inv = [0] * lanes
                for p, q in enumerate(fwd):
                    inv[q] = p
                wiring.append(tuple(inv))
        _WIRING_CACHE[key] = tuple(wiring)
    return _WIRING_CACHE[key]


def _check_settings(lanes, settings, n_stages, what):
    half = lanes // 2
    if len(settings) != n_stages:
        raise ValueError(f"{what} settings have {len(settings)} stages; expected {n_stages} "
                         f"for lanes={lanes}")
    for t, row in enumerate(settings):
        if len(row) != half:
            raise ValueError(f"{what} settings stage {t} has {len(row)} switches; expected "
                             f"{half} for lanes={lanes}")
        for s, code in enumerate(row):
            if code not in (0, 1, 2, 3):
                raise ValueError(f"{what} setting of stage {t} switch {s} is {code!r}; "
                                 f"allowed 0..3")


def _pack(lanes, settings):
    half = lanes // 2
    word = 0
    for t, row in enumerate(settings):
        for s, code in enumerate(row):
            word |= code << (2 * (t * half + s))
    return word


def _unpack(lanes, word, n_stages):
    half = lanes // 2
    return [[(word >> (2 * (t * half + s))) & 3 for s in range(half)]
            for t in range(n_stages)]


# ------------------------------------------------------------------------------------
# Distribution network
# ------------------------------------------------------------------------------------

def distribution_stages(lanes: int) -> int:
    """Switch stages of the distribution network: ``2*log2(N) - 1`` (Benes)."""
    return benes_stages(lanes)


def distribution_n_switch_bits(lanes: int) -> int:
    """Width of the packed distribution configuration: ``2 * (N/2) * (2*log2(N) - 1)``."""
    return lanes * distribution_stages(lanes)


def pack_distribution(lanes: int, settings) -> int:
    """Pack ``settings[t][s]`` into one integer (stage-major, 2 bits per switch, LSB
    first; see module doc)."""
    lanes_log2(lanes)
    _check_settings(lanes, settings, distribution_stages(lanes), "distribution")
    return _pack(lanes, settings)


def unpack_distribution(lanes: int, word: int) -> list[list[int]]:
    """Inverse of :func:`pack_distribution`."""
    return _unpack(lanes, word, distribution_stages(lanes))


def apply_distribution(lanes: int, settings, values) -> list:
    """Functional model: the list of values on the output lanes when ``values`` (one
    per input lane, any Python objects) enter a distribution network set to
    ``settings``. Same semantics as ``rtl.distribution.DistributionNetwork``."""
    n = lanes_log2(lanes)
    _check_settings(lanes, settings, 2 * n - 1, "distribution")
    if len(values) != lanes:
        raise ValueError(f"got {len(values)} input values; expected lanes={lanes}")
    wiring = _benes_wiring(lanes, n)
    cur = list(values)
    for t, row in enumerate(settings):
        out = [None] * lanes
        for s, code in enumerate(row):
            u, lo = cur[2 * s], cur[2 * s + 1]
            out[2 * s] = lo if code & 1 else u
            out[2 * s + 1] = u if (code ^ (code >> 1)) & 1 else lo
        if t < len(settings) - 1:
            nxt = [None] * lanes
            for p, q in enumerate(wiring[t]):
                nxt[q] = out[p]
            cur = nxt
        else:
            cur = out
    return cur


# Setting of a switch given which input (0 upper, 1 lower, None unused) each output
# takes: key (upper_out_from, lower_out_from).
_SW = {
    (0, 1): 0, (0, None): 0, (None, 1): 0, (None, None): 0,
    (1, 0): 1, (1, None): 1, (None, 0): 1,
    (0, 0): 2, (1, 1): 3,
}

_SEARCH_BUDGET = 4000  # recursive block routings per request before giving up


class _Unroutable(Exception):
    def __init__(self, lane, src, stage, gave_up=False):
        super().__init__(lane, src, stage)
        self.lane, self.src, self.stage, self.gave_up = lane, src, stage, gave_up


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left):
        self.left = left


def route_distribution(lanes: int, mapping) -> list[list[int]]:
    """Switch settings that deliver input lane ``mapping[dst]`` to every output lane
    ``dst`` (``None``: don't care). Several outputs may share a source (multicast).

    Every permutation routes (looping algorithm: at each recursion level the demands
    are 2-coloured into the upper/lower sub-network, the colouring is forced along
    chains of conflicting demands and free per chain). Multicast uses the same
    recursion with first-stage fan-out: a source is sent into both sub-networks when
    its sibling input is not needed, and a free chain is first coloured by the parity
    of the source of its first demand (in output order), which routes every bit-field
    multicast the CE-array mappings use (``pattern_*``; tested for every
    factorization at N = 4..64, < 1 ms each). Should a sub-network then fail, the
    router backtracks over chain colourings, an exhaustive search bounded by a fixed
    budget. Not every multicast is routable in one Benes pass (a 2x2 output switch
    needs its two values from different halves, an input switch can feed each half
    one value); ``route_distribution(8, [0, 1, 1, 2, 2, 0, 3, 3])`` is a minimal
    example. Returns
    ``settings[t][s]``; raises ``ValueError`` naming the output lane that could not be
    routed, or on a malformed request.
    """
    n = lanes_log2(lanes)
    if len(mapping) != lanes:
        raise ValueError(f"distribution mapping has {len(mapping)} entries; expected "
                         f"lanes={lanes}")
    req = []
    for dst, src in enumerate(mapping):
        if src is None:
            req.append(None)
            continue
        if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < lanes:
            raise ValueError(f"distribution mapping[{dst}]={src!r} is not an input lane; "
                             f"allowed 0..{lanes - 1} or None")
        req.append(src)
    settings = [[0] * (lanes // 2) for _ in range(2 * n - 1)]
    try:
        _route_block(lanes, req, list(range(lanes)), 0, 0, settings, n,
                     _Budget(_SEARCH_BUDGET))
    except _Unroutable as e:
        if e.gave_up:
            raise ValueError(f"distribution mapping: no routing found for output lane "
                             f"{e.lane} within the search budget of {_SEARCH_BUDGET} "
                             f"sub-network routings (lanes={lanes})") from None
        raise ValueError(f"distribution mapping unroutable: output lane {e.lane} cannot "
                         f"receive input lane {req[e.lane]} (conflict at Benes stage {e.stage} "
                         f"for lanes={lanes})") from None
    return settings


def _route_block(m, req, reps, depth, block, settings, n, budget):
    """Route request ``req`` (local output -> local input or None) through the Benes
    sub-network of ``m`` lanes at recursion ``depth``, index ``block``. ``reps[o]`` is a
    top-level output lane carried by local output ``o`` (for error messages)."""
    budget.left -= 1
    if budget.left < 0:
        o = next(i for i, v in enumerate(req) if v is not None)
        raise _Unroutable(reps[o], req[o], depth, gave_up=True)
    half = m // 2
    base = block * half
    first, last = depth, 2 * n - 2 - depth
    if m == 2:
        a, b = req
        settings[first][base] = _SW[(a, b)]
        return

    demanded = [False] * m
    for v in req:
        if v is not None:
            demanded[v] = True
    # Nodes: a source whose sibling input is also demanded is one node (all its
    # demands share a sub-network); otherwise each of its switch-demands is a node.
    # dem entries: (switch, source, node, (output positions))
    dem = []
    n_nodes = m
    adj = {}
    for s in range(half):
        a, b = req[2 * s], req[2 * s + 1]
        if a is None and b is None:
            continue
        if a is None or b is None or a == b:
            v = a if a is not None else b
            outs = tuple(o for o in (2 * s, 2 * s + 1) if req[o] == v)
            if demanded[v ^ 1]:
                node = v
            else:
                node = n_nodes
                n_nodes += 1
            dem.append((s, v, node, outs))
        else:
            nodes = []
            for o, v in ((2 * s, a), (2 * s + 1, b)):
                if demanded[v ^ 1]:
                    node = v
                else:
                    node = n_nodes
                    n_nodes += 1
                dem.append((s, v, node, (o,)))
                nodes.append(node)
            adj.setdefault(nodes[0], []).append((nodes[1], 2 * s))
            adj.setdefault(nodes[1], []).append((nodes[0], 2 * s))
    for v in range(0, m, 2):
        if demanded[v] and demanded[v + 1]:
            adj.setdefault(v, []).append((v + 1, None))
            adj.setdefault(v + 1, []).append((v, None))

    # 2-colour; record components (root order = first appearance among demands, i.e.
    # by output position) so alternatives can flip them.
    color = {}
    comps = []   # list of node lists
    for s, v, node, outs in dem:
        if node in color:
            continue
        root_color = v & 1
        color[node] = root_color
        members = [node]
        stack = [node]
        while stack:
            x = stack.pop()
            cx = color[x]
            for y, o in adj.get(x, ()):
                cy = color.get(y)
                if cy is None:
                    color[y] = 1 - cx
                    members.append(y)
                    stack.append(y)
                elif cy == cx:
                    # odd cycle: no way to split these demands over two sub-networks
                    o = o if o is not None else next(oo for ss, vv, nd, oo2 in dem
                                                     if nd == y for oo in oo2)
                    raise _Unroutable(reps[o], req[o], last)
        comps.append(members)

    n_comps = len(comps)
    attempt = 0
    while True:
        if attempt:
            # Flip the components whose index bits are set in the attempt number.
            for i in range(n_comps):
                if (attempt >> i) & 1 != ((attempt - 1) >> i) & 1:
                    for x in comps[i]:
                        color[x] ^= 1
        try:
            _split_and_recurse(m, req, reps, dem, color, depth, block, settings, n,
                               budget)
            return
        except _Unroutable:
            attempt += 1
            if n_comps >= 31 or attempt >> n_comps or budget.left <= 0:
                raise


def _split_and_recurse(m, req, reps, dem, color, depth, block, settings, n, budget):
    half = m // 2
    base = block * half
    first, last = depth, 2 * n - 2 - depth
    sub_req = ([None] * half, [None] * half)
    sub_rep = ([0] * half, [0] * half)
    in_take = ([None] * half, [None] * half)  # sub-network -> input switch -> 0/1
    out_from = [[None, None] for _ in range(half)]  # switch -> output -> sub-network
    for s, v, node, outs in dem:
        c = color[node]
        j = v >> 1
        in_take[c][j] = v & 1
        sub_req[c][s] = j
        sub_rep[c][s] = reps[outs[0]]
        for o in outs:
            out_from[s][o & 1] = c
    first_row, last_row = settings[first], settings[last]
    for j in range(half):
        first_row[base + j] = _SW[(in_take[0][j], in_take[1][j])]
        last_row[base + j] = _SW[(out_from[j][0], out_from[j][1])]
    for c in (0, 1):
        if any(x is not None for x in sub_req[c]):
            _route_block(half, sub_req[c], sub_rep[c], depth + 1, 2 * block + c,
                         settings, n, budget)
        else:
            _fill_pass(half, depth + 1, 2 * block + c, settings, n)


def _fill_pass(m, depth, block, settings, n):
    half = m // 2
    base = block * half
    first, last = depth, 2 * n - 2 - depth
    for j in range(half):
        settings[first][base + j] = 0
        settings[last][base + j] = 0
    if m > 2:
        _fill_pass(half, depth + 1, 2 * block, settings, n)
        _fill_pass(half, depth + 1, 2 * block + 1, settings, n)


# ------------------------------------------------------------------------------------
# Reduction network
# ------------------------------------------------------------------------------------
#
# Stage layout for N = 2**n lanes (every stage registered in the RTL):
#   stages 0 .. 2n-2         Benes "gather": pass/swap; brings each group's members to
#                            a contiguous interval, groups in order, unused lanes last.
#   stages 2n-1 .. 3n-2      reduction butterfly, stage 2n-1+b pairs lanes i and
#                            i + 2**b (bit b of i clear), in place (no wiring between
#                            these stages); pass/swap/add-upper/add-lower.
#   stages 3n-1 .. 5n-3      Benes "scatter": pass/swap; moves group g's sum from lane g
#                            to its destination.
# Total 5n - 2 stages = the latency in cycles.

def reduction_stages(lanes: int) -> int:
    """Switch stages of the reduction network: ``(2n - 1) + n + (2n - 1) = 5n - 2``
    for ``n = log2(N)``, except ``N = 2``: one butterfly switch already sums or orders
    two lanes in every way a request can ask (pass, swap, sum to either lane), so the
    2-lane network is that single stage."""
    n = lanes_log2(lanes)
    return 1 if lanes == 2 else 5 * n - 2


def reduction_latency(lanes: int) -> int:
    """Cycles from ``inputs`` to ``outputs``: one register per stage, ``5*log2(N) - 2``
    (1 for ``N = 2``)."""
    return reduction_stages(lanes)


def reduction_n_switch_bits(lanes: int) -> int:
    """Width of the packed reduction configuration: ``2 * (N/2) * (5*log2(N) - 2)``."""
    return lanes * reduction_stages(lanes)


def reduction_stage_kinds(lanes: int) -> list[tuple[str, int]]:
    """Per stage ``("gather", t)`` / ``("butterfly", b)`` / ``("scatter", t)``: which
    block the stage belongs to and its index there (Benes stage ``t`` or butterfly
    bit ``b``)."""
    n = lanes_log2(lanes)
    if lanes == 2:
        return [("butterfly", 0)]
    return ([("gather", t) for t in range(2 * n - 1)]
            + [("butterfly", b) for b in range(n)]
            + [("scatter", t) for t in range(2 * n - 1)])


def butterfly_pair(switch: int, bit: int) -> tuple[int, int]:
    """Lanes ``(upper, lower)`` of switch ``switch`` in the butterfly stage for ``bit``:
    ``upper`` is ``switch`` with a 0 inserted at bit position ``bit``, ``lower`` is
    ``upper + 2**bit``."""
    low = switch & ((1 << bit) - 1)
    upper = ((switch >> bit) << (bit + 1)) | low
    return upper, upper | (1 << bit)


def pack_reduction(lanes: int, settings) -> int:
    """Pack reduction ``settings[t][s]`` (same order as the distribution network)."""
    lanes_log2(lanes)
    _check_settings(lanes, settings, reduction_stages(lanes), "reduction")
    return _pack(lanes, settings)


def unpack_reduction(lanes: int, word: int) -> list[list[int]]:
    """Inverse of :func:`pack_reduction`."""
    return _unpack(lanes, word, reduction_stages(lanes))


def _wrap(value, width):
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def apply_reduction(lanes: int, settings, values, width: int) -> list[int]:
    """Functional model: output lane values of the reduction network (``width``-bit
    two's complement, sums wrap) for input ``values`` and ``settings``. Same semantics
    as ``rtl.reduction.ReductionNetwork``, don't-care lanes included."""
    n = lanes_log2(lanes)
    _check_settings(lanes, settings, reduction_stages(lanes), "reduction")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width={width!r} is not a positive integer")
    if len(values) != lanes:
        raise ValueError(f"got {len(values)} input values; expected lanes={lanes}")
    wiring = _benes_wiring(lanes, n)
    cur = [_wrap(int(v), width) for v in values]
    for t, (kind, idx) in enumerate(reduction_stage_kinds(lanes)):
        row = settings[t]
        out = [0] * lanes
        if kind == "butterfly":
            for s, code in enumerate(row):
                i0, i1 = butterfly_pair(s, idx)
                a, b = cur[i0], cur[i1]
                if code == RED_PASS:
                    out[i0], out[i1] = a, b
                elif code == RED_SWAP:
                    out[i0], out[i1] = b, a
                elif code == RED_ADD_UPPER:
                    out[i0], out[i1] = _wrap(a + b, width), b
                else:
                    out[i0], out[i1] = a, _wrap(a + b, width)
            cur = out
            continue
        for s, code in enumerate(row):
            u, lo = cur[2 * s], cur[2 * s + 1]
            if code & 1:
                u, lo = lo, u
            out[2 * s], out[2 * s + 1] = u, lo
        if idx < 2 * n - 2:
            nxt = [0] * lanes
            for p, q in enumerate(wiring[idx]):
                nxt[q] = out[p]
            cur = nxt
        else:
            cur = out
    return cur


def route_reduction(lanes: int, groups, dests) -> list[list[int]]:
    """Settings that put ``sum(inputs[l] for l in groups[g])`` on output lane
    ``dests[g]`` for every group ``g``, in one pass.

    ``groups``: disjoint, non-empty sequences of input lanes (lanes in no group are
    ignored); ``dests``: distinct output lanes, one per group (other outputs carry
    don't-care values). Construction (see the stage layout above): the gather Benes
    places group ``g``'s members on the interval ``[lo_g, hi_g]`` (``lo_0 = 0``, groups
    back to back in order); the butterfly, the transpose of Lee's broadcast-banyan copy
    network, reduces the intervals so that group ``g``'s sum lands on lane ``g`` (before
    butterfly stage ``b`` each group has one partial sum per aligned ``2**b``-lane block
    its interval meets, on the lane of that block whose low ``b`` bits equal ``g``'s;
    two partial sums meeting in one switch either belong to the same group and are added,
    or head for different outputs, because the groups meeting a block are consecutive);
    the scatter Benes moves lane ``g`` to ``dests[g]``. Raises ``ValueError`` on a
    malformed request (naming the group or lane).
    """
    n = lanes_log2(lanes)
    seen = {}
    groups = [list(g) for g in groups]
    dests = list(dests)
    if len(dests) != len(groups):
        raise ValueError(f"reduction request has {len(groups)} groups but {len(dests)} "
                         f"destinations; expected one destination per group")
    for g, members in enumerate(groups):
        if not members:
            raise ValueError(f"reduction group {g} is empty; a group needs at least one lane")
        for lane in members:
            if isinstance(lane, bool) or not isinstance(lane, int) or not 0 <= lane < lanes:
                raise ValueError(f"reduction group {g} has lane {lane!r}; allowed "
                                 f"0..{lanes - 1}")
            if lane in seen:
                raise ValueError(f"reduction lane {lane} is in groups {seen[lane]} and {g}; "
                                 f"groups must be disjoint")
            seen[lane] = g
    used_dest = {}
    for g, d in enumerate(dests):
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < lanes:
            raise ValueError(f"reduction destination of group {g} is {d!r}; allowed "
                             f"0..{lanes - 1}")
        if d in used_dest:
            raise ValueError(f"reduction output lane {d} is the destination of groups "
                             f"{used_dest[d]} and {g}; destinations must be distinct")
        used_dest[d] = g

    if lanes == 2:
        return [[_two_lane_code(groups, dests)]]

    # Gather: position p <- order[p].
    order = [lane for members in groups for lane in members]
    order += [lane for lane in range(lanes) if lane not in seen]
    gather = route_distribution(lanes, order)

    # Butterfly: owner[lane] = group whose partial sum sits on that lane.
    owner = [None] * lanes
    p = 0
    for g, members in enumerate(groups):
        for _ in members:
            owner[p] = g
            p += 1
    butterfly = []
    for b in range(n):
        row = [RED_PASS] * (lanes // 2)
        nxt = [None] * lanes
        for s in range(lanes // 2):
            i0, i1 = butterfly_pair(s, b)
            g0, g1 = owner[i0], owner[i1]
            t0 = None if g0 is None else (g0 >> b) & 1
            t1 = None if g1 is None else (g1 >> b) & 1
            if g0 is not None and g0 == g1:
                row[s] = RED_ADD_UPPER if t0 == 0 else RED_ADD_LOWER
                nxt[i1 if t0 else i0] = g0
                continue
            if g0 is not None and g1 is not None and t0 == t1:
                raise AssertionError(f"reduction butterfly collision at bit {b} switch {s}")
            swap = (t0 == 1) if g0 is not None else (t1 == 0)
            row[s] = RED_SWAP if swap else RED_PASS
            for g, t in ((g0, t0), (g1, t1)):
                if g is not None:
                    nxt[i1 if t else i0] = g
        owner = nxt
        butterfly.append(row)

    # Scatter: output dests[g] <- lane g; fill the rest to a full permutation.
    scatter_map = [None] * lanes
    for g, d in enumerate(dests):
        scatter_map[d] = g
    spare = iter(range(len(groups), lanes))
    scatter_map = [x if x is not None else next(spare) for x in scatter_map]
    scatter = route_distribution(lanes, scatter_map)
    return gather + butterfly + scatter


def _two_lane_code(groups, dests) -> int:
    """The one switch of the 2-lane reduction network for a (validated) request."""
    for members, d in zip(groups, dests):
        if len(members) == 2:
            return RED_ADD_UPPER if d == 0 else RED_ADD_LOWER
    src = {d: members[0] for members, d in zip(groups, dests)}
    return RED_SWAP if src.get(0) == 1 or src.get(1) == 0 else RED_PASS


# ------------------------------------------------------------------------------------
# CE-array mapping patterns (the requests the compiler issues)
# ------------------------------------------------------------------------------------

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


def pattern_multicast_a(n_ce, per_ce, ga, gb, gk) -> list[int]:
    """Distribution mapping "A": output lane ``o = c*P + p`` of CE ``c = (ia*gk + ik)*gb
    + ib`` takes source ``(ia*gk + ik)*P + p`` (each A tile copied to the ``gb`` CEs
    that differ in ``ib``)."""
    mapping = [0] * (n_ce * per_ce)
    for ia in range(ga):
        for ib in range(gb):
            for ik in range(gk):
                c = _ce_index(ia, ib, ik, gb, gk)
                for p in range(per_ce):
                    mapping[c * per_ce + p] = (ia * gk + ik) * per_ce + p
    return mapping


def pattern_multicast_b(n_ce, per_ce, ga, gb, gk) -> list[int]:
    """Distribution mapping "B": lane ``o = c*P + p`` takes source ``(ib*gk + ik)*P + p``
    (each B tile copied across ``ia``)."""
    mapping = [0] * (n_ce * per_ce)
    for ia in range(ga):
        for ib in range(gb):
            for ik in range(gk):
                c = _ce_index(ia, ib, ik, gb, gk)
                for p in range(per_ce):
                    mapping[c * per_ce + p] = (ib * gk + ik) * per_ce + p
    return mapping


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
