#!/usr/bin/env bash
# Step 1: domain pre-training with masked LM only -> Model-A ($MODEL_A).
# Needs POOL (unlabeled text files, globs ok), VOCAB, INIT_CHECKPOINT; see common.sh.
# Extra arguments are run_pretraining flags, e.g. --num_train_steps=1000.
source "$(dirname "$0")/common.sh"
: "${POOL:?set POOL to the unlabeled text files}"
pretraining_data "$POOL" "$WORK_DIR/$TASK/step1/pretrain.tfrecord" --task=none ${DATA_FLAGS:-}
pretrain "$MODEL_A" "$INIT_CHECKPOINT" "$WORK_DIR/$TASK/step1/pretrain.tfrecord" --task_loss=none "$@"
