r"""Pre-training with masked LM, plus a task loss on pseudo-labels (steps 1, 4).

    python -m bert_pl.run_pretraining --input_file='data/pretrain.tfrecord*' \
      --output_dir=models/model_c --init_checkpoint=chinese_L-12_H-768_A-12 \
      --num_hidden_layers=3 --task_loss=classification --train_batch_size=256 \
      --learning_rate=5e-5 --num_train_steps=100000 --num_warmup_steps=10000 \
      --do_train --do_eval

Loss = `--masked_lm_loss_weight` x masked-LM loss + `--task_loss_weight` x
task loss (`--task_loss=none`: MLM only, step 1). The task loss on the
pseudo-labels is `--pseudo_label_loss=hard` (cross-entropy on the one-hot
label, CRF for NER: the first paper) or `kl` (KL divergence to the teacher's
softmax at `--kl_temperature`, from the records' teacher logits: the later
paper's best, with unmasked records and `--masked_lm_loss_weight=0`, which
skips the MLM head entirely). Flag names follow google-research/bert's
run_pretraining.py.
`--train_batch_size` is the GLOBAL batch (split over the replicas), as in the
original. Re-running the same command resumes from the last checkpoint in
`--output_dir` and stops at exactly `--num_train_steps`. A truncated or
corrupted TFRecord file stops training with an error naming it (TensorFlow's
own error names no file, so the files are checked when it happens), or, with
`--skip_corrupt_files`, is dropped with a warning and training goes on.

The input files' manifest (`bert_pl.manifest`, written by
create_pretraining_data) decides max_seq_length, max_predictions_per_seq,
the tokenizer settings and the labels unless they are given (then they must
agree with it; not given is None in a `RunPretrainingConfig`), must be of
the run's vocabulary and --task_loss, and every shard's size must be the
one it lists before training starts (a shard cut inside a record header
reads as a shorter file otherwise). Files without a
manifest are read with a warning; their first record's lengths must fit.
"""

import dataclasses
import json
import os
from typing import Optional, Tuple

import tensorflow as tf
from absl import flags, logging

from bert_pl import (
  checkpoints,
  cli,
  errors,
  input_files,
  input_pipeline,
  job_config,
  manifest,
  model_dir,
  task_models,
  tfrecords,
  training,
  training_job,
)

# The settings a manifest of the input files gives when they are not given
# (None), and their values for files without a manifest.
DATA_DEFAULTS = {
  "max_seq_length": 128,
  "max_predictions_per_seq": 20,
  "tokenization": cli.TOKENIZER_DEFAULTS["tokenization"],
  "do_lower_case": cli.TOKENIZER_DEFAULTS["do_lower_case"],
}


# The schedule's steps when neither they nor their proportions are given.
SCHEDULE_DEFAULTS = {"num_train_steps": 100000, "num_warmup_steps": 10000}
SCHEDULE_FILE = "schedule.json"  # in the model directory: the resolved schedule
# --mlm_head_warmup_steps when the MLM head was initialised on a loaded encoder
# (not given): a constant, as what the head needs depends on the head and its
# learning rate, not on the length of the run. Adam moves a weight by at most
# about its learning rate a step, so 100 steps at the default 1e-3 let each
# move up to 0.1, five times the transform's initial scale (0.02).
MLM_HEAD_WARMUP_AUTO_STEPS = 100


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunPretrainingConfig(job_config.ModelConfig, job_config.TrainingConfig):
  """The job's settings: its flags (see `define_flags`), the paper's
  defaults. The `DATA_DEFAULTS` settings are None when not given."""

  do_lower_case: Optional[bool] = None
  tokenization: Optional[str] = None
  input_file: Optional[str] = None  # comma list of globs
  eval_input_file: Optional[str] = None
  max_seq_length: Optional[int] = None
  max_predictions_per_seq: Optional[int] = None
  learning_rate: float = 5e-5
  eval_batch_size: int = 8
  num_train_steps: Optional[int] = None  # SCHEDULE_DEFAULTS, unless num_train_epochs
  num_warmup_steps: Optional[int] = None  # SCHEDULE_DEFAULTS, unless warmup_proportion
  num_train_epochs: Optional[float] = None  # None or 0: not given
  warmup_proportion: Optional[float] = None
  mlm_head_warmup_steps: Optional[int] = None  # None: automatic (`_head_warmup_steps`)
  mlm_head_warmup_learning_rate: float = 1e-3
  do_train: bool = False
  do_eval: bool = False
  max_eval_steps: int = 100
  task_loss: str = "none"
  task_loss_weight: float = 1.0
  pseudo_label_loss: str = "hard"
  kl_temperature: float = 1.0
  masked_lm_loss_weight: float = 1.0
  label_file: Optional[str] = None
  num_labels: Optional[int] = None
  skip_corrupt_files: bool = False
  verify_checksums: bool = False


