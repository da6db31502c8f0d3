#!/usr/bin/env bash
# `make drill`: a flash-sale burst against the suite of `make up` on $FLASH_ADDR. When nothing
# answers there, this starts `make up` for the drill and stops it afterwards. Arguments go to `flash-drill burst` (defaults: 20,000 buyers, 2,000
# tickets). Reports: artifacts/drill/report.{json,html}.
# DRILL_KIND=abuse runs `flash-drill abuse` (the burst with attackers beside it) instead.
set -euo pipefail
cd "$(dirname "$0")/.."

FLASH_ADDR=${FLASH_ADDR:-127.0.0.1:8080}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/flash?sslmode=disable}
out=artifacts/drill
mkdir -p "$out"

suite_pid=""
stop_suite() {
  if [[ -n $suite_pid ]]; then
    kill -- "-$suite_pid" 2>/dev/null || true
    wait "$suite_pid" 2>/dev/null || true
    # A suite restarted by --chaos restart:flash@… runs outside that group: stop whatever
    # now listens on the origin we started.
    local port=${FLASH_ADDR##*:} pid
    pid=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2) || true
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  fi
}
trap stop_suite EXIT

ready() { curl -sf -o /dev/null --max-time 2 "http://$FLASH_ADDR/ready"; }

if ready; then
  echo "drill: using the suite already running on http://$FLASH_ADDR"
elif curl -s -o /dev/null --max-time 2 "http://$FLASH_ADDR/live"; then
  echo "drill: the suite on http://$FLASH_ADDR is not ready (a store is down?): see its /ready" >&2
  exit 1
else
  echo "drill: nothing on http://$FLASH_ADDR; starting it with make up (log: $out/suite.log)"
  # Its own process group, so that stopping it stops the suite too.
  setsid make -s up >"$out/suite.log" 2>&1 &
  suite_pid=$!
  for _ in $(seq 3000); do
    ready && break
    kill -0 "$suite_pid" 2>/dev/null || { echo "drill: the suite stopped; see $out/suite.log" >&2; exit 1; }
    sleep 0.2
  done
  ready || { echo "drill: the suite did not become ready; see $out/suite.log" >&2; exit 1; }
fi

kind=${DRILL_KIND:-burst}
case $kind in burst | abuse) ;; *) echo "drill: DRILL_KIND is burst or abuse, not $kind" >&2; exit 2 ;; esac
if [[ $kind == abuse && -z $suite_pid ]]; then
  echo "drill: attacking the suite already running on http://$FLASH_ADDR at whatever Argon2 cost it was started with"
fi
./target/release/flash-drill "$kind" --base-url "http://$FLASH_ADDR" --database-url "$DATABASE_URL" \
  --json "$out/report.json" --html "$out/report.html" "$@"
