#!/usr/bin/env bash
# Runs the lint check, then the test suite. On a fresh clone it first creates .venv (Python 3.11)
# and installs the package with its test and beam extras. The tests marked `slow` are left out
# (CI's budget: ~20 min on 2 cores); `--all` runs them too. Other arguments go to pytest (e.g.
# -k tokenization, or test files instead of tests/); TEST_WORKERS=0 runs the tests in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
source run_scripts/setup_venv.sh
ensure_venv
ensure_minilm
# The lint gate first (ruff.toml): seconds, and a style error fails CI as a test would.
./run_scripts/lint.sh
export TF_CPP_MIN_LOG_LEVEL=2
set +e
# Two pytest workers (CI has 2 cores; much of a test's time is process
# start-up and Python); a test module stays on one worker, so that its
# module-scoped fixtures (trained tiny models) are built once.
select=(-m "not slow")
args=()
for arg in "$@"; do
  if [ "$arg" = "--all" ]; then select=(); else args+=("$arg"); fi
done
# tests/ unless test files or directories are given.
paths=(tests)
for arg in "${args[@]}"; do
  case $arg in tests/*) paths=(); break;; esac
done
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 -n "${TEST_WORKERS:-2}" \
  --dist loadfile "${select[@]}" "${paths[@]}" "${args[@]}"
status=$?
set -e
# pytest exits 5 when it collected no test: that is a failure here too.
exit $status
