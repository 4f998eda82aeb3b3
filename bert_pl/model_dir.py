"""The self-contained model directory every step writes (DESIGN §5).

A model directory is authoritative: a job that reads an existing model takes
its settings (task, labels, max_seq_length, tokenizer options, field join)
from task.json, and a flag given explicitly that says otherwise is an error
naming both values, never a silent override; only training writes task.json.
So what a model was trained with is what every later job feeds it.

    bert_config.json   the original format, with the layer count kept
    vocab.txt          the tokenizer's vocabulary
    task.json          task ("none" | "classification" | "ner"), labels or
                       tags, max_seq_length, tokenizer options, field join,
                       how the MLM head began (`checkpoints.mlm_head_state`)
    checkpoint, ckpt-N.*   tf.train.CheckpointManager (keys bert, head, optimizer)
    input_state/worker-N/  the training input's position at each checkpoint (training)
    summaries/         TensorBoard events
    eval_results.txt   evaluation results
    eval_predictions.tsv|.txt  the eval file with gold and predicted labels (fine-tuning)
    dev_results.json, dev_best/  per-epoch dev results, the best epoch's weights
                       (fine-tuning with --dev_file; see dev_selection)
    schedule.json      run_pretraining's resolved training and warm-up steps, and
                       the epochs, warm-up proportion and record count they came from;
                       the MLM head's warm-up steps before them and their learning rate
    self_training.json what classic self-training added (run_classifier/run_ner
                       with --pseudo_label_file; see self_training)
"""

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import tensorflow as tf

from bert_pl import (
  atomic_files,
  checkpoints,
  errors,
  manifest,
  modeling,
  precision,
  task_models,
  tokenization,
)

TASK_FILE = "task.json"
EVAL_RESULTS_FILE = "eval_results.txt"
# The task.json settings a job's flags may restate.
SETTINGS = ("max_seq_length", "do_lower_case", "tokenization", "field_join")


class ModelDirError(errors.InputError):
  """A model directory that is not what the job needs, or flags that
  contradict it."""


def write(
  model_dir: str, config: modeling.BertConfig, vocab_file: str, task_info: Dict[str, Any]
) -> None:
  atomic_files.makedirs(model_dir)
  atomic_files.write_file(os.path.join(model_dir, "bert_config.json"), config.to_json_string())
  target = os.path.join(model_dir, "vocab.txt")
  if os.path.abspath(vocab_file) != os.path.abspath(target):
    with errors.reading(vocab_file), tf.io.gfile.GFile(vocab_file, "rb") as f:
      vocab = f.read()
    atomic_files.write_file(target, vocab)
  write_json(os.path.join(model_dir, TASK_FILE), task_info)


