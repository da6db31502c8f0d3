#!/usr/bin/env bash
# What the join challenge costs (issue #18; release build, no services needed): the gateway's
# issuing and verifying per challenge on one core, and the native solve time (median and 90th
# percentile of 9 challenges) at each difficulty 0..MAX, ending with a `RESULT
# {"bench":"challenge",...}` line. Usage: loadtest/bench/challenge.sh [MAX, default 22]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -q -p flash-drill
./target/release/flash-drill bench challenge --max-difficulty "${1:-22}"
