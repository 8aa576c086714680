"""dpdkvirtio.decide on synthetic trials with known answers: the exact median interval, the
verdict rules, the minimum detectable effect, stall screening and the stopping rule."""
import math
import random

import pytest

from dpdkvirtio import decide


def _binomial_tail(n: int, k: int) -> float:
    """P(X <= k - 1), X ~ Binomial(n, 1/2), summed independently of decide."""
    return sum(math.comb(n, i) for i in range(k)) / 2 ** n


@pytest.mark.parametrize("n, ranks", [(5, None), (6, (1, 6)), (8, (1, 8)), (9, (2, 8)),
                                      (10, (2, 9)), (20, (6, 15)), (30, (10, 21))])
def test_median_interval_ranks_match_the_binomial_table(n, ranks):
    # the published table (e.g. Conover, Practical Nonparametric Statistics, table A3)
    assert decide.median_ci_ranks(n) == ranks
    if ranks:
        k = ranks[0]
        assert _binomial_tail(n, k) <= 0.025 < _binomial_tail(n, k + 1)


def test_median_interval_covers_the_true_median_at_its_level():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    n, runs, covered = 12, 4000, 0
    for _ in range(runs):
        ratios = [1.0 + rng.gauss(0, 0.03) for _ in range(n)]
        e = decide.estimate(ratios)
        covered += e.ci_low <= 1.0 <= e.ci_high
    # exact coverage for n = 12, ranks (3, 10): 1 - 2 * P(X <= 2) = 0.9614
    assert 0.95 <= covered / runs <= 0.975, (seed, covered)


def test_estimate_needs_six_pairs_and_takes_the_median():
    assert decide.estimate([1.0] * 5) is None
    e = decide.estimate([1.10, 0.90, 1.00, 1.30, 0.95, 1.05])
    assert e.ratio == pytest.approx(1.025) and (e.ci_low, e.ci_high) == (0.90, 1.30)
    assert e.pairs == 6 and e.half_width == pytest.approx(0.20)


@pytest.mark.parametrize("low, high, expected", [
    (1.06, 1.20, "regression"),        # wholly above 1 + tol
    (0.80, 0.94, "improvement"),       # wholly below 1 - tol
    (0.97, 1.04, "no-change"),         # inside the band
    (0.95, 1.05, "no-change"),         # on its edges
    (1.01, 1.08, "inconclusive"),      # straddles the upper edge
    (0.90, 1.10, "inconclusive"),      # wider than the band
    (1.05, 1.07, "inconclusive"),      # touches the edge: not clear of it
])
def test_verdict_rules(low, high, expected):
    e = decide.Estimate((low + high) / 2, low, high, 10)
    assert decide.verdict(e, 0.05) == expected


def test_verdict_without_an_interval_is_inconclusive_and_bad_tolerance_refused():
    assert decide.verdict(None, 0.05) == "inconclusive"
    with pytest.raises(ValueError, match="tolerance"):
        decide.verdict(decide.Estimate(1, 1, 1, 6), -0.01)


def test_minimum_detectable_effect_is_tolerance_plus_half_width():
    e = decide.Estimate(1.0, 0.98, 1.04, 10)
    assert decide.mde(e, 0.02) == pytest.approx(0.05)
    assert decide.mde(None, 0.02) is None


def test_a_change_of_the_mde_is_detected_and_a_smaller_one_is_not():
    """The MDE's promise on data: the same spread shifted by the MDE (plus a hair) gives
    a regression verdict; shifted by half of it, not."""
    base = [0.97, 0.99, 1.0, 1.0, 1.01, 1.03, 0.98, 1.02, 1.0, 0.99]
    e = decide.estimate(base)
    m = decide.mde(e, 0.02)
    shifted = decide.estimate([r + m + 1e-9 for r in base])
    assert decide.verdict(shifted, 0.02) == "regression"
    half = decide.estimate([r + m / 2 for r in base])
    assert decide.verdict(half, 0.02) != "regression"


def test_screening_at_five_percent_of_the_window():
    window = 2e9
    assert decide.STALL_SCREEN_SHARE == 0.05
    assert not decide.screened_out(0.018 * window, window)    # a quiet trial's stalls here
    assert not decide.screened_out(0.05 * window, window)
    assert decide.screened_out(0.05 * window + 1, window)
    with pytest.raises(ValueError, match="window"):
        decide.screened_out(0, 0)


def test_stopping_rule():
    decided = decide.Estimate(1.2, 1.1, 1.3, 6)
    open_ = decide.Estimate(1.02, 0.95, 1.1, 6)
    # decided, with enough pairs: stop
    assert decide.should_stop(decided, 0.05, 6, spent_s=10, budget_s=100, pair_s=5)
    # decided too early (fewer than MIN_PAIRS cannot have an interval, but say so anyway)
    assert not decide.should_stop(decided, 0.05, 5, spent_s=10, budget_s=100, pair_s=5)
    # undecided, budget left: go on; the next pair would overrun the budget: stop
    assert not decide.should_stop(open_, 0.05, 6, spent_s=10, budget_s=100, pair_s=5)
    assert decide.should_stop(open_, 0.05, 6, spent_s=96, budget_s=100, pair_s=5)
    # the budget does not stop a run short of the pairs an interval needs...
    assert not decide.should_stop(None, 0.05, 5, spent_s=96, budget_s=100, pair_s=5)
    assert not decide.should_stop(None, 0.05, 0, spent_s=0, budget_s=0, pair_s=0)
    assert not decide.should_stop(None, 0.05, 2, spent_s=190, budget_s=100, pair_s=5)
    # ...until three times their time past it: a host that stalls every pair ends the run
    assert decide.should_stop(None, 0.05, 2, spent_s=191, budget_s=100, pair_s=5)
    assert decide.should_stop(None, 0.05, 0, spent_s=91, budget_s=0, pair_s=5)


def test_pairs_alternate_their_order_and_ratios_are_cost_over_cost():
    assert [decide.order(i) for i in range(3)] == [("base", "candidate"),
                                                   ("candidate", "base"),
                                                   ("base", "candidate")]
    assert decide.paired_ratio(200.0, 210.0) == pytest.approx(1.05)
    with pytest.raises(ValueError):
        decide.paired_ratio(0.0, 1.0)


def test_exit_status_per_verdict():
    assert decide.EXIT_STATUS == {"no-change": 0, "improvement": 0, "regression": 1,
                                  "inconclusive": 3}
    assert decide.EXIT_FAILED == 2
