#!/usr/bin/env bash
# What one event's Redis shard pays per operation (issue #17): joins, status polls and
# admission ticks against one gateway, each with the CPU of redis-server, of the gateway and
# of the load generator per operation, read from /proc around the timed part (`cpu: [{name,
# us_per_op, cores}]` in the RESULT lines). Every key of one event shares one hash slot, so
# this CPU per operation is what bounds one event's crowd on one shard. The benchmarks are
# gateway.sh's. Usage:
#   loadtest/bench/redis-cost.sh [joins|status|ticks]   (all three by default)
set -euo pipefail
exec bash "$(dirname "$0")/gateway.sh" "${1:-redis-cost}"
