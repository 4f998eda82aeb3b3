"""run_pretraining's step-4 loss variants: the KL loss on teacher logits and
the masked-LM loss weight (0: no MLM head), against NumPy formulas."""

import json

import numpy as np
import pytest
import tensorflow as tf
from test_finetuning import _finetuning_config
from test_training import LABELS, SEQ, TINY, _batch, _pretraining_config, _tiny_config

from bert_pl import (
  checkpoints,
  create_pretraining_data,
  errors,
  finetuning,
  input_pipeline,
  modeling,
  optimization,
  run_pretraining,
  task_models,
  tfrecords,
  training,
)

from conftest import run_job


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _kl(teacher, student, temperature):
  """KL(softmax(teacher/T) || softmax(student/T)) * T^2, the oracle."""
  p = _log_softmax(teacher / temperature)
  q = _log_softmax(student / temperature)
  return np.sum(np.exp(p) * (p - q), -1) * temperature**2


def _trainer(model, **loss):
  return training.Trainer(
    tf.distribute.get_strategy(), model, None, use_mlm=False, use_task=True, **loss
  )


def _task_loss(trainer, batch):
  features = {k: tf.constant(v) for k, v in batch.items()}
  total, scaled, _ = trainer._global_losses(features, training=False)
  return float(total), float(scaled["task"])


@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("task", ["classification", "ner"])
def test_kl_loss_is_the_formula(task, temperature):
  model = task_models.BertTaskModel(modeling.BertConfig(**TINY), task, LABELS)
  batch = _batch(seed=4)
  trainer = _trainer(model, pseudo_label_loss="kl", kl_temperature=temperature)
  total, loss = _task_loss(trainer, batch)
  assert total == loss  # no MLM term
  student = model({k: tf.constant(v) for k, v in batch.items()}, training=False)[
    "task_logits"
  ].numpy()
  weights = batch["label_weights"][:, 0]
  if task == "classification":
    expected = np.sum(weights * _kl(batch["label_logits"], student, temperature)) / (
      weights.sum() + 1e-5
    )
  else:
    teacher = batch["tag_logits"].reshape(len(weights), SEQ, LABELS)
    per_token = _kl(teacher, student, temperature)
    tagged = (batch["input_mask"] > 0) & np.any(teacher != 0, -1)
    real = batch["input_mask"] > 0
    # The batch has untagged real tokens ([CLS], [SEP], continuations) and padding.
    assert 0 < tagged.sum() < real.sum() - 2 * len(weights) < real.size
    expected = np.sum(weights[:, None] * per_token * tagged) / (tagged.sum() + 1e-5)
    untagged_too = np.sum(weights[:, None] * per_token * real) / (real.sum() + 1e-5)
    assert abs(untagged_too - expected) > 0.01  # the exclusion matters to this check
    # Length bucketing cuts token features to the longest row, not tag_logits.
    padded = {
      k: np.pad(v, [(0, 0), (0, 3)]) if k in input_pipeline.SEQUENCE_FEATURES else v
      for k, v in batch.items()
    }
    padded["tag_logits"] = np.pad(teacher, [(0, 0), (0, 3), (0, 0)]).reshape(len(weights), -1)
    cut = {
      k: v.numpy()
      for k, v in input_pipeline.cut_to_longest_row(
        {k: tf.constant(v) for k, v in padded.items()}
      ).items()
    }
    assert cut["input_ids"].shape[1] < padded["input_ids"].shape[1]
    assert _task_loss(trainer, cut)[1] == pytest.approx(expected, rel=1e-5)
  assert loss == pytest.approx(expected, rel=1e-5)


def _head_gradient(model, trainer, batch):
  features = {k: tf.constant(v) for k, v in batch.items()}
  with tf.GradientTape() as tape:
    total = trainer._global_losses(features, training=False)[0]
  grads = tape.gradient(total, model.head.trainable_variables)
  return np.concatenate([g.numpy().ravel() for g in grads])


