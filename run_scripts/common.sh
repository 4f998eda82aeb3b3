# Sourced by the step scripts: the virtual environment and the paper's
# hyper-parameters as defaults. Every variable can be set by the caller.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source run_scripts/setup_venv.sh
ensure_venv
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
PY=.venv/bin/python

: "${TASK:=classification}"          # classification | ner
: "${WORK_DIR:=output}"              # where model directories and data go
: "${VOCAB:=}"                       # vocab.txt of INIT_CHECKPOINT (steps 1, 2, 4, 5)
: "${INIT_CHECKPOINT:=}"             # Google TF1 BERT (12 layers), HF safetensors or a model dir
: "${NUM_LAYERS:=3}"                 # the paper takes the first 3 layers
: "${TOKENIZATION:=wordpiece}"       # wordpiece | char (exact tags for Chinese NER)
: "${DO_LOWER_CASE:=true}"
: "${MODEL_A:=$WORK_DIR/$TASK/model_a}"
: "${MODEL_B:=$WORK_DIR/$TASK/model_b}"
: "${PSEUDO_DIR:=$WORK_DIR/$TASK/pseudo}"
: "${MODEL_C:=$WORK_DIR/$TASK/model_c}"
: "${MODEL_D:=$WORK_DIR/$TASK/model_d}"
if [ "$TASK" = ner ]; then
  : "${MAX_SEQ_LENGTH:=128}" "${PRETRAIN_LR:=1e-5}" "${PRETRAIN_WARMUP:=5000}" "${EPOCHS:=3}"
else
  : "${MAX_SEQ_LENGTH:=64}" "${PRETRAIN_LR:=5e-5}" "${PRETRAIN_WARMUP:=10000}" "${EPOCHS:=7}"
fi
: "${MAX_PREDICTIONS:=$("$PY" -c "from bert_pl import masking
print(masking.default_max_predictions($MAX_SEQ_LENGTH))")}"
: "${PRETRAIN_STEPS:=100000}" "${BATCH_SIZE:=64}" "${FINETUNE_LR:=1e-5}"
: "${NUM_SHARDS:=4}" "${NUM_WORKERS:=2}" "${SEED:=12345}"
: "${BUCKET_WIDTH:=8}"               # length bucketing of training batches (0: off)
: "${DTYPE:=float32}"                # float32 | bfloat16 | float16 (mixed precision)
JOB=$([ "$TASK" = ner ] && echo run_ner || echo run_classifier)

# create_pretraining_data INPUT OUTPUT_PREFIX [flags]
pretraining_data() {
  local input=$1 output=$2; shift 2
  : "${VOCAB:?set VOCAB to the vocab.txt of INIT_CHECKPOINT}"
  "$PY" -m bert_pl.create_pretraining_data --input_file="$input" --output_file="$output" \
    --num_output_shards="$NUM_SHARDS" --num_workers="$NUM_WORKERS" --vocab_file="$VOCAB" \
    --do_lower_case="$DO_LOWER_CASE" --tokenization="$TOKENIZATION" \
    --max_seq_length="$MAX_SEQ_LENGTH" --max_predictions_per_seq="$MAX_PREDICTIONS" \
    --random_seed="$SEED" "$@"
}

# run_pretraining OUTPUT_DIR INIT INPUT_PREFIX [flags]
pretrain() {
  local output=$1 init=$2 input=$3; shift 3
  : "${VOCAB:?set VOCAB to the vocab.txt of INIT_CHECKPOINT}"
  "$PY" -m bert_pl.run_pretraining --do_train --do_eval --input_file="$input*" \
    --output_dir="$output" ${init:+--init_checkpoint="$init"} --num_hidden_layers="$NUM_LAYERS" \
    --vocab_file="$VOCAB" --do_lower_case="$DO_LOWER_CASE" --tokenization="$TOKENIZATION" \
    --max_seq_length="$MAX_SEQ_LENGTH" --max_predictions_per_seq="$MAX_PREDICTIONS" \
    --train_batch_size="$BATCH_SIZE" --learning_rate="$PRETRAIN_LR" \
    --num_train_steps="$PRETRAIN_STEPS" --num_warmup_steps="$PRETRAIN_WARMUP" \
    --bucket_width="$BUCKET_WIDTH" --dtype="$DTYPE" --random_seed="$SEED" "$@"
}

# fine-tune OUTPUT_DIR INIT [flags]: run_classifier or run_ner on the labeled set
finetune() {
  local output=$1 init=$2; shift 2
  : "${TRAIN_FILE:?set TRAIN_FILE}" "${TEST_FILE:?set TEST_FILE}" "${LABEL_FILE:?set LABEL_FILE}"
  : "${VOCAB:?set VOCAB to the vocab.txt of INIT_CHECKPOINT}"
  "$PY" -m "bert_pl.$JOB" --do_train --do_eval --train_file="$TRAIN_FILE" \
    --eval_file="$TEST_FILE" --label_file="$LABEL_FILE" --init_checkpoint="$init" \
    --output_dir="$output" --vocab_file="$VOCAB" --do_lower_case="$DO_LOWER_CASE" \
    --tokenization="$TOKENIZATION" --max_seq_length="$MAX_SEQ_LENGTH" \
    --train_batch_size="$BATCH_SIZE" --learning_rate="$FINETUNE_LR" \
    --num_train_epochs="$EPOCHS" --bucket_width="$BUCKET_WIDTH" --dtype="$DTYPE" \
    --random_seed="$SEED" "$@"
}
