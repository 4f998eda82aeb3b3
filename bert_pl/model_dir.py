"""The self-contained model directory every step writes (DESIGN §5).

    bert_config.json   the original format, with the layer count kept
    vocab.txt          the tokenizer's vocabulary
    task.json          task ("none" | "classification" | "ner"), labels or
                       tags, max_seq_length, tokenizer options, field join
    checkpoint, ckpt-N.*   tf.train.CheckpointManager (keys bert, head, optimizer)
    input_state/worker-N/  the training input's position at each checkpoint (training)
    summaries/         TensorBoard events
    eval_results.txt   evaluation results
    self_training.json what classic self-training added (run_classifier/run_ner
                       with --pseudo_label_file; see self_training)
"""

import json
import os
from typing import Any, Dict

import tensorflow as tf

from bert_pl import checkpoints, modeling, precision, task_models, tokenization

TASK_FILE = "task.json"


def write(model_dir: str, config: modeling.BertConfig, vocab_file: str,
          task_info: Dict[str, Any]) -> None:
  tf.io.gfile.makedirs(model_dir)
  config.to_json_file(os.path.join(model_dir, "bert_config.json"))
  target = os.path.join(model_dir, "vocab.txt")
  if os.path.abspath(vocab_file) != os.path.abspath(target):
    tf.io.gfile.copy(vocab_file, target, overwrite=True)
  write_json(os.path.join(model_dir, TASK_FILE), task_info)


def write_json(path: str, value: Any) -> None:
  """A JSON file of the model directory, under a temporary name renamed when complete."""
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def read_task_info(model_dir: str) -> Dict[str, Any]:
  path = os.path.join(model_dir, TASK_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path}: not a bert_pl model directory (no {TASK_FILE})")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def load_finetuned(directory: str, dtype: str = "float32"):
  """The fine-tuned model at the directory's latest checkpoint, its
  tokenizer and task.json. `dtype`: the compute precision (`precision`).

  For prediction and export. Only `bert` and `head` are read: the optimizer
  slots are training state, but every model variable must be in the
  checkpoint, so that a model built from a config that does not match its
  weights is never used.
  """
  info = read_task_info(directory)
  task = info.get("task")
  if task not in ("classification", "ner"):
    raise ValueError(f"{directory}: needs a fine-tuned classification or NER "
                     f"model, task.json says task={task!r}")
  latest = tf.train.latest_checkpoint(directory)
  if not latest:
    raise ValueError(f"{directory}: no checkpoint")
  config = modeling.BertConfig.from_json_file(os.path.join(directory, "bert_config.json"))
  tokenizer = tokenization.BertTokenizer(os.path.join(directory, "vocab.txt"),
                                         info["do_lower_case"], info["tokenization"])
  if tokenizer.vocab_size != config.vocab_size:
    raise ValueError(f"{directory}: vocab.txt has {tokenizer.vocab_size} tokens but "
                     f"vocab_size is {config.vocab_size}")
  with precision.policy(dtype):
    model = task_models.BertTaskModel(config, task, len(info["labels"]))
  # The keys of training.CheckpointedRun.
  checkpoint = tf.train.Checkpoint(**{checkpoints.CHECKPOINT_KEY: model.bert,
                                      "head": model.head})
  try:
    checkpoint.restore(latest).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as e:  # messages that list every variable
    raise ValueError(f"{latest} does not fit the model of bert_config.json and task.json: "
                     f"{str(e).splitlines()[0][:200]}") from None
  return model, tokenizer, info
