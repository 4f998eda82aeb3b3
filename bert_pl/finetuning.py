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
predictions). `main` passes the settings flags left at their defaults as
None; a new model takes `NEW_MODEL_SETTINGS` for them.

Labels of a new model: `--label_file`, else collected from `--train_file`;
written to the model directory's task.json.

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
import types
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import flags, logging

from bert_pl import (checkpoints, cli, errors, evaluation, features, input_files,
                     input_pipeline, model_dir, modeling, optimization, precision, prediction,
                     self_training, task_models, tokenization, training)

SELF_TRAINING_FILE = "self_training.json"
JOBS = {"classification": "run_classifier", "ner": "run_ner"}
# The settings of a new model whose flags are not given.
NEW_MODEL_SETTINGS = dict(cli.TOKENIZER_DEFAULTS, max_seq_length=128, field_join="sep")
RANDOM_INIT = "none"  # --init_checkpoint=none: random weights


@dataclasses.dataclass
class ModelSpec:
  """The model a run fine-tunes, evaluates or predicts with."""
  config: modeling.BertConfig
  source: Optional[checkpoints.Source]  # what a new model starts from; None: random weights
  layer_map: Optional[List[int]]
  vocab_file: str
  settings: Dict[str, Any]  # model_dir.SETTINGS
  labels: List[str]
  checkpoint: Optional[str]  # --output_dir's latest checkpoint: an existing model


def model_spec(f, task: str) -> ModelSpec:
  """The model of `--output_dir` when it holds a checkpoint, else a new one
  from the flags."""
  out = f.output_dir
  latest = tf.train.latest_checkpoint(out) if tf.io.gfile.isdir(out) else None
  if latest:
    return _existing_model(f, task, latest)
  if not f.do_train:
    raise model_dir.ModelDirError(
        f"{out}: no checkpoint; --do_eval and --do_predict without --do_train use the "
        "fine-tuned model of --output_dir (fine-tune one first with --do_train)")
  return _new_model(f, task)


def _existing_model(f, task: str, latest: str) -> ModelSpec:
  """`--output_dir`'s model, checking every flag that restates it."""
  out, job = f.output_dir, JOBS[task]
  advice = (f" ({out} holds {os.path.basename(latest)} of an earlier run, which --do_train "
            f"would resume: use a new --output_dir, or delete {out} to start over)"
            if f.do_train else "")
  info = model_dir.read_task_info(out)
  if info.get("task") != task or info.get("trained_by") != job:
    use = (f"use {info['trained_by']} for it, or " if info.get("trained_by") in JOBS.values()
           and not f.do_train else "")
    raise model_dir.ModelDirError(
        f"{out}: {model_dir.describe(info)}, not a model of {job}: {use}fine-tune from it "
        f"with --do_train --init_checkpoint={out} and a new --output_dir")
  model_dir.check_settings(out, info, {n: getattr(f, n) for n in model_dir.SETTINGS}, advice)
  if f.label_file:
    model_dir.check_labels(out, info, input_files.read_labels(f.label_file), f.label_file,
                           advice)
  config = _check_config(f, os.path.join(out, "bert_config.json"), advice)
  vocab_file = os.path.join(out, "vocab.txt")
  if f.vocab_file and (tokenization.load_vocab(f.vocab_file)
                       != tokenization.load_vocab(vocab_file)):
    raise model_dir.ModelDirError(f"{vocab_file}: differs from --vocab_file={f.vocab_file}"
                                  f"{advice}")
  return ModelSpec(config, None, None, vocab_file, {n: info[n] for n in model_dir.SETTINGS},
                   list(info["labels"]), latest)


