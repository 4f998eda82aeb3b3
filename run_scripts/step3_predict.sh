#!/usr/bin/env bash
# Step 3: pseudo-labels for the pool with Model-B -> $PSEUDO_DIR (labeled format + .confidence).
# Needs POOL; extra arguments go to predict_pseudo_labels (e.g. --num_shards=8 --shard_index=3).
source "$(dirname "$0")/common.sh"
: "${POOL:?set POOL to the unlabeled text files}"
"$PY" -m bert_pl.predict_pseudo_labels --model_dir="$MODEL_B" --input_file="$POOL" \
  --output_dir="$PSEUDO_DIR" --dtype="$DTYPE" "$@"
