"""The sweep's cost of a point on a workload, against the compiler and the harness."""

import numpy as np
import pytest

from fetta.sim.harness import Session, transfer_words
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.program.kchunk import needs_kchunks, predict_total
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.workloads import get_layer, scaled_plan, step_phases, steps_of
from fetta.sweep.cost import cost_workload
from fetta.sweep.tasks import cost_task

from stored_builds import stored_synth


@pytest.mark.parametrize("name, config", [("digits L2 128->16", "tiny"),
                                          ("fc2 (on-FPGA 512->16)", "ice40")])
def test_cost_adds_up_the_cycle_model(name, config):
    cfg = get_config(config)
    r = cost_workload(cfg, name, "macs", check=True)
    i, o, ranks = get_layer(name)
    batch, plan, shapes = scaled_plan(i, o, ranks, cfg, "macs")
    assert r["batch"] == batch
    phases = step_phases(plan, len(i))
    want = {"forward": 0, "input_gradient": 0, "core_gradients": 0}
    for st, sa, sb in steps_of(plan, shapes):
        want[phases[st.out]] += predict_total(st.spec, sa, sb, cfg)[0]
    assert all(want[p] > 0 for p in want)
    for p, v in want.items():
        assert r["cycles"][p] == v
    assert r["cycles"]["compute"] == sum(want.values())
    assert r["cycles"]["total"] == r["cycles"]["compute"] + r["cycles"]["host_transfer"]
    assert r["cycles"]["host_transfer"] == sum(r["host_words"].values()) > 0
    assert r["macs"] == plan.macs
    assert r["mac_utilization"] == pytest.approx(plan.macs / (cfg.macs * sum(want.values())))
    assert r["cycles_per_sample"] == r["cycles"]["total"] / batch
    assert 0 < r["occupancy"]["a"] <= 1 and 0 < r["occupancy"]["program"] <= 1
    assert r["peak_rows"]["a"] == round(r["occupancy"]["a"] * cfg.bank_depth)


def test_phases_match_the_trainer_split():
    i, o, ranks = get_layer("digits L1 64->128")
    _, plan, _ = scaled_plan(i, o, ranks, get_config("tiny"), "macs")
    ph = step_phases(plan, len(i))
    assert ph["y"] == "forward" and ph["dx"] == "input_gradient"
    assert all(ph[f"dg{k}"] == "core_gradients" for k in (1, 2, 3))
    assert set(ph) == {st.out for st in plan.steps}


def test_transfer_words_equal_the_session_count():
    """``transfer_words`` (the sweep's host words) counts what a Session moves with
    nothing resident, on the RTL (pysim)."""
    cfg = get_config("tiny")
    rng = np.random.default_rng(1)
    a, b = rng.integers(-50, 50, (3, 5, 6)), rng.integers(-50, 50, (6, 7))
    with Session(cfg, "pysim", residency=False) as s:
        res = s.contract("bmk,kn->bnm", a, b)
    cc = compile_contraction("bmk,kn->bnm", a.shape, b.shape, cfg)
    tw = transfer_words(cc)
    assert res.host_words["read"] == tw["read"]
    # without residency the session writes whole rows; the sweep counts the lanes
    # the mapping reads, which is what a resident session writes for new rows
    with Session(cfg, "pysim") as s:
        res = s.contract("bmk,kn->bnm", a, b)
    assert res.host_words["written"] == tw["written"]
    assert res.host_words["read"] == tw["read"]


def test_infeasible_workload_is_a_result_not_a_crash():
    """64 lanes need a 187-word CONFIG program; 64 words of program memory hold none."""
    small = get_config("tiny").replace(n_ce=16, pe_rows=4, pe_cols=4,
                                       prog_depth=64).to_dict()
    out = cost_task(small, "digits L2 128->16", "macs")
    assert out["status"] == "infeasible"
    assert "does not fit" in out["reason"] and "(limit 64)" in out["reason"]
    assert "\n" not in out["reason"]


def test_k_chunked_contractions_are_costed():
    """With 16-row buffers one fc2 step's reduction is run as K chunks (the others as
    output chunks); the cost's programs still add up to the cycle model (``check``:
    cost_workload raises otherwise)."""
    cfg = get_config("tiny").replace(bank_depth=16)
    i, o, ranks = get_layer("fc2 (on-FPGA 512->16)")
    _, plan, shapes = scaled_plan(i, o, ranks, cfg, "macs")
    assert any(needs_kchunks(parse_spec(st.spec), parse_spec(st.spec).sizes(sa, sb), cfg)
               for st, sa, sb in steps_of(plan, shapes))
    r = cost_workload(cfg, "fc2 (on-FPGA 512->16)", "macs", check=True)
    assert r["chunks"] > r["contractions"] and r["peak_rows"]["a"] <= 16


