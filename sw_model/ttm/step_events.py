"""Event counts of one training step on one accelerator configuration, from the
compiler (``compile_contraction``, ``chunk_plan``, ``kchunk_plan``) — the numbers the
energy model (``sw_model.accel.energy``) prices, ``fetta eval`` reports and ``fetta
sweep`` records.

Per program (``program_events(cc, read_out)``; ``contraction_events`` adds up a
contraction's programs, ``contraction_programs``, as compiled; ``fetta sweep``'s cost
counts its steps with it):

* ``cycles``: the compiler's cycle model (equal to the RTL's CYCLES counter, tested);
* ``mac_active_cycles``: cycles the PE array issues (``tiles x ksteps``; the RTL's
  MAC_ACTIVE counter, tested); ``array_mac_ops`` = that x the array's MACs (padding
  lanes included: the PEs run with zero operands); ``useful_macs`` = product of all
  index sizes;
* ``a_reads``/``b_reads``: buffer words read (every bank of A and B, once per issue
  cycle); ``c_writes``: result words written (``c_rows x c_lanes``);
* ``dist_switch_ops``: 2x2 switch traversals in the A and B distribution networks
  (per issue cycle ``N/2`` switches x ``2 log2 N - 1`` stages each);
  ``red_switch_ops``: reduction-network switch traversals (per drained row ``N/2``
  switches x ``reduction_net.reduction_stages(N)``); ``output_ops``: output-stage
  operations (one per result word);
* ``host_written``/``host_read``: host-bus words with no residency reuse (every
  operand row's used lanes, the program, the CLEAR/START writes; the output lanes and
  the status/counter reads): what ``sim.harness.Session`` moves for a contraction on
  a fresh session (tested); a session that keeps rows resident moves at most this;
* ``program_words``, ``instructions`` (CONFIG + CONTRACTs + HALT), ``chunks``.
* ``move_cycles``, ``move_elements``: the on-chip MOVEs of a resident step
  (``sw_model.ttm.resident_step``; 0 for separate jobs): their cycles (not in
  ``cycles``) and their element cycles (the RTL's MOVE counter: words copied plus
  rows cleared; the energy model prices each as one bank read and one write).

A K chunk that holds its sums (``kchunk``: every box of a tile but the last,
``read_out=False``) issues as any program but drains nothing: no reduction-network or
output-stage operation, no C write, no result words read back. ``Events`` multiply by
an integer (a program run ``n`` times).

Per training step (``step_events``): the hardware-aware CSSE plan of every layer
(``csse.search(cost="cycles")`` on the configuration), split as the trainer splits
it (``ttm.split_plan``), contractions attributed to ``forward``, ``input_gradient``
(only ``dx`` needs them) or ``core_gradients``; plus ``elementwise_ops``, the step's
elementwise work (bias, ReLU, requantization, loss gradient, bias gradients, Adam),
which runs on the host today (counted, priced by the energy model as on-chip ALU
operations, and given an *estimated* cycle cost of one op per output lane per cycle,
reported apart as ``elementwise_estimate``, ``elementwise_cycles``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

from ..accel import reduction_net
from ..accel.config import AccelConfig, get_config
from ..arith.einsum_spec import parse_spec
from ..program.compiler import chunk_plan, compile_contraction, fits
from ..program.kchunk import kchunk_plan, needs_kchunks
from . import csse
from .layers import backward_phases, split_plan
from .plan import ttm_shapes
from .workloads import Workload

__all__ = ["Events", "program_events", "contraction_programs", "contraction_events",
           "step_events", "PHASES", "ADAM_OPS",
           "elementwise_ops", "elementwise_cycles"]

PHASES = ("forward", "input_gradient", "core_gradients")

# Elementwise operations per parameter of one Adam update in the fixed-point recipe
# (sw_model/quant_train.py FixedAdam.update): m and v updates (2 multiplies, 2 adds,
# 1 square), bias corrections (2 multiplies), square root, division, step, master add,
# re-quantization with stochastic rounding (hash + add + shift + saturate).
ADAM_OPS = 16


@dataclass
class Events:
    """Event counts (all integers); ``+`` adds them field by field."""
    cycles: int = 0
    mac_active_cycles: int = 0
    array_mac_ops: int = 0
    useful_macs: int = 0
    a_reads: int = 0
    b_reads: int = 0
    c_writes: int = 0
    dist_switch_ops: int = 0
    red_switch_ops: int = 0
    output_ops: int = 0
    host_written: int = 0
    host_read: int = 0
    program_words: int = 0
    instructions: int = 0
    chunks: int = 0
    contractions: int = 0
    move_cycles: int = 0          # MOVE instructions' cycles (resident dataflow)
    move_elements: int = 0        # MOVE element cycles: words copied + rows cleared

    def __add__(self, other: "Events") -> "Events":
        return Events(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                         for f in fields(self)})

    def __mul__(self, n: int) -> "Events":
        if isinstance(n, bool) or not isinstance(n, int):
            return NotImplemented
        return Events(**{f.name: getattr(self, f.name) * n for f in fields(self)})

    __rmul__ = __mul__

    @property
    def host_words(self) -> int:
        return self.host_written + self.host_read

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["host_words"] = self.host_words
        return d


def _dist_stages(lanes: int) -> int:
    return 2 * (lanes.bit_length() - 1) - 1


def contraction_programs(sp, shape_a, shape_b, cfg: AccelConfig) -> list[tuple]:
    """``[(count, shape of A, shape of B, compile options, read out)]``: every distinct
    program ``sim.harness.Session`` runs for one contraction (``sp`` a parsed spec) and
    how many times: one program; output chunks (``compiler.chunk_plan``, a few distinct
    shapes); or K chunks (``kchunk.kchunk_plan``) when the reduction alone does not fit
    (per shape, the first, middle and last box of a tile apart: their K-chunk flags
    differ; ``read out`` is False for the boxes that hold their sums)."""
    sizes = sp.sizes(shape_a, shape_b)
    if fits(sp, shape_a, shape_b, cfg):
        return [(1, tuple(shape_a), tuple(shape_b), {}, True)]
    groups: dict = {}
    if needs_kchunks(sp, sizes, cfg):
        kp = kchunk_plan(sp, shape_a, shape_b, cfg)
        for tile, box, first, last in kp.runs():
            pa, pb = kp.shapes(tile, box)
            key = (tuple(pa), tuple(pb), first, last)
            groups[key] = groups.get(key, 0) + 1
        # mapping, lanes and the output's strides are those of the whole contraction
        return [(n, pa, pb, dict(mapping=kp.mapping, lanes=(kp.im, kp.in_),
                                 idx_strides=kp.idx_strides, acc_continue=not first,
                                 acc_hold=not last), last)
                for (pa, pb, first, last), n in groups.items()]
    for ranges, _ in chunk_plan(sp, shape_a, shape_b, cfg):
        key = tuple((i, b - a) for i, (a, b) in ranges.items())
        groups[key] = groups.get(key, 0) + 1
    out = []
    for key, n in groups.items():
        sz = {**sizes, **dict(key)}
        out.append((n, tuple(sz[i] for i in sp.a), tuple(sz[i] for i in sp.b), {}, True))
    return out


def _options_key(kw: dict) -> tuple:
    return tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                        for k, v in kw.items()))


@functools.lru_cache(maxsize=1024)
def _compiled(sp, shape_a, shape_b, cfg: AccelConfig, options: tuple):
    kw = {k: dict(v) if k == "idx_strides" else v for k, v in options}
    return compile_contraction(sp, shape_a, shape_b, cfg, **kw)


def program_events(cc, read_out: bool = True) -> Events:
    """Events of one run of the compiled program ``cc`` (``read_out=False``: a K chunk
    that holds its sums, see the module doc)."""
    cfg = cc.config
    active = cc.tiles * cc.ksteps
    words = cc.transfer_words(read_out)
    drained = cc.c_rows if read_out else 0
    return Events(
        cycles=cc.predicted_cycles, mac_active_cycles=active,
        array_mac_ops=active * cfg.macs, useful_macs=cc.useful_macs,
        a_reads=active * cfg.a_lanes, b_reads=active * cfg.b_lanes,
        c_writes=drained * cfg.c_lanes,
        dist_switch_ops=active * (cfg.a_lanes // 2 * _dist_stages(cfg.a_lanes) +
                                  cfg.b_lanes // 2 * _dist_stages(cfg.b_lanes)),
        red_switch_ops=drained * (cfg.c_lanes // 2) *
        reduction_net.reduction_stages(cfg.c_lanes),
        output_ops=drained * cfg.c_lanes,
        host_written=words["written"], host_read=words["read"],
        program_words=len(cc.program),
        instructions=2 + (cc.tiles // max(1, _tiles_per_instruction(cc))),
        chunks=1, contractions=0)


def _tiles_per_instruction(cc) -> int:
    from ..accel.isa import N_LEVELS
    live = [c for _, c in cc.outer if c > 1]
    return math.prod(live[-N_LEVELS:]) if live else 1


def contraction_events(spec, shape_a, shape_b, config="tiny") -> tuple[Events, dict]:
    """Events of one contraction (its programs as ``sim.harness.Session`` runs them,
    ``contraction_programs``; each distinct program compiled once per process, the
    last 1,024 kept) and the peak buffer rows / program words it occupies
    (``{"a", "b", "c", "program"}``)."""
    cfg = get_config(config)
    sp = parse_spec(spec) if isinstance(spec, str) else spec
    ev = Events(contractions=1)
    peak = {"a": 0, "b": 0, "c": 0, "program": 0}
    for count, sa, sb, kw, read_out in contraction_programs(sp, shape_a, shape_b, cfg):
        cc = _compiled(sp, sa, sb, cfg, _options_key(kw))
        ev = ev + count * program_events(cc, read_out)
        for k, v in (("a", cc.a_rows), ("b", cc.b_rows), ("c", cc.c_rows),
                     ("program", len(cc.program))):
            peak[k] = max(peak[k], v)
    ev.useful_macs = math.prod(sp.sizes(shape_a, shape_b).values())
    return ev, peak


def elementwise_ops(workload: Workload, batch: int) -> int:
    """Elementwise operations of one training step of ``workload`` (host work today):
    per layer bias add; for hidden layers ReLU, requantization and the max-|x| vote;
    the loss gradient (softmax + cross-entropy, 4 ops per logit) on a model's last
    layer; bias gradient (one add per batch element and output); the ReLU mask on
    every propagated input gradient; ``ADAM_OPS`` per parameter (cores and biases)."""
    ops = 0
    last = len(workload.layers) - 1
    for l, layer in enumerate(workload.layers):
        ops += batch * layer.n_out                      # bias add
        if workload.model is not None and l < last:
            ops += 3 * batch * layer.n_out              # ReLU, requantize, max vote
        ops += batch * layer.n_out                      # bias gradient
        if workload.need_dx(l) and l > 0:
            ops += batch * layer.n_in                   # ReLU mask on dx
    if workload.model is not None:
        ops += 4 * batch * workload.layers[-1].n_out    # softmax-xent gradient
    ops += ADAM_OPS * (workload.tt_params + workload.bias_params)
    return ops


def elementwise_cycles(ops: int, cfg: AccelConfig) -> int:
    """*Estimated* cycles of ``ops`` elementwise operations on the accelerator (they run
    on the host today): one operation per output lane per cycle."""
    return -(-ops // cfg.out_lanes)


def step_events(workload: Workload, config="tiny", batch: int = 64) -> dict:
    """Events of one training step of ``workload`` at ``batch`` on ``config``:
    ``{"phases": {phase: Events}, "total": Events, "peak": {...}, "layers": [...],
    "elementwise_ops": int, "contractions": [...]}``; ``contractions`` lists each
    contraction with its layer, phase, spec, shapes, cycles and MACs."""
    cfg = get_config(config)
    phases = {p: Events() for p in PHASES}
    peak = {"a": 0, "b": 0, "c": 0, "program": 0}
    rows = []
    for l, layer in enumerate(workload.layers):
        i, o, r = list(layer.in_modes), list(layer.out_modes), list(layer.ranks)
        plan = csse.layer_plan(tuple(i), tuple(o), tuple(r), batch, "cycles", cfg)
        parts = split_plan(plan, len(i), workload.need_dx(l))
        env = dict(ttm_shapes(i, o, r, batch))
        for st in plan.steps:
            env[st.out] = st.shape
        back = backward_phases((s.out, s.a, s.b) for s in parts.backward.steps)
        for phase_steps, is_fwd in ((parts.forward.steps, True),
                                    (parts.backward.steps, False)):
            for st in phase_steps:
                ph = "forward" if is_fwd else back[st.out]
                ev, pk = contraction_events(st.spec, env[st.a], env[st.b], cfg)
                phases[ph] = phases[ph] + ev
                for k in peak:
                    peak[k] = max(peak[k], pk[k])
                rows.append({"layer": l, "phase": ph, "spec": st.spec,
                             "shape_a": list(env[st.a]), "shape_b": list(env[st.b]),
                             "cycles": ev.cycles, "useful_macs": ev.useful_macs,
                             "chunks": ev.chunks,
                             "utilization": ev.useful_macs / (cfg.macs * ev.cycles)})
    total = Events()
    for ev in phases.values():
        total = total + ev
    return {"phases": phases, "total": total, "peak": peak,
            "elementwise_ops": elementwise_ops(workload, batch), "contractions": rows}