def run(config: RunPretrainingConfig) -> dict:
  """The job. The `DATA_DEFAULTS` settings left None are taken from the
  input files' manifest when they have one, else from `DATA_DEFAULTS`; one
  given that contradicts the manifest is an error naming both values. An
  --output_dir that holds a checkpoint is a model to resume or evaluate:
  its bert_config.json, vocab.txt and task.json are the model's (flags and
  data that contradict them are an error naming both values) and are never
  rewritten."""
  strategy = training_job.start(config)
  choice = training_job.choose_model(
    config,
    config.init_checkpoint,
    lambda info, advice: _check_trained_by(config.output_dir, info),
    lambda: _warn_without_init(config),
  )
  labels = input_files.read_labels(config.label_file) if config.label_file else None
  defaults = {**DATA_DEFAULTS, **{n: choice.info[n] for n in DATA_DEFAULTS if n in choice.info}}
  train_files, eval_files, data = _input_data(config, choice.vocab_file, labels, defaults)
  schedule = _schedule(config, data["train_records"], data["uncounted"], choice.mlm_head)
  task_info = _task_info(config, data)
  if choice.checkpoint:
    _check_existing(config, choice.info, task_info, choice.advice)
  if train_files or eval_files:
    choice.bert_config.check_max_seq_length(
      data["max_seq_length"],
      "--max_seq_length"
      if config.max_seq_length
      else "max_seq_length (the input's manifest's, else the default)",
    )
  num_labels = _num_labels(config, data["labels"])
  session = training_job.Session(
    strategy,
    config,
    choice,
    config.task_loss,
    num_labels,
    schedule["num_train_steps"],
    schedule["num_warmup_steps"],
    (schedule["mlm_head_warmup_steps"], config.mlm_head_warmup_learning_rate),
  )
  kl = config.pseudo_label_loss == "kl"
  logits_width = (
    num_labels * (data["max_seq_length"] if config.task_loss == "ner" else 1) if kl else None
  )
  for files in (train_files, eval_files):
    _check_first_record(
      files, data["max_seq_length"], data["max_predictions_per_seq"], config.task_loss, logits_width
    )
  session.write_new_model(task_info)
  spec = tfrecords.pretraining_feature_spec(
    data["max_seq_length"], data["max_predictions_per_seq"], config.task_loss, num_labels, kl
  )
  trainer = session.trainer(
    use_mlm=config.masked_lm_loss_weight > 0,
    use_task=config.task_loss != "none",
    task_loss_weight=config.task_loss_weight,
    masked_lm_loss_weight=config.masked_lm_loss_weight,
    pseudo_label_loss=config.pseudo_label_loss,
    kl_temperature=config.kl_temperature,
  )
  head_trainer = session.trainer(
    use_mlm=True,
    use_task=False,
    train_only=checkpoints.mlm_head_variables(session.model.bert),
  )
  results = (
    _train(config, session, (head_trainer, trainer), train_files, spec, schedule)
    if config.do_train
    else {}
  )
  if config.do_eval:
    results = session.record_eval(_evaluate(config, trainer, eval_files, spec), summaries=True)
  return results