def test_one_hot_teacher_gives_the_cross_entropy_gradient():
  model = task_models.BertTaskModel(modeling.BertConfig(**TINY), "classification", LABELS)
  batch = _batch(seed=5)
  kl_trainer = _trainer(model, pseudo_label_loss="kl")
  # The batch's own teacher, random logits unrelated to label_ids, pulls
  # elsewhere: the check can fail.
  soft = _head_gradient(model, kl_trainer, batch)
  batch["label_logits"] = (30.0 * (2 * np.eye(LABELS)[batch["label_ids"][:, 0]] - 1)).astype(
    np.float32
  )
  hard = _head_gradient(model, _trainer(model), batch)
  kl = _head_gradient(model, kl_trainer, batch)
  cosine = hard @ kl / (np.linalg.norm(hard) * np.linalg.norm(kl))
  soft_cosine = hard @ soft / (np.linalg.norm(hard) * np.linalg.norm(soft))
  print(
    f"\ncosine {cosine:.8f} (random teacher {soft_cosine:.3f}), "
    f"norms {np.linalg.norm(hard):.6g} {np.linalg.norm(kl):.6g}"
  )
  assert cosine > 0.99 and soft_cosine < 0.9
  assert np.linalg.norm(kl) == pytest.approx(np.linalg.norm(hard), rel=1e-3)


def test_ner_kl_gradient_is_the_softmax_difference():
  model = task_models.BertTaskModel(modeling.BertConfig(**TINY), "ner", LABELS)
  batch = _batch(seed=6)
  features = {k: tf.constant(v) for k, v in batch.items()}
  emissions = tf.Variable(np.random.default_rng(0).normal(0, 3, (8, SEQ, LABELS)), dtype=tf.float32)
  temperature = 2.0
  with tf.GradientTape() as tape:
    losses, _ = task_models.loss_terms(
      model, features, {"task_logits": emissions}, False, True, "kl", temperature
    )
    loss = losses["task"][0] / losses["task"][1]
  gradient = tape.gradient(loss, emissions).numpy()
  teacher = batch["tag_logits"].reshape(8, SEQ, LABELS)
  tagged = (batch["input_mask"] > 0) & np.any(teacher != 0, -1)
  p = np.exp(_log_softmax(teacher / temperature))
  q = np.exp(_log_softmax(emissions.numpy() / temperature))
  # d/ds T^2 KL(p || softmax(s/T)) = T (softmax(s/T) - p), per tagged token.
  expected = (
    batch["label_weights"][:, :, None] * tagged[..., None] * temperature * (q - p) / tagged.sum()
  )
  np.testing.assert_allclose(gradient, expected, atol=1e-6)
  assert np.all(gradient[~tagged] == 0) and np.abs(gradient[tagged]).min() > 0


def _mlm_head_variables(model):
  """The MLM head's own variables (transform, LayerNorm, output bias), not
  the word embeddings its decoder shares."""
  table = model.bert.encoder.get_embedding_table()
  return [v for v in model.bert.masked_lm.trainable_variables if v is not table]


def test_no_mlm_step_leaves_the_mlm_head_alone():
  model = task_models.BertTaskModel(modeling.BertConfig(**TINY), "classification", LABELS)
  batch = _batch(seed=7)
  head = _mlm_head_variables(model)
  assert len(head) == 5
  features = {k: tf.constant(v) for k, v in batch.items()}
  table = model.bert.encoder.get_embedding_table()
  for mlm in (True, False):
    trainer = training.Trainer(
      tf.distribute.get_strategy(),
      model,
      None,
      use_mlm=mlm,
      use_task=True,
      masked_lm_loss_weight=float(mlm),
    )
    with tf.GradientTape() as tape:
      total = trainer._global_losses(features, training=True)[0]
    grads = tape.gradient(total, head + [table])
    assert all((g is None) != mlm for g in grads[:-1]), mlm
    # The embedding lookup alone gives sparse rows; the vocabulary projection
    # of the MLM decoder would add a dense [vocab, hidden] gradient.
    assert isinstance(grads[-1], tf.IndexedSlices) != mlm, mlm

  optimizer = optimization.create_optimizer(1e-2, 10, 0)
  trainer = training.Trainer(
    tf.distribute.get_strategy(),
    model,
    optimizer,
    use_mlm=False,
    use_task=True,
    masked_lm_loss_weight=0.0,
  )
  before = [v.numpy() for v in model.trainable_variables]
  dataset = input_pipeline.array_dataset(batch, 8, False)
  result = trainer.train_steps(iter(dataset), 1)
  assert "mlm" not in result and result["total_loss"] == result["task"]
  for variable, start in zip(model.trainable_variables, before):
    unchanged = np.array_equal(variable.numpy(), start)
    assert unchanged == any(variable is v for v in head), variable.name


