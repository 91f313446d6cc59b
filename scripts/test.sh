#!/usr/bin/env bash
# Run Viewfinder's test suite against throw-away services.
#
#   bash scripts/test.sh            # = pytest -q
#   bash scripts/test.sh tests/unit -x -k catalog
#
# What it does:
#   1. scripts/setup.sh (venv + dependencies, fast when nothing changed);
#   2. starts a PostgreSQL cluster "vftest<PID>" on a free port (trust auth on 127.0.0.1);
#   3. starts s3rver (S3-compatible test server, npm package s3rver@3) on a free port
#      with the bucket "viewfinder-test", data in a temporary folder;
#   4. exports the VIEWFINDER_TEST_* / AWS_* variables below and runs
#      .venv/bin/python -m pytest "$@", exiting with pytest's exit code (5, "no tests
#      collected", stays a failure);
#   5. on exit, always: stops s3rver, drops the cluster, removes the temporary folder.
#
# Exported for the tests:
#   VIEWFINDER_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/postgres
#   VIEWFINDER_TEST_S3_ENDPOINT=http://127.0.0.1:PORT   VIEWFINDER_TEST_S3_BUCKET=viewfinder-test
#   AWS_ACCESS_KEY_ID=S3RVER  AWS_SECRET_ACCESS_KEY=S3RVER  AWS_REGION=us-east-1
#   VIEWFINDER_REQUIRE_SERVICES=1   (integration tests fail instead of skipping)
#
# Environment knobs:
#   VIEWFINDER_PG_VERSION     PostgreSQL major version to use (default: 15 if installed,
#                             else the newest installed)
#   VIEWFINDER_TOOLS_CACHE    where s3rver is npm-installed once
#                             (default: ${XDG_CACHE_HOME:-~/.cache}/viewfinder)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { echo "==> test: $*"; }
die() { echo "test.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# --- 0. dependencies -------------------------------------------------------------------
bash scripts/setup.sh

# --- leftovers of earlier runs that were killed (kill -9, machine reset) -----------------
# Each run keeps its temporary folder ${TMPDIR:-/tmp}/viewfinder-test.* with owner.pid
# (the test.sh PID) and s3rver.pid; when the owner is gone, stop its s3rver (by PID,
# after checking that the PID still is an s3rver) and remove the folder.
for stale in "${TMPDIR:-/tmp}"/viewfinder-test.*/; do
  [[ -f "$stale/owner.pid" ]] || continue
  owner_pid="$(cat "$stale/owner.pid")"
  kill -0 "$owner_pid" 2>/dev/null && continue
  if [[ -f "$stale/s3rver.pid" ]]; then
    stale_pid="$(cat "$stale/s3rver.pid")"
    if tr '\0' ' ' <"/proc/$stale_pid/cmdline" 2>/dev/null | grep -q s3rver; then
      log "stopping stale s3rver (pid $stale_pid)"
      kill "$stale_pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$stale"
done

# --- clean-up, registered before anything is started -------------------------------------
work_dir="$(mktemp -d "${TMPDIR:-/tmp}/viewfinder-test.XXXXXX")"
echo $$ >"$work_dir/owner.pid"
pg_cluster=""
pg_version=""
s3_pid=""

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$s3_pid" ]] && kill -0 "$s3_pid" 2>/dev/null; then
    kill "$s3_pid" 2>/dev/null
    # give it a moment to exit, then insist
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$s3_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$s3_pid" 2>/dev/null
    wait "$s3_pid" 2>/dev/null
  fi
  if [[ -n "$pg_cluster" ]]; then
    pg_dropcluster "$pg_version" "$pg_cluster" --stop >/dev/null 2>&1 \
      || echo "test.sh: could not drop PostgreSQL cluster $pg_version/$pg_cluster" >&2
  fi
  rm -rf "$work_dir"
  exit "$rc"
}
trap cleanup EXIT
# Turn Ctrl-C / kill into a normal exit so the EXIT trap runs (128 + signal number).
trap 'exit 130' INT
trap 'exit 143' TERM

