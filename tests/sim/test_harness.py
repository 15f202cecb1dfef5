"""run_contraction on the pysim backend: bit-exact vs the golden model, cycle model."""

import numpy as np

from fetta.sw_model.accel.hostmap import CONTROL_READS
import pytest

from fetta.sim.harness import Session, run_contraction
from fetta.sim.random_cases import random_cases
from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, Pow2Code
from fetta.sw_model.accel.isa import Mapping

DEFAULT_CASES = random_cases(50, seed=1234)
SLOW_CASES = random_cases(260, seed=98765)


def check_case(case, config="tiny", **kw):
    res = run_contraction(case.spec, case.a, case.b, config=config, **case.kwargs(), **kw)
    ref = reference_contraction(case.spec, case.a, case.b, **case.kwargs(),
                                b_pow2=Pow2Code(4) if getattr(config, "mac_kind", "") == "shift" else None)
    assert res.output.shape == ref.shape, (case.spec, res.output.shape, ref.shape)
    diff = np.argwhere(res.output != ref)
    if diff.size:
        i = tuple(diff[0])
        pytest.fail(f"contraction '{case.spec}' ({case.rounding}, shift {case.shift}, "
                    f"out_bits {case.out_bits}) element {i}: rtl {res.output[i]} != "
                    f"golden {ref[i]}")
    # The analytic model is exact by construction; the contract allows 2%.
    assert abs(res.cycles - res.predicted_cycles) <= 0.02 * res.cycles, \
        (case.spec, res.cycles, res.predicted_cycles)
    return res


@pytest.mark.parametrize("idx", range(len(DEFAULT_CASES)))
def test_random_contraction(idx):
    check_case(DEFAULT_CASES[idx])


@pytest.mark.slow
@pytest.mark.parametrize("idx", range(len(SLOW_CASES)))
def test_random_contraction_slow(idx):
    check_case(SLOW_CASES[idx])


SHARE_CONFIGS = {s: AccelConfig(name=f"tiny-share{s}", n_ce=4, pe_rows=2, pe_cols=2,
                                bank_depth=1024, out_share=s) for s in (2, 8)}


@pytest.mark.parametrize("share", sorted(SHARE_CONFIGS))
@pytest.mark.parametrize("idx", range(6))
def test_time_shared_output_stages_bit_and_cycle_exact(share, idx):
    """``out_share`` > 1: fewer output stages, each serving several C lanes in turn;
    outputs stay bit-exact and the cycle model (drain_cycles) stays exact."""
    cfg = SHARE_CONFIGS[share]
    case = random_cases(6, seed=500 + share, config=cfg)[idx]
    res = check_case(case, config=cfg)
    assert res.cycles == res.predicted_cycles, (case.spec, res.cycles, res.predicted_cycles)


@pytest.mark.slow
@pytest.mark.parametrize("share", sorted(SHARE_CONFIGS))
@pytest.mark.parametrize("idx", range(40))
def test_time_shared_output_stages_slow(share, idx):
    cfg = SHARE_CONFIGS[share]
    case = random_cases(40, seed=900 + share, config=cfg)[idx]
    res = check_case(case, config=cfg)
    assert res.cycles == res.predicted_cycles


@pytest.mark.parametrize("idx", range(6))
def test_ice40_preset_bit_and_cycle_exact(idx):
    """The iCE40 build's geometry (2 CEs x 2x1, one output stage for both C lanes,
    the tile's C row held without delay registers, 32-bit counters)."""
    case = random_cases(6, seed=4040, config="ice40")[idx]
    res = check_case(case, config="ice40")
    assert res.cycles == res.predicted_cycles, (case.spec, res.cycles, res.predicted_cycles)


@pytest.mark.parametrize("idx", range(4))
def test_pipelined_distribution_and_mac_bit_and_cycle_exact(idx):
    """``dist_pipeline`` extra network registers and ``mac_pipeline`` product
    registers: same results, cycle model exact."""
    cfg = AccelConfig(name="tiny-dist1", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=1024,
                      dist_pipeline=1, mac_pipeline=1, out_share=2)
    case = random_cases(4, seed=77, config=cfg)[idx]
    res = check_case(case, config=cfg)
    assert res.cycles == res.predicted_cycles, (case.spec, res.cycles, res.predicted_cycles)