def _schedule(config: RunPretrainingConfig, train_records: int, uncounted, mlm_head: str) -> dict:
  """The training and warm-up steps: given, or from --num_train_epochs over
  the `train_records` (counted in the training files' manifests; `uncounted`:
  a training file none lists) and --warmup_proportion of the steps, or
  `SCHEDULE_DEFAULTS`; and the MLM head's warm-up steps before them
  (`_head_warmup_steps`; `mlm_head`: how the head began). Logged, and written
  to the model directory by training."""
  _check_schedule_flags(config)
  steps = config.num_train_steps
  if config.num_train_epochs:
    if uncounted:
      raise errors.InputError(
        f"{uncounted}: no manifest lists it, so its records cannot be counted for "
        "--num_train_epochs (give --num_train_steps)"
      )
    steps = training.steps_for_epochs(
      train_records, config.num_train_epochs, config.train_batch_size
    )
  elif steps is None:
    steps = SCHEDULE_DEFAULTS["num_train_steps"]
  warmup = config.num_warmup_steps
  if config.warmup_proportion is not None:
    warmup = int(config.warmup_proportion * steps)
  elif warmup is None:
    warmup = SCHEDULE_DEFAULTS["num_warmup_steps"]
  schedule = {
    "num_train_steps": steps,
    "num_warmup_steps": warmup,
    "num_train_epochs": config.num_train_epochs or None,
    "warmup_proportion": config.warmup_proportion,
    "train_records": train_records,
    "train_batch_size": config.train_batch_size,
    "mlm_head": mlm_head,
    "mlm_head_warmup_steps": _head_warmup_steps(config, steps, mlm_head),
    "mlm_head_warmup_learning_rate": config.mlm_head_warmup_learning_rate,
  }
  logging.info("Schedule: %s", json.dumps(schedule))
  return schedule


def _head_warmup_steps(config: RunPretrainingConfig, num_train_steps: int, mlm_head: str) -> int:
  """--mlm_head_warmup_steps, or when not given `MLM_HEAD_WARMUP_AUTO_STEPS`
  for a head initialised on a loaded encoder (whose random gradients would
  otherwise reach the encoder from the first step), else 0: a loaded head
  needs none, and a model initialised whole has no encoder to protect. None
  either for a run of 0 steps or without the MLM loss."""
  steps = config.mlm_head_warmup_steps
  if steps and config.masked_lm_loss_weight == 0:
    raise errors.InputError(
      f"--mlm_head_warmup_steps={steps} with --masked_lm_loss_weight=0: the MLM head is not "
      "used, there is nothing to warm up"
    )
  if steps is not None:
    return steps
  if mlm_head != "initialised" or not num_train_steps or config.masked_lm_loss_weight == 0:
    return 0
  return MLM_HEAD_WARMUP_AUTO_STEPS


def _check_schedule_flags(config: RunPretrainingConfig) -> None:
  """Steps or epochs, warm-up steps or proportion: one of each pair at most."""
  for steps, share in (
    ("num_train_steps", "num_train_epochs"),
    ("num_warmup_steps", "warmup_proportion"),
  ):
    if getattr(config, steps) is not None and getattr(config, share):
      raise errors.InputError(
        f"--{steps}={getattr(config, steps)} and --{share}={getattr(config, share):g}: "
        "give one of them"
      )
  if config.num_train_epochs is not None and config.num_train_epochs < 0:
    raise errors.InputError(f"--num_train_epochs={config.num_train_epochs:g}: must be >= 0")
  if config.warmup_proportion is not None and not 0 <= config.warmup_proportion <= 1:
    raise errors.InputError(f"--warmup_proportion={config.warmup_proportion:g}: must be in [0, 1]")


def _task_info(config: RunPretrainingConfig, data: dict) -> dict:
  """The model's task.json: what every later job feeds it (`model_dir`)."""
  return {
    "task": config.task_loss,
    "labels": data["labels"],
    "max_seq_length": data["max_seq_length"],
    "do_lower_case": data["do_lower_case"],
    "tokenization": data["tokenization"],
    "pseudo_label_loss": config.pseudo_label_loss,
    "kl_temperature": config.kl_temperature,
    "masked_lm_loss_weight": config.masked_lm_loss_weight,
    "trained_by": "run_pretraining",
  }


