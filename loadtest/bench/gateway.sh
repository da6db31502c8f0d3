#!/usr/bin/env bash
# Gateway benchmarks (release build, load generator on the same machine), as recorded in
# BENCHMARKS.md. Needs Redis and RabbitMQ (make deps). Usage:
#   loadtest/bench/gateway.sh [joins|status|ticks|sockets|sockets6|admit|redis-cost|all]
# Joins, status polls and admission ticks against one gateway also report the CPU time of
# redis-server (when it is a process here) and of the gateway per operation, read from /proc
# around the timed part, and the load generator's own (`redis-cost` runs those three:
# loadtest/bench/redis-cost.sh).
# Each run uses its own Redis key prefix and broker names and removes them afterwards.
# GATEWAY_BIN=PATH runs another gateway binary (e.g. a copy of an earlier build, to compare two
# builds in interleaved runs); the load generator is always this checkout's.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}

cargo build --release --locked -q -p flash-gateway -p flash-drill
ulimit -n "$(ulimit -Hn)"

gateway_bin=${GATEWAY_BIN:-./target/release/flash-gateway}

run_id="bench$(date +%s)$$"
export REDIS_KEY_PREFIX="$run_id:" AMQP_NAME_PREFIX="$run_id."
export FLASH_DEV_KEYS=true RUST_LOG=${RUST_LOG:-warn}
# The per-address limits model a crowd of distinct addresses; these loopback clients share a
# few (7,500 sockets per address), so they are raised here, explicitly: joins and polls per IP
# off, WebSocket upgrades per address off. Per-user limits stay at their defaults.
export RATE_IP_PER_SEC=0 LIMIT_WS_PER_ADDRESS=off
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export REDIS_URL AMQP_URL

# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh # delete_run_keys, sources, machine

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  delete_run_keys
  ./target/release/flash-drill clean-broker --amqp-name-prefix "$run_id." >/dev/null 2>&1 || true
}
trap cleanup EXIT

# start_gateways N: N gateways on ports 3101.., their pids in `pids`, addresses in `gateways`.
start_gateways() {
  gateways=""
  for ((i = 1; i <= $1; i++)); do
    GATEWAY_ADDR="127.0.0.1:$((3100 + i))" "$gateway_bin" &
    pids+=($!)
    gateways+="${gateways:+,}127.0.0.1:$((3100 + i))"
  done
  for ((i = 1; i <= $1; i++)); do
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$((3100 + i))/ready" >/dev/null && break; sleep 0.2; done
  done
}
stop_gateways() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
drill() { ./target/release/flash-drill bench "$@"; }
# The processes whose CPU a one-gateway benchmark reads: redis-server, when it runs here, and
# the gateway.
redis_pid=$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}')
watch() {
  if [[ -n $redis_pid && -r /proc/$redis_pid/stat ]]; then printf -- '--watch-pid\nredis=%s\n' "$redis_pid"; fi
  printf -- '--watch-pid\ngateway=%s\n' "${pids[0]}"
}

echo "$(machine), Redis $(redis-server --version | awk '{print $3}')"
case $what in joins|redis-cost|all)
  start_gateways 1
  mapfile -t watched < <(watch)
  drill joins --gateway "$gateways" --users 100000 --concurrency 64 "${watched[@]}"
  stop_gateways ;;
esac
case $what in status|redis-cost|all)
  start_gateways 1
  mapfile -t watched < <(watch)
  drill status --gateway "$gateways" --users 10000 --concurrency 64 --seconds 10 "${watched[@]}"
  stop_gateways ;;
esac
case $what in ticks|redis-cost|all)
  start_gateways 1
  mapfile -t watched < <(watch)
  drill ticks --gateway "$gateways" --users 20000 --admit-per-sec 1000 --seconds 10 "${watched[@]}"
  stop_gateways ;;
esac
case $what in sockets|all)
  start_gateways 1
  drill sockets --gateway "$gateways" --users 15000 --shards 1 --source "$(sources 2)" \
    --hold-secs 10 --gateway-pids "${pids[0]}"
  stop_gateways ;;
esac
case $what in sockets6|all)
  start_gateways 6
  drill sockets --gateway "$gateways" --users 90000 --shards 6 --source "$(sources 8)" \
    --hold-secs 10 --gateway-pids "$(IFS=,; echo "${pids[*]}")"
  stop_gateways ;;
esac
case $what in admit|all)
  start_gateways 1
  drill admit --gateway "$gateways" --users 10000 --shards 1 --source "$(sources 2)"
  stop_gateways ;;
esac
