#!/usr/bin/env bash
# Api orders benchmark (release build, load generator on the same machine), as recorded in
# BENCHMARKS.md: one hot event with 1,000,000 tickets, 64 concurrent buyers through HTTP with
# valid access and gate tokens, then an oversell check in the database. The group-commit
# design and the naive one-transaction-per-order design run in the same invocation, each
# against a fresh database. Needs Postgres and RabbitMQ (make deps). Usage:
#   loadtest/bench/api.sh [orders per design, default 50000]
set -euo pipefail
cd "$(dirname "$0")/../.."
orders=${1:-50000}

cargo build --release --locked -q -p flash-api -p flash-drill

run_id="bench$(date +%s)$$"
server=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export AMQP_NAME_PREFIX="$run_id." FLASH_DEV_KEYS=true RUST_LOG=${RUST_LOG:-warn}
export API_ADDR=127.0.0.1:4101 DATABASE_MAX_CONNECTIONS=32

pid=""
databases=()
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  for db in "${databases[@]}"; do
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  ./target/release/flash-drill clean-broker --amqp-name-prefix "$run_id." >/dev/null 2>&1 || true
}
trap cleanup EXIT

# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh # machine
echo "$(machine); $orders orders per design"
for strategy in batched single-row; do
  db="${run_id}_${strategy//-/_}"
  databases+=("$db")
  export DATABASE_URL="$server/$db" ORDER_STRATEGY=$strategy
  ./target/release/flash-api migrate
  ./target/release/flash-api &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://$API_ADDR/ready" >/dev/null && break; sleep 0.2; done
  ./target/release/flash-drill bench orders --api "$API_ADDR" --database-url "$DATABASE_URL" \
    --orders "$orders" --concurrency 64 --stock 1000000 --label "$strategy"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
