"""The A/B decision (pure; unit-tested on synthetic trials without DPDK).

A trial pair is one measurement of the base and one of the candidate, taken back to back
(A B B A ...: the order alternates so that a host that drifts within a round favours
neither side); where both builds run in one trial (perf.ab's interleaved trials), the
pair's ratio is the median over its alternating windows. Its ratio is the candidate's
cost over the base's: busy cycles per packet (or, when both sides were self-bound and
Mpps is the metric, base Mpps over candidate Mpps). Above 1 the candidate is dearer.

- **Stalls.** The cost is measured with the stalls' cycles (polls of 100 us or more: the
  CPU was taken away) taken out of the busy cycles (perf.ab). A trial in which a poller
  of either side, or the host, lost more than ``STALL_SCREEN_SHARE`` of the window is
  dropped and measured again; its figures are kept in the record. On the 2-CPU hosts
  here a quiet trial's pollers lose 0.3-1.8 % of each second to stalls (A/A runs of
  vhost-rx, 2026-12-07), and that share did not predict the trial's cost; a screen at
  1 % dropped half of all trials for nothing. 5 % is well above that floor and well below
  what a competing process causes (25-90 %, tests/core/test_pmd.py).
- **Estimate.** The median of the paired ratios, with an exact distribution-free 95 %
  confidence interval: the order statistics r(k) and r(n+1-k) where k is the largest with
  P(Binomial(n, 1/2) < k) <= 2.5 %. No resampling and no normality assumption; it needs
  at least 6 pairs.
- **Verdict** against a tolerance band 1 +- tol: ``regression`` when the whole interval is
  above 1 + tol, ``improvement`` when it is below 1 - tol, ``no-change`` when it lies inside
  the band, else ``inconclusive``.
- **Minimum detectable effect**: tol plus the interval's half-width. A true change at least
  this large moves an interval of this width clear of the band.
- **Stopping.** ``MIN_PAIRS`` pairs (unless every pair keeps being screened: see
  should_stop); then pairs are added until the verdict is not inconclusive or the budget
  is spent. Looking after every round inflates the false-alarm
  rate of a fixed-n interval; the calibration study (``perf calibrate``) measures the rate
  that this rule gives, A/A.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

STALL_SCREEN_SHARE = 0.05
MIN_PAIRS = 6
CONFIDENCE = 0.95

VERDICTS = ("regression", "improvement", "no-change", "inconclusive")
EXIT_STATUS = {"no-change": 0, "improvement": 0, "regression": 1, "inconclusive": 3}
EXIT_FAILED = 2


def screened_out(stalled_ns: float, window_ns: float, share: float = STALL_SCREEN_SHARE) -> bool:
    """True when a poller lost more than ``share`` of the window to stalls."""
    if window_ns <= 0:
        raise ValueError(f"window must be positive, got {window_ns!r} ns")
    return stalled_ns > share * window_ns


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks (lo, hi) of the exact confidence interval for a median from n values,
    or None when n is too small for this confidence."""
    alpha = (1.0 - confidence) / 2.0
    k, cum = 0, 0.0
    # the largest k with P(X <= k - 1) <= alpha, X ~ Binomial(n, 1/2)
    while k < n:
        p_k = math.comb(n, k) / 2.0 ** n
        if cum + p_k > alpha:
            break
        cum += p_k
        k += 1
    if k == 0:
        return None
    return k, n + 1 - k


@dataclass
class Estimate:
    ratio: float
    ci_low: float
    ci_high: float
    pairs: int

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2.0


def estimate(ratios: list[float], confidence: float = CONFIDENCE) -> Estimate | None:
    """Median and exact CI of paired ratios; None below the pairs the CI needs."""
    ranks = median_ci_ranks(len(ratios), confidence)
    if ranks is None:
        return None
    s = sorted(ratios)
    return Estimate(statistics.median(s), s[ranks[0] - 1], s[ranks[1] - 1], len(s))


def verdict(est: Estimate | None, tolerance: float) -> str:
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    if est is None:
        return "inconclusive"
    if est.ci_low > 1.0 + tolerance:
        return "regression"
    if est.ci_high < 1.0 - tolerance:
        return "improvement"
    if 1.0 - tolerance <= est.ci_low and est.ci_high <= 1.0 + tolerance:
        return "no-change"
    return "inconclusive"


def mde(est: Estimate | None, tolerance: float) -> float | None:
    """The smallest change (as a fraction, 0.05 = 5 %) that this interval width detects."""
    return None if est is None else tolerance + est.half_width


def should_stop(est: Estimate | None, tolerance: float, pairs: int, spent_s: float,
                budget_s: float, pair_s: float) -> bool:
    """Before MIN_PAIRS (the fewest an interval needs) the budget does not cut a run short
    of a verdict, up to a deadline: the budget plus three times what MIN_PAIRS pairs take
    (``pair_s``: the longest pair so far, screened ones included), so a run whose screen
    rejects two pairs in three still gets its interval, and one on a host that stalls
    every pair ends (inconclusive, no interval). Then stop when the verdict is decided or
    another pair would not fit in the budget."""
    if pairs < MIN_PAIRS:
        return spent_s > budget_s + 3 * MIN_PAIRS * pair_s and pair_s > 0
    if verdict(est, tolerance) != "inconclusive":
        return True
    return spent_s + pair_s > budget_s


def paired_ratio(base_cost: float, candidate_cost: float) -> float:
    if base_cost <= 0 or candidate_cost <= 0:
        raise ValueError(f"costs must be positive, got {base_cost!r} and {candidate_cost!r}")
    return candidate_cost / base_cost


def order(pair_index: int) -> tuple[str, str]:
    """A B, then B A, then A B ...: the sides of pair ``pair_index`` in measuring order."""
    return ("base", "candidate") if pair_index % 2 == 0 else ("candidate", "base")
