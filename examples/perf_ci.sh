#!/bin/sh
# A performance-regression CI job against a stored baseline: measure side by side with
# dpdk-testpmd, compare with the baseline of this host's fingerprint (CPU model and count,
# kernel, DPDK: `python -m perf fingerprint`), fail on a regression beyond TOLERANCE.
#
# A stored baseline was measured minutes or days ago, so its verdict holds only on a quiet
# host; to compare two commits, prefer `python -m perf ab` (examples/ci/), which measures
# both in one run. Exit status: 0 ok, 1 regression, 2 a side failed or there is no
# baseline. The first run on a new host kind stores its result as the baseline only with
# ALLOW_MISSING=1.
#
#   examples/perf_ci.sh                                  # from the repository, after make
#   SCENARIOS="vhost-rx switch-fwd" TRIALS=5 TOLERANCE=0.05 examples/perf_ci.sh
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SCENARIOS=${SCENARIOS:-vhost-rx vhost-tx switch-fwd}
TRIALS=${TRIALS:-3}
TRIAL_SECONDS=${TRIAL_SECONDS:-3}
TOLERANCE=${TOLERANCE:-0.10}
ALLOW_MISSING=${ALLOW_MISSING:-0}
BASELINE=${BASELINE:-perf/baselines/$("$PY" -m perf fingerprint).json}
OUT=${OUT:-perf/results/ci-$(date +%Y%m%d-%H%M%S).json}

if [ ! -f "$BASELINE" ] && [ "$ALLOW_MISSING" != 1 ]; then
    echo "perf_ci: no baseline $BASELINE for this host kind; run once with ALLOW_MISSING=1" \
         "to store one" >&2
    exit 2
fi
mkdir -p "$(dirname "$OUT")" "$(dirname "$BASELINE")"
# shellcheck disable=SC2086  # the scenarios are words
"$PY" -m perf run $SCENARIOS --trials "$TRIALS" --seconds "$TRIAL_SECONDS" --json "$OUT"
if [ ! -f "$BASELINE" ]; then
    cp "$OUT" "$BASELINE"
    echo "perf_ci: no baseline for this host kind; stored this run as $BASELINE"
    exit 0
fi
exec "$PY" -m perf compare "$BASELINE" "$OUT" --tolerance "$TOLERANCE"
