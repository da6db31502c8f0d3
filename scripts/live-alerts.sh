#!/usr/bin/env bash
# make alerts: the alerting rules, Alertmanager routing and dashboards on real Prometheus and
# Alertmanager against the suite's real processes (gitops/tests/live_alerts_test.py says what it
# starts, which faults it drives and what it checks). Needs Debian's prometheus and
# prometheus-alertmanager (make deps installs them when it may), redis-server, and the stores
# of make deps; builds the debug binaries first. Arguments go to the test (--keep keeps its
# logs and configs).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
say() { printf 'live-alerts: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

for tool in "${PROMETHEUS:-prometheus}" "${ALERTMANAGER:-prometheus-alertmanager}" redis-server; do
  command -v "$tool" >/dev/null ||
    die "$tool is not installed. Run 'make deps INSTALL=1' (installs Debian packages prometheus and prometheus-alertmanager), or set PROMETHEUS and ALERTMANAGER to their paths."
done
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
${CARGO:-cargo} build --locked --bins -q || die "cargo build failed"
exec "$PY" gitops/tests/live_alerts_test.py --bin "$ROOT/target/debug" "$@"
