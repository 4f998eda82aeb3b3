"""run_classifier / run_ner: steps 1 -> 2 -> (3) -> 4 -> 5 on the sample corpus."""

import json

import numpy as np
import pytest
from test_training import _pretraining_config, _tiny_config

from bert_pl import (
  create_pretraining_data,
  evaluation,
  features,
  finetuning,
  input_files,
  job_config,
  run_pretraining,
)
from bert_pl.model_dir import load_finetuned


def _finetuning_config(task, **values):
  """The tests' run_classifier / run_ner (`task`): a tiny, quick, seeded
  run at max_seq_length 64 (every setting given), training and evaluating."""
  return finetuning.FinetuningConfig(
    task=task,
    **{
      "do_lower_case": True,
      "tokenization": "wordpiece",
      "max_seq_length": 64,
      "field_join": "sep",
      "do_train": True,
      "do_eval": True,
      "learning_rate": 5e-3,
      "num_train_epochs": 4.0,
      "random_seed": 1,
      **values,
    },
  )


@pytest.fixture(scope="module")
def model_a(corpus, tmp_path_factory):
  """Step 1: a tiny domain-pre-trained model directory (MLM only)."""
  work = tmp_path_factory.mktemp("step1")
  records = str(work / "pool.tfrecord")
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      f"{corpus}/unlabeled.txt,{corpus}/ner_unlabeled.txt",
      records,
      str(corpus / "vocab.txt"),
      max_seq_length=64,
      max_predictions_per_seq=10,
    )
  )
  run_pretraining.run(
    _pretraining_config(
      bert_config_file=_tiny_config(corpus, work / "config.json"),
      vocab_file=str(corpus / "vocab.txt"),
      input_file=records,
      output_dir=str(work / "model_a"),
      num_train_steps=200,
      learning_rate=5e-3,
      do_eval=False,
    )
  )
  return work / "model_a"


def test_classifier_from_model_a_then_pseudo_labels_feed_step_4_and_5(corpus, model_a, tmp_path):
  pool = tmp_path / "pool.txt"
  pool.write_text(
    "".join((corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:300]),
    encoding="utf-8",
  )
  model_b = tmp_path / "model_b"
  results = finetuning.run(
    _finetuning_config(
      "classification",
      init_checkpoint=str(model_a),
      train_file=str(corpus / "train.tsv"),
      eval_file=str(corpus / "test.tsv"),
      predict_file=str(pool),
      output_dir=str(model_b),
      do_predict=True,
    )
  )
  print("\nModel-B", results)
  # 20 classes (chance 0.05); measured 0.948 on the 500 test examples.
  assert results["accuracy"] > 0.8 and results["macro_f1"] > 0.75
  assert results["global_step"] == 250  # 2000 examples x 4 epochs / 32
  info = json.loads((model_b / "task.json").read_text())
  assert info["task"] == "classification" and len(info["labels"]) == 20
  assert (model_b / "eval_results.txt").read_text().startswith("accuracy = ")

  # Step 3 output: the labeled format plus confidences, read back by the step-4 job.
  predicted = model_b / "predictions.tsv"
  examples = list(
    input_files.read_classification(str(predicted), input_files.Counts(), info["labels"])
  )
  assert len(examples) == 300
  confidences = np.array([e.confidence for e in examples])
  assert ((confidences > 1 / 20) & (confidences <= 1)).all()
  records = str(tmp_path / "pseudo.tfrecord")
  (tmp_path / "labels.txt").write_text("".join(label + "\n" for label in info["labels"]))
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      str(predicted),
      records,
      str(corpus / "vocab.txt"),
      max_seq_length=64,
      max_predictions_per_seq=10,
      task="classification",
      label_file=str(tmp_path / "labels.txt"),
    )
  )
  model_c = tmp_path / "model_c"
  step4 = run_pretraining.run(
    _pretraining_config(
      init_checkpoint=str(model_a),
      input_file=records,
      output_dir=str(model_c),
      task_loss="classification",
      label_file=None,
      num_labels=20,
      num_train_steps=30,
      learning_rate=5e-3,
    )
  )
  assert step4["global_step"] == 30 and "task" in step4
  # Step 5 from Model-C.
  final = finetuning.run(
    _finetuning_config(
      "classification",
      init_checkpoint=str(model_c),
      train_file=str(corpus / "train.tsv"),
      eval_file=str(corpus / "test.tsv"),
      output_dir=str(tmp_path / "model_d"),
      label_file=str(corpus / "labels.txt"),
    )
  )
  print("Model-D", final)
  # Fine-tuned as long as Model-B (4 epochs): measured 0.95. After 2 epochs
  # it was 0.79 or 0.55 depending on step 4's masking seed: too fragile.
  assert final["accuracy"] > 0.7


