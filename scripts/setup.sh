#!/usr/bin/env bash
# Set up a Viewfinder development environment at the repository root.
#
#   bash scripts/setup.sh                # Python venv + system services for tests
#   bash scripts/setup.sh --python-only  # only the Python venv (enough for the demo)
#
# Steps:
#   1. (unless --python-only) make sure PostgreSQL, Node.js/npm and Chromium are installed; on a
#      fresh Debian machine they are installed with apt-get (needs root).
#   2. create .venv with a python3 >= 3.11 if it is missing or broken.
#   3. pip install -e '.[test,learned]' into .venv (learned = torch CPU + transformers); skipped when pyproject.toml, the Python
#      version and the repository path are unchanged since the last successful install
#      (the fingerprint is kept in .venv/.viewfinder-installed).
#   4. compile src/ to bytecode (pip does not for an editable install).
#
# Environment:
#   VIEWFINDER_PYTHON  interpreter to build the venv with (default: first python3 >= 3.11)
#   VIEWFINDER_FORCE_INSTALL=1  run pip even when the fingerprint is unchanged
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

venv="$repo_root/.venv"
stamp="$venv/.viewfinder-installed"

python_only=0
for arg in "$@"; do
  case "$arg" in
    --python-only) python_only=1 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

step() { echo "==> setup: $*"; }

apt_updated=0
# apt_install PKG... : install the first installable package of each "a|b" alternative.
apt_install() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "setup.sh: cannot install '$*' (needs root and apt-get); install it by hand" >&2
    return 1
  fi
  if [[ $apt_updated -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  local alternatives pkg
  for alternatives in "$@"; do
    for pkg in ${alternatives//|/ }; do
      if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; then
        continue 2
      fi
    done
    echo "setup.sh: none of '$alternatives' could be installed" >&2
    return 1
  done
}

# --- 1. system packages used by the test services ------------------------------------
if [[ $python_only -eq 0 ]]; then
  if ! command -v pg_createcluster >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    step "installing PostgreSQL (apt-get)"
    apt_install 'postgresql-15|postgresql'
  fi
  if ! command -v chromium >/dev/null; then
    step "installing Chromium for the browser tests (apt-get)"
    apt_install chromium
  fi
  if ! command -v npx >/dev/null; then
    step "installing Node.js and npm (apt-get)"
    apt_install nodejs npm
  fi
fi

# --- 2. the virtual environment ---------------------------------------------------------
# Is "$1" a Python interpreter of version >= 3.11?
python_ok() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate
  for candidate in ${VIEWFINDER_PYTHON:-} python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null && python_ok "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if [[ -d "$venv" ]] && ! python_ok "$venv/bin/python"; then
  step "removing broken virtual environment $venv"
  rm -rf "$venv"
fi

if [[ ! -d "$venv" ]]; then
  python="$(find_python)" || { echo "setup.sh: need python3 >= 3.11 on PATH" >&2; exit 1; }
  step "creating .venv with $python ($("$python" -V 2>&1))"
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian ships venv/ensurepip separately.
    rm -rf "$venv"
    minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install "python$minor-venv|python3-venv"
    "$python" -m venv "$venv"
  fi
fi

# --- 3. the project and its test dependencies -----------------------------------------
# Fingerprint: what pip installed depends on pyproject.toml, the interpreter and where
# the editable install points to.
fingerprint="$(
  {
    sha256sum pyproject.toml
    "$venv/bin/python" -V 2>&1
    echo "$repo_root"
  } | sha256sum | cut -d' ' -f1
)"

if [[ "${VIEWFINDER_FORCE_INSTALL:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]]; then
  step "python dependencies up to date (pyproject.toml unchanged)"
else
  step "installing viewfinder[test,learned] into .venv (pip, may take a few minutes the first time)"
  rm -f "$stamp"
  # pip's output (build back-end warnings included) goes to a log shown only on failure.
  pip_log="$venv/.viewfinder-pip.log"
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check -e '.[test,learned]' >"$pip_log" 2>&1; then
    tail -n 60 "$pip_log" >&2
    echo "setup.sh: pip install failed (full log: $pip_log)" >&2
    exit 1
  fi
  echo "$fingerprint" > "$stamp"
  step "python dependencies installed"
fi

# --- 4. bytecode for the project's own modules --------------------------------------------
# pip compiles the dependencies it installs, not an editable project; where
# PYTHONDONTWRITEBYTECODE is set (CI, containers) Python would then compile every module
# of src/ again at each command's start: 0.2-0.3 s of every CLI call here. compileall
# writes what is missing or stale; Python still checks each file against its source.
"$venv/bin/python" -m compileall -q src >/dev/null