@pytest.mark.slow
def test_no_mlm_checkpoint_restores_with_the_mlm_head_and_fine_tunes(corpus, tmp_path):
  train = tmp_path / "train.tsv"
  train.write_text(
    "".join((corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:64]),
    encoding="utf-8",
  )
  records = str(tmp_path / "data.tfrecord")
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      str(train),
      records,
      str(corpus / "vocab.txt"),
      max_seq_length=64,
      max_predictions_per_seq=10,
      task="classification",
      label_file=str(corpus / "labels.txt"),
    )
  )
  common = dict(
    vocab_file=str(corpus / "vocab.txt"),
    input_file=records,
    do_eval=False,
    task_loss="classification",
    label_file=str(corpus / "labels.txt"),
  )
  init, model_c = tmp_path / "init", tmp_path / "model_c"
  run_pretraining.run(
    _pretraining_config(
      **common,
      output_dir=str(init),
      bert_config_file=_tiny_config(corpus, tmp_path / "config.json"),
    )
  )
  result = run_pretraining.run(
    _pretraining_config(
      **common,
      init_checkpoint=str(init),
      output_dir=str(model_c),
      masked_lm_loss_weight=0.0,
      num_train_steps=3,
      save_checkpoints_steps=3,
    )
  )
  assert "mlm" not in result and "task" in result
  info = json.loads((model_c / "task.json").read_text())
  assert (info["masked_lm_loss_weight"], info["pseudo_label_loss"], info["kl_temperature"]) == (
    0.0,
    "hard",
    1.0,
  )

  before = tf.train.load_checkpoint(str(init / "ckpt-0"))
  assert tf.train.latest_checkpoint(str(model_c)).endswith("ckpt-3")
  after = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_c)))
  model = task_models.BertTaskModel(
    modeling.BertConfig.from_json_file(str(model_c / "bert_config.json")),
    "classification",
    len(info["labels"]),
  )
  tf.train.Checkpoint(bert=model.bert, head=model.head).restore(
    tf.train.latest_checkpoint(str(model_c))
  ).expect_partial().assert_existing_objects_matched()
  names = [
    n
    for n in after.get_variable_to_shape_map()
    if n.startswith("bert/") and "OPTIMIZER_SLOT" not in n
  ]
  mlm = [n for n in names if "masked_lm" in n and "embedding" not in n]
  assert len(mlm) == 5, mlm
  for name in names:
    same = np.array_equal(after.get_tensor(name), before.get_tensor(name))
    assert same == (name in mlm), name

  # Fine-tuning's loading path (`checkpoints.init_from_checkpoint`) takes the MLM head too.
  loaded = checkpoints.model_weights(checkpoints.load_bert(str(model_c))[0])
  initial = checkpoints.model_weights(checkpoints.load_bert(str(init))[0])
  for name in (
    "cls/predictions/output_bias",
    "cls/predictions/transform/dense/kernel",
    "cls/predictions/transform/LayerNorm/gamma",
  ):
    np.testing.assert_array_equal(loaded[name], initial[name])
  finetuned = finetuning.run(
    _finetuning_config(
      "classification",
      init_checkpoint=str(model_c),
      train_file=str(train),
      eval_file=str(train),
      label_file=str(corpus / "labels.txt"),
      output_dir=str(tmp_path / "model_d"),
      num_train_epochs=1.0,
    )
  )
  assert finetuned["global_step"] == 2


def _write_records(path, batch):
  batch = dict(batch, next_sentence_labels=np.zeros([len(batch["input_ids"]), 1], np.int64))
  writer = tf.io.TFRecordWriter(str(path))
  for record in tfrecords.serialize_examples(batch):
    writer.write(record)
  writer.close()


def _vocab(tmp_path):
  vocab = tmp_path / "vocab.txt"
  specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  vocab.write_text("\n".join(specials + [f"t{i}" for i in range(TINY["vocab_size"] - 5)]) + "\n")
  config = tmp_path / "bert_config.json"
  modeling.BertConfig(**TINY).to_json_file(str(config))
  return dict(
    vocab_file=str(vocab),
    bert_config_file=str(config),
    max_seq_length=SEQ,
    max_predictions_per_seq=3,
    num_labels=LABELS,
    train_batch_size=8,
    eval_batch_size=8,
    num_warmup_steps=0,
  )


