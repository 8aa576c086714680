"""examples/affinity_sweep.py decides placements with perf ab's rule (dpdkvirtio.decide)
and names the settings to apply: synthetic sweeps with known answers."""
import sys

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "examples"))
import affinity_sweep as sweep  # noqa: E402


def _rows(mpps_by_placement: dict[str, list[float]], rx_cpus=None) -> list[dict]:
    rows = []
    for label, series in mpps_by_placement.items():
        for t, mpps in enumerate(series):
            rows.append({"placement": label, "trial": t, "mpps": mpps, "burst": 32,
                         "rx_cpus": (rx_cpus or {}).get(label, [1, 1]), "gen_cpus": [0, 0]})
    return rows


def test_a_placement_is_better_only_when_the_interval_says_so():
    fast = [10.0, 10.2, 9.9, 10.1, 10.0, 10.3]
    rows = _rows({"crossed": fast, "one CPU": [5.0, 5.1, 4.9, 5.2, 5.0, 5.1],
                  "split": [9.8, 10.3, 9.7, 10.2, 9.9, 10.1]},
                 rx_cpus={"crossed": [1, 1], "one CPU": [1, 1], "split": [1, 0]})
    d = sweep.decide(rows)
    assert d["best"] == "crossed"
    assert d["verdicts"]["one CPU"][0] == "slower" and d["verdicts"]["one CPU"][1] > 1.9
    assert d["verdicts"]["split"][0] == "within noise"
    assert not d["decided"]                     # split cannot be told apart from the best
    s = sweep.settings(rows, d)
    assert s == {"pmd-cpu-mask": "0x2", "pmd-rxq-affinity": "0:1,1:1", "burst": 32,
                 "placement": "crossed", "decided": False}


def test_too_few_trials_decide_nothing_and_a_clear_winner_is_decided():
    rows = _rows({"a": [10, 11, 12], "b": [5, 5, 5]})
    assert sweep.decide(rows)["verdicts"]["b"] == ("within noise", None, None, None)
    rows = _rows({"a": [10, 11, 12, 10, 11, 12], "b": [5, 5, 5, 5, 5, 5]},
                 rx_cpus={"a": [0, 1]})
    d = sweep.decide(rows)
    assert d["decided"] and sweep.settings(rows, d)["pmd-cpu-mask"] == "0x3"