def _train(
  config: RunPretrainingConfig,
  session: training_job.Session,
  trainers: Tuple[training.Trainer, training.Trainer],
  files,
  spec: dict,
  schedule: dict,
) -> dict:
  """Trains to the schedule's steps (recorded in the model directory),
  again without the corrupt files each time one turns up, when skipping
  them; the last save interval's results.

  `trainers`: the MLM head's warm-up, then the training. The warm-up's steps
  come first and count in the step (the optimizer's iterations): a run with
  N warm-up steps ends at step N + num_train_steps, and one killed during
  the warm-up resumes in it, on the batches an uninterrupted run takes."""
  warmup = schedule["mlm_head_warmup_steps"]
  last_step = warmup + schedule["num_train_steps"]
  if session.chief:
    model_dir.write_json(os.path.join(config.output_dir, SCHEDULE_FILE), schedule)
  if session.step >= last_step:
    session.run_state.save()  # e.g. --num_train_steps=0: the initialised model as a model dir
    return {}
  if session.step < warmup:
    logging.info(
      "MLM head warm-up from step %d to %d: the encoder and embeddings frozen, MLM loss only, "
      "learning rate %g",
      session.step,
      warmup,
      config.mlm_head_warmup_learning_rate,
    )
  logging.info(
    "Training from step %d to %d: loss = %g x MLM + %g x %s",
    max(session.step, warmup),
    last_step,
    config.masked_lm_loss_weight,
    config.task_loss_weight,
    _task_loss_name(config),
  )
  seed, bucket_width = config.random_seed, config.bucket_width
  while True:
    training_input = input_pipeline.TrainingInput(
      session.strategy,
      config.train_batch_size,
      lambda batch, context, files=files: input_pipeline.pretraining_dataset(
        files, spec, batch, True, context, seed=seed, bucket_width=bucket_width
      ),
      {
        "files": files,
        "seed": seed,
        "bucket_width": bucket_width,
        "features": {name: feature.shape for name, feature in spec.items()},
      },
    )
    try:
      if session.step < warmup:
        session.train(trainers[0], training_input, warmup)
      return session.train(trainers[1], training_input, last_step)
    except tf.errors.DataLossError:
      files = input_pipeline.drop_corrupt_files(files, config.skip_corrupt_files)


def _evaluate(config: RunPretrainingConfig, trainer: training.Trainer, files, spec: dict) -> dict:
  """The losses and accuracies of at most --max_eval_steps batches of `files`."""
  dataset = input_pipeline.distribute(
    trainer.strategy,
    config.eval_batch_size,
    lambda batch, context: input_pipeline.pretraining_dataset(
      files, spec, batch, False, context, bucket_width=config.bucket_width
    ),
  )
  try:
    return trainer.evaluate(iter(dataset), config.max_eval_steps)
  except tf.errors.DataLossError:
    input_pipeline.drop_corrupt_files(files, skip=False)
    raise


def _num_labels(config: RunPretrainingConfig, labels) -> int:
  """The task head's width, once the loss flags are known to make sense."""
  num_labels = len(labels) if labels else (config.num_labels or 0)
  if config.task_loss != "none" and not num_labels:
    raise errors.InputError(f"--task_loss={config.task_loss} needs --label_file or --num_labels")
  _check_loss_flags(config)
  return num_labels


def _check_loss_flags(config: RunPretrainingConfig) -> None:
  for name in ("masked_lm_loss_weight", "task_loss_weight"):
    if getattr(config, name) < 0:
      raise errors.InputError(f"--{name}={getattr(config, name):g}: must be >= 0")
  if config.masked_lm_loss_weight == 0 and (
    config.task_loss == "none" or config.task_loss_weight == 0
  ):
    raise errors.InputError(
      f"--masked_lm_loss_weight=0 with --task_loss={config.task_loss} and "
      f"--task_loss_weight={config.task_loss_weight:g}: nothing to train"
    )
  if config.pseudo_label_loss == "kl" and config.task_loss == "none":
    raise errors.InputError("--pseudo_label_loss=kl needs --task_loss=classification or ner")
  if config.kl_temperature <= 0:
    raise errors.InputError(f"--kl_temperature must be > 0, got {config.kl_temperature}")


def _task_loss_name(config: RunPretrainingConfig) -> str:
  if config.task_loss == "none":
    return "no task loss"
  if config.pseudo_label_loss == "kl":
    return f"KL to the teacher (T={config.kl_temperature:g}, {config.task_loss})"
  return "CRF NLL" if config.task_loss == "ner" else "cross-entropy"


def _check_trained_by(output_dir: str, info: dict) -> None:
  """Refuses to resume or evaluate a model another job trained."""
  if info.get("trained_by") != "run_pretraining":
    raise model_dir.ModelDirError(
      f"{output_dir}: {model_dir.describe(info)}, not a model of run_pretraining: "
      f"pre-train from it with --init_checkpoint={output_dir} and a new --output_dir"
    )


