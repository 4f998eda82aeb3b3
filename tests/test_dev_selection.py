"""Choosing the epoch on dev inside one fine-tuning, and the eval predictions written beside
the eval results: checked against evaluations of each epoch's own checkpoint and against
scores recomputed from the predictions files."""

import json
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_finetuning import _finetuning_config
from test_training import _random_init

from bert_pl import dev_selection, errors, finetuning, pipeline_report, training

from conftest import kill_when, run_job

# 320 training examples, 32 a step: an epoch is 10 steps.
EPOCHS, STEPS_PER_EPOCH = 4, 10


@pytest.fixture(scope="module")
def data(corpus, tmp_path_factory):
  """A tiny random-initial model (no dropout: a resumed run is exact), and
  train / dev / test files cut from the sample corpus."""
  work = tmp_path_factory.mktemp("dev")
  init = _random_init(corpus, work, dropout=0.0)
  train = (corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
  test = (corpus / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
  for name, lines in (("train", train[:320]), ("test", test[150:])):
    (work / f"{name}.tsv").write_text("".join(lines), encoding="utf-8")
  # Dev: training examples under another label, so dev accuracy falls as the model
  # learns and the best epoch is an early one (the kept model is not the last).
  labels = (corpus / "labels.txt").read_text(encoding="utf-8").split()
  other = {label: labels[(i + 1) % len(labels)] for i, label in enumerate(labels)}
  dev = [other[line.split("\t", 1)[0]] + "\t" + line.split("\t", 1)[1] for line in train[:150]]
  (work / "dev.tsv").write_text("".join(dev), encoding="utf-8")
  return work, init


def _config(corpus, data, output_dir, **values):
  work, init = data
  return _finetuning_config(
    "classification",
    **{
      "init_checkpoint": str(init),
      "train_file": str(work / "train.tsv"),
      "eval_file": str(work / "test.tsv"),
      "label_file": str(corpus / "labels.txt"),
      "num_train_epochs": float(EPOCHS),
      "learning_rate": 3e-3,
      "save_checkpoints_steps": STEPS_PER_EPOCH,
      "output_dir": str(output_dir),
      **values,
    },
  )


def _at_step(model_dir, step, target):
  """A copy of `model_dir` whose latest checkpoint is the one of `step`."""
  shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("checkpoint", "dev_*"))
  (target / "checkpoint").write_text(f'model_checkpoint_path: "ckpt-{step}"\n')
  return target


def _weights(path):
  """The model's variables in a checkpoint (not the optimizer's state)."""
  reader = tf.train.load_checkpoint(str(path))
  return {
    n: reader.get_tensor(n)
    for n in reader.get_variable_to_shape_map()
    if n.startswith(("bert/", "head/")) and "OPTIMIZER_SLOT" not in n
  }


def test_kept_model_is_the_best_epoch_of_a_plain_run_and_dev_metrics_are_its_checkpoints(
  corpus, data, tmp_path
):
  work = data[0]
  chosen = tmp_path / "chosen"
  results = finetuning.run(
    _config(corpus, data, chosen, dev_file=str(work / "dev.tsv"), keep_best_on_dev=True)
  )
  plain = tmp_path / "plain"
  finetuning.run(_config(corpus, data, plain, do_eval=False))  # the same seed, no dev
  record = json.loads((chosen / dev_selection.DEV_RESULTS_FILE).read_text())
  ends = [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
  assert [(e["epoch"], e["step"]) for e in record["epochs"]] == list(zip(range(1, 5), ends))
  accuracies = [e["accuracy"] for e in record["epochs"]]
  best = accuracies.index(max(accuracies)) + 1  # ties: the first
  assert best < EPOCHS, accuracies
  assert record["best_epoch"] == best and record["best_step"] == ends[best - 1]
  # Each recorded dev metric is an evaluation of that epoch's checkpoint of the plain run.
  for epoch, step in enumerate(ends, 1):
    copy = _at_step(plain, step, tmp_path / f"epoch-{epoch}")
    again = finetuning.run(
      _config(corpus, data, copy, do_train=False, eval_file=str(work / "dev.tsv"))
    )
    assert again["accuracy"] == pytest.approx(accuracies[epoch - 1], abs=1e-9), epoch
  # The kept model is the plain run's checkpoint of the chosen epoch, and the test
  # metric is that model's.
  kept = _weights(tf.train.latest_checkpoint(str(chosen)))
  reference = _weights(plain / f"ckpt-{ends[best - 1]}")
  assert len(kept) > 20 and kept.keys() == reference.keys()
  for name in kept:
    np.testing.assert_allclose(kept[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)
  reference_test = finetuning.run(_config(corpus, data, tmp_path / f"epoch-{best}", do_train=False))
  assert results["accuracy"] == pytest.approx(reference_test["accuracy"], abs=1e-9)
  saved = pipeline_report.read_eval_results(str(chosen / "eval_results.txt"))
  assert saved["dev_best_epoch"] == best
  assert [saved[f"dev_accuracy_epoch_{e}"] for e in range(1, 5)] == pytest.approx(accuracies)
  # Recomputed from the predictions file: the same test accuracy.
  lines = (chosen / "eval_predictions.tsv").read_text(encoding="utf-8").splitlines()
  test = (work / "test.tsv").read_text(encoding="utf-8").splitlines()
  assert [line.split("\t", 2)[::2] for line in lines] == [t.split("\t", 1) for t in test]
  correct = sum(line.split("\t")[0] == line.split("\t")[1] for line in lines)
  assert saved["accuracy"] == pytest.approx(correct / len(test))
  # The drivers' clean-up removes the kept weights with the checkpoints.
  assert (chosen / dev_selection.BEST_DIR).is_dir()
  training.remove_checkpoints(str(chosen))
  assert not (chosen / dev_selection.BEST_DIR).exists()


def test_without_keep_best_the_last_epoch_stays_the_model(corpus, data, tmp_path):
  work = data[0]
  output = tmp_path / "model"
  finetuning.run(_config(corpus, data, output, dev_file=str(work / "dev.tsv"), do_eval=False))
  record = json.loads((output / dev_selection.DEV_RESULTS_FILE).read_text())
  assert len(record["epochs"]) == EPOCHS and record["keep_best"] is False
  assert tf.train.latest_checkpoint(str(output)).endswith(f"ckpt-{EPOCHS * STEPS_PER_EPOCH}")
  assert not (output / dev_selection.BEST_DIR).exists()


def test_dev_results_of_an_earlier_run_without_checkpoints_are_not_reused(corpus, data, tmp_path):
  """A new model in a directory that holds an earlier run's dev_results.json
  (its checkpoints removed) evaluates every epoch again."""
  work = data[0]
  output = tmp_path / "model"
  output.mkdir()
  stale = [{"epoch": e, "step": e * STEPS_PER_EPOCH, "accuracy": 9.0} for e in range(1, 5)]
  (output / dev_selection.DEV_RESULTS_FILE).write_text(json.dumps({"epochs": stale}))
  finetuning.run(_config(corpus, data, output, dev_file=str(work / "dev.tsv"), do_eval=False))
  record = json.loads((output / dev_selection.DEV_RESULTS_FILE).read_text())
  assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3, 4]
  assert all(0 <= e["accuracy"] <= 1 for e in record["epochs"])


@pytest.mark.parametrize(
  "values, message",
  [
    (dict(keep_best_on_dev=True), "--keep_best_on_dev needs --dev_file"),
    (dict(dev_file="dev.tsv", do_train=False), "--dev_file needs --do_train"),
  ],
)
def test_dev_flags_that_do_not_go_together_are_refused(corpus, data, tmp_path, values, message):
  with pytest.raises(errors.InputError, match=f"^{message}"):
    finetuning.run(_config(corpus, data, tmp_path / "model", **values))


def test_killed_run_resumed_chooses_the_epoch_of_an_uninterrupted_run(corpus, data, tmp_path):
  work, init = data

  def command(output):
    return [
      "--do_train",
      f"--init_checkpoint={init}",
      f"--train_file={work / 'train.tsv'}",
      f"--dev_file={work / 'dev.tsv'}",
      "--keep_best_on_dev",
      f"--label_file={corpus / 'labels.txt'}",
      "--max_seq_length=64",
      f"--num_train_epochs={EPOCHS}",
      "--learning_rate=3e-3",
      "--random_seed=1",
      f"--save_checkpoints_steps={STEPS_PER_EPOCH}",
      f"--output_dir={output}",
    ]

  run_job("run_classifier", *command(tmp_path / "uninterrupted"))
  resumed = tmp_path / "resumed"
  record_file = resumed / dev_selection.DEV_RESULTS_FILE

  def two_epochs_recorded():
    try:
      return len(json.loads(record_file.read_text())["epochs"]) >= 2
    except (OSError, ValueError):
      return False

  kill_when(
    [sys.executable, "-m", "bert_pl.run_classifier", *command(resumed)],
    two_epochs_recorded,
  )
  assert len(json.loads(record_file.read_text())["epochs"]) < EPOCHS
  run_job("run_classifier", *command(resumed))
  want = json.loads((tmp_path / "uninterrupted" / dev_selection.DEV_RESULTS_FILE).read_text())
  got = json.loads(record_file.read_text())
  assert got["best_epoch"] == want["best_epoch"]
  assert [e["accuracy"] for e in got["epochs"]] == pytest.approx(
    [e["accuracy"] for e in want["epochs"]], abs=1e-9
  )
  a = _weights(tf.train.latest_checkpoint(str(tmp_path / "uninterrupted")))
  b = _weights(tf.train.latest_checkpoint(str(resumed)))
  for name in a:
    np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)


def _entities(tags):
  """(type, start, end) of the BIO entities in one sentence's tags, as conlleval counts them:
  an entity starts at B-, or at I- after O or another type."""
  found, start, kind = set(), None, None
  for i, tag in enumerate(tags + ["O"]):
    prefix, _, this = tag.partition("-")
    if start is not None and (prefix != "I" or this != kind):
      found.add((kind, start, i))
      start = None
    if prefix == "B" or (prefix == "I" and start is None):
      start, kind = i, this
  return found


def test_ner_eval_predictions_give_back_the_entity_f1(corpus, data, tmp_path):
  work, init = data
  output = tmp_path / "ner"
  results = finetuning.run(
    _finetuning_config(
      "ner",
      init_checkpoint=str(init),
      train_file=str(corpus / "ner_train.txt"),
      eval_file=str(corpus / "ner_test.txt"),
      label_file=str(corpus / "tags.txt"),
      num_train_epochs=3.0,
      output_dir=str(output),
    )
  )
  sentences = (output / "eval_predictions.txt").read_text(encoding="utf-8").split("\n\n")
  rows = [[line.split(" ") for line in s.splitlines()] for s in sentences if s.strip()]
  gold_file = [
    [line.split()[0] for line in s.splitlines()]
    for s in (corpus / "ner_test.txt").read_text(encoding="utf-8").split("\n\n")
    if s.strip()
  ]
  assert [[r[0] for r in sentence] for sentence in rows] == gold_file
  gold = predicted = correct = 0
  for sentence in rows:
    g = _entities([r[1] for r in sentence])
    p = _entities([r[2] for r in sentence])
    gold, predicted, correct = gold + len(g), predicted + len(p), correct + len(g & p)
  assert (gold, predicted, correct) == (
    results["gold_entities"],
    results["predicted_entities"],
    results["correct_entities"],
  )
  assert correct > 0
  f1 = 2 * correct / (gold + predicted)
  assert results["f1"] == pytest.approx(f1)
