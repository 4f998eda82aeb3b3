#!/usr/bin/env bash
# Step 2: fine-tune Model-A on the labeled set -> Model-B ($MODEL_B).
# Needs TRAIN_FILE, TEST_FILE, LABEL_FILE, VOCAB; extra arguments go to run_classifier/run_ner.
source "$(dirname "$0")/common.sh"
finetune "$MODEL_B" "$MODEL_A" "$@"
