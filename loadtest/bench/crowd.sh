#!/usr/bin/env bash
# The largest-crowd drill (BENCHMARKS.md): the api, the pay worker and N gateway replicas as
# separate release binaries, each run with its own database, Redis key prefix and broker names
# (removed afterwards), and `flash-drill burst` against them from several processes and
# source addresses. Needs the stores (make deps). Usage:
#   loadtest/bench/crowd.sh [buyers, default 100000] [gateways, default 4] [-- burst options]
set -euo pipefail
cd "$(dirname "$0")/../.."
buyers=${1:-100000}
replicas=${2:-4}
shift $(( $# > 2 ? 2 : $# ))
[[ ${1:-} == -- ]] && shift

cargo build --release --locked -q -p flash-api -p flash-gateway -p flash-pay -p flash-drill
ulimit -n "$(ulimit -Hn)"

run_id="crowd$(date +%s)$$"
server=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
export DATABASE_URL="$server/$run_id" REDIS_KEY_PREFIX="$run_id:" AMQP_NAME_PREFIX="$run_id."
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export FLASH_DEV_KEYS=true RUST_LOG=${RUST_LOG:-warn} ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1
export FLASH_ADMIN_EMAIL=admin@crowd.local FLASH_ADMIN_PASSWORD="crowd drill $run_id"
export API_ADDR=127.0.0.1:4201 PAY_OPS_ADDR=127.0.0.1:4202 DATABASE_MAX_CONNECTIONS=32

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

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $buyers buyers, $replicas gateways"
./target/release/flash-api migrate
./target/release/flash-api & pids+=($!)
./target/release/flash-pay & pids+=($!)
gateways=""
for ((i = 1; i <= replicas; i++)); do
  # FLASH_DEV_KEYS gives the gateways the api's keys (a JWKS URL beside it is refused).
  GATEWAY_ADDR="127.0.0.1:$((4210 + i))" ./target/release/flash-gateway & pids+=($!)
  gateways+="${gateways:+,}127.0.0.1:$((4210 + i))"
done
wait_ready "$API_ADDR"; wait_ready "$PAY_OPS_ADDR"
for g in ${gateways//,/ }; do wait_ready "$g"; done

mkdir -p artifacts/drill
./target/release/flash-drill burst --api "$API_ADDR" --gateway "$gateways" --users "$buyers" \
  --database-url "$DATABASE_URL" --deadline-secs 240 \
  --json "artifacts/drill/crowd-$buyers.json" --html "artifacts/drill/crowd-$buyers.html" "$@"
