"""The distribution network: an N-lane Benes network of 2x2 switches, its router
(permutations and multicasts), settings packing and functional model.

Pure Python (no Amaranth, no NumPy needed): ``rtl/distribution.py`` reads its topology
from this module (and ``rtl/reduction.py`` the wiring of its two permutation blocks),
and ``apply_distribution`` applies exactly the switch semantics the RTL implements, so
a settings list means the same thing in the compiler, the model and the gateware.
Lanes, stages, settings and their packing: ``sw_model.accel.switch_settings``.

Switch codes (``DIST_*``): what (upper out, lower out) carry. Latency
(``DISTRIBUTION_LATENCY``): 1 cycle, combinational switch stages and one output
register. Width of the packed settings: ``distribution_n_switch_bits(N) =
N * (2*log2(N) - 1)``.

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

import functools

from .switch_settings import check_settings, lanes_log2, pack_settings, unpack_settings

__all__ = [
    "DIST_PASS", "DIST_SWAP", "DIST_BCAST_UPPER", "DIST_BCAST_LOWER",
    "DISTRIBUTION_LATENCY", "benes_stages", "benes_wiring",
    "distribution_stages", "distribution_n_switch_bits",
    "route_distribution", "pack_distribution", "unpack_distribution",
    "apply_distribution",
]

# Distribution switch codes: what (upper out, lower out) carry.
DIST_PASS = 0          # (upper in, lower in)
DIST_SWAP = 1          # (lower in, upper in)
DIST_BCAST_UPPER = 2   # (upper in, upper in)
DIST_BCAST_LOWER = 3   # (lower in, lower in)

#: Cycles from ``inputs`` to ``outputs`` of the distribution network (combinational
#: switch stages and one output register).
DISTRIBUTION_LATENCY = 1


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
    first; see ``switch_settings``)."""
    lanes_log2(lanes)
    check_settings(lanes, settings, distribution_stages(lanes), "distribution")
    return pack_settings(lanes, settings)


def unpack_distribution(lanes: int, word: int) -> list[list[int]]:
    """Inverse of :func:`pack_distribution`."""
    return unpack_settings(lanes, word, distribution_stages(lanes))


def apply_distribution(lanes: int, settings, values) -> list:
    """Functional model: the list of values on the output lanes when ``values`` (one
    per input lane, any Python objects) enter a distribution network set to
    ``settings``. Same semantics as ``rtl.distribution.DistributionNetwork``."""
    n = lanes_log2(lanes)
    check_settings(lanes, settings, 2 * n - 1, "distribution")
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
    ``settings[t][s]`` (a new list on every call; the routing of a request is computed
    once per process, ``_route``: the compiler asks for the same few mappings over and
    over); raises ``ValueError`` naming the output lane that could not be routed, or on
    a malformed request.
    """
    lanes_log2(lanes)                   # a power of two, else ValueError
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
    return [list(row) for row in _route(lanes, tuple(req))]


@functools.lru_cache(maxsize=1024)
def _route(lanes: int, req: tuple) -> tuple:
    """Settings (a tuple of stage tuples) for a validated request ``req``."""
    n = lanes_log2(lanes)
    settings = [[0] * (lanes // 2) for _ in range(2 * n - 1)]
    try:
        _route_block(lanes, list(req), list(range(lanes)), 0, 0, settings, n,
                     _Budget(_SEARCH_BUDGET))
    except _Unroutable as e:
        if e.gave_up:
            raise ValueError(f"distribution mapping: no routing found for output lane "
                             f"{e.lane} within the search budget of {_SEARCH_BUDGET} "
                             f"sub-network routings (lanes={lanes})") from None
        raise ValueError(f"distribution mapping unroutable: output lane {e.lane} cannot "
                         f"receive input lane {req[e.lane]} (conflict at Benes stage {e.stage} "
                         f"for lanes={lanes})") from None
    return tuple(tuple(row) for row in settings)


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