def _check_config(f, config_file: str, advice: str) -> modeling.BertConfig:
  """An existing model's config, which the config the flags describe (if
  any) must equal."""
  config = modeling.BertConfig.from_json_file(config_file)
  layer_map = checkpoints.parse_layer_map(f.layer_map)
  init = f.init_checkpoint if f.init_checkpoint != RANDOM_INIT else None
  if f.bert_config_file or init:
    given, _ = checkpoints.resolve_config(init, f.bert_config_file, f.num_hidden_layers,
                                          layer_map)
  else:
    layers = len(layer_map) if layer_map else f.num_hidden_layers
    given = config.replace(num_hidden_layers=layers) if layers else config
  for field in dataclasses.fields(modeling.BertConfig):
    there, value = getattr(config, field.name), getattr(given, field.name)
    if field.name != "extra" and there != value:
      flags_given = " ".join(f"--{n}={getattr(f, n)}" for n in (
          "init_checkpoint", "bert_config_file", "num_hidden_layers", "layer_map")
          if getattr(f, n))
      raise model_dir.ModelDirError(f"{config_file}: {field.name} is {there} there, {value} "
                                    f"from {flags_given}{advice}")
  return config


def _new_model(f, task: str) -> ModelSpec:
  """A model to fine-tune from `--init_checkpoint` (or random weights)."""
  init = f.init_checkpoint
  if not init:
    raise errors.InputError(
        f"no --init_checkpoint and no checkpoint in --output_dir={f.output_dir} "
        f"(--init_checkpoint={RANDOM_INIT} with --bert_config_file and --vocab_file starts "
        "from random weights)")
  if init == RANDOM_INIT:
    if not (f.bert_config_file and f.vocab_file):
      raise errors.InputError(f"--init_checkpoint={RANDOM_INIT} (random weights) needs "
                           "--bert_config_file and --vocab_file")
    logging.warning("--init_checkpoint=%s: the model starts from random weights (%s), not "
                    "from a pre-trained BERT", RANDOM_INIT, f.bert_config_file)
    init = None
  layer_map = checkpoints.parse_layer_map(f.layer_map)
  config, source = checkpoints.resolve_config(init, f.bert_config_file, f.num_hidden_layers,
                                              layer_map)
  vocab_file = f.vocab_file or (source.vocab_file if source else None)
  if not vocab_file:
    raise errors.InputError("no --vocab_file given and no vocab.txt beside "
                         f"--init_checkpoint={f.init_checkpoint}")
  settings = {n: NEW_MODEL_SETTINGS[n] if getattr(f, n) is None else getattr(f, n)
              for n in model_dir.SETTINGS}
  if f.label_file:
    labels = input_files.read_labels(f.label_file)
  elif f.train_file:
    labels = features.collect_labels(f.train_file, task, f.tag_scheme)
  else:
    raise errors.InputError("no --label_file and no --train_file to collect the labels from")
  return ModelSpec(config, source, layer_map, vocab_file, settings, labels, None)


def _encode(path: str, encoder: features.FeatureEncoder, f, what: str):
  counts = input_files.Counts(skip_bad_lines=f.skip_bad_lines)
  encoded = features.encode_file(path, encoder, counts, f.tag_scheme)
  print(f"{what} {path}: {counts.summary()}")
  return encoded


def check_self_training_flags(f) -> None:
  """--pseudo_label_file and --pseudo_per_class > 0 go together, with --do_train."""
  if f.pseudo_per_class < 0:
    raise errors.InputError(f"--pseudo_per_class={f.pseudo_per_class} is negative")
  if bool(f.pseudo_label_file) != (f.pseudo_per_class > 0):
    raise errors.InputError("classic self-training needs both --pseudo_label_file and "
                            "--pseudo_per_class > 0; got "
                            f"--pseudo_label_file={f.pseudo_label_file} "
                            f"--pseudo_per_class={f.pseudo_per_class}")
  if not 0.0 <= f.pseudo_min_confidence <= 1.0:
    raise errors.InputError(f"--pseudo_min_confidence={f.pseudo_min_confidence} is outside [0, 1]")
  if f.pseudo_min_confidence and not f.pseudo_label_file:
    raise errors.InputError("--pseudo_min_confidence needs --pseudo_label_file")
  if f.pseudo_label_file and not f.do_train:
    raise errors.InputError("--pseudo_label_file needs --do_train (it adds training examples)")


