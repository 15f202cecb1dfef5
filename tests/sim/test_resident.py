"""Resident chains (``sim.resident``): intermediates stay on chip, moved by MOVE
instructions; the outputs equal the host path's bit for bit and the cycle count the
model's, on the Amaranth simulator (and Verilator in the slow tier)."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import run_chain
from fetta.sw_model.program import resident_plan
from fetta.sim import resident
from fetta.sim.resident import plan_resident, plan_segments
from fetta.sim.chain import check_chain
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.isa import Contract, Op, check_cycles, decode_header
from fetta.sw_model.program.compiler import compile_contraction

RNG = np.random.default_rng(0)
TENSORS = {"x": RNG.integers(-100, 100, (8, 12)), "w1": RNG.integers(-100, 100, (12, 10)),
           "w2": RNG.integers(-100, 100, (6, 10)), "w3": RNG.integers(-50, 50, (6, 5))}
# y is read as B by step 1 and as A by step 3 (two homes, two layouts); z and u are
# read once; g is the only output
STEPS = [("bi,ij->bj", "x", "w1", "y", {"shift": 6, "rounding": "stochastic",
                                        "out_bits": 12}),
         ("kj,bj->kb", "w2", "y", "z", {"shift": 5}),
         ("kb,kl->bl", "z", "w3", "u", {"shift": 4, "rounding": "nearest-even"}),
         ("bj,bl->jl", "y", "u", "g", {"shift": 3})]


def test_resident_chain_equals_host_path_on_pysim():
    res = _check("pysim")
    assert len(res.resident.segments[0].plan.programs) == 1


@pytest.mark.slow     # builds the Verilator model of tiny (about a minute)
def test_resident_chain_equals_host_path_on_verilator():
    _check("verilator")


def test_a_chain_run_again_rewrites_only_what_changed():
    """The session's copies of program memory and of A and B survive a resident run
    (the rows the programs wrote marked stale): the same chain again writes no input
    row and no program word, one with a new seed writes that word only, one with a new
    ``x`` rewrites x's rows only; the results are always the golden chain's."""
    from fetta.sim.chain import reference_chain
    from fetta.sim.harness import Session
    from fetta.sw_model.accel.hostmap import CONTROL_WRITES
    cfg = get_config("tiny")
    x2 = dict(TENSORS, x=TENSORS["x"] + 1)
    with Session(cfg, "pysim") as s:
        first = run_chain(STEPS, TENSORS, session=s, resident=True)
        again = run_chain(STEPS, TENSORS, session=s, resident=True)
        reseed = [(*st[:4], {**st[4], "seed": 1234}) if i == 0 else st
                  for i, st in enumerate(STEPS)]
        third = run_chain(reseed, TENSORS, session=s, resident=True)
        fourth = run_chain(reseed, x2, session=s, resident=True)
    rp = first.resident.segments[0].plan
    control = CONTROL_WRITES * len(rp.programs)
    prog = sum(len(p) for p in rp.programs)
    inputs = first.host_words["written"] - control - prog
    # every input and program word is written or skipped; the input rows skipped are
    # those no program of the chain overwrote (a later tensor may reuse their rows)
    again_in = again.host_words["written"] - control
    assert again_in + again.host_words["skipped"] == inputs + prog
    assert again.host_words["skipped"] > 0
    chip = resident.chip_written_rows(rp)
    stale = [h for h in rp.input_homes() if h.key != "dense" and
             np.isin(np.arange(h.base, h.base + h.rows), chip["AB".index(h.bank)]).any()]
    assert (again_in > 0) == bool(stale)
    assert third.host_words["written"] - again.host_words["written"] == 1
    x_words = sum(h.rows * rp.compiled[h.step].lanes_used(h.role)
                  for h in rp.input_homes() if h.tensor == "x")
    assert 0 < fourth.host_words["written"] - third.host_words["written"] <= x_words
    for res, steps, t in ((again, STEPS, TENSORS), (third, reseed, TENSORS),
                          (fourth, reseed, x2)):
        want = reference_chain(check_chain(steps, t), t, cfg)["g"]
        assert np.array_equal(res.outputs["g"], want)


def test_program_is_cut_where_program_memory_is_full():
    cfg = get_config("tiny").replace(name="tiny-short-prog", prog_depth=256)
    plan = check_chain(STEPS, TENSORS)
    rp = plan_resident(plan, {k: v.shape for k, v in TENSORS.items()}, cfg)
    assert len(rp.programs) > 1 and all(len(p) <= 256 for p in rp.programs)
    res = run_chain(STEPS, TENSORS, config=cfg, backend="pysim", resident=True)
    ref = run_chain(STEPS, TENSORS, config="tiny", backend="pysim")
    assert np.array_equal(res.outputs["g"], ref.outputs["g"])
    assert res.resident.cycles["counted"] == res.resident.cycles["predicted"]


def test_a_chain_that_does_not_fit_is_cut_into_segments():
    """16-row banks: no two steps fit together; every step is a segment (or a
    separate job where it does not compile into one program), results crossing a cut
    go through the host, and the outputs still equal the host path's."""
    small = get_config("tiny").replace(name="tiny-16", bank_depth=16)
    plan = check_chain(STEPS, TENSORS)
    segs = plan_segments(plan, {k: v.shape for k, v in TENSORS.items()}, small)
    assert len(segs) > 1 and segs[0].lo == 0 and segs[-1].hi == len(STEPS) - 1
    assert any(s.plan is None for s in segs)
    res = run_chain(STEPS, TENSORS, config=small, backend="pysim", resident=True)
    ref = run_chain(STEPS, TENSORS, config="tiny", backend="pysim")
    assert np.array_equal(res.outputs["g"], ref.outputs["g"])
    assert res.resident.cycles["counted"] == res.resident.cycles["predicted"]