def test_kl_without_mlm_trains_on_records_with_logits(tmp_path):
  """NER, bucketed batches (tag_logits cut in the loss), 2 replicas."""
  records = tmp_path / "data.tfrecord"
  batch = _batch(seed=8, n=32)
  # A learnable teacher: each tagged token's tag is its id modulo the tags.
  batch["tag_ids"] = batch["input_ids"] % LABELS
  tagged = np.any(batch["tag_logits"].reshape(32, SEQ, LABELS) != 0, -1)
  batch["tag_logits"] = (
    (4.0 * np.eye(LABELS)[batch["tag_ids"]] * tagged[..., None]).reshape(32, -1).astype(np.float32)
  )
  _write_records(records, batch)
  common = dict(
    _vocab(tmp_path),
    input_file=str(records),
    output_dir=str(tmp_path / "model"),
    task_loss="ner",
    pseudo_label_loss="kl",
    kl_temperature=2.0,
    masked_lm_loss_weight=0.0,
    bucket_width=4,
    max_eval_steps=4,
  )
  before = run_pretraining.run(_pretraining_config(**common, do_train=False))
  after = run_pretraining.run(_pretraining_config(**common, num_train_steps=40, learning_rate=5e-3))
  print(f"\nbefore {before}\nafter {after}")
  assert after["global_step"] == 40 and "mlm" not in after
  assert after["task"] < 0.3 * before["task"]
  assert after["task_accuracy"] > 0.9 > 0.5 > before["task_accuracy"]
  info = json.loads((tmp_path / "model" / "task.json").read_text())
  assert (info["pseudo_label_loss"], info["kl_temperature"], info["masked_lm_loss_weight"]) == (
    "kl",
    2.0,
    0.0,
  )


def test_kl_refuses_records_whose_logits_do_not_fit(tmp_path):
  records = tmp_path / "data.tfrecord"
  _write_records(records, _batch(seed=9))
  common = dict(
    _vocab(tmp_path),
    input_file=str(records),
    output_dir=str(tmp_path / "model"),
    task_loss="classification",
    pseudo_label_loss="kl",
    num_train_steps=2,
  )
  with pytest.raises(
    errors.InputError, match=f"^{records}: label_logits has 5 values, expected 7 "
  ):
    run_pretraining.run(_pretraining_config(**dict(common, num_labels=7)))
  with pytest.raises(
    ValueError,
    match="^--masked_lm_loss_weight=0 with --task_loss=none and "
    "--task_loss_weight=1: nothing to train$",
  ):
    run_pretraining.run(
      _pretraining_config(
        **dict(common, task_loss="none", pseudo_label_loss="hard", masked_lm_loss_weight=0.0)
      )
    )
  for name in ("masked_lm_loss_weight", "task_loss_weight"):  # before: the values not named
    with pytest.raises(errors.InputError, match=f"^--{name}=-1: must be >= 0$"):
      run_pretraining.run(_pretraining_config(**dict(common, **{name: -1.0})))


def test_kl_on_records_without_logits_is_one_error_line(corpus, tmp_path):
  records = str(tmp_path / "data.tfrecord")
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      str(corpus / "ner_train.txt"),
      records,
      str(corpus / "vocab.txt"),
      max_seq_length=64,
      max_predictions_per_seq=10,
      task="ner",
      label_file=str(corpus / "tags.txt"),
      tokenization="char",
    )
  )
  result = run_job(
    "run_pretraining",
    f"--input_file={records}",
    f"--output_dir={tmp_path / 'model'}",
    f"--vocab_file={corpus / 'vocab.txt'}",
    f"--bert_config_file={_tiny_config(corpus, tmp_path / 'config.json')}",
    "--task_loss=ner",
    f"--label_file={corpus / 'tags.txt'}",
    "--max_seq_length=64",
    "--max_predictions_per_seq=10",
    "--pseudo_label_loss=kl",
    "--do_train",
    "--num_train_steps=2",
    check=False,
  )
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [
    f"error: {records}: no tag_logits feature (TFRecords written without teacher logits: run "
    "predict_pseudo_labels --write_logits and create_pretraining_data again, or use "
    "--pseudo_label_loss=hard)"
  ]