# A TCP port that was free a moment ago.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- 1. PostgreSQL ---------------------------------------------------------------------
start_postgres() {
  local t0 port tries
  t0="$(now)"
  command -v pg_createcluster >/dev/null || die "pg_createcluster not found (run scripts/setup.sh)"
  if [[ -n "${VIEWFINDER_PG_VERSION:-}" ]]; then
    pg_version="$VIEWFINDER_PG_VERSION"
  elif [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
    pg_version=15
  else
    pg_version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  fi
  [[ -n "$pg_version" ]] || die "no PostgreSQL server installed under /usr/lib/postgresql"

  # Drop clusters left behind by earlier runs that were killed: the name carries the
  # PID of the test.sh that made it, so a cluster whose owner is gone is stale.
  local ver name owner_pid
  while read -r ver name _; do
    [[ "$name" =~ ^vftest([0-9]+)$ ]] || continue
    owner_pid="${BASH_REMATCH[1]}"
    if ! kill -0 "$owner_pid" 2>/dev/null; then
      log "dropping stale PostgreSQL cluster $ver/$name"
      pg_dropcluster "$ver" "$name" --stop >/dev/null 2>&1 || true
    fi
  done < <(pg_lsclusters -h 2>/dev/null || true)

  pg_cluster="vftest$$"
  port="$(free_port)"
  # Durability settings are off: this cluster lives for one test run.
  if ! pg_createcluster "$pg_version" "$pg_cluster" --port "$port" --start \
      -o fsync=off -o synchronous_commit=off \
      -o full_page_writes=off -o max_connections=200 \
      -- --auth-host=trust --auth-local=trust >"$work_dir/pg_createcluster.log" 2>&1; then
    cat "$work_dir/pg_createcluster.log" >&2
    show_pg_log
    die "could not create PostgreSQL cluster"
  fi
  tries=0
  until pg_isready -q -h 127.0.0.1 -p "$port"; do
    tries=$((tries + 1))
    if [[ $tries -gt 150 ]]; then
      show_pg_log
      die "PostgreSQL did not become ready on port $port"
    fi
    sleep 0.2
  done
  export VIEWFINDER_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  log "PostgreSQL $pg_version cluster $pg_cluster ready on port $port ($(elapsed "$t0"))"
}

show_pg_log() {
  local f="/var/log/postgresql/postgresql-$pg_version-$pg_cluster.log"
  if [[ -f "$f" ]]; then
    echo "----- $f -----" >&2
    tail -n 50 "$f" >&2
  fi
}

# --- 2. s3rver -------------------------------------------------------------------------
tools_cache="${VIEWFINDER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/viewfinder}"
s3rver_dir="$tools_cache/s3rver3"
s3rver_bin="$s3rver_dir/node_modules/.bin/s3rver"

# npm-install s3rver@3 once into the tools cache (needs only the npm registry).
install_s3rver() {
  [[ -x "$s3rver_bin" ]] && return 0
  command -v npm >/dev/null || die "npm not found (run scripts/setup.sh)"
  log "installing s3rver@3 into $s3rver_dir (first run only)"
  mkdir -p "$tools_cache"
  local staging
  staging="$(mktemp -d "$tools_cache/s3rver3.tmp.XXXXXX")"
  if ! npm install --prefix "$staging" --no-audit --no-fund --loglevel=error s3rver@3 \
      >"$work_dir/npm-install.log" 2>&1; then
    cat "$work_dir/npm-install.log" >&2
    rm -rf "$staging"
    die "npm install s3rver@3 failed"
  fi
  # Move into place atomically; if a concurrent run won the race, keep its copy.
  mv -T "$staging" "$s3rver_dir" 2>/dev/null || rm -rf "$staging"
  [[ -x "$s3rver_bin" ]] || die "s3rver not found at $s3rver_bin after install"
}

start_s3rver() {
  local t0 port tries bucket=viewfinder-test
  t0="$(now)"
  install_s3rver
  port="$(free_port)"
  mkdir -p "$work_dir/s3"
  # The bin is a node script: run it directly so $s3_pid is the server itself.
  "$s3rver_bin" -d "$work_dir/s3" -a 127.0.0.1 -p "$port" --configure-bucket "$bucket" \
    >"$work_dir/s3rver.log" 2>&1 &
  s3_pid=$!
  echo "$s3_pid" >"$work_dir/s3rver.pid"
  tries=0
  until python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer (e.g. 403) means the server is up
PY
  do
    tries=$((tries + 1))
    if ! kill -0 "$s3_pid" 2>/dev/null || [[ $tries -gt 100 ]]; then
      echo "----- s3rver log -----" >&2
      cat "$work_dir/s3rver.log" >&2
      die "s3rver did not start on port $port"
    fi
    sleep 0.2
  done
  export VIEWFINDER_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export VIEWFINDER_TEST_S3_BUCKET="$bucket"
  export AWS_ACCESS_KEY_ID=S3RVER
  export AWS_SECRET_ACCESS_KEY=S3RVER
  export AWS_REGION=us-east-1
  export AWS_DEFAULT_REGION=us-east-1
  log "s3rver ready on port $port, bucket $bucket ($(elapsed "$t0"))"
}

start_postgres
start_s3rver
export VIEWFINDER_REQUIRE_SERVICES=1

# --- 3. pytest -------------------------------------------------------------------------
[[ $# -gt 0 ]] || set -- -q
log "running: python -m pytest $*"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "test.sh: pytest collected no tests (exit code 5) - treated as a failure" >&2
fi
exit "$rc"
