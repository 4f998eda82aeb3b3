#!/usr/bin/env bash
# Step 4: pre-training with MLM + task loss on the pseudo-labels -> Model-C ($MODEL_C).
# Initialised from INIT_CHECKPOINT (the paper's fair comparison) or STEP4_INIT=$MODEL_A.
# Needs LABEL_FILE; extra arguments go to run_pretraining.
source "$(dirname "$0")/common.sh"
: "${LABEL_FILE:?set LABEL_FILE}"
: "${STEP4_INIT:=$INIT_CHECKPOINT}"
pretraining_data "$PSEUDO_DIR/*" "$WORK_DIR/$TASK/step4/pretrain.tfrecord" \
  --task="$TASK" --label_file="$LABEL_FILE" ${DATA_FLAGS:-}
pretrain "$MODEL_C" "$STEP4_INIT" "$WORK_DIR/$TASK/step4/pretrain.tfrecord" \
  --task_loss="$TASK" --label_file="$LABEL_FILE" "$@"
