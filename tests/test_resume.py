"""Resuming: the same batches as an uninterrupted run, and a model directory's
`checkpoint` file never makes a job touch files outside the directory."""

import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_fault_tolerance import _train_losses
from test_finetuning import _finetuning_config
from test_input_pipeline import SEQ, _features
from test_training import _mlm_records, _pretraining_config, _tiny_config

from bert_pl import errors, finetuning, input_pipeline, run_pretraining, tfrecords, training

from conftest import run_job


def _example_ids(training_input, steps):
  """Per step, the example ids (label_ids) each replica receives."""
  return [
    [
      r.numpy()[:, 0].tolist()
      for r in training_input._strategy.experimental_local_results(
        next(training_input)["label_ids"]
      )
    ]
    for _ in range(steps)
  ]


@pytest.mark.parametrize("source", ["arrays", "records"])
@pytest.mark.parametrize("bucket_width", [0, 8])
def test_restored_training_input_gives_the_batches_of_an_uninterrupted_run(
  source, bucket_width, mirrored_strategy, tmp_path
):
  features = _features()
  features["next_sentence_labels"] = np.zeros_like(features["label_ids"])
  if source == "arrays":
    make = lambda batch, context: input_pipeline.array_dataset(
      features, batch, True, context, seed=7, bucket_width=bucket_width
    )
  else:
    records = tfrecords.serialize_examples(features)
    files = [str(tmp_path / f"shard-{i}") for i in range(2)]
    for i, path in enumerate(files):
      with tf.io.TFRecordWriter(path) as writer:
        for record in records[i::2]:
          writer.write(record)
    spec = tfrecords.pretraining_feature_spec(SEQ, 3, "classification", 5)
    make = lambda batch, context: input_pipeline.pretraining_dataset(
      files, spec, batch, True, context, shuffle_buffer=50, seed=7, bucket_width=bucket_width
    )
  new_input = lambda: input_pipeline.TrainingInput(mirrored_strategy, 16, make, {})
  # 200 examples, 16 a step: steps 17-30 are in the second and third epochs.
  uninterrupted = _example_ids(new_input(), 30)
  killed = new_input()
  assert _example_ids(killed, 17) == uninterrupted[:17]
  saved = tf.train.Checkpoint(iterator=killed.iterator).save(str(tmp_path / "input" / "ckpt"))
  resumed = new_input()
  tf.train.Checkpoint(iterator=resumed.iterator).restore(saved).assert_consumed()
  assert _example_ids(resumed, 13) == uninterrupted[17:]
  assert uninterrupted[17] != uninterrupted[4]  # epochs are shuffled differently
  assert all(len(replica) == 8 for step in uninterrupted for replica in step)


def _killed_after(source, target, step):
  """`target`: the model directory a run writing `source` leaves when killed
  right after saving `step` (its summaries left behind): the checkpoints of
  the model and of the input position."""
  shutil.copytree(
    source, target, ignore=shutil.ignore_patterns("summaries", "ckpt-*", "checkpoint")
  )
  for directory in (".", "input_state/worker-0"):
    kept = list((source / directory).glob(f"ckpt-{step}.*"))
    assert kept, f"{source / directory} no longer keeps ckpt-{step}"
    for path in kept:
      shutil.copy(path, target / directory)
    (target / directory / "checkpoint").write_text(
      f'model_checkpoint_path: "ckpt-{step}"\nall_model_checkpoint_paths: "ckpt-{step}"\n'
    )


def _assert_same_run(uninterrupted, resumed, killed_at, last):
  """The resumed run's per-step losses and final checkpoint are the
  uninterrupted run's: it trained on the same batches."""
  losses = dict(_train_losses(uninterrupted))
  after = _train_losses(resumed)
  assert [s for s, _ in after] == list(range(killed_at + 1, last + 1))
  for step, loss in after:
    assert loss == pytest.approx(losses[step], rel=1e-6, abs=1e-6), (step, losses, after)
  a = tf.train.load_checkpoint(str(uninterrupted / f"ckpt-{last}"))
  b = tf.train.load_checkpoint(str(resumed / f"ckpt-{last}"))
  names = [n for n in a.get_variable_to_shape_map() if n.startswith(("bert/", "head/"))]
  assert len(names) > 20
  for name in names:
    np.testing.assert_allclose(
      b.get_tensor(name), a.get_tensor(name), rtol=1e-5, atol=1e-6, err_msg=name
    )


