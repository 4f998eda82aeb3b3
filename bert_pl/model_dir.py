"""The self-contained model directory every step writes (DESIGN §5).

    bert_config.json   the original format, with the layer count kept
    vocab.txt          the tokenizer's vocabulary
    task.json          task ("none" | "classification" | "ner"), labels or
                       tags, max_seq_length, tokenizer options, field join
    checkpoint, ckpt-N.*   tf.train.CheckpointManager (keys bert, head, optimizer)
    summaries/         TensorBoard events
    eval_results.txt   evaluation results
"""

import json
import os
from typing import Any, Dict

import tensorflow as tf

from bert_pl import checkpoints, modeling, task_models, tokenization

TASK_FILE = "task.json"


def write(model_dir: str, config: modeling.BertConfig, vocab_file: str,
          task_info: Dict[str, Any]) -> None:
  tf.io.gfile.makedirs(model_dir)
  config.to_json_file(os.path.join(model_dir, "bert_config.json"))
  target = os.path.join(model_dir, "vocab.txt")
  if os.path.abspath(vocab_file) != os.path.abspath(target):
    tf.io.gfile.copy(vocab_file, target, overwrite=True)
  with tf.io.gfile.GFile(os.path.join(model_dir, TASK_FILE), "w") as f:
    f.write(json.dumps(task_info, indent=2, ensure_ascii=False) + "\n")


def read_task_info(model_dir: str) -> Dict[str, Any]:
  path = os.path.join(model_dir, TASK_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path}: not a bert_pl model directory (no {TASK_FILE})")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def load_finetuned(model_dir: str):
  """(BertTaskModel, BertTokenizer, task info) of a fine-tuned model
  directory, its latest checkpoint restored (for prediction and export)."""
  info = read_task_info(model_dir)
  if info.get("task") not in ("classification", "ner"):
    raise ValueError(f"{model_dir}: task {info.get('task')!r} is not a fine-tuned "
                     "classification or NER model")
  latest = tf.train.latest_checkpoint(model_dir)
  if latest is None:
    raise FileNotFoundError(f"{model_dir}: no checkpoint")
  config = modeling.BertConfig.from_json_file(os.path.join(model_dir, "bert_config.json"))
  model = task_models.BertTaskModel(config, info["task"], len(info["labels"]))
  tf.train.Checkpoint(**{checkpoints.CHECKPOINT_KEY: model.bert, "head": model.head}).read(
      latest).assert_existing_objects_matched().expect_partial()
  tokenizer = tokenization.BertTokenizer(os.path.join(model_dir, "vocab.txt"),
                                         info.get("do_lower_case", True),
                                         info.get("tokenization", "wordpiece"))
  return model, tokenizer, info