def _warn_without_init(config: RunPretrainingConfig) -> None:
  if not config.init_checkpoint:
    logging.warning("No --init_checkpoint: training from random initialisation")


# The task.json settings a resumed training run must keep; an evaluation may
# weigh its losses otherwise.
_LOSS_SETTINGS = ("pseudo_label_loss", "kl_temperature", "masked_lm_loss_weight")
# Where a run's task.json setting comes from.
_SETTING_SOURCES = {
  "task": "--task_loss",
  "labels": "--label_file or the input's manifest",
  **{name: f"--{name} or the input's manifest" for name in DATA_DEFAULTS},
  **{name: f"--{name}" for name in _LOSS_SETTINGS},
}


def _check_existing(config: RunPretrainingConfig, info: dict, task_info: dict, advice: str):
  """The model directory is authoritative: the run's settings (from the
  flags and the input's manifest) must be those of its task.json, which
  is never rewritten (module doc of `model_dir`)."""
  for name, source in _SETTING_SOURCES.items():
    if name not in task_info or (name in _LOSS_SETTINGS and not config.do_train):
      continue
    value, there = task_info[name], info.get(name)
    if name == "labels":
      value, there = value or None, there or None
    if value != there:
      raise model_dir.ModelDirError(
        f"{config.output_dir}/{model_dir.TASK_FILE}: {name} is {there} there, {value} "
        f"from {source}{advice}"
      )


def _input_data(config: RunPretrainingConfig, vocab_file: str, labels, defaults: dict):
  """The training and evaluation files, checked against their manifests
  (`--skip_corrupt_files` drops those that disagree), and the data settings:
  `DATA_DEFAULTS`'s and the labels, from the manifest where there is one,
  else from the config, else from `defaults`."""
  train_files, eval_files = [], []
  steps = config.num_train_steps
  if config.do_train and (
    config.num_train_epochs or steps is None or steps > 0 or config.mlm_head_warmup_steps
  ):
    if not config.input_file:
      raise errors.InputError("--do_train needs --input_file")
    train_files = input_files.expand_input_files(config.input_file)
  if config.do_eval:
    if not (config.eval_input_file or config.input_file):
      raise errors.InputError("--do_eval needs --eval_input_file or --input_file")
    eval_files = input_files.expand_input_files(config.eval_input_file or config.input_file)
  given = {name: getattr(config, name) for name in DATA_DEFAULTS}
  data = {name: defaults[name] if value is None else value for name, value in given.items()}
  data["labels"] = labels
  inputs = manifest.read(train_files + eval_files)
  found = inputs.settings() if train_files or eval_files else None
  if found:
    path, settings = found
    for name, value in given.items():
      if value is not None and value != settings[name]:
        raise errors.InputError(f"{path}: {name} is {settings[name]}, but --{name}={value}")
      data[name] = settings[name]
    data["labels"] = _manifest_labels(config, path, settings, labels)
    ours = manifest.vocab_fingerprint(vocab_file)
    if ours["vocab_sha256"] != settings["vocab_sha256"]:
      raise errors.InputError(
        f"{path}: written with another vocabulary ({settings['vocab_size']} tokens, sha256 "
        f"{settings['vocab_sha256'][:12]}...) than {vocab_file} ({ours['vocab_size']} "
        f"tokens, sha256 {ours['vocab_sha256'][:12]}...)"
      )
  checked = [
    input_pipeline.refuse_or_skip(
      files, inputs.problems(files, config.verify_checksums), config.skip_corrupt_files
    )
    for files in (train_files, eval_files)
  ]
  entries = {path: inputs.entry(path) for path in checked[0]}
  data["train_records"] = sum(entry["records"] for entry in entries.values() if entry)
  data["uncounted"] = next((path for path, entry in entries.items() if entry is None), None)
  return checked[0], checked[1], data


