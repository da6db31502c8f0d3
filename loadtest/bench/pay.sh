#!/usr/bin/env bash
# Pay worker benchmark (release build, on this machine), as recorded in BENCHMARKS.md:
# payment requests published with confirms (as the api's relay does), one pay worker with zero
# simulated latency and no transient failures, outcomes consumed from api.payment-results;
# end to end from the first request to the last outcome. Needs RabbitMQ (make deps). Usage:
#   loadtest/bench/pay.sh [payments, default 100000]
set -euo pipefail
cd "$(dirname "$0")/../.."
payments=${1:-100000}

cargo build --release --locked -q -p flash-pay -p flash-drill

run_id="bench$(date +%s)$$"
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export AMQP_NAME_PREFIX="$run_id." RUST_LOG=${RUST_LOG:-warn} PAY_OPS_ADDR=127.0.0.1:3191
export PAY_LATENCY_P50_MS=0 PAY_LATENCY_P99_MS=0 PAY_TRANSIENT_RATE=0

pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ./target/release/flash-drill clean-broker --amqp-name-prefix "$run_id." >/dev/null 2>&1 || true
}
trap cleanup EXIT

# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh # machine
echo "$(machine); $payments payments"
./target/release/flash-pay &
pid=$!
for _ in $(seq 100); do curl -sf "http://$PAY_OPS_ADDR/ready" >/dev/null && break; sleep 0.2; done
./target/release/flash-drill bench payments --payments "$payments"
curl -sf "http://$PAY_OPS_ADDR/metrics" | grep -E '^pay_(processed|retries|dead|publish_failures)' || true