@pytest.fixture
def two_replicas(monkeypatch, mirrored_strategy):
  """The jobs run in-process on the 2-replica MirroredStrategy."""
  monkeypatch.setattr(training, "make_strategy", lambda name, num_gpus: mirrored_strategy)


@pytest.mark.parametrize("schedule", ["steps", "epochs"])
def test_run_pretraining_resumed_trains_on_the_batches_of_an_uninterrupted_run(
  corpus, tmp_path, two_replicas, schedule
):
  records = _mlm_records(corpus, tmp_path)
  count = json.loads(Path(records + ".manifest.json").read_text())["records"]
  # 8 steps and 2 warm-up steps, given or resolved from the records' count.
  steps = (
    dict(num_train_steps=8, num_warmup_steps=2)
    if schedule == "steps"
    else dict(
      num_train_steps=None,
      num_warmup_steps=None,
      num_train_epochs=7.5 * 16 / count,
      warmup_proportion=0.25,
    )
  )
  common = dict(
    bert_config_file=_tiny_config(corpus, tmp_path / "config.json", dropout=0.0),
    vocab_file=str(corpus / "vocab.txt"),
    input_file=records,
    train_batch_size=16,
    **steps,
    learning_rate=5e-3,
    save_checkpoints_steps=1,
    bucket_width=8,
    do_eval=False,
  )
  run_pretraining.run(_pretraining_config(**common, output_dir=str(tmp_path / "uninterrupted")))
  _killed_after(tmp_path / "uninterrupted", tmp_path / "resumed", 4)
  run_pretraining.run(_pretraining_config(**common, output_dir=str(tmp_path / "resumed")))
  _assert_same_run(tmp_path / "uninterrupted", tmp_path / "resumed", 4, 8)


def test_run_classifier_resumed_trains_on_the_batches_of_an_uninterrupted_run(
  corpus, tmp_path, two_replicas
):
  init = tmp_path / "init"
  run_pretraining.run(
    _pretraining_config(
      bert_config_file=_tiny_config(corpus, tmp_path / "config.json", dropout=0.0),
      vocab_file=str(corpus / "vocab.txt"),
      output_dir=str(init),
      do_eval=False,
    )
  )
  # 2,000 examples x 0.064 epochs / 16 = 8 steps.
  common = dict(
    init_checkpoint=str(init),
    train_file=str(corpus / "train.tsv"),
    label_file=str(corpus / "labels.txt"),
    do_eval=False,
    train_batch_size=16,
    num_train_epochs=0.064,
    save_checkpoints_steps=1,
    bucket_width=8,
  )
  finetuning.run(
    _finetuning_config("classification", **common, output_dir=str(tmp_path / "uninterrupted"))
  )
  _killed_after(tmp_path / "uninterrupted", tmp_path / "resumed", 5)
  finetuning.run(
    _finetuning_config("classification", **common, output_dir=str(tmp_path / "resumed"))
  )
  _assert_same_run(tmp_path / "uninterrupted", tmp_path / "resumed", 5, 8)


def _write_checkpoint_file(directory, *paths):
  """A `checkpoint` file listing `paths` (the first as the latest), with the
  timestamps that make a CheckpointManager delete the oldest."""
  directory.mkdir(exist_ok=True)
  lines = [f'model_checkpoint_path: "{paths[0]}"']
  lines += [f'all_model_checkpoint_paths: "{p}"' for p in paths]
  lines += ["all_model_checkpoint_timestamps: 1000000000.0"] * len(paths)
  lines += ["last_preserved_timestamp: 1.0"]
  (directory / "checkpoint").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_checkpoint_file_pointing_outside_the_model_directory_is_refused(corpus, tmp_path):
  """A crafted `checkpoint` file that names another model's checkpoint: the
  CheckpointManager would restore it, then delete it as an old checkpoint."""
  config = _tiny_config(corpus, tmp_path / "config.json")
  vocab = corpus / "vocab.txt"
  run_pretraining.run(
    _pretraining_config(
      bert_config_file=config, vocab_file=str(vocab), output_dir=str(tmp_path / "x"), do_eval=False
    )
  )
  victim = tmp_path / "x" / "ckpt-0.index"
  assert victim.exists()
  _write_checkpoint_file(tmp_path / "out", "../x/ckpt-0")
  result = run_job(
    "run_pretraining",
    f"--bert_config_file={config}",
    f"--vocab_file={vocab}",
    f"--input_file={_mlm_records(corpus, tmp_path)}",
    "--max_seq_length=64",
    "--max_predictions_per_seq=10",
    "--train_batch_size=8",
    "--do_train",
    "--num_train_steps=6",
    "--num_warmup_steps=0",
    "--save_checkpoints_steps=1",
    f"--output_dir={tmp_path / 'out'}",
    check=False,
  )
  assert result.returncode == 2, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [
    f"error: {tmp_path / 'out'}/checkpoint: lists ../x/ckpt-0, outside the model directory"
  ]
  assert "Traceback" not in result.stderr
  assert victim.exists()
  assert sorted(os.listdir(tmp_path / "out")) == ["checkpoint"]


