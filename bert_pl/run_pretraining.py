r"""Pre-training with masked LM, plus a task loss on pseudo-labels (steps 1, 4).

    python -m bert_pl.run_pretraining --input_file='data/pretrain.tfrecord*' \
      --output_dir=models/model_c --init_checkpoint=chinese_L-12_H-768_A-12 \
      --num_hidden_layers=3 --task_loss=classification --label_file=labels.txt \
      --max_seq_length=64 --max_predictions_per_seq=10 --train_batch_size=256 \
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
"""

import tensorflow as tf
from absl import flags, logging

from bert_pl import (checkpoints, cli, input_files, input_pipeline, model_dir, optimization,
                     precision, task_models, tfrecords, training, tokenization)


def run(flags_values) -> dict:
  f = flags_values
  strategy = training.make_strategy(f.distribution_strategy, f.num_gpus)
  training.set_seed(f.random_seed)
  layer_map = checkpoints.parse_layer_map(f.layer_map)
  config, source = checkpoints.resolve_config(f.init_checkpoint, f.bert_config_file,
                                              f.num_hidden_layers, layer_map)
  vocab_file = f.vocab_file or (source.vocab_file if source else None)
  if not vocab_file:
    raise ValueError("no --vocab_file given and no vocab.txt beside --init_checkpoint")
  vocab_size = len(tokenization.load_vocab(vocab_file))
  if vocab_size != config.vocab_size:
    raise ValueError(f"{vocab_file} has {vocab_size} tokens but vocab_size is {config.vocab_size}")
  labels = input_files.read_labels(f.label_file) if f.label_file else None
  num_labels = len(labels) if labels else (f.num_labels or 0)
  if f.task_loss != "none" and not num_labels:
    raise ValueError(f"--task_loss={f.task_loss} needs --label_file or --num_labels")
  _check_loss_flags(f)
  kl = f.pseudo_label_loss == "kl"

  with strategy.scope(), precision.policy(f.dtype):
    model = task_models.BertTaskModel(config, f.task_loss, num_labels)
    optimizer = precision.wrap_optimizer(optimization.create_optimizer(
        f.learning_rate, f.num_train_steps, f.num_warmup_steps, f.weight_decay), f.dtype)
  chief = training.is_chief(strategy)
  run_state = training.CheckpointedRun(model, optimizer, f.output_dir, is_chief=chief)

  def initialize():
    if source is not None:
      checkpoints.init_from_checkpoint(model.bert, source, layer_map)
    else:
      logging.warning("No --init_checkpoint: training from random initialisation")

  step = run_state.restore_or_initialize(initialize)
  train = f.do_train and step < f.num_train_steps
  train_files = input_pipeline.expand_patterns(f.input_file) if train else []
  eval_files = (input_pipeline.expand_patterns(f.eval_input_file or f.input_file)
                if f.do_eval else [])
  if kl:
    width = num_labels * (f.max_seq_length if f.task_loss == "ner" else 1)
    for files in (train_files, eval_files):
      if files:
        _check_teacher_logits(files[0], tfrecords.LOGITS_FEATURES[f.task_loss], width)
  if chief:
    model_dir.write(f.output_dir, config, vocab_file, {
        "task": f.task_loss, "labels": labels, "max_seq_length": f.max_seq_length,
        "do_lower_case": f.do_lower_case, "tokenization": f.tokenization,
        "pseudo_label_loss": f.pseudo_label_loss, "kl_temperature": f.kl_temperature,
        "masked_lm_loss_weight": f.masked_lm_loss_weight, "trained_by": "run_pretraining"})
  spec = tfrecords.pretraining_feature_spec(f.max_seq_length, f.max_predictions_per_seq,
                                            f.task_loss, num_labels, with_logits=kl)
  trainer = training.Trainer(strategy, model, optimizer, use_mlm=f.masked_lm_loss_weight > 0,
                             use_task=f.task_loss != "none",
                             task_loss_weight=f.task_loss_weight,
                             masked_lm_loss_weight=f.masked_lm_loss_weight,
                             pseudo_label_loss=f.pseudo_label_loss,
                             kl_temperature=f.kl_temperature)
  results = {}
  if f.do_train and not train:
    run_state.save()  # e.g. --num_train_steps=0: the initialised model as a model dir
  elif train:
    logging.info("Training from step %d to %d: loss = %g x MLM + %g x %s", step,
                 f.num_train_steps, f.masked_lm_loss_weight, f.task_loss_weight,
                 _task_loss_name(f))
    files = train_files
    while True:  # again without the corrupt files, when skipping them
      training_input = input_pipeline.TrainingInput(
          strategy, f.train_batch_size,
          lambda batch, context, files=files: input_pipeline.pretraining_dataset(
              files, spec, batch, True, context, seed=f.random_seed,
              bucket_width=f.bucket_width),
          {"files": files, "seed": f.random_seed, "bucket_width": f.bucket_width,
           "features": {name: feature.shape for name, feature in spec.items()}})
      try:
        results = training.train(trainer, run_state, training_input, f.num_train_steps,
                                 f.save_checkpoints_steps, f.train_batch_size,
                                 training.summary_dir(f.output_dir, "train"))
        break
      except tf.errors.DataLossError:
        files = input_pipeline.drop_corrupt_files(files, f.skip_corrupt_files)
  if f.do_eval:
    dataset = input_pipeline.distribute(
        strategy, f.eval_batch_size,
        lambda batch, context: input_pipeline.pretraining_dataset(
            eval_files, spec, batch, False, context, bucket_width=f.bucket_width))
    try:
      results = trainer.evaluate(iter(dataset), f.max_eval_steps)
    except tf.errors.DataLossError:
      input_pipeline.drop_corrupt_files(eval_files, skip=False)
      raise
    results["global_step"] = int(optimizer.iterations.numpy())
    if chief:
      training.record_eval(f.output_dir, results, results["global_step"])
  return results


