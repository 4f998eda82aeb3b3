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
source bench/setup_venv_bench.sh
ensure_venv_bench
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m bench.run_all "$@"
