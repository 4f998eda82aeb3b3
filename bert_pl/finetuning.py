"""Fine-tuning, evaluation and prediction: run_classifier and run_ner (steps 2, 5).

As the original `run_classifier.py`: `--do_train`, `--do_eval`, `--do_predict`
on `--train_file`, `--eval_file`, `--predict_file`; `--num_train_epochs` and
`--warmup_proportion` set the schedule. `--init_checkpoint` is any source of
`checkpoints` (Google TF1, Hugging Face, or a model directory from step 1 or
4: its encoder and MLM head are loaded, the task head starts fresh), or
`none` with `--bert_config_file` and `--vocab_file`: random weights, as the
original does without --init_checkpoint.

When `--output_dir` already holds a checkpoint, it is this job's model and
the latest checkpoint is restored instead (resuming training, or evaluating /
predicting with the fine-tuned model). That model directory is authoritative
(`model_dir`): its config, vocabulary, labels, max_seq_length, tokenizer
options and field join are used, and a flag given explicitly that says
otherwise is an error naming both values, with --do_train too (it would
resume another model). Only training writes the directory's settings: an
evaluation or prediction run writes just its outputs (eval_results.txt,
predictions). Those settings are None in a `FinetuningConfig` when not
given (a flag left out, in `main`); a new model takes `NEW_MODEL_SETTINGS`
for them.

`--do_predict` writes the files of step 3 with step 3's own code
(`predict_pseudo_labels.PseudoLabeler`), on the model as saved in
`--output_dir`.

Labels of a new model: `--label_file`, else collected from `--train_file`;
written to the model directory's task.json.

`--do_eval` writes the eval file's predictions beside eval_results.txt
(`EVAL_PREDICTIONS_FILES`: gold and predicted label of every example, NER
of every CoNLL token), so the score can be recomputed without this code.
`--dev_file` is evaluated after every epoch and `--keep_best_on_dev` keeps
the best epoch as the model (`dev_selection`).

NER is evaluated on the whole gold annotation of `--eval_file`, at the level
of its tokens (CoNLL lines, as conlleval): the predicted tag of a token is
that of the model token holding its first character, as the predictions file
writes it, and the tokens of a sentence cut at max_seq_length get "O", so an
entity in the cut tail counts as missed. eval_results.txt gives the number of
truncated sentences and the gold, predicted and correct entity counts.

Classic self-training (the baseline of the method's later version, DESIGN
§1b): `--pseudo_label_file` (step-3 outputs) and `--pseudo_per_class=N` add the
N most confident pseudo-labeled examples of each class (`self_training` says
how they are chosen) to the whole labeled training set; the epochs run over
both, the eval set is never mixed. What was added is printed and written to
the model directory as self_training.json.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import flags, logging

from bert_pl import (
  atomic_files,
  cli,
  dev_selection,
  errors,
  evaluation,
  features,
  input_files,
  input_pipeline,
  job_config,
  model_dir,
  predict_pseudo_labels,
  prediction,
  self_training,
  tokenization,
  training,
  training_job,
)

SELF_TRAINING_FILE = "self_training.json"
# The --eval_file's examples with their gold and predicted labels (DESIGN §2).
EVAL_PREDICTIONS_FILES = {"classification": "eval_predictions.tsv", "ner": "eval_predictions.txt"}
JOBS = {"classification": "run_classifier", "ner": "run_ner"}
# The settings of a new model whose flags are not given.
NEW_MODEL_SETTINGS = dict(cli.TOKENIZER_DEFAULTS, max_seq_length=128, field_join="sep")
RANDOM_INIT = "none"  # --init_checkpoint=none: random weights


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinetuningConfig(job_config.ModelConfig, job_config.TrainingConfig):
  """The settings of run_classifier (`task="classification"`) and run_ner
  (`task="ner"`): their flags (see `define_flags`), the paper's defaults.
  The `model_dir.SETTINGS` are None when not given: the model directory's,
  or for a new model `NEW_MODEL_SETTINGS` (module doc)."""

  task: str
  do_lower_case: Optional[bool] = None
  tokenization: Optional[str] = None
  train_file: Optional[str] = None
  eval_file: Optional[str] = None
  dev_file: Optional[str] = None
  keep_best_on_dev: bool = False
  predict_file: Optional[str] = None
  label_file: Optional[str] = None
  do_train: bool = False
  do_eval: bool = False
  do_predict: bool = False
  write_logits: bool = False
  logits_top_k: int = 0
  max_seq_length: Optional[int] = None
  learning_rate: float = 1e-5
  predict_batch_size: int = 64
  num_train_epochs: float = 3.0
  warmup_proportion: float = 0.1
  field_join: Optional[str] = None
  tag_scheme: str = "bio"
  skip_bad_lines: bool = False
  pseudo_label_file: Optional[str] = None  # comma list of globs
  pseudo_per_class: int = 0
  pseudo_min_confidence: float = 0.0


@dataclasses.dataclass
class ModelSpec:
  """The model a run fine-tunes, evaluates or predicts with, and its task settings."""

  choice: training_job.ModelChoice
  settings: Dict[str, Any]  # model_dir.SETTINGS
  labels: List[str]


def model_spec(config: FinetuningConfig) -> ModelSpec:
  """The model of `--output_dir` when it holds a checkpoint, else a new one
  from the flags."""
  init = config.init_checkpoint if config.init_checkpoint != RANDOM_INIT else None
  choice = training_job.choose_model(
    config,
    init,
    lambda info, advice: _check_existing(config, info, advice),
    lambda: _check_new(config),
  )
  if choice.checkpoint:
    settings = {n: choice.info[n] for n in model_dir.SETTINGS}
    return ModelSpec(choice, settings, list(choice.info["labels"]))
  settings = {
    n: NEW_MODEL_SETTINGS[n] if getattr(config, n) is None else getattr(config, n)
    for n in model_dir.SETTINGS
  }
  choice.bert_config.check_max_seq_length(settings["max_seq_length"], "--max_seq_length")
  if config.label_file:
    labels = input_files.read_labels(config.label_file)
  elif config.train_file:
    labels = features.collect_labels(config.train_file, config.task, config.tag_scheme)
  else:
    raise errors.InputError("no --label_file and no --train_file to collect the labels from")
  return ModelSpec(choice, settings, labels)


def _check_existing(config: FinetuningConfig, info: dict, advice: str) -> None:
  """`--output_dir`'s model must be this job's, and the flags that restate
  its settings must agree with it."""
  out, task = config.output_dir, config.task
  job = JOBS[task]
  if info.get("task") != task or info.get("trained_by") != job:
    use = (
      f"use {info['trained_by']} for it, or "
      if info.get("trained_by") in JOBS.values() and not config.do_train
      else ""
    )
    raise model_dir.ModelDirError(
      f"{out}: {model_dir.describe(info)}, not a model of {job}: {use}fine-tune from it "
      f"with --do_train --init_checkpoint={out} and a new --output_dir"
    )
  model_dir.check_settings(out, info, {n: getattr(config, n) for n in model_dir.SETTINGS}, advice)
  if config.label_file:
    model_dir.check_labels(
      out, info, input_files.read_labels(config.label_file), config.label_file, advice
    )


def _check_new(config: FinetuningConfig) -> None:
  """Refuses a new model without training, or without a starting point."""
  if not config.do_train:
    raise model_dir.ModelDirError(
      f"{config.output_dir}: no checkpoint; --do_eval and --do_predict without --do_train use "
      "the fine-tuned model of --output_dir (fine-tune one first with --do_train)"
    )
  init = config.init_checkpoint
  if not init:
    raise errors.InputError(
      f"no --init_checkpoint and no checkpoint in --output_dir={config.output_dir} "
      f"(--init_checkpoint={RANDOM_INIT} with --bert_config_file and --vocab_file starts "
      "from random weights)"
    )
  if init == RANDOM_INIT:
    if not (config.bert_config_file and config.vocab_file):
      raise errors.InputError(
        f"--init_checkpoint={RANDOM_INIT} (random weights) needs "
        "--bert_config_file and --vocab_file"
      )
    logging.warning(
      "--init_checkpoint=%s: the model starts from random weights (%s), not "
      "from a pre-trained BERT",
      RANDOM_INIT,
      config.bert_config_file,
    )


def _encode(path: str, encoder: features.FeatureEncoder, config: FinetuningConfig, what: str):
  counts = input_files.Counts(skip_bad_lines=config.skip_bad_lines)
  encoded = features.encode_file(path, encoder, counts, config.tag_scheme)
  print(f"{what} {path}: {counts.summary()}")
  return encoded


def check_self_training_flags(config: FinetuningConfig) -> None:
  """--pseudo_label_file and --pseudo_per_class > 0 go together, with --do_train."""
  if config.pseudo_per_class < 0:
    raise errors.InputError(f"--pseudo_per_class={config.pseudo_per_class} is negative")
  if bool(config.pseudo_label_file) != (config.pseudo_per_class > 0):
    raise errors.InputError(
      "classic self-training needs both --pseudo_label_file and "
      "--pseudo_per_class > 0; got "
      f"--pseudo_label_file={config.pseudo_label_file} "
      f"--pseudo_per_class={config.pseudo_per_class}"
    )
  if not 0.0 <= config.pseudo_min_confidence <= 1.0:
    raise errors.InputError(
      f"--pseudo_min_confidence={config.pseudo_min_confidence} is outside [0, 1]"
    )
  if config.pseudo_min_confidence and not config.pseudo_label_file:
    raise errors.InputError("--pseudo_min_confidence needs --pseudo_label_file")
  if config.pseudo_label_file and not config.do_train:
    raise errors.InputError("--pseudo_label_file needs --do_train (it adds training examples)")


def check_dev_flags(config: FinetuningConfig) -> None:
  """--dev_file is evaluated during training; --keep_best_on_dev chooses on it."""
  if config.dev_file and not config.do_train:
    raise errors.InputError("--dev_file needs --do_train (it is evaluated after every epoch)")
  if config.keep_best_on_dev and not config.dev_file:
    raise errors.InputError("--keep_best_on_dev needs --dev_file")


def pseudo_labeled(config: FinetuningConfig, encoder: features.FeatureEncoder, num_labeled: int):
  """Classic self-training: the examples of `--pseudo_label_file` the
  `self_training.Sampler` keeps, encoded (None when none is kept), and the
  `self_training.report`.

  The files are step-3 outputs and are read as written (BIO tags, a
  confidence per example): a bad line, or a label the model does not have
  (the pseudo-labels of another model), stops the job even with
  --skip_bad_lines. NER reads the files twice: the bins need the entity types'
  frequencies over all sentences first."""
  files = input_files.expand_input_files(config.pseudo_label_file)
  for path in files:
    side = path + input_files.CONFIDENCE_SUFFIX
    if not tf.io.gfile.exists(side):
      raise input_files.InputError(
        f"{side}: file not found (the confidences of the --pseudo_label_file {path})"
      )

  def examples(counts):
    for path in files:
      yield from input_files.read_examples(path, encoder.task, counts, encoder.labels)

  seed = 0 if config.random_seed is None else config.random_seed
  sampler = self_training.Sampler(config.pseudo_per_class, config.pseudo_min_confidence, seed)
  counts = input_files.Counts()
  if encoder.task == "classification":
    classes = encoder.labels
    for example in examples(counts):
      sampler.add(example.label, example.confidence, example)
  else:
    classes = self_training.ner_classes(encoder.labels)
    frequency = self_training.type_frequency(e.tags for e in examples(input_files.Counts()))
    for example in examples(counts):
      sampler.add(self_training.ner_bin(example.tags, frequency), example.confidence, example)
  encoded = features.encode_examples(sampler.selected(), encoder, counts)
  print(f"pseudo-labeled {config.pseudo_label_file}: {counts.summary()}")
  summary = self_training.report(sampler, classes, config.pseudo_label_file, files, num_labeled)
  print(self_training.describe(summary))
  return encoded, summary


def training_set(config: FinetuningConfig, encoder: features.FeatureEncoder):
  """The training features: `--train_file`, followed by the pseudo-labeled
  examples self-training adds (if any); and the self-training report (or None)."""
  train_features = _encode(config.train_file, encoder, config, "train")
  if not config.pseudo_label_file:
    return train_features, None
  added, summary = pseudo_labeled(config, encoder, len(train_features["input_ids"]))
  if added is not None:
    train_features = features.concatenate([train_features, added])
  return train_features, summary


@dataclasses.dataclass
class LabeledSet:
  """A labeled file to score, read and encoded once (dev: every epoch)."""

  path: str
  examples: List[input_files.Example]
  encoded: Dict[str, Any]  # in one piece: its token offsets map predictions back to the text
  truncated: int


def read_labeled(path: str, encoder: features.FeatureEncoder, config: FinetuningConfig, what: str):
  counts = input_files.Counts(skip_bad_lines=config.skip_bad_lines)
  examples = list(
    input_files.read_examples(path, encoder.task, counts, encoder.labels, config.tag_scheme)
  )
  if not examples:
    raise input_files.InputError(f"{path}: empty file (no examples)")
  encoded, truncated = encoder.encode(examples)
  counts.written, counts.truncated = len(examples), int(truncated.sum())
  print(f"{what} {path}: {counts.summary()}")
  return LabeledSet(path, examples, encoded, counts.truncated)


def score(predictor: prediction.Predictor, encoder: features.FeatureEncoder, data: LabeledSet):
  """The metrics of `data` (NER on its whole annotation: module doc), and
  the predicted label of each example (NER: the tags of its CoNLL tokens)."""
  outputs = prediction.predict_sorted(predictor, data.encoded)
  if encoder.task == "classification":
    results = evaluation.classification_metrics(
      data.encoded["label_ids"], outputs["label_ids"], len(encoder.labels)
    )
    return results, [encoder.labels[i] for i in outputs["label_ids"]]
  examples = data.examples
  predicted = prediction.conll_tags(
    examples, data.encoded["starts"], data.encoded["ends"], outputs["tag_ids"], encoder.labels
  )
  results = evaluation.ner_metrics([e.tags for e in examples], predicted)
  results["truncated_sentences"] = data.truncated
  if data.truncated:
    print(
      f"eval {data.path}: {data.truncated} of {len(examples)} sentences are longer than "
      f"max_seq_length={encoder.max_seq_length}; the entities past it count as missed"
    )
  return results, predicted


def write_eval_predictions(path: str, task: str, data: LabeledSet, predicted) -> None:
  """Classification: `gold<TAB>predicted<TAB>fields` lines; NER: CoNLL
  `token gold predicted` lines, a blank line after each sentence."""
  if task == "classification":
    lines = ["\t".join([e.label, p, *e.fields]) + "\n" for e, p in zip(data.examples, predicted)]
  else:
    lines = [
      "".join(f"{t} {g} {p}\n" for t, g, p in zip(e.fields, e.tags, tags)) + "\n"
      for e, tags in zip(data.examples, predicted)
    ]
  atomic_files.write_file(path, "".join(lines))


def evaluate(
  predictor: prediction.Predictor, encoder: features.FeatureEncoder, config: FinetuningConfig
) -> dict:
  """The metrics of `--eval_file`, whose predictions are written beside them."""
  data = read_labeled(config.eval_file, encoder, config, "eval")
  results, predicted = score(predictor, encoder, data)
  name = EVAL_PREDICTIONS_FILES[encoder.task]
  write_eval_predictions(os.path.join(config.output_dir, name), encoder.task, data, predicted)
  return results


def predict(config: FinetuningConfig) -> str:
  """Writes the pseudo-labeled file of `--predict_file` (with its side
  files) with the model of `--output_dir`, as step 3 writes it
  (`predict_pseudo_labels.PseudoLabeler`); returns its path."""
  labeler = predict_pseudo_labels.PseudoLabeler(
    predict_pseudo_labels.PredictPseudoLabelsConfig(
      config.output_dir,
      config.predict_file,
      config.output_dir,
      predict_batch_size=config.predict_batch_size,
      dtype=config.dtype,
      write_logits=config.write_logits,
      logits_top_k=config.logits_top_k,
    )
  )
  name = "predictions.tsv" if config.task == "classification" else "predictions.txt"
  path = os.path.join(config.output_dir, name)
  counts = input_files.Counts(skip_bad_lines=config.skip_bad_lines)
  labeler.label_file(config.predict_file, path, counts, progress=lambda counts: None)
  sides = input_files.CONFIDENCE_SUFFIX + (
    f", {input_files.LOGITS_SUFFIX}" if config.write_logits else ""
  )
  print(f"predict {config.predict_file}: {counts.summary()} -> {path} (+{sides})")
  return path


def run(config: FinetuningConfig) -> dict:
  """The whole job for `config.task` ("classification" or "ner")."""
  task = config.task
  check_self_training_flags(config)
  check_dev_flags(config)
  strategy = training_job.start(config)
  spec = model_spec(config)
  settings, labels = spec.settings, spec.labels
  tokenizer = tokenization.BertTokenizer(
    spec.choice.vocab_file, settings["do_lower_case"], settings["tokenization"]
  )
  # Refuses bad logits flags before training.
  prediction.OutputFormat(task, labels, config.write_logits, config.logits_top_k)
  encoder = features.FeatureEncoder(
    tokenizer, settings["max_seq_length"], task, labels, settings["field_join"]
  )
  train_features, self_training_report, num_train_steps = None, None, 0
  if config.do_train:
    train_features, self_training_report = training_set(config, encoder)
    num_train_steps = training.steps_for_epochs(
      len(train_features["input_ids"]), config.num_train_epochs, config.train_batch_size
    )
  session = training_job.Session(
    strategy,
    config,
    spec.choice,
    task,
    len(labels),
    num_train_steps,
    int(num_train_steps * config.warmup_proportion),
  )
  session.write_new_model(dict(task=task, labels=list(labels), **settings, trained_by=JOBS[task]))
  if session.chief and self_training_report:
    model_dir.write_json(os.path.join(config.output_dir, SELF_TRAINING_FILE), self_training_report)
  predictor = prediction.Predictor(session.model, config.predict_batch_size)
  dev = {}
  if config.do_train:
    dev = _train(config, session, train_features, num_train_steps, predictor, encoder)
  results = {}
  if not session.chief:  # the chief alone evaluates and predicts (and writes the results)
    return results
  if config.do_eval:
    results = session.record_eval({**evaluate(predictor, encoder, config), **dev}, config.do_train)
  if config.do_predict:
    predict(config)
  return results


def _train(
  config: FinetuningConfig,
  session: training_job.Session,
  train_features,
  num_train_steps: int,
  predictor: prediction.Predictor,
  encoder: features.FeatureEncoder,
) -> dict:
  """Fine-tunes to `num_train_steps` on `train_features`; with --dev_file,
  evaluates it after every epoch and, with --keep_best_on_dev, keeps the
  best epoch as the model (`dev_selection`). Returns the dev results for
  eval_results.txt ({} without --dev_file)."""
  epochs = {}
  if config.dev_file:
    dev = read_labeled(config.dev_file, encoder, config, "dev")
    ends = training.epoch_ends(
      len(train_features["input_ids"]), config.num_train_epochs, config.train_batch_size
    )
    selection = dev_selection.EpochSelection(
      session.run_state,
      config.task,
      ends,
      lambda: score(predictor, encoder, dev)[0],
      config.keep_best_on_dev,
      session.start_step,
    )
    epochs = dict(boundaries=ends, at_boundary=selection.at_epoch_end)
  trainer = session.trainer(use_mlm=False, use_task=True)
  training_input = input_pipeline.TrainingInput(
    session.strategy,
    config.train_batch_size,
    lambda batch, context: input_pipeline.array_dataset(
      train_features, batch, True, context, config.random_seed, config.bucket_width
    ),
    {
      "train_file": config.train_file,
      "examples": len(train_features["input_ids"]),
      "max_seq_length": config.max_seq_length,
      "seed": config.random_seed,
      "bucket_width": config.bucket_width,
    },
  )
  session.train(trainer, training_input, num_train_steps, **epochs)
  if not config.dev_file:
    return {}
  selection.keep()
  return selection.eval_results()


def define_flags(task: str) -> None:
  """The flags of `FinetuningConfig`'s fields (but `task`), with its
  defaults; `task` only changes a help text."""
  d = FinetuningConfig
  job_config.define_model_flags()
  example = "train.tsv" if task == "classification" else "train.txt (CoNLL)"
  flags.DEFINE_string("train_file", d.train_file, f"Labeled training file, e.g. {example}.")
  flags.DEFINE_string("eval_file", d.eval_file, "Labeled evaluation file.")
  flags.DEFINE_string(
    "dev_file",
    d.dev_file,
    "Labeled dev file, evaluated after every epoch of --do_train (dev_results.json).",
  )
  flags.DEFINE_bool(
    "keep_best_on_dev",
    d.keep_best_on_dev,
    "Keep the epoch best on --dev_file (accuracy; NER entity F1; a tie: the earlier) as the model.",
  )
  flags.DEFINE_string(
    "predict_file", d.predict_file, "Unlabeled file (one text per line, TAB-separated fields)."
  )
  flags.DEFINE_bool("do_train", d.do_train, "Fine-tune on --train_file.")
  flags.DEFINE_bool("do_eval", d.do_eval, "Evaluate on --eval_file; writes eval_results.txt.")
  flags.DEFINE_bool("do_predict", d.do_predict, "Predict --predict_file with confidences.")
  cli.define_logits_flags()
  flags.DEFINE_integer(
    "max_seq_length",
    NEW_MODEL_SETTINGS["max_seq_length"],
    "Sequence length, [CLS] and [SEP] included.",
  )
  job_config.define_training_flags(learning_rate=d.learning_rate)
  flags.DEFINE_integer(
    "predict_batch_size", d.predict_batch_size, "Batch size for evaluation and prediction."
  )
  flags.DEFINE_float("num_train_epochs", d.num_train_epochs, "Training epochs.")
  flags.DEFINE_float(
    "warmup_proportion", d.warmup_proportion, "Share of the steps with linear warmup."
  )
  # field_join's flag shows "sep", NEW_MODEL_SETTINGS' value; not given,
  # the config's None takes the model directory's.
  cli.define_reader_flags()
  flags.DEFINE_string(
    "pseudo_label_file",
    d.pseudo_label_file,
    "Classic self-training: pseudo-labeled files (step 3 output, each with "
    "its .confidence; comma list of globs) to add training examples from.",
  )
  flags.DEFINE_integer(
    "pseudo_per_class",
    d.pseudo_per_class,
    "Add the N most confident examples of --pseudo_label_file of each "
    "class (NER: each sentence's rarest entity type, or O) to the labeled "
    "training set; 0: none.",
  )
  flags.DEFINE_float(
    "pseudo_min_confidence",
    d.pseudo_min_confidence,
    "Only pseudo-labeled examples with at least this confidence are added.",
  )
  flags.mark_flags_as_required(["output_dir"])
  cli.require_max_seq_length()
  cli.require(lambda v: v >= 1, ">= 1", "predict_batch_size")
  cli.require(lambda v: v > 0, "> 0", "num_train_epochs")
  cli.require(lambda v: 0 <= v <= 1, "in [0, 1]", "warmup_proportion")


def make_main(task: str):
  def main(argv):
    del argv
    results = run(job_config.config_from_flags(FinetuningConfig, task=task))
    if results:
      print(" ".join(f"{k}={v:.6g}" for k, v in sorted(results.items())))

  return main
