"""The MLM head: known loaded or initialised, warmed up alone when initialised."""

import json
import logging

import numpy as np
import pytest
import tensorflow as tf
from test_resume import _assert_same_run, _killed_after
from test_training import _mlm_records, _pretraining_config, _random_init, _tiny_config

from bert_pl import checkpoints, errors, export_tf1_checkpoint, optimization, run_pretraining

from conftest import minilm_dir


def _task_info(directory):
  return json.loads((directory / "task.json").read_text())


def test_head_is_initialised_from_a_sentence_encoder_and_loaded_from_a_tf1_export(
  corpus, tmp_path, caplog
):
  """MiniLM's safetensors hold no cls.predictions.*; a TF1 checkpoint
  exported from a pre-trained bert_pl model holds them."""
  caplog.set_level(logging.INFO)
  minilm = run_pretraining.run(
    _pretraining_config(
      init_checkpoint=str(minilm_dir()),
      num_hidden_layers=1,
      output_dir=str(tmp_path / "minilm"),
      do_eval=False,
    )
  )
  assert minilm == {}
  assert _task_info(tmp_path / "minilm")["mlm_head"] == "initialised"
  assert f"MLM head (cls/predictions): initialised (not in {minilm_dir()}" in caplog.text

  caplog.clear()
  pretrained = tmp_path / "pretrained"
  run_pretraining.run(
    _pretraining_config(
      bert_config_file=_tiny_config(corpus, tmp_path / "config.json"),
      vocab_file=str(corpus / "vocab.txt"),
      input_file=_mlm_records(corpus, tmp_path),
      train_batch_size=8,
      num_train_steps=1,
      output_dir=str(pretrained),
      do_eval=False,
    )
  )
  tf1 = tmp_path / "tf1"
  export_tf1_checkpoint.run(
    export_tf1_checkpoint.ExportTf1CheckpointConfig(
      init_checkpoint=str(pretrained), output_dir=str(tf1)
    )
  )
  source = checkpoints.resolve_init_checkpoint(str(tf1))
  assert source.kind == "tf1"
  assert checkpoints.mlm_head_state(source) == "loaded"
  run_pretraining.run(
    _pretraining_config(
      init_checkpoint=str(tf1), output_dir=str(tmp_path / "from_tf1"), do_eval=False
    )
  )
  assert _task_info(tmp_path / "from_tf1")["mlm_head"] == "loaded"
  assert "MLM head (cls/predictions): loaded from " in caplog.text
  # Exported from a model whose head was never trained: no head.
  untrained = _random_init(corpus, tmp_path)
  assert checkpoints.mlm_head_state(checkpoints.resolve_init_checkpoint(str(untrained))) == "random"
  export_tf1_checkpoint.run(
    export_tf1_checkpoint.ExportTf1CheckpointConfig(
      init_checkpoint=str(tmp_path / "minilm"), output_dir=str(tmp_path / "minilm_tf1")
    )
  )
  exported = checkpoints.resolve_init_checkpoint(str(tmp_path / "minilm_tf1"))
  assert checkpoints.mlm_head_state(exported) == "initialised"


@pytest.mark.parametrize(
  "mlm_head, given, steps, mlm_weight, expected",
  [
    ("initialised", None, 150, 1.0, run_pretraining.MLM_HEAD_WARMUP_AUTO_STEPS),
    ("initialised", None, 0, 1.0, 0),
    ("initialised", None, 150, 0.0, 0),
    ("loaded", None, 150, 1.0, 0),
    ("random", None, 150, 1.0, 0),
    ("loaded", 7, 150, 1.0, 7),
    ("initialised", 0, 150, 1.0, 0),
  ],
)
def test_head_warmup_steps_by_default_only_for_a_head_initialised_on_a_loaded_encoder(
  mlm_head, given, steps, mlm_weight, expected
):
  config = _pretraining_config(
    num_train_steps=steps,
    mlm_head_warmup_steps=given,
    masked_lm_loss_weight=mlm_weight,
    task_loss="classification",
    output_dir="unused",
  )
  schedule = run_pretraining._schedule(config, 0, None, mlm_head)
  assert schedule["mlm_head_warmup_steps"] == expected
  assert schedule["num_train_steps"] == steps


def test_head_warmup_without_the_mlm_loss_is_refused():
  config = _pretraining_config(
    num_train_steps=5,
    mlm_head_warmup_steps=3,
    masked_lm_loss_weight=0.0,
    task_loss="ner",
    output_dir="unused",
  )
  with pytest.raises(errors.InputError, match="--mlm_head_warmup_steps=3 with --masked_lm_loss"):
    run_pretraining._schedule(config, 0, None, "initialised")


