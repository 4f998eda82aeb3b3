"""Fine-tuning, evaluation and prediction: run_classifier and run_ner (steps 2, 5).

As the original `run_classifier.py`: `--do_train`, `--do_eval`, `--do_predict`
on `--train_file`, `--eval_file`, `--predict_file`; `--num_train_epochs` and
`--warmup_proportion` set the schedule. `--init_checkpoint` is any source of
`checkpoints` (Google TF1, Hugging Face, or a model directory from step 1 or
4: its encoder and MLM head are loaded, the task head starts fresh). When
`--output_dir` already holds checkpoints, the latest is restored instead
(resuming training, or evaluating / predicting with a fine-tuned model).

Labels: `--label_file`, else those of an existing `--output_dir`, else
collected from `--train_file`; written to the model directory's task.json.

Classic self-training (the baseline of the method's later version, DESIGN
§1b): `--pseudo_label_file` (step-3 outputs) and `--pseudo_per_class=N` add the
N most confident pseudo-labeled examples of each class (`self_training` says
how they are chosen) to the whole labeled training set; the epochs run over
both, the eval set is never mixed. What was added is printed and written to
the model directory as self_training.json.
"""

import os

import tensorflow as tf
from absl import flags

from bert_pl import (checkpoints, cli, evaluation, features, input_files, input_pipeline,
                     model_dir, optimization, precision, prediction, self_training, task_models,
                     tokenization, training)

SELF_TRAINING_FILE = "self_training.json"


def _config_and_source(f):
  """Config from the model directory when resuming it, else from the flags."""
  layer_map = checkpoints.parse_layer_map(f.layer_map)
  existing = tf.train.latest_checkpoint(f.output_dir) if tf.io.gfile.isdir(f.output_dir) else None
  if existing and not f.bert_config_file:
    config, _ = checkpoints.resolve_config(None, os.path.join(f.output_dir, "bert_config.json"))
    source = checkpoints.resolve_init_checkpoint(f.init_checkpoint) if f.init_checkpoint else None
    return config, source, layer_map
  config, source = checkpoints.resolve_config(f.init_checkpoint, f.bert_config_file,
                                              f.num_hidden_layers, layer_map)
  return config, source, layer_map


def _labels(f, task: str):
  if f.label_file:
    return input_files.read_labels(f.label_file)
  info_path = os.path.join(f.output_dir, model_dir.TASK_FILE)
  if tf.io.gfile.exists(info_path):
    labels = model_dir.read_task_info(f.output_dir).get("labels")
    if labels:
      return labels
  if f.train_file:
    return features.collect_labels(f.train_file, task, f.tag_scheme)
  raise ValueError("no --label_file, no labels in --output_dir and no --train_file to "
                   "collect them from")


def _encode(path: str, encoder: features.FeatureEncoder, f, what: str):
  counts = input_files.Counts(skip_bad_lines=f.skip_bad_lines)
  encoded = features.encode_file(path, encoder, counts, f.tag_scheme)
  print(f"{what} {path}: {counts.summary()}")
  return encoded


def check_self_training_flags(f) -> None:
  """--pseudo_label_file and --pseudo_per_class > 0 go together, with --do_train."""
  if f.pseudo_per_class < 0:
    raise ValueError(f"--pseudo_per_class={f.pseudo_per_class} is negative")
  if bool(f.pseudo_label_file) != (f.pseudo_per_class > 0):
    raise ValueError("classic self-training needs both --pseudo_label_file and "
                     f"--pseudo_per_class > 0; got --pseudo_label_file={f.pseudo_label_file} "
                     f"--pseudo_per_class={f.pseudo_per_class}")
  if not 0.0 <= f.pseudo_min_confidence <= 1.0:
    raise ValueError(f"--pseudo_min_confidence={f.pseudo_min_confidence} is outside [0, 1]")
  if f.pseudo_min_confidence and not f.pseudo_label_file:
    raise ValueError("--pseudo_min_confidence needs --pseudo_label_file")
  if f.pseudo_label_file and not f.do_train:
    raise ValueError("--pseudo_label_file needs --do_train (it adds training examples)")


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


def evaluate(predictor: prediction.Predictor, encoded, labels, task: str):
  outputs = prediction.predict_sorted(predictor, encoded)
  if task == "classification":
    return evaluation.classification_metrics(encoded["label_ids"], outputs["label_ids"],
                                             len(labels))
  gold, predicted = [], []
  for row in range(len(encoded["input_ids"])):
    n = int(encoded["input_mask"][row].sum()) - 2  # without [CLS] and [SEP]
    gold.append([labels[i] for i in encoded["tag_ids"][row, 1:1 + n]])
    predicted.append([labels[i] for i in outputs["tag_ids"][row, 1:1 + n]])
  return evaluation.ner_metrics(gold, predicted)