def _check_loss_flags(f) -> None:
  if f.masked_lm_loss_weight < 0 or f.task_loss_weight < 0:
    raise ValueError("--masked_lm_loss_weight and --task_loss_weight must be >= 0")
  if f.masked_lm_loss_weight == 0 and (f.task_loss == "none" or f.task_loss_weight == 0):
    raise ValueError(f"--masked_lm_loss_weight=0 with --task_loss={f.task_loss} and "
                     f"--task_loss_weight={f.task_loss_weight:g}: nothing to train")
  if f.pseudo_label_loss == "kl" and f.task_loss == "none":
    raise ValueError("--pseudo_label_loss=kl needs --task_loss=classification or ner")
  if f.kl_temperature <= 0:
    raise ValueError(f"--kl_temperature must be > 0, got {f.kl_temperature}")


def _task_loss_name(f) -> str:
  if f.task_loss == "none":
    return "no task loss"
  if f.pseudo_label_loss == "kl":
    return f"KL to the teacher (T={f.kl_temperature:g}, {f.task_loss})"
  return "CRF NLL" if f.task_loss == "ner" else "cross-entropy"


def _check_teacher_logits(path: str, name: str, width: int) -> None:
  """Refuses records without the teacher logits the KL loss needs (or with
  logits of another width), checked on the first record of `path`: the data
  job writes them for every record of a job or for none."""
  found = tfrecords.record_features(path)
  if name not in found:
    raise cli.InputError(
        f"{path}: no {name} feature (TFRecords written without teacher logits: run "
        "predict_pseudo_labels --write_logits and create_pretraining_data again, or use "
        "--pseudo_label_loss=hard)")
  if found[name] != width:
    raise cli.InputError(f"{path}: {name} has {found[name]} values, expected {width} (labels x "
                         "max_seq_length for NER): the records do not fit the flags")


def main(argv):
  del argv
  results = run(flags.FLAGS)
  print("run_pretraining: " + " ".join(f"{k}={v:.6g}" for k, v in sorted(results.items())))


def define_flags():
  cli.define_model_flags()
  flags.DEFINE_string("input_file", None, "TFRecord files (comma list of globs).")
  flags.DEFINE_string("eval_input_file", None, "TFRecords for --do_eval (default: --input_file).")
  flags.DEFINE_integer("max_seq_length", 128, "As in the TFRecords.")
  flags.DEFINE_integer("max_predictions_per_seq", 20, "As in the TFRecords.")
  cli.define_training_flags(learning_rate=5e-5)
  flags.DEFINE_integer("eval_batch_size", 8, "GLOBAL batch size for evaluation.")
  flags.DEFINE_integer("num_train_steps", 100000, "Total training steps.")
  flags.DEFINE_integer("num_warmup_steps", 10000, "Linear warmup steps.")
  flags.DEFINE_bool("do_train", False, "Train.")
  flags.DEFINE_bool("do_eval", False, "Evaluate; writes eval_results.txt.")
  flags.DEFINE_integer("max_eval_steps", 100, "Maximum evaluation batches.")
  flags.DEFINE_enum("task_loss", "none", list(task_models.TASKS),
                    "Task loss on the pseudo-labels added to the MLM loss.")
  flags.DEFINE_float("task_loss_weight", 1.0, "Weight of the task loss.")
  flags.DEFINE_enum("pseudo_label_loss", "hard", list(task_models.PSEUDO_LABEL_LOSSES),
                    "Task loss on the pseudo-labels: hard = cross-entropy on the one-hot "
                    "label (CRF for NER); kl = KL divergence to the teacher's softmax, from "
                    "the records' label_logits / tag_logits.")
  flags.DEFINE_float("kl_temperature", 1.0,
                     "Softmax temperature T of --pseudo_label_loss=kl (loss scaled by T^2).")
  flags.DEFINE_float("masked_lm_loss_weight", 1.0,
                     "Weight of the masked-LM loss; 0: the MLM head is not computed (for "
                     "records written with --masked_lm_prob=0).")
  flags.DEFINE_string("label_file", None, "Labels or BIO tags, one per line.")
  flags.DEFINE_integer("num_labels", None, "Number of labels (without --label_file).")
  flags.DEFINE_bool("skip_corrupt_files", False,
                    "Train without the TFRecord files that turn out truncated or corrupted "
                    "(a warning names each) instead of stopping with an error naming the file.")
  flags.mark_flags_as_required(["output_dir"])


def run_main():
  define_flags()
  flags.adopt_module_key_flags(cli)  # --help lists the shared flags too
  cli.run(main)


if __name__ == "__main__":
  run_main()