def _manifest_labels(config: RunPretrainingConfig, path: str, settings: dict, labels):
  """The labels of --task_loss: the manifest's, which --label_file or
  --num_labels, when given, must match, as --task_loss its task."""
  if config.task_loss == "none":
    return labels
  if settings["task"] != config.task_loss:
    raise errors.InputError(
      f"{path}: records of --task={settings['task']}, but --task_loss={config.task_loss}"
    )
  theirs = settings["labels"]
  if labels is not None and labels != theirs:
    where = next((i for i, (a, b) in enumerate(zip(labels, theirs)) if a != b), None)
    differ = (
      f"label {where} is {theirs[where]!r}, {config.label_file} says {labels[where]!r}"
      if where is not None
      else f"{len(theirs)} labels, {config.label_file} has {len(labels)}"
    )
    raise errors.InputError(f"{path}: {differ} (the records' label ids would mean other labels)")
  if labels is None and config.num_labels and config.num_labels != len(theirs):
    raise errors.InputError(f"{path}: {len(theirs)} labels, but --num_labels={config.num_labels}")
  return theirs


def _check_first_record(
  files, max_seq_length: int, max_predictions_per_seq: int, task_loss: str, logits_width
) -> None:
  """Refuses TFRecords that do not fit the run, seen in the first record of
  the first of `files` that has one (one job writes every record alike):
  lengths other than the run's (else a graph error naming no file), no
  feature of --task_loss, or, for the KL loss (`logits_width`: its width),
  no teacher logits or logits of another width."""
  path, found = next(((p, r) for p in files if (r := _first_record(p)) is not None), (None, None))
  if found is None:
    return
  for name, flag, value in (
    ("input_ids", "max_seq_length", max_seq_length),
    ("masked_lm_positions", "max_predictions_per_seq", max_predictions_per_seq),
  ):
    if name not in found:
      raise errors.InputError(f"{path}: no {name} feature (not pre-training TFRecords)")
    if found[name] != value:
      raise errors.InputError(f"{path}: records of {flag} {found[name]}, but --{flag}={value}")
  task_feature = {"classification": "label_ids", "ner": "tag_ids"}.get(task_loss)
  if task_feature and task_feature not in found:
    raise errors.InputError(
      f"{path}: no {task_feature} feature (records without pseudo-labels), "
      f"but --task_loss={task_loss}"
    )
  if logits_width is not None:
    _check_teacher_logits(path, found, tfrecords.LOGITS_FEATURES[task_loss], logits_width)


def _first_record(path: str):
  """`tfrecords.record_features` of `path`; None for a file without records
  or a corrupt one (training names it, or skips it with --skip_corrupt_files)."""
  try:
    return tfrecords.record_features(path)
  except tf.errors.DataLossError:
    return None


def _check_teacher_logits(path: str, found: dict, name: str, width: int) -> None:
  """Refuses records without the teacher logits the KL loss needs (or with
  logits of another width): the data job writes them for every record of a
  job or for none."""
  if name not in found:
    raise errors.InputError(
      f"{path}: no {name} feature (TFRecords written without teacher logits: run "
      "predict_pseudo_labels --write_logits and create_pretraining_data again, or use "
      "--pseudo_label_loss=hard)"
    )
  if found[name] != width:
    raise errors.InputError(
      f"{path}: {name} has {found[name]} values, expected {width} (labels x "
      "max_seq_length for NER): the records do not fit the flags"
    )


def main(argv):
  del argv
  results = run(job_config.config_from_flags(RunPretrainingConfig))
  print("run_pretraining: " + " ".join(f"{k}={v:.6g}" for k, v in sorted(results.items())))


