#!/usr/bin/env bash
# Login flood benchmark (release build, load generator on the same machine), as recorded in
# BENCHMARKS.md: the api alone at the production Argon2 cost (19 MiB, 2 passes: the code's
# defaults), 1,000 connections, each from a /24 of its own, logging in with unknown e-mails
# for 20 s; the api's peak memory and threads, its answers by code, and the p99 of
# GET /api/v1/events idle and meanwhile. Needs Postgres, Redis and RabbitMQ (make deps).
# Usage: loadtest/bench/logins.sh [connections, default 1000] [seconds, default 20]
#   FLOOD_NICE=19: the flood's threads yield the shared cores first (an attacker elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-1000}
seconds=${2:-20}

cargo build --release --locked -q -p flash-api -p flash-drill

run_id="bench$(date +%s)$$"
server=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export AMQP_NAME_PREFIX="$run_id." REDIS_KEY_PREFIX="$run_id:" FLASH_DEV_KEYS=true RUST_LOG=${RUST_LOG:-warn}
export API_ADDR=127.0.0.1:4102 DATABASE_URL="$server/$run_id"
unset ARGON2_MEMORY_KIB ARGON2_ITERATIONS

# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh # delete_run_keys, machine

pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$run_id\" WITH (FORCE)" >/dev/null 2>&1 || true
  ./target/release/flash-drill clean-broker --amqp-name-prefix "$run_id." >/dev/null 2>&1 || true
  delete_run_keys 2>/dev/null || true
}
trap cleanup EXIT

echo "$(machine); $connections connections for ${seconds}s"
./target/release/flash-api migrate
./target/release/flash-api &
pid=$!
for _ in $(seq 100); do curl -sf "http://$API_ADDR/ready" >/dev/null && break; sleep 0.2; done
./target/release/flash-drill bench logins --api "$API_ADDR" --concurrency "$connections" \
  --seconds "$seconds" --pid "$pid" --flood-nice "${FLOOD_NICE:-0}"