def pseudo_labeled(f, encoder: features.FeatureEncoder, num_labeled: int):
  """Classic self-training: the examples of `--pseudo_label_file` the
  `self_training.Sampler` keeps, encoded (None when none is kept), and the
  `self_training.report`.

  The files are step-3 outputs and are read as written (BIO tags, a
  confidence per example): a bad line, or a label the model does not have
  (the pseudo-labels of another model), stops the job even with
  --skip_bad_lines. NER reads the files twice: the bins need the entity types'
  frequencies over all sentences first."""
  files = input_files.expand_input_files(f.pseudo_label_file)
  for path in files:
    side = path + input_files.CONFIDENCE_SUFFIX
    if not tf.io.gfile.exists(side):
      raise input_files.InputError(f"{side}: file not found (the confidences of the "
                                   f"--pseudo_label_file {path})")

  def examples(counts):
    for path in files:
      yield from input_files.read_examples(path, encoder.task, counts, encoder.labels)

  seed = 0 if f.random_seed is None else f.random_seed
  sampler = self_training.Sampler(f.pseudo_per_class, f.pseudo_min_confidence, seed)
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
  print(f"pseudo-labeled {f.pseudo_label_file}: {counts.summary()}")
  summary = self_training.report(sampler, classes, f.pseudo_label_file, files, num_labeled)
  print(self_training.describe(summary))
  return encoded, summary


def training_set(f, encoder: features.FeatureEncoder):
  """The training features: `--train_file`, followed by the pseudo-labeled
  examples self-training adds (if any); and the self-training report (or None)."""
  train_features = _encode(f.train_file, encoder, f, "train")
  if not f.pseudo_label_file:
    return train_features, None
  added, summary = pseudo_labeled(f, encoder, len(train_features["input_ids"]))
  if added is not None:
    train_features = features.concatenate([train_features, added])
  return train_features, summary


def _encode_all(path: str, examples: List[input_files.Example],
                encoder: features.FeatureEncoder, counts: input_files.Counts):
  """The examples of a file to evaluate or predict, encoded in one piece
  (their token offsets map predictions back to the text)."""
  if not examples:
    raise input_files.InputError(f"{path}: empty file (no examples)")
  encoded, truncated = encoder.encode(examples)
  counts.written, counts.truncated = len(examples), int(truncated.sum())
  return encoded


def evaluate(predictor: prediction.Predictor, encoder: features.FeatureEncoder, f) -> dict:
  """The metrics of `--eval_file`; NER on its whole annotation (module doc)."""
  counts = input_files.Counts(skip_bad_lines=f.skip_bad_lines)
  examples = list(input_files.read_examples(f.eval_file, encoder.task, counts, encoder.labels,
                                            f.tag_scheme))
  encoded = _encode_all(f.eval_file, examples, encoder, counts)
  print(f"eval {f.eval_file}: {counts.summary()}")
  outputs = prediction.predict_sorted(predictor, encoded)
  if encoder.task == "classification":
    return evaluation.classification_metrics(encoded["label_ids"], outputs["label_ids"],
                                             len(encoder.labels))
  predicted = prediction.conll_tags(examples, encoded["starts"], encoded["ends"],
                                    outputs["tag_ids"], encoder.labels)
  results = evaluation.ner_metrics([e.tags for e in examples], predicted)
  results["truncated_sentences"] = counts.truncated
  if counts.truncated:
    print(f"eval {f.eval_file}: {counts.truncated} of {len(examples)} sentences are longer "
          f"than max_seq_length={encoder.max_seq_length}; the entities past it count as "
          "missed")
  return results


