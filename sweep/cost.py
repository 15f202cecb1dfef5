"""Cost of one accelerator configuration on one workload of the TTM suite, from the
compiler's exact cycle model (no simulation).

``cost_workload(cfg, name, order)`` plans the layer's training step for ``cfg``
(``sw_model.workloads.scaled_plan``: the largest batch whose every step fits the
buffers), splits every pairwise contraction into programs as the harness runs it (one
program; output chunks, ``compiler.chunk_plan``; or K chunks, ``kchunk.kchunk_plan``,
when the reduction alone does not fit), groups the programs by shape (and K-chunk
flags) and compiles each distinct one once (``compile_contraction``): its predicted
cycles times its count are the contraction's cycles (what the compiler's public cycle
model ``kchunk.predict_total`` computes; ``check=True`` also calls it and raises
``ValueError`` naming the contraction and both values on a difference — the tests do,
a sweep does not, since it would plan every contraction twice), and its buffer rows,
program words and host-bus words the rest of the cost.

Result (JSON-serialisable dict):

* ``batch``, ``contractions``, ``chunks``, ``macs`` (useful MACs of the step);
* ``cycles``: ``forward``, ``input_gradient``, ``core_gradients`` (the trainer's
  phases, ``workloads.step_phases``), ``compute`` (their sum), ``host_transfer`` (host
  words at one word per cycle, ``sim.harness``), ``total``;
* ``cycles_per_sample`` = total / batch;
* ``mac_utilization`` (useful MACs / (array MACs x compute cycles)),
  ``mac_utilization_mean`` (mean over contractions), ``mac_utilization_with_transfer``;
* ``peak_rows`` (A, B, C buffer rows, program words) and ``occupancy`` (each as a
  fraction of ``bank_depth`` / ``prog_depth``);
* ``host_words``: ``written``/``read`` with nothing resident between contractions
  (``sim.harness.transfer_words``; a ``Session`` skips rows that are already resident,
  so measured training runs move at most this).

Latency (CPU, ``scripts/sweep_point_cost.py``): about 0.2 s for all 8 workloads of a
point of the presets' neighbourhood once the plans are cached, plus about 0.3 s of CSSE
plan searches per process (``order="macs"``: one search per layer and batch serves
every configuration); ``order="cycles"`` adds a CSSE search per configuration (tens of
seconds to minutes per layer).
"""

from __future__ import annotations

from fetta.sim.harness import transfer_words
from fetta.sw_model.program.compiler import chunk_plan, compile_contraction, fits
from fetta.sw_model.program.kchunk import kchunk_plan, needs_kchunks, predict_total
from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.ttm.workloads import get_layer, scaled_plan, step_phases, steps_of

__all__ = ["cost_workload", "PHASES"]

PHASES = ("forward", "input_gradient", "core_gradients")


def _programs(sp, shape_a, shape_b, cfg):
    """``[(count, shape of A, shape of B, compile options, read out)]``: every distinct
    program the harness runs for one contraction and how many times it runs it: one
    program; output chunks (``compiler.chunk_plan``, a few distinct shapes); or K
    chunks (``kchunk.kchunk_plan``) when the reduction alone does not fit (per shape,
    first, middle and last box of a tile apart: they differ in their K-chunk flags)."""
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


def cost_workload(cfg: AccelConfig, name: str, order: str = "macs",
                  check: bool = False) -> dict:
    """Cost of workload ``name`` (a ``workloads.LAYERS`` key) on ``cfg``; see the module
    docstring. Raises ``ValueError`` (one line) when a contraction cannot run at all,
    or, with ``check``, when a contraction's programs do not add up to
    ``kchunk.predict_total``."""
    i, o, r = get_layer(name)
    batch, plan, shapes = scaled_plan(i, o, r, cfg, order)
    phase_of = step_phases(plan, len(i))
    cycles = dict.fromkeys(PHASES, 0)
    peak = {"a": 0, "b": 0, "c": 0, "program": 0}
    words = {"written": 0, "read": 0}
    macs = n_chunks = contractions = 0
    utils = []
    compiled: dict = {}
    for st, sa, sb in steps_of(plan, shapes):
        sp = parse_spec(st.spec)
        total = n = 0
        for count, pa, pb, kw, read_out in _programs(sp, sa, sb, cfg):
            # a contraction's K-chunk programs share mapping, lanes and strides
            key = (st.spec, pa, pb, bool(kw), kw.get("acc_continue"), kw.get("acc_hold"))
            cc = compiled.get(key)
            if cc is None:
                cc = compiled[key] = compile_contraction(sp, pa, pb, cfg, **kw)
            total += count * cc.predicted_cycles
            n += count
            tw = transfer_words(cc, read_out)
            words["written"] += count * tw["written"]
            words["read"] += count * tw["read"]
            peak["a"] = max(peak["a"], cc.a_rows)
            peak["b"] = max(peak["b"], cc.b_rows)
            peak["c"] = max(peak["c"], cc.c_rows)
            peak["program"] = max(peak["program"], len(cc.program))
        if check:
            want, programs = predict_total(sp, sa, sb, cfg)
            if (total, n) != (want, programs):
                raise ValueError(f"cycle model disagrees with itself on '{st.spec}' "
                                 f"{tuple(sa)} x {tuple(sb)}: predict_total {want} in "
                                 f"{programs} programs, compiled {total} in {n}")
        cycles[phase_of[st.out]] += total
        macs += st.macs
        n_chunks += n
        contractions += 1
        utils.append(st.macs / (cfg.macs * total))
    compute = sum(cycles[p] for p in PHASES)
    host = words["written"] + words["read"]
    cycles.update(compute=compute, host_transfer=host, total=compute + host)
    return {
        "batch": batch, "contractions": contractions, "chunks": n_chunks, "macs": macs,
        "cycles": cycles, "cycles_per_sample": (compute + host) / batch,
        "mac_utilization": macs / (cfg.macs * compute),
        "mac_utilization_mean": sum(utils) / len(utils),
        "mac_utilization_with_transfer": macs / (cfg.macs * (compute + host)),
        "peak_rows": peak,
        "occupancy": {"a": peak["a"] / cfg.bank_depth, "b": peak["b"] / cfg.bank_depth,
                      "c": peak["c"] / cfg.bank_depth,
                      "program": peak["program"] / cfg.prog_depth},
        "host_words": words,
    }
