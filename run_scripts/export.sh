#!/usr/bin/env bash
# Export a fine-tuned model directory (default Model-D) as a SavedModel with raw-text signatures.
# Extra arguments go to export_saved_model.
source "$(dirname "$0")/common.sh"
: "${EXPORT_MODEL:=$MODEL_D}" "${EXPORT_DIR:=$WORK_DIR/$TASK/export}"
"$PY" -m bert_pl.export_saved_model --model_dir="$EXPORT_MODEL" --export_dir="$EXPORT_DIR" "$@"
