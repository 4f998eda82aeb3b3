#!/usr/bin/env bash
# Creates .venv-bench when missing: the benchmarks' peers (PyTorch and Hugging
# Face transformers), kept out of .venv so that bert_pl never depends on them.
# Idempotent: a .venv-bench that imports both is left as it is. Run it, or
# source it and call ensure_venv_bench (run_scripts/bench.sh does).
ensure_venv_bench() {
  if [ -x .venv-bench/bin/python ] && .venv-bench/bin/python -c "import torch, transformers" 2>/dev/null; then
    return
  fi
  local python
  python=$(command -v python3.11 || command -v python3)
  "$python" -m venv .venv-bench
  .venv-bench/bin/pip install --quiet --upgrade pip
  # torch first and alone, pinned: 2.13.0 is the CPU build; an unpinned torch
  # (or one pulled in by another package) would be a CUDA build of gigabytes.
  .venv-bench/bin/pip install --quiet torch==2.13.0
  .venv-bench/bin/pip install --quiet transformers==5.24.0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  ensure_venv_bench
fi
