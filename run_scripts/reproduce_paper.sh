#!/usr/bin/env bash
# The paper's comparison on public data (experiments/reproduce_paper.py):
# baseline vs Model-B vs Model-D, classification and NER, over seeds.
#   ./run_scripts/reproduce_paper.sh --smoke|--quick|--full [--data_dir=../shared/data]
# and on real pretrained weights (MiniLM's first 3 layers; BANKING77, CoNLL-2003):
#   ./run_scripts/reproduce_paper.sh --real [--sizes=low] [--report_dir=experiments]
# Sets up .venv (and, for the real modes, the MiniLM weights) when missing.
# Re-running skips the jobs already done.
set -euo pipefail
cd "$(dirname "$0")/.."
source run_scripts/setup_venv.sh
ensure_venv
if [[ " $* " == *" --real"* || " $* " == *"--mode=real"* ]]; then
  ensure_minilm
fi
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m experiments.reproduce_paper "$@"
