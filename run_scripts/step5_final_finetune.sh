#!/usr/bin/env bash
# Step 5: fine-tune Model-C on the labeled set -> Model-D ($MODEL_D).
# Needs TRAIN_FILE, TEST_FILE, LABEL_FILE, VOCAB; extra arguments go to run_classifier/run_ner.
source "$(dirname "$0")/common.sh"
finetune "$MODEL_D" "$MODEL_C" "$@"
