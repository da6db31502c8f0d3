#!/usr/bin/env bash
# What Redis spends on a join when nothing else wants the machine's cores (issue #17; release
# build): 100,000 buyers joined to an open queue straight through the gateway's own join
# script, 24 to a call (what one gateway's coalescer sent on average under `gateway.sh
# joins`), one call at a time; Redis's CPU per join (from /proc) and the time Redis counted in
# the script per join (INFO commandstats), ending with a `RESULT {"bench":"join-script",...}`
# line. Set against `redis-cost.sh joins`, where the same script runs while the gateway and
# the load generator keep both cores busy. Needs Redis (make deps).
# Usage: loadtest/bench/join-script.sh [users, default 100000] [batch, default 24]
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${1:-100000}
batch=${2:-24}

cargo build --release --locked -q -p flash-drill

# shellcheck source=loadtest/bench/suite.sh
source loadtest/bench/suite.sh # bench_redis
bench_redis

./target/release/flash-drill bench join-script --users "$users" --batch "$batch"
