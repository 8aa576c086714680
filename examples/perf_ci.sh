#!/bin/sh
# A performance-regression CI job: measure side by side with dpdk-testpmd, compare with
# the stored baseline of this host kind, fail (exit 1) on a regression beyond TOLERANCE.
# The first run on a host stores its result as the baseline.
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
BASELINE=${BASELINE:-perf/baselines/$(hostname -s).json}
OUT=${OUT:-perf/results/ci-$(date +%Y%m%d-%H%M%S).json}

mkdir -p "$(dirname "$OUT")" "$(dirname "$BASELINE")"
# shellcheck disable=SC2086  # the scenarios are words
"$PY" -m perf run $SCENARIOS --trials "$TRIALS" --seconds "$TRIAL_SECONDS" --json "$OUT"
if [ ! -f "$BASELINE" ]; then
    cp "$OUT" "$BASELINE"
    echo "perf_ci: no baseline yet; stored this run as $BASELINE"
    exit 0
fi
exec "$PY" -m perf compare "$BASELINE" "$OUT" --tolerance "$TOLERANCE"