def test_default_cases_cover_every_rounding_mode_and_mapping_mode():
    assert {c.rounding for c in DEFAULT_CASES} == set(ROUNDING_MODES)
    assert any(len(c.spec.split("->")[1]) >= 3 for c in DEFAULT_CASES)


@pytest.mark.parametrize("mapping", [Mapping(4, 1, 1), Mapping(1, 4, 1), Mapping(2, 2, 1),
                                     Mapping(1, 1, 4), Mapping(2, 1, 2), Mapping(1, 2, 2)])
def test_every_mapping_mode_bit_exact(mapping):
    """The same GEMM under independent tiles, multicast and K-split mappings."""
    rng = np.random.default_rng(mapping.ga * 16 + mapping.gb * 4 + mapping.gk)
    a = rng.integers(-3000, 3000, (7, 9))
    b = rng.integers(-3000, 3000, (9, 5))
    res = run_contraction("mk,kn->mn", a, b, shift=6, rounding="stochastic", out_bits=12,
                          seed=77, mapping=mapping)
    ref = reference_contraction("mk,kn->mn", a, b, shift=6, rounding="stochastic",
                                out_bits=12, seed=77)
    assert res.mapping == mapping
    np.testing.assert_array_equal(res.output, ref)
    assert res.cycles == res.predicted_cycles


def test_mapping_search_beats_fixed_mapping_on_skewed_contraction():
    rng = np.random.default_rng(5)
    a = rng.integers(-100, 100, (2, 64))   # M = 2, K = 64: skewed
    b = rng.integers(-100, 100, (64, 2))
    best = run_contraction("mk,kn->mn", a, b)
    fixed = run_contraction("mk,kn->mn", a, b, mapping=Mapping(2, 2, 1))
    np.testing.assert_array_equal(best.output, fixed.output)
    assert best.cycles < fixed.cycles
    assert best.mapping.gk > 1


def test_shift_mac_config_bit_exact():
    cfg = AccelConfig(name="tiny-shift", n_ce=4, pe_rows=2, pe_cols=2, mac_kind="shift")
    code = Pow2Code(4)
    rng = np.random.default_rng(3)
    a = rng.integers(-500, 500, (3, 5, 6))
    b = code.encode(rng.choice([0, 1, -1, 2, -4, 8, -32, 64], size=(6, 4)))
    res = run_contraction("bmk,kn->bnm", a, b, config=cfg, shift=3, rounding="nearest-even")
    ref = reference_contraction("bmk,kn->bnm", a, b, shift=3, rounding="nearest-even",
                                b_pow2=code)
    np.testing.assert_array_equal(res.output, ref)


def test_bus_only_path_matches_direct_memory_path():
    """The host-bus write/read path (used by compiled and board backends) gives the
    same result as pysim's direct memory access."""
    case = random_cases(1, seed=4242)[0]
    ref = reference_contraction(case.spec, case.a, case.b, **case.kwargs())
    with Session("tiny", "pysim", bus_only=True) as s:
        res = s.contract(case.spec, case.a, case.b, **case.kwargs())
    np.testing.assert_array_equal(res.output, ref)


def test_counters_add_up():
    rng = np.random.default_rng(9)
    a = rng.integers(-9, 9, (5, 3))
    b = rng.integers(-9, 9, (3, 7))
    res = run_contraction("mk,kn->mn", a, b, mapping=Mapping(4, 1, 1))
    c = res.counters
    assert c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                           + c["stall_drain"])
    assert c["instructions"] == 3          # CONFIG, CONTRACT, HALT
    assert res.mac_utilization == pytest.approx(5 * 3 * 7 / (16 * c["cycles"]))


