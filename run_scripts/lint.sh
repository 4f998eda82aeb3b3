#!/usr/bin/env bash
# The lint gate: ruff's formatter and linter (ruff.toml) on the whole tree.
# `./run_scripts/lint.sh --fix` rewrites what can be rewritten.
set -euo pipefail
cd "$(dirname "$0")/.."
source run_scripts/setup_venv.sh
ensure_venv
if [ "${1:-}" = "--fix" ]; then
  .venv/bin/ruff format .
  exec .venv/bin/ruff check --fix .
fi
.venv/bin/ruff format --check .
exec .venv/bin/ruff check .
