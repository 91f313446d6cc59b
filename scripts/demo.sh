#!/usr/bin/env bash
# Run the Viewfinder demo: bash scripts/demo.sh [ARGS...]
# The demo uses the embedded defaults (SQLite + local files), so only the Python
# environment is set up; ARGS go to `python -m viewfinder.demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --python-only
exec .venv/bin/python -m viewfinder.demo "$@"
