#!/usr/bin/env bash
# What one event's Redis shard pays per operation (issue #17): joins, status polls and
# admission ticks against one gateway, with the CPU time of redis-server and of the gateway
# read from /proc around each timed part (release build, load generator on the same machine).
# Every key of one event shares one hash slot, so this CPU per operation is what bounds one
# event's crowd on one shard. Prints the benchmarks' RESULT JSON lines, each with
# `cpu: [{name, us_per_op, cores}]`. Needs a local Redis (its process must be readable in
# /proc) and RabbitMQ (make deps). Usage:
#   loadtest/bench/redis-cost.sh [joins|status|ticks|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}

cargo build --release --locked -q -p flash-gateway -p flash-drill
ulimit -n "$(ulimit -Hn)"

run_id="bench$(date +%s)$$"
export REDIS_KEY_PREFIX="$run_id:" AMQP_NAME_PREFIX="$run_id."
export FLASH_DEV_KEYS=true RUST_LOG=${RUST_LOG:-warn}
# The loopback clients share one address: the per-address limits are raised, explicitly.
export RATE_IP_PER_SEC=0 LIMIT_WS_PER_ADDRESS=off
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export REDIS_URL AMQP_URL

redis_pid=$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}')
[[ -r /proc/$redis_pid/stat ]] || { echo "redis-cost: redis-server (pid ${redis_pid:-?}) is not a process here" >&2; exit 2; }

gateway_pid=
cleanup() {
  [[ -n $gateway_pid ]] && kill "$gateway_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$run_id:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  ./target/release/flash-drill clean-broker --amqp-name-prefix "$run_id." >/dev/null 2>&1 || true
}
trap cleanup EXIT

gateway=127.0.0.1:3101
start_gateway() {
  GATEWAY_ADDR=$gateway ./target/release/flash-gateway &
  gateway_pid=$!
  for _ in $(seq 50); do curl -sf "http://$gateway/ready" >/dev/null && return; sleep 0.2; done
  echo "redis-cost: the gateway did not become ready" >&2
  exit 2
}
stop_gateway() {
  kill "$gateway_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  gateway_pid=
}
bench() {
  ./target/release/flash-drill bench "$1" --gateway "$gateway" \
    --watch-pid "redis=$redis_pid" --watch-pid "gateway=$gateway_pid" "${@:2}"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(redis-server --version | awk '{print $3}')"
case $what in joins|all)
  start_gateway
  bench joins --users 100000 --concurrency 64
  stop_gateway ;;
esac
case $what in status|all)
  start_gateway
  bench status --users 10000 --concurrency 64 --seconds 10
  stop_gateway ;;
esac
case $what in ticks|all)
  start_gateway
  bench ticks --users 20000 --admit-per-sec 1000 --seconds 10
  stop_gateway ;;
esac
