#!/usr/bin/env bash
# Opening a pre-queue of N (issue #17; release build): one event's pre-queue is filled
# straight into Redis through the gateway's own waiting room (its join script, in batches of
# 1,000), then opened by the gateway's own admission tickers (two, as two replicas). Reports
# the longest Redis command during the opening (SLOWLOG, every command over 1 ms is logged
# meanwhile; the settings are put back afterwards), the time from the opening time to the
# first admission, how long numbering took, and that 1…N were each given once in the draw's
# order, ending with a `RESULT {"bench":"prequeue",...}` line. Needs Redis (make deps).
# Usage: loadtest/bench/prequeue.sh [N, default 1000000] [tickers, default 2]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
tickers=${2:-2}

cargo build --release --locked -q -p flash-drill

# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh # bench_redis
bench_redis

./target/release/flash-drill bench prequeue --users "$n" --tickers "$tickers"
