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
ulimit -n "$(ulimit -Hn)"

run_id="restart$(date +%s)$$"
server=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
export DATABASE_URL="$server/$run_id" REDIS_KEY_PREFIX="$run_id:" AMQP_NAME_PREFIX="$run_id."
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
# Local dev keys: the gateways verify the api's access tokens with the same well-known key.
export FLASH_DEV_KEYS=true RUST_LOG=${RUST_LOG:-warn}
# The drills' Argon2 cost: the same sign-up and login path, at a cost that lets 10,000 buyers
# sign up in seconds rather than minutes.
export ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1
export FLASH_ADMIN_EMAIL=admin@restart.local FLASH_ADMIN_PASSWORD="restart bench $run_id"
export API_ADDR=127.0.0.1:4301 DATABASE_MAX_CONNECTIONS=32
# The gateways' per-address limits model a crowd of distinct addresses; these loopback clients
# share eight, so they are raised here, explicitly: joins and polls per IP off, WebSocket
# upgrades per address off. Per-user limits stay at their defaults (a buyer opens two sockets).
export RATE_IP_PER_SEC=0 LIMIT_WS_PER_ADDRESS=off
# Every replica runs with the same drain (only the stopped one's matters); the shutdown grace
# stays at its default (20 s), of which the drain may take at most half.
export WS_DRAIN_MS=$drain_ms

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$run_id\" WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$run_id:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  ./target/release/flash-drill clean-broker --amqp-name-prefix "$run_id." >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_ready() { for _ in $(seq 100); do curl -sf "http://$1/ready" >/dev/null && return 0; sleep 0.2; done; echo "$1 never ready" >&2; exit 1; }
sources() { # sources N: 127.0.0.2 .. 127.0.0.(N+1)
  local out=""; for ((i = 2; i <= $1 + 1; i++)); do out+="${out:+,}127.0.0.$i"; done; printf '%s' "$out"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), Redis $(redis-server --version | awk '{print $3}'); $sockets sockets, $replicas gateways, WS_DRAIN_MS=$drain_ms, CLIENT_JITTER_MS=$jitter_ms"
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
