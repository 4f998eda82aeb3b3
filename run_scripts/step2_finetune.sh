#!/usr/bin/env bash
# Step 2: Model-A fine-tuned on the labeled set -> WORK/model_b (and the baselines).
# The driver's jobs of this step (bert_pl/plan.py defines which): give the driver's flags, the same
# for every step (e.g. --task, --work_dir, --pool, ...); the steps it needs must be done.
exec "$(dirname "$0")/../.venv/bin/python" -m bert_pl.pipeline --only=step2 "$@"
