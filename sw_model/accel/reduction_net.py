"""The reduction network: an N-lane registered network that sums groups of input
lanes onto chosen output lanes in one pass; its router, settings packing and
functional model.

Pure Python: ``rtl/reduction.py`` reads its stage layout from this module, and
``apply_reduction`` applies exactly the switch semantics the RTL implements
(``width``-bit two's complement, sums wrap). Lanes, stages, settings and their
packing: ``sw_model.accel.switch_settings``; the Benes blocks: ``sw_model.accel.benes``.

Switch codes (``RED_*``): in the permutation (Benes) stages only bit 0 matters (0 pass,
1 swap; 2 acts as 0 and 3 as 1, no adders there); in the butterfly stages all four
apply.

Stage layout for N = 2**n lanes (every stage registered in the RTL):
  stages 0 .. 2n-2         Benes "gather": pass/swap; brings each group's members to
                           a contiguous interval, groups in order, unused lanes last.
  stages 2n-1 .. 3n-2      reduction butterfly, stage 2n-1+b pairs lanes i and
                           i + 2**b (bit b of i clear), in place (no wiring between
                           these stages); pass/swap/add-upper/add-lower.
  stages 3n-1 .. 5n-3      Benes "scatter": pass/swap; moves group g's sum from lane g
                           to its destination.
Total 5n - 2 stages = the latency in cycles (``reduction_latency``); N = 2 is one
butterfly stage. Width of the packed settings: ``reduction_n_switch_bits(N) =
N * (5*log2(N) - 2)``.
"""

from __future__ import annotations

from .benes import benes_wiring, route_distribution
from .switch_settings import check_settings, lanes_log2, pack_settings, unpack_settings

__all__ = [
    "RED_PASS", "RED_SWAP", "RED_ADD_UPPER", "RED_ADD_LOWER",
    "reduction_stages", "reduction_latency", "reduction_n_switch_bits",
    "reduction_stage_kinds", "butterfly_pair",
    "route_reduction", "pack_reduction", "unpack_reduction", "apply_reduction",
]

# Reduction switch codes.
RED_PASS = 0           # (a, b)
RED_SWAP = 1           # (b, a)
RED_ADD_UPPER = 2      # (a + b, b): the sum on the upper output, lower passes its input
RED_ADD_LOWER = 3      # (a, a + b): the sum on the lower output, upper passes its input


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
    check_settings(lanes, settings, reduction_stages(lanes), "reduction")
    return pack_settings(lanes, settings)


def unpack_reduction(lanes: int, word: int) -> list[list[int]]:
    """Inverse of :func:`pack_reduction`."""
    return unpack_settings(lanes, word, reduction_stages(lanes))


def _wrap(value, width):
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def apply_reduction(lanes: int, settings, values, width: int) -> list[int]:
    """Functional model: output lane values of the reduction network (``width``-bit
    two's complement, sums wrap) for input ``values`` and ``settings``. Same semantics
    as ``rtl.reduction.ReductionNetwork``, don't-care lanes included."""
    n = lanes_log2(lanes)
    check_settings(lanes, settings, reduction_stages(lanes), "reduction")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width={width!r} is not a positive integer")
    if len(values) != lanes:
        raise ValueError(f"got {len(values)} input values; expected lanes={lanes}")
    wiring = benes_wiring(lanes)
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
    don't-care values). Construction (stage layout: module doc): the gather Benes
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

