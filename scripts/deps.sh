#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer where DATABASE_URL, REDIS_URL and AMQP_URL
# point. A local store that is installed but stopped is started; a missing one is installed
# from Debian's packages when INSTALL=1; otherwise this stops with what is missing and how to
# fix it. Remote stores are only checked. The web tests' tools (Node.js, npm, Chromium) are
# installed with INSTALL=1 too, and only reported when missing otherwise. INSTALL=auto (the
# default) is INSTALL=1 when this user is root or may sudo without a password, else 0; each
# install is announced before it runs. INSTALL=0 opts out.
set -uo pipefail

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/flash}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
INSTALL=${INSTALL:-auto}
if [[ $INSTALL == auto ]]; then
  if [[ $(id -u) -eq 0 ]] || sudo -n true 2>/dev/null; then INSTALL=1; else INSTALL=0; fi
fi
WAIT_SECS=${DEPS_WAIT_SECS:-90}

say() { printf 'deps: %s\n' "$*"; }
fail() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# host and port of a URL: scheme://[user[:pass]@]host[:port][/...]
host_of() { local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; rest=${rest%%\?*}; printf '%s' "${rest%:*}"; }
port_of() {
  local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; rest=${rest%%\?*}
  if [[ $rest == *:* ]]; then printf '%s' "${rest##*:}"; else printf '%s' "$2"; fi
}
is_local() { [[ $1 == 127.* || $1 == localhost || $1 == "[::1]" || $1 == ::1 ]]; }
answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

wait_for() { # name host port
  local i
  for ((i = 0; i < WAIT_SECS; i++)); do
    answers "$2" "$3" && return 0
    sleep 1
  done
  return 1
}

start_postgres() {
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [[ -n $version ]] || return 1
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
    as_root pg_ctlcluster "$version" main start
}
start_redis() {
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$1" --save "" --appendonly no >/dev/null
}
start_rabbitmq() {
  as_root rabbitmq-server -detached >/dev/null 2>&1
}

ensure() { # name url default_port installed_cmd package start_fn
  local name=$1 url=$2 host port
  host=$(host_of "$url"); port=$(port_of "$url" "$3")
  [[ $host == localhost ]] && host=127.0.0.1
  if answers "$host" "$port"; then
    say "$name answers on $host:$port"
    return 0
  fi
  if ! is_local "$host"; then
    fail "$name does not answer on $host:$port (from its URL). Start it there, or unset the URL to use a local one."
  fi
  if ! command -v "$4" >/dev/null 2>&1; then
    if [[ $INSTALL == 1 ]]; then
      say "$name is not installed; installing Debian package $5"
      as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$5" ||
        fail "could not install $5 (needs root or sudo)"
    else
      fail "$name is not installed and nothing answers on $host:$port. Run 'make deps INSTALL=1' (installs Debian package $5), or point the URL at a running $name."
    fi
  fi
  say "$name is installed but not running; starting it"
  "$6" "$port" || fail "could not start $name; start it yourself and retry"
  wait_for "$name" "$host" "$port" || fail "$name did not answer on $host:$port within ${WAIT_SECS}s"
  say "$name answers on $host:$port"
}

ensure PostgreSQL "$DATABASE_URL" 5432 pg_ctlcluster postgresql start_postgres
ensure Redis "$REDIS_URL" 6379 redis-server redis-server start_redis
ensure RabbitMQ "$AMQP_URL" 5672 rabbitmq-server rabbitmq-server start_rabbitmq

# The web UI's end-to-end tests drive Debian's Chromium from Node.js (playwright-core, installed
# by `npm ci` in services/web/e2e). Missing tools are installed with INSTALL=1; otherwise this
# only says so, since `make up` does not need them (the tests fail naming the fix).
web_tool() { # command package
  if command -v "$1" >/dev/null 2>&1; then
    return 0
  fi
  if [[ $INSTALL == 1 ]]; then
    say "$1 is not installed; installing Debian package $2"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" ||
      fail "could not install $2 (needs root or sudo)"
  else
    say "note: $1 is missing; the web UI's browser tests need it. Run 'make deps INSTALL=1' (installs Debian package $2)."
  fi
}
web_tool node nodejs
web_tool npm npm
web_tool chromium chromium
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if command -v node >/dev/null 2>&1 && ((node_major < 20)); then
  say "note: Node.js $(node --version) is older than the web tests' playwright-core needs (20 or later)."
fi

# A Postgres that answers may still refuse us (a fresh Debian install wants a password on TCP).
if command -v psql >/dev/null 2>&1; then
  server_url=$(printf '%s' "$DATABASE_URL" | sed -E 's#^(postgres(ql)?://[^/]*)/?[^?]*#\1/postgres#')
  if ! psql "$server_url" -Atqc 'select 1' >/dev/null 2>&1; then
    fail "PostgreSQL answers but refuses the login in DATABASE_URL ($(printf '%s' "$DATABASE_URL" | sed -E 's#://([^:/@]*):[^@]*@#://\1:***@#')). Put the right user and password in DATABASE_URL, or allow it in pg_hba.conf."
  fi
fi
exit 0
