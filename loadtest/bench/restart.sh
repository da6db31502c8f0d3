#!/usr/bin/env bash
# A gateway restarted under N queue sockets (issue #20, item 5), as recorded in BENCHMARKS.md:
# release `flash-api` and G `flash-gateway` replicas as separate processes with their own
# database, Redis key prefix and broker names (removed afterwards); `flash-drill bench restart`
# signs up and logs in N buyers at the api (from many addresses, within its limits), joins them
# and opens one queue socket each, spread over the gateways (socket i on gateway i mod G, from
# several client processes and source addresses), then sends SIGTERM to the first gateway. Its
# buyers come back as the web client does after a 1012: a random wait of up to
# CLIENT_JITTER_MS, one status poll, a new socket on another gateway. Reports the reconnections
# (upgrades + polls) the remaining gateways see per 100 ms and per second, when every socket was
# back, and that none was lost, ending with a `RESULT {"bench":"restart",...}` line.
# Needs Postgres, Redis and RabbitMQ (make deps). Usage:
#   loadtest/bench/restart.sh [sockets, default 10000] [gateways, default 3]
#   WS_DRAIN_MS=0 CLIENT_JITTER_MS=0 loadtest/bench/restart.sh      # before issue #20's drain
#   loadtest/bench/restart.sh                  # after: WS_DRAIN_MS=10000, CLIENT_JITTER_MS=3000
set -euo pipefail
cd "$(dirname "$0")/../.."
sockets=${1:-10000}
replicas=${2:-3}
drain_ms=${WS_DRAIN_MS:-10000}
jitter_ms=${CLIENT_JITTER_MS:-3000}

cargo build --release --locked -q -p flash-api -p flash-gateway -p flash-drill
# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh
bench_suite restart
export API_ADDR=127.0.0.1:4301
# The gateways' per-address limits model a crowd of distinct addresses; these loopback clients
# share eight, so they are raised here, explicitly: joins and polls per IP off, WebSocket
# upgrades per address off. Per-user limits stay at their defaults (a buyer opens two sockets).
export RATE_IP_PER_SEC=0 LIMIT_WS_PER_ADDRESS=off
# Every replica runs with the same drain (only the stopped one's matters); the shutdown grace
# stays at its default (20 s), of which the drain may take at most half.
export WS_DRAIN_MS=$drain_ms

echo "$(machine), Redis $(redis-server --version | awk '{print $3}'); $sockets sockets, $replicas gateways, WS_DRAIN_MS=$drain_ms, CLIENT_JITTER_MS=$jitter_ms"
./target/release/flash-api migrate
./target/release/flash-api & pids+=($!)
gateways=""
gateway_pids=()
for ((i = 1; i <= replicas; i++)); do
  GATEWAY_ADDR="127.0.0.1:$((4310 + i))" ./target/release/flash-gateway & pids+=($!)
  gateway_pids+=($!)
  gateways+="${gateways:+,}127.0.0.1:$((4310 + i))"
done
wait_ready "$API_ADDR"
for g in ${gateways//,/ }; do wait_ready "$g"; done

./target/release/flash-drill bench restart --api "$API_ADDR" --gateway "$gateways" \
  --stop-pid "${gateway_pids[0]}" --sockets "$sockets" --source "$(sources 8)" \
  --drain-ms "$drain_ms" --client-jitter-ms "$jitter_ms"