@pytest.mark.parametrize("m, k, n, counts, check", [
    # every count 1: each of the 18 passes is its accumulate cycle alone, + 1
    (1, 1, 1, (1, 1, 1, 1, 1), 18 + 1),
    # count 3 (2 bits; passes a, b, c, idx), k_count 5 (3 bits; passes a, b)
    (6, 5, 6, (1, 1, 1, 3, 5), 18 + 4 * 2 + 2 * 3 + 1),
])
def test_bound_check_cycles_follow_the_contract_counts(m, k, n, counts, check):
    """The CONTRACT's bound check takes bit_length(count - 1) Horner steps + 1 per
    pass, + 1; the RTL counts exactly what the model predicts."""
    from fetta.sw_model.accel.config import get_config
    from fetta.sw_model.accel.isa import CONTRACT_WORDS, Contract, Op, decode_header
    from fetta.sw_model.accel.timing import timing
    from fetta.sw_model.program.compiler import compile_contraction
    rng = np.random.default_rng(m)
    a, b = rng.integers(-9, 9, (m, k)), rng.integers(-9, 9, (k, n))
    cc = compile_contraction("mk,kn->mn", a.shape, b.shape, "tiny")
    at = len(cc.program) - 2 - CONTRACT_WORDS          # the one CONTRACT, then HALT
    assert decode_header(cc.program[at]) == (Op.CONTRACT, CONTRACT_WORDS)
    assert Contract.decode(cc.program[at + 1:-1]).counts == counts
    cfg, tm = get_config("tiny"), timing(get_config("tiny"))
    assert tm.check_cycles(counts) == check
    tiles, ksteps = int(np.prod(counts[:-1])), counts[-1]
    stall = max(0, cfg.drain_cycles - ksteps) * (tiles - 1)
    want = tm.config_cycles() + (tm.fetch + CONTRACT_WORDS + 1 + check + tiles * ksteps
                                 + stall + tm.tail) + tm.fetch
    res = run_contraction("mk,kn->mn", a, b)
    np.testing.assert_array_equal(res.output, reference_contraction("mk,kn->mn", a, b))
    assert res.cycles == res.predicted_cycles == want


def test_operand_out_of_range_rejected():
    with pytest.raises(ValueError, match="operand A value 40000 out of range"):
        run_contraction("mk,kn->mn", np.full((2, 2), 40000), np.ones((2, 2), int))


def test_compile_of_too_long_reduction_names_the_limit():
    from fetta.sw_model.program.compiler import compile_contraction
    with pytest.raises(ValueError, match=r"needs \d+ buffer rows .*limit 1024"):
        compile_contraction("mk,kn->mn", (2, 9000), (9000, 2), "tiny")


def _check_exact(res, spec, a, b, kw):
    ref = reference_contraction(spec, a, b, **kw)
    diff = np.argwhere(res.output != ref)
    if diff.size:
        i = tuple(diff[0])
        pytest.fail(f"'{spec}' {kw} element {i}: rtl {res.output[i]} != golden {ref[i]}")
    assert res.cycles == res.predicted_cycles, (spec, res.cycles, res.predicted_cycles)


def test_reduction_longer_than_buffers_accumulates_k_chunks():
    """K = 9000 on tiny (a 1024-row buffer holds 4096 K values with gk = 4): the
    reduction runs as K chunks accumulating in the PE accumulators; full-range
    operands make the sums wrap at 32 bits, which the chunks must reproduce."""
    rng = np.random.default_rng(3)
    a = rng.choice([-32768, 32767, -32767], (2, 9000))
    b = rng.choice([-32768, 32767], (9000, 2))
    kw = dict(shift=20, rounding="nearest-even")
    res = run_contraction("mk,kn->mn", a, b, **kw)
    assert res.chunks == 3
    acc = np.einsum("mk,kn->mn", a, b)
    assert (np.abs(acc) >= 2 ** 31).any()         # the test exercises wrap-around
    _check_exact(res, "mk,kn->mn", a, b, kw)


@pytest.mark.parametrize("spec,sa,sb,kw", [
    ("mk,kn->mn", (3, 130), (130, 2), dict(shift=4, rounding="stochastic", seed=7)),
    ("bkj,njk->nb", (2, 9, 13), (3, 13, 9), dict(shift=3, rounding="nearest-even",
                                                out_bits=12)),
    ("zkm,k->mz", (2, 100, 3), (100,), dict(shift=2, rounding="stochastic", seed=3)),
])
def test_k_chunks_batched_permuted_stochastic(spec, sa, sb, kw):
    """16-row buffers: K boxes over several summed indices (fixed prefix + ranges),
    batch indices, permuted output, stochastic dither with the whole output's flat
    indices; bit- and cycle-exact."""
    cfg = AccelConfig(name="tiny-d16", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=16)
    rng = np.random.default_rng(len(spec) + sum(sa))
    a = rng.integers(-3000, 3000, sa)
    b = rng.integers(-3000, 3000, sb)
    res = run_contraction(spec, a, b, config=cfg, **kw)
    assert res.chunks > 1
    _check_exact(res, spec, a, b, kw)