def test_ner_from_model_a_and_predictions(corpus, model_a, tmp_path):
  pool = tmp_path / "ner_pool.txt"
  pool.write_text(
    "".join(
      (corpus / "ner_unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:100]
    ),
    encoding="utf-8",
  )
  model_b = tmp_path / "ner_b"
  results = finetuning.run(
    _finetuning_config(
      "ner",
      init_checkpoint=str(model_a),
      train_file=str(corpus / "ner_train.txt"),
      eval_file=str(corpus / "ner_test.txt"),
      predict_file=str(pool),
      output_dir=str(model_b),
      tokenization="char",
      label_file=str(corpus / "tags.txt"),
      num_train_epochs=3.0,
      do_predict=True,
    )
  )
  print("\nNER Model-B", {k: round(v, 3) for k, v in results.items()})
  assert results["f1"] > 0.6  # measured 0.746 (entity level, 300 test sentences)
  assert "FLAVOR_f1" in results and results["num_sentences"] == 300
  sentences = list(input_files.read_conll(str(model_b / "predictions.txt"), input_files.Counts()))
  assert len(sentences) == 100
  texts = pool.read_text(encoding="utf-8").splitlines()
  assert ["".join(s.fields) for s in sentences] == [t.replace(" ", "") for t in texts]
  assert all(0 < s.confidence <= 1 for s in sentences)


def test_char_tags_from_tokens_and_metrics():
  assert features.char_tags(
    ["B-X", "O", "B-Y", "B-Z"], [(0, 2), (3, 4), (4, 6), (-1, -1)], len("ab cde")
  ) == ["B-X", "I-X", "O", "O", "B-Y", "I-Y"]
  scores = evaluation.ner_metrics([["B-X", "I-X", "O", "B-Y"]], [["B-X", "I-X", "O", "O"]])
  assert scores["precision"] == 1.0 and scores["recall"] == 0.5
  assert scores["X_f1"] == 1.0 and scores["Y_f1"] == 0.0
  metrics = evaluation.classification_metrics([0, 0, 1, 2], [0, 1, 1, 2], 3)
  assert metrics["accuracy"] == 0.75
  assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_same_seed_same_model(corpus, model_a, tmp_path):
  """--random_seed makes fine-tuning reproducible (initialisation, dropout,
  shuffling); another seed gives another model."""

  def train(name, seed):
    finetuning.run(
      _finetuning_config(
        "classification",
        init_checkpoint=str(model_a),
        train_file=str(corpus / "train.tsv"),
        output_dir=str(tmp_path / name),
        num_train_epochs=0.5,
        do_eval=False,
        random_seed=seed,
      )
    )
    model, _, _ = load_finetuned(str(tmp_path / name))
    return [v.numpy() for v in model.trainable_variables]

  first, again, other = train("a", 7), train("b", 7), train("c", 8)
  for x, y in zip(first, again):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, z) for x, z in zip(first, other))
  # Without --random_seed (its default): reproducible too.
  default = job_config.field_defaults(finetuning.FinetuningConfig)["random_seed"]
  for x, y in zip(train("d", default), train("e", default)):
    np.testing.assert_array_equal(x, y)