def test_refusals_are_one_line():
    plan = check_chain(STEPS, TENSORS)
    shapes = {k: v.shape for k, v in TENSORS.items()}
    for fn in (plan_resident, plan_segments):
        with pytest.raises(FettaError, match="no MOVE unit") as exc:
            fn(plan, shapes, get_config("ice40"))
        assert "\n" not in str(exc.value)
    small = get_config("tiny").replace(name="tiny-16", bank_depth=16)
    with pytest.raises(FettaError, match=r"does not (fit|compile)") as exc:
        plan_resident(plan, shapes, small)
    assert "\n" not in str(exc.value)


# 16-row banks: these shapes fit resident only with footprint-aware layouts
TINY16 = get_config("tiny").replace(name="tiny-16", bank_depth=16)
FP_SHAPES = {"x": (4, 12), "w1": (12, 4), "w2": (6, 4), "w3": (6, 3)}


def _run_both(steps, tensors, cfg, backend="pysim"):
    """The chain resident on ``cfg`` and on the host path (``tiny``); outputs equal, one
    segment, counted cycles equal to the model's, fewer host reads (the host reads
    only g)."""
    res = run_chain(steps, tensors, config=cfg, backend=backend, resident=True)
    ref = run_chain(steps, tensors, config="tiny", backend=backend)
    assert set(res.outputs) == {"g"}
    got, want = res.outputs["g"], ref.outputs["g"]
    bad = np.argwhere(got != want)
    assert not len(bad), (f"output g element {tuple(bad[0])}: resident "
                          f"{got[tuple(bad[0])]}, host path {want[tuple(bad[0])]}")
    run = res.resident
    assert len(run.segments) == 1
    rp = run.segments[0].plan
    assert run.cycles["counted"] == run.cycles["predicted"] == rp.predicted_cycles
    assert res.host_words["read"] < ref.host_words["read"]
    return res, rp


def _check(backend):
    res, rp = _run_both(STEPS, TENSORS, "tiny", backend)
    assert rp.footprint_steps == []         # fits with the cycle-optimal layouts
    assert res.cycles["compute"] + res.cycles["on_chip_moves"] == rp.predicted_cycles
    assert res.cycles["on_chip_moves"] == rp.move_cycles > 0
    assert [(i, o, b) for i, o, b, _ in rp.moves] == [(0, "y", "B"), (0, "y", "A"),
                                                       (1, "z", "A"), (2, "u", "B")]
    return res


def _cycle_optimal(cc):
    sizes = cc.sizes
    return compile_contraction(cc.spec, [sizes[i] for i in cc.spec.a],
                               [sizes[i] for i in cc.spec.b], cc.config, plan_only=True)