def _ungrouped_cost(cfg, name):
    """Cycles, programs and host words of a workload counted program by program, every
    run compiled on its own (the oracle for the grouped count)."""
    from fetta.sw_model.program.compiler import chunk_plan, fits
    from fetta.sw_model.program.kchunk import kchunk_plan
    i, o, ranks = get_layer(name)
    _, plan, shapes = scaled_plan(i, o, ranks, cfg, "macs")
    cycles = programs = written = read = 0
    for st, sa, sb in steps_of(plan, shapes):
        sp = parse_spec(st.spec)
        sizes = sp.sizes(sa, sb)
        runs = []
        if fits(sp, sa, sb, cfg):
            runs = [(sa, sb, {}, True)]
        elif needs_kchunks(sp, sizes, cfg):
            kp = kchunk_plan(sp, sa, sb, cfg)
            for tile, box, first, last in kp.runs():
                pa, pb = kp.shapes(tile, box)
                runs.append((pa, pb, dict(mapping=kp.mapping, lanes=(kp.im, kp.in_),
                                          idx_strides=kp.idx_strides,
                                          acc_continue=not first, acc_hold=not last), last))
        else:
            for ranges, off in chunk_plan(sp, sa, sb, cfg):
                sz = {k: (ranges[k][1] - ranges[k][0]) if k in ranges else v
                      for k, v in sizes.items()}
                runs.append(([sz[k] for k in sp.a], [sz[k] for k in sp.b],
                             dict(index_offset=off), True))
        for pa, pb, kw, read_out in runs:
            cc = compile_contraction(sp, pa, pb, cfg, **kw)
            tw = transfer_words(cc, read_out)
            cycles += cc.predicted_cycles
            programs += 1
            written += tw["written"]
            read += tw["read"]
    return cycles, programs, written, read


@pytest.mark.parametrize("name, changes", [
    ("fc2 (on-FPGA 512->16)", dict(bank_depth=16)),          # K chunks
    ("digits L1 64->128", dict(bank_depth=64)),              # output chunks
    ("digits L2 128->16", dict(n_ce=8, pe_rows=1, pe_cols=2, out_share=2))])
def test_grouped_programs_equal_every_program_counted(name, changes):
    """Programs are grouped by shape and K-chunk flags and each group compiled once;
    the totals equal compiling and counting every program run on its own."""
    cfg = get_config("tiny").replace(**changes)
    r = cost_workload(cfg, name, "macs", check=True)
    cycles, programs, written, read = _ungrouped_cost(cfg, name)
    assert r["cycles"]["compute"] == cycles
    assert r["chunks"] == programs
    assert r["host_words"] == {"written": written, "read": read}


def test_check_names_a_disagreement(monkeypatch):
    """``check=True`` compares each contraction with ``kchunk.predict_total``."""
    from fetta.sweep import cost
    real = cost.predict_total
    monkeypatch.setattr(cost, "predict_total",
                        lambda *a, **k: (real(*a, **k)[0] + 1, real(*a, **k)[1]))
    cfg = get_config("tiny")
    cost_workload(cfg, "digits L2 128->16", "macs")          # no check: not called
    with pytest.raises(ValueError, match=r"cycle model disagrees with itself on '.*' .*: "
                                         r"predict_total \d+ in \d+ programs"):
        cost_workload(cfg, "digits L2 128->16", "macs", check=True)


def test_energy_is_fetta_evals_for_the_same_step():
    """Planned as fetta eval plans (CSSE on cycles, the same batch), a point's events
    and ASIC energy are the ones ``fetta eval`` reports for that layer."""
    from fetta.sim.evaluation import _accel_row
    from fetta.sw_model.ttm.step_events import step_events
    from fetta.sw_model.ttm.workloads import layer_workload
    cfg = get_config("tiny")
    name = "digits L2 128->16"
    r = cost_workload(cfg, name, "cycles", check=True)
    wl = layer_workload(name)
    st = step_events(wl, cfg, r["batch"])
    assert r["events"] == st["total"].to_dict()
    assert r["events"]["cycles"] == r["cycles"]["compute"]
    assert r["events"]["host_words"] == r["cycles"]["host_transfer"]
    assert r["elementwise_ops"] == st["elementwise_ops"] > 0
    row = _accel_row(wl, cfg, r["batch"])
    assert row["energy_model"] == r["energy"]["model"] == "asic"
    assert r["energy"]["pj_per_step"] == row["energy_pj"]
    assert r["energy"]["pj_per_sample"] == pytest.approx(row["joules_per_sample"] * 1e12)
    assert "ASIC model (45 nm" in r["energy"]["basis"]
    assert "synthesis" not in r["energy"]["basis"]


def test_fpga_energy_from_the_points_own_build_is_fetta_evals():
    """The ice40 preset with its measured build as the point's --synth result: the FPGA
    model's energy is the one fetta eval computes for the preset; without the build the
    cost row's ASIC energy says so."""
    from fetta.sim.evaluation import _accel_row
    from fetta.sweep.cost import fpga_point
    from fetta.sw_model.ttm.workloads import layer_workload
    cfg = get_config("ice40")
    name = "digits L2 128->16"
    r = cost_workload(cfg, name, "cycles")
    assert r["energy"]["model"] == "asic"
    assert "no synthesis results for this point" in r["energy"]["basis"]
    synth = stored_synth("ice40")
    e = fpga_point(r, cfg, synth)
    row = _accel_row(layer_workload(name), cfg, r["batch"])
    assert row["energy_model"] == e["model"] == "fpga"
    assert e["pj_per_step"] == pytest.approx(row["energy_pj"])
    assert e["pj_per_step"]["logic"] > 0          # iCE40 logic cells priced as LUTs
    assert e["resources"]["LUTs"] == synth["luts"] > 0 and e["fmax_mhz"] == synth["fmax_mhz"]
    assert "applied to iCE40UP5K as is" in e["basis"]
    assert e["pj_per_sample"] == pytest.approx(e["pj_per_step"]["total"] / r["batch"])