@pytest.mark.parametrize(
  "listed",
  ["../x/ckpt-1", "ckpt-2/../../x/ckpt-1", "sub/../ckpt-1", "{outside}/ckpt-1", "link/ckpt-1"],
)
@pytest.mark.parametrize("field", ["latest", "older"])
def test_checkpoint_file_paths_outside_or_with_dot_dot_are_refused(tmp_path, listed, field):
  model_dir = tmp_path / "model"
  (tmp_path / "x").mkdir()
  model_dir.mkdir()
  (model_dir / "link").symlink_to(tmp_path / "x")
  listed = listed.format(outside=tmp_path / "x")
  paths = ["ckpt-2", listed] if field == "older" else [listed, "ckpt-2"]
  _write_checkpoint_file(model_dir, *paths)
  with pytest.raises(errors.InputError) as raised:
    training.check_checkpoint_file(str(model_dir))
  assert str(raised.value) == (
    f"{model_dir}/checkpoint: lists {listed}, outside the model directory"
  )


def test_checkpoint_file_paths_inside_are_accepted(tmp_path):
  model_dir = tmp_path / "model"
  _write_checkpoint_file(model_dir, "ckpt-3", f"{model_dir}/ckpt-2", "sub/ckpt-1")
  training.check_checkpoint_file(str(model_dir))
  training.check_checkpoint_file(str(tmp_path / "absent"))  # no directory yet: nothing to check


@pytest.mark.slow
def test_input_position_is_restored_only_into_the_input_it_was_saved_for(corpus, tmp_path, caplog):
  output = tmp_path / "model"
  common = dict(
    bert_config_file=_tiny_config(corpus, tmp_path / "config.json"),
    vocab_file=str(corpus / "vocab.txt"),
    input_file=_mlm_records(corpus, tmp_path),
    output_dir=str(output),
    train_batch_size=16,
    save_checkpoints_steps=2,
    do_eval=False,
  )
  run_pretraining.run(_pretraining_config(**common, num_train_steps=2))
  with caplog.at_level(logging.INFO):
    run_pretraining.run(_pretraining_config(**dict(common, train_batch_size=8), num_train_steps=4))
  assert (
    "The training input differs from the one saved at step 2 (global_batch_size): the "
    "training data start from the beginning"
  ) in caplog.text
  assert tf.train.latest_checkpoint(str(output)).endswith("ckpt-4")
  caplog.clear()
  shutil.rmtree(output / "input_state")
  with caplog.at_level(logging.INFO):
    run_pretraining.run(_pretraining_config(**common, num_train_steps=6))
  assert (
    f"{output}/input_state/worker-0/ckpt-4: no input position saved at step 4 (the "
    "checkpoint was written without one): the training data start from the beginning"
  ) in caplog.text
  caplog.clear()
  with caplog.at_level(logging.INFO):
    run_pretraining.run(_pretraining_config(**common, num_train_steps=8))
  assert (
    f"Resumed the training input at step 6 from {output}/input_state/worker-0/ckpt-6" in caplog.text
  )
  assert sorted(os.listdir(output / "input_state" / "worker-0")) == [
    "checkpoint",
    *[f"ckpt-{s}.{e}" for s in (6, 8) for e in ("data-00000-of-00001", "index")],
  ]
  # The input position's own checkpoint file is checked as the model's is.
  (tmp_path / "x").mkdir()
  _write_checkpoint_file(output / "input_state" / "worker-0", "ckpt-8", "../../../x/ckpt-1")
  with pytest.raises(
    errors.InputError,
    match=r"^"
    + re.escape(
      f"{output}/input_state/worker-0/checkpoint: lists ../../../x/ckpt-1, outside the model "
      "directory"
    )
    + "$",
  ):
    run_pretraining.run(_pretraining_config(**common, num_train_steps=10))
