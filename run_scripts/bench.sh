#!/usr/bin/env bash
# Runs every benchmark (python -m bench.run_all) and prints one table of ratios
# against baselines measured in the same run; all numbers go to
# output/bench/results.json. Creates .venv (bert_pl) and .venv-bench (the
# Hugging Face baseline: the CPU build of PyTorch and transformers, never
# installed into .venv) when missing. Arguments go to bench.run_all, e.g. --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
source run_scripts/setup_venv.sh
ensure_venv
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c "import torch, transformers" 2>/dev/null; then
  python=$(command -v python3.11 || command -v python3)
  "$python" -m venv .venv-bench
  .venv-bench/bin/pip install --quiet --upgrade pip
  # torch first and alone, pinned: 2.13.0 is the CPU build; an unpinned torch
  # (or one pulled in by another package) would be a CUDA build of gigabytes.
  .venv-bench/bin/pip install --quiet torch==2.13.0
  .venv-bench/bin/pip install --quiet transformers==5.24.0
fi
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m bench.run_all "$@"
