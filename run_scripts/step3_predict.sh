#!/usr/bin/env bash
# Step 3: the pool's pseudo-labels by Model-B -> WORK/round1/pseudo.
# The driver's jobs of this step (bert_pl/plan.py defines which): give the driver's flags, the same
# for every step (e.g. --task, --work_dir, --pool, ...); the steps it needs must be done.
repo=$(cd "$(dirname "$0")/.." && pwd)
(cd "$repo" && source run_scripts/setup_venv.sh && ensure_venv)  # .venv on first use
exec "$repo/.venv/bin/python" -m bert_pl.pipeline --only=step3 "$@"