def predict(predictor: prediction.Predictor, tokenizer, f, settings: Dict[str, Any],
            output_format: prediction.OutputFormat) -> str:
  """Writes the pseudo-labeled file for `--predict_file` (with its side
  files); returns its path."""
  task = output_format.task
  counts = input_files.Counts(skip_bad_lines=f.skip_bad_lines)
  examples = list(input_files.read_unlabeled(f.predict_file, counts))
  # NER reads raw sentences: the fields joined into one text.
  encoder = features.FeatureEncoder(tokenizer, settings["max_seq_length"], "none",
                                    field_join=settings["field_join"]
                                    if task == "classification" else "concat")
  encoded = _encode_all(f.predict_file, examples, encoder, counts)
  outputs = prediction.predict_sorted(predictor, encoded)
  name = "predictions.tsv" if task == "classification" else "predictions.txt"
  path = os.path.join(f.output_dir, name)
  with prediction.AtomicOutput(path, f.write_logits) as output:
    output.write(*output_format.lines(examples, encoded, outputs))
  sides = input_files.CONFIDENCE_SUFFIX + (f", {input_files.LOGITS_SUFFIX}" if f.write_logits
                                           else "")
  print(f"predict {f.predict_file}: {counts.summary()} -> {path} (+{sides})")
  return path


def run(f, task: str) -> dict:
  """The whole job for `task` ("classification" or "ner") from flag values
  (the settings of `model_dir.SETTINGS` None when not given)."""
  check_self_training_flags(f)
  strategy = training.make_strategy(f.distribution_strategy, f.num_gpus)
  training.set_seed(f.random_seed)
  spec = model_spec(f, task)
  settings, labels = spec.settings, spec.labels
  tokenizer = tokenization.BertTokenizer(spec.vocab_file, settings["do_lower_case"],
                                         settings["tokenization"])
  if tokenizer.vocab_size != spec.config.vocab_size:
    raise errors.InputError(f"{spec.vocab_file} has {tokenizer.vocab_size} tokens but "
                         f"vocab_size is {spec.config.vocab_size}")
  # Checks the logits flags before training.
  output_format = prediction.OutputFormat(task, labels, f.write_logits, f.logits_top_k)
  encoder = features.FeatureEncoder(tokenizer, settings["max_seq_length"], task, labels,
                                    settings["field_join"])
  train_features, self_training_report, num_train_steps = None, None, 0
  if f.do_train:
    train_features, self_training_report = training_set(f, encoder)
    num_train_steps = training.steps_for_epochs(len(train_features["input_ids"]),
                                                f.num_train_epochs, f.train_batch_size)
  with strategy.scope(), precision.policy(f.dtype):
    model = task_models.BertTaskModel(spec.config, task, len(labels))
    optimizer = precision.wrap_optimizer(optimization.create_optimizer(
        f.learning_rate, num_train_steps, int(num_train_steps * f.warmup_proportion),
        f.weight_decay), f.dtype)
  chief = training.is_chief(strategy)
  run_state = training.CheckpointedRun(model, optimizer, f.output_dir, is_chief=chief)

  def initialize():  # a new model
    if spec.source is not None:
      checkpoints.init_from_checkpoint(model.bert, spec.source, spec.layer_map)

  run_state.restore_or_initialize(initialize)
  if chief and not spec.checkpoint:  # only a new model's training writes its settings
    model_dir.write(f.output_dir, spec.config, spec.vocab_file, dict(
        task=task, labels=list(labels), **settings, trained_by=JOBS[task]))
  if chief and self_training_report:
    model_dir.write_json(os.path.join(f.output_dir, SELF_TRAINING_FILE), self_training_report)
  results = {}
  if f.do_train:
    trainer = training.Trainer(strategy, model, optimizer, use_mlm=False, use_task=True)
    training_input = input_pipeline.TrainingInput(
        strategy, f.train_batch_size,
        lambda batch, context: input_pipeline.array_dataset(
            train_features, batch, True, context, f.random_seed, f.bucket_width),
        {"train_file": f.train_file, "examples": len(train_features["input_ids"]),
         "max_seq_length": f.max_seq_length, "seed": f.random_seed,
         "bucket_width": f.bucket_width})
    training.train(trainer, run_state, training_input, num_train_steps,
                   f.save_checkpoints_steps, f.train_batch_size,
                   training.summary_dir(f.output_dir, "train"))
  if not chief:  # the chief alone evaluates and predicts (and writes the results)
    return results
  predictor = prediction.Predictor(model, f.predict_batch_size)
  if f.do_eval:
    results = evaluate(predictor, encoder, f)
    results["global_step"] = int(optimizer.iterations.numpy())
    if f.do_train:
      training.record_eval(f.output_dir, results, results["global_step"])
    else:  # its output alone: the model directory is left as it is
      model_dir.write_eval_results(f.output_dir, results)
  if f.do_predict:
    predict(predictor, tokenizer, f, settings, output_format)
  return results