def test_a_chain_that_fits_only_with_footprint_aware_layouts_is_bit_exact():
    """With the cycle-optimal layouts the homes do not fit 16-row banks (refused, or
    cut into segments); with footprint-aware layouts the whole chain stays resident in
    one program, within the banks, its outputs bit-identical to the host path's and
    its counted cycles equal to the model's on the Amaranth simulator."""
    rng = np.random.default_rng(5)
    tensors = {k: rng.integers(-100, 100, v) for k, v in FP_SHAPES.items()}
    plan = check_chain(STEPS, tensors)
    with pytest.raises(FettaError, match="does not fit 'tiny-16' with cycle-optimal "
                                         "layouts") as exc:
        plan_resident(plan, FP_SHAPES, TINY16, footprint=False)
    assert "\n" not in str(exc.value)
    assert len(plan_segments(plan, FP_SHAPES, TINY16, footprint=False)) > 1
    _, rp = _run_both(STEPS, tensors, TINY16)
    assert rp.footprint_steps and max(rp.peak_rows.values()) <= 16
    for i, cc in enumerate(rp.compiled):
        best = _cycle_optimal(cc)
        changed = (cc.mapping, cc.im, cc.in_) != (best.mapping, best.im, best.in_)
        assert changed == (i in rp.footprint_steps)
        assert cc.predicted_cycles >= best.predicted_cycles


def test_readers_of_one_tensor_share_a_home_when_it_must_fit(monkeypatch):
    """y is read as B by two steps whose cycle-optimal layouts differ (two homes, two
    MOVEs); on 16-row banks those homes do not fit, and shrinking pieces alone does not
    make the chain fit (refused with merging disabled); the second reader takes the
    first's layout, so one home and one MOVE serve both, and the chain fits in one
    program. (Shapes from a search over x, w1, w2, w3 sizes under the count-dependent
    bound check, the one change of layout being step 2's.)"""
    steps = [("bi,ij->bj", "x", "w1", "y", {"shift": 6}),
             ("kb,bj->kj", "w2", "y", "z", {"shift": 5}),
             ("mb,bj->mj", "w3", "y", "u", {"shift": 4, "rounding": "stochastic"}),
             ("kj,mj->km", "z", "u", "g", {"shift": 7})]
    shapes = {"x": (8, 2), "w1": (2, 6), "w2": (8, 8), "w3": (2, 8)}
    rng = np.random.default_rng(6)
    tensors = {k: rng.integers(-100, 100, v) for k, v in shapes.items()}
    plan = check_chain(steps, tensors)
    wide = get_config("tiny")
    apart = plan_resident(plan, shapes, wide)
    assert [(i, o, b) for i, o, b, _ in apart.moves if o == "y"] == [(0, "y", "B")] * 2
    with pytest.raises(FettaError, match="cycle-optimal"):
        plan_resident(plan, shapes, TINY16, footprint=False)
    _, rp = _run_both(steps, tensors, TINY16)
    assert len(rp.programs) == 1 and max(rp.peak_rows.values()) <= 16
    assert [(i, o, b) for i, o, b, _ in rp.moves if o == "y"] == [(0, "y", "B")]
    assert [h.tensor for h in rp.homes.values()].count("y") == 1
    assert len(rp.moves) == len(apart.moves) - 1
    assert rp.footprint_steps == [2]        # the later reader took the earlier's layout
    # the merge is what makes it fit: shrinking alone gives up
    monkeypatch.setattr(resident_plan._Planner, "_merge", lambda self, *args: False)
    with pytest.raises(FettaError, match="even with footprint-aware layouts"):
        plan_resident(plan, shapes, TINY16)


def _layer_chain(layer, batch):
    """The checked chain of digits layer ``layer``'s training contractions at
    ``batch`` on tiny, and its inputs' shapes."""
    from fetta.sw_model.ttm.step_memory import step_contractions
    from fetta.sw_model.ttm.workloads import get_workload
    steps, shapes = [], {}
    for c in step_contractions(get_workload("digits"), batch, "tiny")[0]:
        if c.label.split()[0] != layer:
            continue
        for name, shape in ((c.a, c.shape_a), (c.b, c.shape_b)):
            if name not in {s[3] for s in steps}:
                shapes.setdefault(name, tuple(shape))
        steps.append((c.spec, c.a, c.b, c.out, {"shift": 6}))
    plan = check_chain(steps, {k: np.zeros(v, np.int64) for k, v in shapes.items()})
    return plan, shapes


def _bound_checks(cc):
    """Cycles of the bound checks of ``cc``'s CONTRACTs, read from its program."""
    prog, pc, total = cc.program, 0, 0
    while pc < len(prog):
        op, n = decode_header(prog[pc])
        if op == Op.CONTRACT:
            total += check_cycles(Contract.decode(prog[pc + 1:pc + 1 + n]).counts)
        pc += 1 + n
    return total


