# Sourced by scripts/test and scripts/bench: installs the Python tools into .venv, starts a
# moto_server on a free port and makes sure a redis-server answers. Exports
# STARK_TEST_MOTO_URL and STARK_TEST_REDIS_URL; the caller's EXIT trap stops what it started.
# shellcheck shell=bash

MOTO_VERSION="5.2.1"
CFN_LINT_VERSION="1.51.0"
SCHEMATHESIS_VERSION="4.32.5"

say() { printf '\033[1m[%s]\033[0m %s\n' "${0##*/}" "$*" >&2; }
die() { printf '\033[1;31m[%s] %s\033[0m\n' "${0##*/}" "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
command -v python3 >/dev/null || die "python3 not found: install Python 3 first"

# --- Python tools in .venv -------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv 2>/dev/null || {
    say "python3 -m venv is unavailable; using virtualenv"
    python3 -m pip install --user --quiet virtualenv && python3 -m virtualenv --quiet .venv
  } || die "cannot create .venv (install python3-venv, or pip install --user virtualenv)"
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('moto')=='$MOTO_VERSION' and m.version('cfn-lint')=='$CFN_LINT_VERSION' and m.version('schemathesis')=='$SCHEMATHESIS_VERSION' and m.version('flask') else 1)" 2>/dev/null; then
  say "installing moto[server]==$MOTO_VERSION, cfn-lint==$CFN_LINT_VERSION and schemathesis==$SCHEMATHESIS_VERSION into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" \
    || die "pip could not install moto[server], cfn-lint and schemathesis"
fi

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# --- moto_server: two per run, on free ports -------------------------------------------------
# One serves DynamoDB and SQS. A second serves SES v2 alone: the tests read sent mail back from
# moto's /moto-api/data.json, which dumps every model of the server it asks, so SES keeps a
# server of its own where that dump stays small and quick.
mkdir -p target
# moto_server's own entry point, with one change: moto handles each request on its own thread
# and does not lock around a DynamoDB transaction (it snapshots the table, applies, and
# restores the snapshot on failure), so a thread switch in the middle could let a losing
# transaction undo a winning one. A long GIL switch interval makes a request's processing
# run without preemption (threads still switch on socket I/O), which is what the concurrency
# tests need for DynamoDB's per-request atomicity to hold.
start_moto() { # name -> prints the URL
  local port; port=$(free_port)
  .venv/bin/python -c 'import sys; sys.setswitchinterval(5.0); from moto.server import main; sys.exit(main())' \
    -H 127.0.0.1 -p "$port" >"target/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null && break
    sleep 0.1
  done
  .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=2)" 2>/dev/null \
    || die "moto_server did not start on port $port (see target/$1.log)"
  moto_started="http://127.0.0.1:$port"
}
start_moto moto
export STARK_TEST_MOTO_URL="$moto_started"
start_moto moto-ses
export STARK_TEST_MOTO_SES_URL="$moto_started"
say "moto_server on $STARK_TEST_MOTO_URL (DynamoDB, SQS) and $STARK_TEST_MOTO_SES_URL (SES v2)"

# --- redis-server: use the one that answers, else start our own -------------------------------
redis_ping() { .venv/bin/python - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
}
if redis_ping "${STARK_TEST_REDIS_PORT:-6379}"; then
  redis_port=${STARK_TEST_REDIS_PORT:-6379}
  say "redis answers on 127.0.0.1:$redis_port"
else
  command -v redis-server >/dev/null || die "redis-server is not running and the binary is missing: install it (Debian: apt-get install redis-server)"
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >target/redis.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do redis_ping "$redis_port" && break; sleep 0.1; done
  redis_ping "$redis_port" || die "redis-server did not start (see target/redis.log)"
  say "started redis-server on 127.0.0.1:$redis_port"
fi
export STARK_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