def define_flags(task: str) -> None:
  cli.define_model_flags()
  example = "train.tsv" if task == "classification" else "train.txt (CoNLL)"
  flags.DEFINE_string("train_file", None, f"Labeled training file, e.g. {example}.")
  flags.DEFINE_string("eval_file", None, "Labeled evaluation file.")
  flags.DEFINE_string("predict_file", None,
                      "Unlabeled file (one text per line, TAB-separated fields).")
  flags.DEFINE_string("label_file", None, "Labels (or BIO tags), one per line.")
  flags.DEFINE_bool("do_train", False, "Fine-tune on --train_file.")
  flags.DEFINE_bool("do_eval", False, "Evaluate on --eval_file; writes eval_results.txt.")
  flags.DEFINE_bool("do_predict", False, "Predict --predict_file with confidences.")
  cli.define_logits_flags()
  flags.DEFINE_integer("max_seq_length", NEW_MODEL_SETTINGS["max_seq_length"],
                       "Sequence length, [CLS] and [SEP] included.")
  cli.define_training_flags(learning_rate=1e-5)
  flags.DEFINE_integer("predict_batch_size", 64, "Batch size for evaluation and prediction.")
  flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs.")
  flags.DEFINE_float("warmup_proportion", 0.1, "Share of the steps with linear warmup.")
  flags.DEFINE_enum("field_join", NEW_MODEL_SETTINGS["field_join"], list(features.FIELD_JOINS),
                    "Join TAB-separated fields with [SEP] or concatenate them.")
  flags.DEFINE_enum("tag_scheme", "bio", ["bio", "iob1", "bioes", "bmes"],
                    "Tag scheme of the NER files (converted to BIO).")
  flags.DEFINE_bool("skip_bad_lines", False, "Skip and count malformed examples.")
  flags.DEFINE_string("pseudo_label_file", None,
                      "Classic self-training: pseudo-labeled files (step 3 output, each with "
                      "its .confidence; comma list of globs) to add training examples from.")
  flags.DEFINE_integer("pseudo_per_class", 0,
                       "Add the N most confident examples of --pseudo_label_file of each "
                       "class (NER: each sentence's rarest entity type, or O) to the labeled "
                       "training set; 0: none.")
  flags.DEFINE_float("pseudo_min_confidence", 0.0,
                     "Only pseudo-labeled examples with at least this confidence are added.")
  flags.mark_flags_as_required(["output_dir"])
  cli.require_max_seq_length()
  cli.require(lambda v: v >= 1, ">= 1", "predict_batch_size")
  cli.require(lambda v: v > 0, "> 0", "num_train_epochs")
  cli.require(lambda v: 0 <= v <= 1, "in [0, 1]", "warmup_proportion")


def make_main(task: str):
  def main(argv):
    del argv
    values = flags.FLAGS.flag_values_dict()
    for name in model_dir.SETTINGS:  # not given: the model directory's, or a default
      if not flags.FLAGS[name].present:
        values[name] = None
    results = run(types.SimpleNamespace(**values), task)
    if results:
      print(" ".join(f"{k}={v:.6g}" for k, v in sorted(results.items())))
  return main
