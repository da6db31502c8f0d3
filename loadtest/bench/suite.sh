# Sourced by the benchmarks that run the suite's release binaries as separate processes
# (crowd.sh, restart.sh): `bench_suite NAME` gives the run its own database, Redis key prefix
# and broker names, removed on exit with every process started into `pids`, and the settings
# every such run shares. `bench_redis` does the same for a run that only uses Redis
# (prequeue.sh, join-script.sh). Also `wait_ready ADDR` and `sources N`.

# bench_suite NAME: exports the run's stores and shared settings; sets run_id, server, pids.
bench_suite() {
  run_id="$1$(date +%s)$$"
  server=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
  export DATABASE_URL="$server/$run_id" REDIS_KEY_PREFIX="$run_id:" AMQP_NAME_PREFIX="$run_id."
  export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
  export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
  # Local dev keys: the gateways verify the api's access tokens with the same well-known key
  # (a JWKS URL beside it is refused).
  export FLASH_DEV_KEYS=true RUST_LOG=${RUST_LOG:-warn}
  # The drills' Argon2 cost: the same sign-up and login path, at a cost that lets a crowd
  # sign up in seconds rather than minutes.
  export ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1
  # A crowd's sign-ups queue for the one hashing thread (2 cores): they may wait 2 s for it
  # instead of 250 ms before a 503 (a preparation, not an attack).
  export ARGON2_QUEUE_WAIT_MS=2000
  export FLASH_ADMIN_EMAIL="admin@$1.local" FLASH_ADMIN_PASSWORD="$1 bench $run_id"
  export DATABASE_MAX_CONNECTIONS=32
  pids=()
  trap bench_cleanup EXIT
  ulimit -n "$(ulimit -Hn)"
}

# bench_redis: a Redis key prefix of the run's own (REDIS_KEY_PREFIX), its keys deleted on
# exit; sets run_id.
bench_redis() {
  run_id="bench$(date +%s)$$"
  export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} REDIS_KEY_PREFIX="$run_id:" RUST_LOG=${RUST_LOG:-warn}
  trap delete_run_keys EXIT
}

# delete_run_keys: deletes the keys under the run's prefix (run_id, REDIS_URL).
delete_run_keys() {
  redis-cli -u "$REDIS_URL" --scan --pattern "$run_id:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
}

bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$run_id\" WITH (FORCE)" >/dev/null 2>&1 || true
  delete_run_keys
  ./target/release/flash-drill clean-broker --amqp-name-prefix "$run_id." >/dev/null 2>&1 || true
}

# wait_ready ADDR: until the service at ADDR answers /ready (20 s at most, else exit).
wait_ready() {
  for _ in $(seq 100); do curl -sf "http://$1/ready" >/dev/null && return 0; sleep 0.2; done
  echo "$1 never ready" >&2
  exit 1
}

# sources N: 127.0.0.2 .. 127.0.0.(N+1), comma-separated.
sources() {
  local out=""
  for ((i = 2; i <= $1 + 1; i++)); do out+="${out:+,}127.0.0.$i"; done
  printf '%s' "$out"
}

# machine: the line every benchmark starts with.
machine() {
  printf 'machine: %s cores, %s GiB, %s' "$(nproc)" "$(free -g | awk '/Mem:/{print $2}')" "$(uname -r)"
}