def define_flags():
  """The flags of `RunPretrainingConfig`'s fields, with its defaults."""
  d = RunPretrainingConfig
  job_config.define_model_flags()
  flags.DEFINE_string("input_file", d.input_file, "TFRecord files (comma list of globs).")
  flags.DEFINE_string(
    "eval_input_file", d.eval_input_file, "TFRecords for --do_eval (default: --input_file)."
  )
  flags.DEFINE_integer(
    "max_seq_length",
    DATA_DEFAULTS["max_seq_length"],
    f"As in the TFRecords; default: their manifest's, else {DATA_DEFAULTS['max_seq_length']}.",
  )
  flags.DEFINE_integer(
    "max_predictions_per_seq",
    DATA_DEFAULTS["max_predictions_per_seq"],
    "As in the TFRecords; default: their manifest's, else "
    f"{DATA_DEFAULTS['max_predictions_per_seq']}.",
  )
  job_config.define_training_flags(learning_rate=d.learning_rate)
  flags.DEFINE_integer("eval_batch_size", d.eval_batch_size, "GLOBAL batch size for evaluation.")
  flags.DEFINE_integer(
    "num_train_steps",
    SCHEDULE_DEFAULTS["num_train_steps"],
    "Total training steps (not with --num_train_epochs).",
  )
  flags.DEFINE_integer(
    "num_warmup_steps",
    SCHEDULE_DEFAULTS["num_warmup_steps"],
    "Linear warmup steps (not with --warmup_proportion).",
  )
  flags.DEFINE_float(
    "num_train_epochs",
    d.num_train_epochs,
    "Passes over the training records (counted in their manifests): "
    "num_train_steps = ceil(epochs x records / --train_batch_size); 0: not given.",
  )
  flags.DEFINE_float(
    "warmup_proportion",
    d.warmup_proportion,
    "Share of the training steps with linear warmup (instead of --num_warmup_steps).",
  )
  flags.DEFINE_integer(
    "mlm_head_warmup_steps",
    d.mlm_head_warmup_steps,
    "Steps training only the MLM head (cls/predictions: transform and output bias; the "
    "encoder and embeddings frozen, MLM loss only) before the --num_train_steps, at "
    "--mlm_head_warmup_learning_rate. Default: "
    f"{MLM_HEAD_WARMUP_AUTO_STEPS} when the head was initialised on a loaded encoder "
    "(--init_checkpoint without it, e.g. a sentence encoder), else 0.",
  )
  flags.DEFINE_float(
    "mlm_head_warmup_learning_rate",
    d.mlm_head_warmup_learning_rate,
    "Constant learning rate of the MLM head's warm-up steps.",
  )
  flags.DEFINE_bool("do_train", d.do_train, "Train.")
  flags.DEFINE_bool("do_eval", d.do_eval, "Evaluate; writes eval_results.txt.")
  flags.DEFINE_integer("max_eval_steps", d.max_eval_steps, "Maximum evaluation batches.")
  flags.DEFINE_enum(
    "task_loss",
    d.task_loss,
    list(task_models.TASKS),
    "Task loss on the pseudo-labels added to the MLM loss.",
  )
  flags.DEFINE_float("task_loss_weight", d.task_loss_weight, "Weight of the task loss.")
  flags.DEFINE_enum(
    "pseudo_label_loss",
    d.pseudo_label_loss,
    list(task_models.PSEUDO_LABEL_LOSSES),
    "Task loss on the pseudo-labels: hard = cross-entropy on the one-hot "
    "label (CRF for NER); kl = KL divergence to the teacher's softmax, from "
    "the records' label_logits / tag_logits.",
  )
  flags.DEFINE_float(
    "kl_temperature",
    d.kl_temperature,
    "Softmax temperature T of --pseudo_label_loss=kl (loss scaled by T^2).",
  )
  flags.DEFINE_float(
    "masked_lm_loss_weight",
    d.masked_lm_loss_weight,
    "Weight of the masked-LM loss; 0: the MLM head is not computed (for "
    "records written with --masked_lm_prob=0).",
  )
  flags.DEFINE_string("label_file", d.label_file, "Labels or BIO tags, one per line.")
  flags.DEFINE_integer("num_labels", d.num_labels, "Number of labels (without --label_file).")
  flags.DEFINE_bool(
    "skip_corrupt_files",
    d.skip_corrupt_files,
    "Train without the TFRecord files that turn out truncated or corrupted "
    "(a warning names each) instead of stopping with an error naming the file; "
    "also those whose size disagrees with their manifest.",
  )
  flags.DEFINE_bool(
    "verify_checksums",
    d.verify_checksums,
    "Also check every input file's record count and sha256 against its "
    "manifest before training: reads every byte (sizes are always checked).",
  )
  flags.mark_flags_as_required(["output_dir"])
  cli.require_max_seq_length()
  cli.require(lambda v: v >= 1, ">= 1", "eval_batch_size", "max_eval_steps", "num_labels")
  cli.require(
    lambda v: v >= 0, ">= 0", "num_train_steps", "num_warmup_steps", "mlm_head_warmup_steps"
  )
  cli.require(lambda v: v > 0, "> 0", "mlm_head_warmup_learning_rate")


def run_main():
  define_flags()
  flags.adopt_module_key_flags(cli)  # --help lists the shared flags too
  cli.run(main)


if __name__ == "__main__":
  run_main()
