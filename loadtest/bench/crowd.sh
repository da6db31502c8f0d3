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
# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh
bench_suite crowd
export API_ADDR=127.0.0.1:4201 PAY_OPS_ADDR=127.0.0.1:4202

echo "$(machine); $buyers buyers, $replicas gateways"
./target/release/flash-api migrate
./target/release/flash-api & pids+=($!)
./target/release/flash-pay & pids+=($!)
gateways=""
for ((i = 1; i <= replicas; i++)); do
  GATEWAY_ADDR="127.0.0.1:$((4210 + i))" ./target/release/flash-gateway & pids+=($!)
  gateways+="${gateways:+,}127.0.0.1:$((4210 + i))"
done
wait_ready "$API_ADDR"; wait_ready "$PAY_OPS_ADDR"
for g in ${gateways//,/ }; do wait_ready "$g"; done

mkdir -p artifacts/drill
./target/release/flash-drill burst --api "$API_ADDR" --gateway "$gateways" --users "$buyers" \
  --database-url "$DATABASE_URL" --deadline-secs 240 --signup-concurrency 8 \
  --json "artifacts/drill/crowd-$buyers.json" --html "artifacts/drill/crowd-$buyers.html" "$@"