def write_json(path: str, value: Any) -> None:
  """A JSON file of the model directory, under a temporary name renamed when complete."""
  atomic_files.write_file(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_eval_results(model_dir: str, results: Dict[str, Any]) -> None:
  """eval_results.txt: `key = value` lines, as the original BERT writes them."""
  atomic_files.write_file(
    os.path.join(model_dir, EVAL_RESULTS_FILE),
    "".join(f"{key} = {results[key]}\n" for key in sorted(results)),
  )


def read_task_info(model_dir: str) -> Dict[str, Any]:
  path = os.path.join(model_dir, TASK_FILE)
  if not tf.io.gfile.exists(path):
    raise ModelDirError(f"{path}: not a bert_pl model directory (no {TASK_FILE})")
  return modeling.read_json(path)


def describe(info: Dict[str, Any]) -> str:
  """What a model directory is, from its task.json: e.g. "a run_pretraining
  model directory (task=none)"."""
  return f"a {info.get('trained_by', 'bert_pl')} model directory (task={info.get('task')})"


def resume_advice(model_dir: str, latest: str, do_train: bool) -> str:
  """What to do when flags contradict an existing model that --do_train
  would resume (appended to the error)."""
  if not do_train:
    return ""
  return (
    f" ({model_dir} holds {os.path.basename(latest)} of an earlier run, which --do_train "
    f"would resume: use a new --output_dir, or delete {model_dir} to start over)"
  )


def check_settings(
  model_dir: str, info: Dict[str, Any], given: Dict[str, Any], advice: str = ""
) -> None:
  """Refuses settings given by flag (not None) that differ from task.json's,
  naming both values; `advice` is appended to the message."""
  for name, value in given.items():
    if value is not None and value != info.get(name):
      raise ModelDirError(
        f"{os.path.join(model_dir, TASK_FILE)}: {name} is {info.get(name)} "
        f"there, --{name}={value} given{advice}"
      )


def check_labels(
  model_dir: str, info: Dict[str, Any], labels: Sequence[str], label_file: str, advice: str = ""
) -> None:
  """Refuses a --label_file whose labels are not task.json's (same order)."""
  ours = list(info.get("labels") or [])
  if list(labels) == ours:
    return
  line = next(
    i
    for i in range(max(len(ours), len(labels)))
    if i >= len(ours) or i >= len(labels) or ours[i] != labels[i]
  )
  there = repr(ours[line]) if line < len(ours) else "none"
  given = repr(labels[line]) if line < len(labels) else "none"
  raise ModelDirError(
    f"{os.path.join(model_dir, TASK_FILE)}: other labels than "
    f"--label_file={label_file} ({len(ours)} there, {len(labels)} given; "
    f"label {line + 1} is {there} there, {given} given){advice}"
  )


def check_model(
  model_dir: str, model_config, init_checkpoint: Optional[str], advice: str = ""
) -> Tuple[modeling.BertConfig, str]:
  """The BertConfig and vocab.txt of an existing model directory, which the
  model the flags describe (`model_config`: a `job_config.ModelConfig`, with
  `init_checkpoint` resolved by the job), if they describe one, must equal:
  a field or vocabulary that differs is an error naming both."""
  config_file = os.path.join(model_dir, "bert_config.json")
  there = modeling.BertConfig.from_json_file(config_file)
  layer_map = checkpoints.parse_layer_map(model_config.layer_map)
  if model_config.bert_config_file or init_checkpoint:
    given, _ = checkpoints.resolve_config(
      init_checkpoint, model_config.bert_config_file, model_config.num_hidden_layers, layer_map
    )
  else:
    layers = len(layer_map) if layer_map else model_config.num_hidden_layers
    given = there.replace(num_hidden_layers=layers) if layers else there
  for field in dataclasses.fields(modeling.BertConfig):
    theirs, value = getattr(there, field.name), getattr(given, field.name)
    if field.name != "extra" and theirs != value:
      flags_given = " ".join(
        f"--{n}={getattr(model_config, n)}"
        for n in ("init_checkpoint", "bert_config_file", "num_hidden_layers", "layer_map")
        if getattr(model_config, n)
      )
      raise ModelDirError(
        f"{config_file}: {field.name} is {theirs} there, {value} from {flags_given}{advice}"
      )
  vocab_file = checkpoints.resolve_vocab_file(os.path.join(model_dir, "vocab.txt"), None, there)
  if model_config.vocab_file and (
    tokenization.load_vocab(model_config.vocab_file) != tokenization.load_vocab(vocab_file)
  ):
    raise ModelDirError(
      f"{vocab_file}: differs from --vocab_file={model_config.vocab_file}{advice}"
    )
  return there, vocab_file


def read_finetuned(directory: str, given: Optional[Dict[str, Any]] = None):
  """What `load_finetuned` reads but the model: the BertConfig, tokenizer,
  task.json and latest checkpoint path of a fine-tuned model directory (for
  a job that runs the model in another runtime)."""
  info = read_task_info(directory)
  task = info.get("task")
  if task not in ("classification", "ner"):
    raise ModelDirError(
      f"{directory}: {describe(info)}, not a fine-tuned classification or "
      "NER model: fine-tune it first (run_classifier or run_ner --do_train "
      f"--init_checkpoint={directory} --output_dir=NEW) and use NEW"
    )
  check_settings(directory, info, given or {})
  latest = checkpoints.latest_checkpoint(directory)
  if not latest:
    raise ModelDirError(f"{directory}: no checkpoint")
  config = modeling.BertConfig.from_json_file(os.path.join(directory, "bert_config.json"))
  tokenizer = tokenization.BertTokenizer(
    os.path.join(directory, "vocab.txt"), info["do_lower_case"], info["tokenization"]
  )
  if tokenizer.vocab_size != config.vocab_size:
    raise ModelDirError(
      f"{directory}: vocab.txt has {tokenizer.vocab_size} tokens but "
      f"vocab_size is {config.vocab_size}"
    )
  return config, tokenizer, info, latest


def fingerprint(directory: str) -> str:
  """What a model directory predicts with, by content: a sha256 over the
  bytes of its latest checkpoint's files, its labels and its vocabulary.
  Names say nothing (two directories trained apart both hold a `ckpt-38`),
  so an artefact made from a model directory (the fast model) records this
  and is checked against it."""
  latest = checkpoints.latest_checkpoint(directory)
  if not latest:
    raise ModelDirError(f"{directory}: no checkpoint")
  digest = hashlib.sha256()
  for path in sorted(tf.io.gfile.glob(latest + ".*")):
    digest.update(path[len(latest) :].encode() + b"\0")  # .index, .data-00000-of-00001
    with errors.reading(path):
      manifest.sha256_of(path, digest)
  digest.update(json.dumps(read_task_info(directory).get("labels")).encode() + b"\0")
  vocab = os.path.join(directory, "vocab.txt")
  with errors.reading(vocab):
    return manifest.sha256_of(vocab, digest)


def load_finetuned(directory: str, dtype: str = "float32", given: Optional[Dict[str, Any]] = None):
  """The fine-tuned model at the directory's latest checkpoint, its
  tokenizer and task.json. `dtype`: the compute precision (`precision`);
  `given`: settings given by flag (None: not given), which must agree with
  task.json (`check_settings`).

  For prediction and export. Only `bert` and `head` are read: the optimizer
  slots are training state, but every model variable must be in the
  checkpoint, so that a model built from a config that does not match its
  weights is never used.
  """
  config, tokenizer, info, latest = read_finetuned(directory, given)
  task = info["task"]
  with precision.policy(dtype):
    model = task_models.BertTaskModel(config, task, len(info["labels"]))
  # The keys of training.CheckpointedRun.
  checkpoint = tf.train.Checkpoint(**{checkpoints.CHECKPOINT_KEY: model.bert, "head": model.head})
  try:
    checkpoint.restore(latest).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as e:  # messages that list every variable
    raise ModelDirError(
      f"{latest}: does not fit the model of {directory}'s bert_config.json "
      f"and {TASK_FILE} ({str(e).strip().splitlines()[0][:200]})"
    ) from None
  return model, tokenizer, info