def test_learning_rate_is_constant_in_the_head_warmup_then_the_schedule_from_its_start():
  optimizer = optimization.create_optimizer(1e-4, 10, 2, head_warmup=(3, 1e-3))
  rates = [float(optimizer.learning_rate(step)) for step in range(7)]
  np.testing.assert_allclose(rates, [1e-3, 1e-3, 1e-3, 0.0, 5e-5, 8e-5, 7e-5], rtol=1e-6)


def _variables(prefix):
  """The model's variables (not the optimizer's slots) in a checkpoint."""
  reader = tf.train.load_checkpoint(prefix)
  return {
    name: reader.get_tensor(name)
    for name in reader.get_variable_to_shape_map()
    if name.startswith("bert/") and ".OPTIMIZER_SLOT" not in name
  }


def test_head_warmup_trains_the_head_alone_and_resumes_exactly(corpus, tmp_path):
  """4 warm-up steps, then 3 of training; killed after step 3, in the
  warm-up, the resumed run is the uninterrupted one, step for step."""
  common = dict(
    bert_config_file=_tiny_config(corpus, tmp_path / "config.json", dropout=0.0),
    vocab_file=str(corpus / "vocab.txt"),
    input_file=_mlm_records(corpus, tmp_path),
    train_batch_size=16,
    num_train_steps=3,
    num_warmup_steps=1,
    mlm_head_warmup_steps=4,
    learning_rate=5e-3,
    save_checkpoints_steps=1,
    do_eval=False,
  )
  uninterrupted = tmp_path / "uninterrupted"
  run_pretraining.run(_pretraining_config(**common, output_dir=str(uninterrupted)))
  schedule = json.loads((uninterrupted / "schedule.json").read_text())
  assert (schedule["mlm_head"], schedule["mlm_head_warmup_steps"]) == ("random", 4)
  at = {step: _variables(str(uninterrupted / f"ckpt-{step}")) for step in (3, 4, 6)}
  head = [n for n in at[3] if n.startswith("bert/masked_lm/") and "embedding_table" not in n]
  assert len(head) == len(checkpoints.MLM_HEAD_NAMES)
  frozen = [n for n in at[3] if n not in head]
  assert len(frozen) > 20
  for name in head:  # step 4, the last of the warm-up, moves the head...
    assert np.abs(at[4][name] - at[3][name]).max() > 1e-4, name
  for name in frozen:  # ...and nothing else: encoder, embeddings, pooler
    np.testing.assert_array_equal(at[4][name], at[3][name], err_msg=name)
  # The training after it moves them (its step 5 has learning rate 0, as
  # the first of any linear warmup).
  moved = [n for n in frozen if np.abs(at[6][n] - at[4][n]).max() > 1e-4]
  assert len(moved) > 20

  _killed_after(uninterrupted, tmp_path / "resumed", 3)
  run_pretraining.run(_pretraining_config(**common, output_dir=str(tmp_path / "resumed")))
  _assert_same_run(uninterrupted, tmp_path / "resumed", 3, 7)


def test_eval_measures_the_head_as_loaded_and_after_the_warmup_alone(corpus, tmp_path):
  """The measurement of issue 31 (a) and (b) with run_pretraining's eval:
  the initialised head's MLM loss, then lower after a warm-up alone."""
  pretrained = tmp_path / "pretrained"
  common = dict(
    bert_config_file=_tiny_config(corpus, tmp_path / "config.json", dropout=0.0),
    vocab_file=str(corpus / "vocab.txt"),
    input_file=_mlm_records(corpus, tmp_path),
    train_batch_size=16,
  )
  run_pretraining.run(
    _pretraining_config(**common, num_train_steps=0, output_dir=str(pretrained), do_eval=False)
  )
  initialised = run_pretraining.run(
    _pretraining_config(
      **common, init_checkpoint=str(pretrained), output_dir=str(tmp_path / "a"), do_train=False
    )
  )
  warmed = run_pretraining.run(
    _pretraining_config(
      **common,
      init_checkpoint=str(pretrained),
      output_dir=str(tmp_path / "b"),
      num_train_steps=0,
      mlm_head_warmup_steps=30,
      mlm_head_warmup_learning_rate=1e-2,
    )
  )
  assert initialised["global_step"] == 0 and warmed["global_step"] == 30
  # Measured 7.09 -> 6.64, accuracy 0.003 -> 0.059 (a random encoder below).
  assert initialised["mlm"] - warmed["mlm"] > 0.3, (initialised, warmed)
  assert warmed["mlm_accuracy"] > initialised["mlm_accuracy"] + 0.03