@pytest.mark.parametrize("layer,batch,cut", [("L0", 1, 3), ("L1", 4, 2)])
def test_training_layer_stays_resident_with_footprint_aware_layouts(layer, batch, cut):
    """digits layer ``layer`` at ``batch`` on tiny: ``cut`` segments with the
    cycle-optimal layouts, one with footprint-aware layouts, at the same compute
    cycles (every step laid out footprint-aware takes a layout as fast as its
    cycle-optimal one). Cases from a search over digits' layers at batches 1..32 with
    the count-dependent bound check; at batch 8, layer 1 pays 2 cycles (next test)."""
    cfg = get_config("tiny")
    plan, shapes = _layer_chain(layer, batch)
    before = plan_segments(plan, shapes, cfg, footprint=False)
    after = plan_segments(plan, shapes, cfg)
    assert len(before) == cut and len(after) == 1
    rp = after[0].plan
    assert rp.footprint_steps and max(rp.peak_rows.values()) <= cfg.bank_depth
    for i, cc in enumerate(rp.compiled):
        assert cc.predicted_cycles == _cycle_optimal(cc).predicted_cycles, i


def test_training_layer_at_batch_8_pays_only_bound_check_cycles():
    """digits layer 1 at batch 8 on tiny: three segments with the cycle-optimal
    layouts, one with footprint-aware layouts, but not at the same compute cycles: a
    CONTRACT's bound check depends on its loop counts (``isa.check_cycles``), and step
    1's footprint-aware layout (16 tiles of 64 reduction steps where the cycle-optimal
    one has 8 tiles of 128) checks them in more cycles. Every other cycle of every step
    (CONFIG, issues, stalls, tails) equals its cycle-optimal layout's. Layouts that
    fit with every step cycle-optimal exist, but with more MOVE cycles than the 2
    saved: the planner takes a faster layout back only where the predicted cycles of
    steps and MOVEs go down."""
    cfg = get_config("tiny")
    plan, shapes = _layer_chain("L1", 8)
    before = plan_segments(plan, shapes, cfg, footprint=False)
    after = plan_segments(plan, shapes, cfg)
    assert len(before) == 3 and len(after) == 1
    rp = after[0].plan
    assert rp.footprint_steps and max(rp.peak_rows.values()) <= cfg.bank_depth
    slower = []
    for i, cc in enumerate(rp.compiled):
        sizes = cc.sizes
        best = compile_contraction(cc.spec, [sizes[x] for x in cc.spec.a],
                                   [sizes[x] for x in cc.spec.b], cfg)
        assert cc.predicted_cycles - _bound_checks(cc) == \
            best.predicted_cycles - _bound_checks(best), i
        if cc.predicted_cycles != best.predicted_cycles:
            slower.append(i)
    assert slower == [1]


def test_a_chain_with_new_seeds_reuses_its_layouts(monkeypatch):
    """Seeds and shifts change no layout: the same chain with other ones is cut and
    laid out as before without searching again, the same choices a fresh search
    makes, and still runs equal to the golden chain."""
    from fetta.sim.chain import reference_chain
    cfg = get_config("tiny")
    shapes = {k: np.shape(v) for k, v in TENSORS.items()}
    plan = check_chain(STEPS, TENSORS)
    first = resident_plan.plan_segments(plan, shapes, cfg)
    other = [(*st[:4], {**st[4], "seed": 77 + i, "shift": st[4]["shift"] + 1})
             for i, st in enumerate(STEPS)]
    plan2 = check_chain(other, TENSORS)
    monkeypatch.setattr(resident_plan, "_plan_segments",
                        lambda *a, **k: pytest.fail("searched again"))
    again = resident_plan.plan_segments(plan2, shapes, cfg)
    monkeypatch.undo()
    resident_plan._SEGMENTS.clear()
    resident_plan._STRUCTURES.clear()
    fresh = resident_plan.plan_segments(plan2, shapes, cfg)
    assert [s.plan.choices for s in again] == [s.plan.choices for s in fresh] == \
        [s.plan.choices for s in first]
    assert [s.plan.programs for s in again] == [s.plan.programs for s in fresh]
    res = run_chain(other, TENSORS, resident=True)
    assert np.array_equal(res.outputs["g"], reference_chain(plan2, TENSORS, cfg)["g"])