def test_k_chunks_on_ice40_preset():
    """Time-shared output stage, 2 C lanes: K = 700 > 256 rows x gk 2."""
    rng = np.random.default_rng(4)
    a = rng.integers(-30000, 30000, (3, 700))
    b = rng.integers(-30000, 30000, (700, 2))
    kw = dict(shift=9, rounding="stochastic", seed=11)
    res = run_contraction("mk,kn->nm", a, b, config="ice40", **kw)
    assert res.chunks > 1
    _check_exact(res, "mk,kn->nm", a, b, kw)


def test_contraction_larger_than_buffers_is_split_into_chunks():
    """With 64-row buffers, output 24 x 3 x 24 (K = 20) needs more C rows than one
    program can hold: the harness runs it as contiguous output chunks; stochastic
    dither indices stay global."""
    cfg = AccelConfig(name="tiny-d64", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=64)
    rng = np.random.default_rng(11)
    a = rng.integers(-2000, 2000, (24, 3, 20))
    b = rng.integers(-2000, 2000, (20, 24))
    kw = dict(shift=7, rounding="stochastic", out_bits=10, seed=5)
    res = run_contraction("mbk,kn->mbn", a, b, config=cfg, **kw)
    assert res.chunks > 1
    np.testing.assert_array_equal(res.output,
                                  reference_contraction("mbk,kn->mbn", a, b, **kw))
    assert res.cycles == res.predicted_cycles


def test_session_compile_cache_and_residency_skip_resident_rows():
    """A second call with the same shapes reuses the compile (other output-stage
    parameters via with_params) and skips resident operand rows; only the changed
    B rows and program words are rewritten; results stay exact."""
    rng = np.random.default_rng(21)
    a = rng.integers(-300, 300, (12, 10))
    b = rng.integers(-300, 300, (10, 6))
    b2 = b.copy()
    b2[3, 2] += 1                      # one changed element -> one changed B row
    with Session("tiny", "pysim") as s:
        r1 = s.contract("mk,kn->mn", a, b, shift=2, rounding="nearest-even")
        r2 = s.contract("mk,kn->mn", a, b2, shift=3, rounding="stochastic", seed=9)
        assert s.stats["compile_misses"] == 1 and s.stats["compile_hits"] == 1
        cc, mp = r1.compiled, r1.mapping
        used_a, used_b = mp.ga * mp.gk * 2, mp.gb * mp.gk * 2     # lanes carrying data
        full = cc.a_rows * used_a + cc.b_rows * used_b + len(cc.program)
        assert r1.host_words["written"] == full + 2 and r1.host_words["skipped"] == 0
        # one B row + the program words from MODE to SEED of the one CONTRACT
        assert used_b < r2.host_words["written"] - 2 < used_b + 8
        assert r2.host_words["skipped"] == full - (r2.host_words["written"] - 2)
        assert r1.host_words["read"] == r2.host_words["read"] == \
            cc.c_rows * mp.ga * mp.gb * 2 + CONTROL_READS
        assert r2.host_cycles == r2.host_words["written"] + r2.host_words["read"]
    for r, bb, kw in ((r1, b, dict(shift=2, rounding="nearest-even")),
                      (r2, b2, dict(shift=3, rounding="stochastic", seed=9))):
        np.testing.assert_array_equal(r.output, reference_contraction("mk,kn->mn", a, bb,
                                                                      **kw))


def test_chunks_reuse_the_larger_operand():
    """Chunks are ordered so the larger operand's slice stays resident: a chunked
    contraction writes fewer words with residency than without, same output."""
    cfg = AccelConfig(name="tiny-d64", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=64)
    rng = np.random.default_rng(12)
    a = rng.integers(-2000, 2000, (24, 3, 20))
    b = rng.integers(-2000, 2000, (20, 24))
    kw = dict(shift=7, rounding="stochastic", out_bits=10, seed=5)
    outs = {}
    for resid in (True, False):
        with Session(cfg, "pysim", residency=resid) as s:
            outs[resid] = s.contract("mbk,kn->mbn", a, b, **kw)
    assert outs[True].chunks > 1
    np.testing.assert_array_equal(outs[True].output, outs[False].output)
    assert outs[True].host_words["written"] < outs[False].host_words["written"]
    assert outs[False].host_words["skipped"] == 0