def predict(predictor: prediction.Predictor, tokenizer, f,
            output_format: prediction.OutputFormat) -> str:
  """Writes the pseudo-labeled file for `--predict_file` (with its side
  files); returns its path."""
  task = output_format.task
  counts = input_files.Counts(skip_bad_lines=f.skip_bad_lines)
  examples = list(input_files.read_unlabeled(f.predict_file, counts))
  if not examples:
    raise input_files.InputError(f"{f.predict_file}: empty file (no examples)")
  # NER reads raw sentences: the fields joined into one text.
  encoder = features.FeatureEncoder(tokenizer, f.max_seq_length, "none",
                                    field_join=f.field_join if task == "classification"
                                    else "concat")
  encoded, truncated = encoder.encode(examples)
  outputs = prediction.predict_sorted(predictor, encoded)
  name = "predictions.tsv" if task == "classification" else "predictions.txt"
  path = os.path.join(f.output_dir, name)
  output = prediction.AtomicOutput(path, f.write_logits)
  output.write(*output_format.lines(examples, encoded, outputs))
  output.commit()
  counts.written, counts.truncated = len(examples), int(truncated.sum())
  sides = input_files.CONFIDENCE_SUFFIX + (f", {input_files.LOGITS_SUFFIX}" if f.write_logits
                                           else "")
  print(f"predict {f.predict_file}: {counts.summary()} -> {path} (+{sides})")
  return path


def run(f, task: str) -> dict:
  """The whole job for `task` ("classification" or "ner") from flag values."""
  check_self_training_flags(f)
  strategy = training.make_strategy(f.distribution_strategy, f.num_gpus)
  training.set_seed(f.random_seed)
  config, source, layer_map = _config_and_source(f)
  vocab_file = (f.vocab_file or (source.vocab_file if source else None)
                or os.path.join(f.output_dir, "vocab.txt"))
  tokenizer = tokenization.BertTokenizer(vocab_file, f.do_lower_case, f.tokenization)
  if tokenizer.vocab_size != config.vocab_size:
    raise ValueError(f"{vocab_file} has {tokenizer.vocab_size} tokens but vocab_size is "
                     f"{config.vocab_size}")
  labels = _labels(f, task)
  # Checks the logits flags before training.
  output_format = prediction.OutputFormat(task, labels, f.write_logits, f.logits_top_k)
  encoder = features.FeatureEncoder(tokenizer, f.max_seq_length, task, labels, f.field_join)
  train_features, self_training_report, num_train_steps = None, None, 0
  if f.do_train:
    train_features, self_training_report = training_set(f, encoder)
    num_train_steps = training.steps_for_epochs(len(train_features["input_ids"]),
                                                f.num_train_epochs, f.train_batch_size)
  with strategy.scope(), precision.policy(f.dtype):
    model = task_models.BertTaskModel(config, task, len(labels))
    optimizer = precision.wrap_optimizer(optimization.create_optimizer(
        f.learning_rate, num_train_steps, int(num_train_steps * f.warmup_proportion),
        f.weight_decay), f.dtype)
  chief = training.is_chief(strategy)
  run_state = training.CheckpointedRun(model, optimizer, f.output_dir, is_chief=chief)

  def initialize():
    if source is None:
      raise ValueError("no --init_checkpoint and no checkpoint in --output_dir")
    checkpoints.init_from_checkpoint(model.bert, source, layer_map)

  run_state.restore_or_initialize(initialize)
  if chief:
    model_dir.write(f.output_dir, config, vocab_file, {
        "task": task, "labels": list(labels), "max_seq_length": f.max_seq_length,
        "do_lower_case": f.do_lower_case, "tokenization": f.tokenization,
        "field_join": f.field_join,
        "trained_by": f"run_{'classifier' if task == 'classification' else 'ner'}"})
    if self_training_report:
      model_dir.write_json(os.path.join(f.output_dir, SELF_TRAINING_FILE),
                           self_training_report)
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
    results = evaluate(predictor, _encode(f.eval_file, encoder, f, "eval"), labels, task)
    results["global_step"] = int(optimizer.iterations.numpy())
    training.record_eval(f.output_dir, results, results["global_step"])
  if f.do_predict:
    predict(predictor, tokenizer, f, output_format)
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
  flags.DEFINE_integer("max_seq_length", 128, "Sequence length, [CLS] and [SEP] included.")
  cli.define_training_flags(learning_rate=1e-5)
  flags.DEFINE_integer("predict_batch_size", 64, "Batch size for evaluation and prediction.")
  flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs.")
  flags.DEFINE_float("warmup_proportion", 0.1, "Share of the steps with linear warmup.")
  flags.DEFINE_enum("field_join", "sep", list(features.FIELD_JOINS),
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


def make_main(task: str):
  def main(argv):
    del argv
    results = run(flags.FLAGS, task)
    if results:
      print(" ".join(f"{k}={v:.6g}" for k, v in sorted(results.items())))
  return main
