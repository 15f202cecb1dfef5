"""Event counts of contractions and training steps (sw_model.ttm.step_events) against the
compiler's own figures and hand-derived counts; RTL agreement is tests/sim/
test_step_confirm.py."""

import math

import pytest

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.program.kchunk import predict_total
from fetta.sw_model.ttm.step_events import (PHASES, Events, contraction_events,
                                        elementwise_ops, step_events)
from fetta.sw_model.ttm.models import PRESETS as MODELS
from fetta.sw_model.ttm.models import LayerSpec
from fetta.sw_model.ttm.workloads import LAYERS, WORKLOADS, Workload, get_workload


def test_single_program_counts_by_hand():
    cfg = get_config("tiny")
    spec, sa, sb = "ab,bc->ac", (37, 50), (50, 29)
    ev, peak = contraction_events(spec, sa, sb, cfg)
    cc = compile_contraction(spec, sa, sb, cfg)
    mp = cc.mapping
    assert ev.cycles == cc.predicted_cycles == predict_total(spec, sa, sb, cfg)[0]
    assert ev.mac_active_cycles == cc.tiles * cc.ksteps
    assert ev.array_mac_ops == ev.mac_active_cycles * 16
    assert ev.useful_macs == 37 * 50 * 29
    assert ev.a_reads == ev.b_reads == ev.mac_active_cycles * 8     # 8 A and 8 B lanes
    assert ev.c_writes == ev.output_ops == cc.c_rows * 8
    # 8-lane Benes: 5 stages of 4 switches, A and B networks
    assert ev.dist_switch_ops == ev.mac_active_cycles * 2 * 4 * 5
    assert ev.red_switch_ops == cc.c_rows * 4 * (5 * 3 - 2)
    assert ev.host_written == (cc.a_rows * mp.ga * mp.gk * 2 + cc.b_rows * mp.gb * mp.gk * 2
                               + len(cc.program) + 2)
    assert ev.chunks == 1 and ev.contractions == 1
    assert peak == {"a": cc.a_rows, "b": cc.b_rows, "c": cc.c_rows,
                    "program": len(cc.program)}


def test_chunked_contraction_sums_its_chunks():
    cfg = get_config("tiny")
    spec, sa, sb = "ijk,kl->ijl", (64, 48, 20), (20, 40)
    ev, _ = contraction_events(spec, sa, sb, cfg)
    cyc, chunks = predict_total(spec, sa, sb, cfg)
    assert ev.cycles == cyc and ev.chunks == chunks > 1
    assert ev.useful_macs == 64 * 48 * 20 * 40
    assert ev.array_mac_ops >= ev.useful_macs


def test_events_add_field_by_field():
    a, b = Events(cycles=3, a_reads=1), Events(cycles=4, host_read=2)
    s = a + b
    assert (s.cycles, s.a_reads, s.host_read, s.host_words) == (7, 1, 2, 2)


def test_step_phases_cover_every_contraction():
    wl = get_workload("digits")
    st = step_events(wl, "tiny", 64)
    total = st["total"]
    assert total.cycles == sum(st["phases"][p].cycles for p in PHASES)
    assert total.cycles == sum(c["cycles"] for c in st["contractions"])
    assert total.contractions == len(st["contractions"])
    # the digits input layer computes no input gradient; the second layer does
    assert {c["phase"] for c in st["contractions"] if c["layer"] == 0} == \
        {"forward", "core_gradients"}
    assert "input_gradient" in {c["phase"] for c in st["contractions"] if c["layer"] == 1}
    # the model's MACs: forward + backward of every layer, at least the dense forward
    assert total.useful_macs >= 64 * (64 * 128 + 128 * 16)


def test_layer_workload_has_input_gradient():
    wl = Workload("t", "test layer", (LayerSpec([4, 4], [4, 2], [4]),), dx_first=True)
    st = step_events(wl, "tiny", 8)
    assert st["phases"]["input_gradient"].cycles > 0
    assert {c["phase"] for c in st["contractions"]} == set(PHASES)


def test_elementwise_ops_by_hand():
    wl = get_workload("novikov")                  # one layer, 1024 -> 625, ranks 2
    params = wl.tt_params + 625
    assert elementwise_ops(wl, 8) == 8 * 625 * 2 + 16 * params


def test_workloads_are_the_models_and_layers():
    assert WORKLOADS["digits"].layers == MODELS["digits"].layers
    assert WORKLOADS["mnist-tt"].layers == MODELS["mnist-tt"].layers
    i, o, r = LAYERS["CoMERA 768->768"]
    (layer,) = WORKLOADS["comera"].layers
    assert [list(layer.in_modes), list(layer.out_modes), list(layer.ranks)] == [list(i), list(o), list(r)]
    with pytest.raises(ValueError, match="workload 'nope' unknown; allowed digits"):
        get_workload("nope")


def test_k_chunked_contraction_drains_only_its_last_box():
    """A reduction longer than the buffers runs as K chunks: every box issues, only the
    last box of each tile drains (C writes, output stage, reduction network, results
    read back); cycles and programs are the cycle model's."""
    from fetta.sw_model.accel.hostmap import COUNTERS
    from fetta.sw_model.arith.einsum_spec import parse_spec
    from fetta.sw_model.program.kchunk import kchunk_plan
    from fetta.sw_model.ttm.step_events import contraction_programs, program_events
    cfg = get_config("tiny").replace(bank_depth=16)
    spec, sa, sb = "ak,kb->ab", (3, 600), (600, 5)
    ev, peak = contraction_events(spec, sa, sb, cfg)
    cyc, programs = predict_total(spec, sa, sb, cfg)
    assert (ev.cycles, ev.chunks) == (cyc, programs) and programs > 2
    assert ev.useful_macs == 3 * 600 * 5 and ev.contractions == 1
    kp = kchunk_plan(spec, sa, sb, cfg)
    drained = issued = 0
    for tile, box, first, last in kp.runs():
        pa, pb = kp.shapes(tile, box)
        cc = compile_contraction(spec, pa, pb, cfg, mapping=kp.mapping,
                                 lanes=(kp.im, kp.in_), idx_strides=kp.idx_strides,
                                 acc_continue=not first, acc_hold=not last)
        issued += cc.tiles * cc.ksteps
        drained += cc.c_rows * cfg.c_lanes if last else 0
    assert ev.mac_active_cycles == issued and ev.c_writes == ev.output_ops == drained
    assert 0 < drained < programs * cfg.c_lanes
    # a held box's events: as the drained one, less everything the drain does
    sp = parse_spec(spec)
    held = next(g for g in contraction_programs(sp, sa, sb, cfg) if not g[4])
    cc = compile_contraction(sp, held[1], held[2], cfg, **held[3])
    h, d = program_events(cc, read_out=False), program_events(cc)
    assert (h.c_writes, h.output_ops, h.red_switch_ops) == (0, 0, 0)
    assert d.c_writes > 0
    assert h.host_read == 2 + 2 * len(COUNTERS) < d.host_read
    assert (h.cycles, h.mac_active_cycles, h.a_reads, h.host_written) == \
        (d.cycles, d.mac_active_cycles, d.a_reads, d.host_written)


def test_events_times_a_count():
    e = Events(cycles=3, host_read=2)
    assert 4 * e == e * 4 == Events(cycles=12, host_read=8)
    with pytest.raises(TypeError):
        e * 1.5
