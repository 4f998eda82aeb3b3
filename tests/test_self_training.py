"""Classic self-training: the sampler (no TensorFlow), the files, run_classifier with it."""

import dataclasses
import json
import math

import numpy as np
import pytest

from bert_pl import self_training


def _select(classes, confidences, per_class, min_confidence=0.0, seed=0):
  sampler = self_training.Sampler(per_class, min_confidence, seed)
  for index, (klass, confidence) in enumerate(zip(classes, confidences)):
    sampler.add(klass, confidence, index)
  return sampler.selected(), sampler


def test_the_n_most_confident_of_each_class_above_the_threshold():
  rng = np.random.default_rng(3)
  sizes = {"a": 40, "b": 7, "c": 25, "d": 5}  # b: fewer than N above 0.3; d: none above it
  classes = list(rng.permutation([k for k, n in sizes.items() for _ in range(n)]))
  confidences = rng.uniform(0.0, 1.0, len(classes)).round(6)
  confidences[[i for i, k in enumerate(classes) if k == "d"]] = 0.2
  selected, sampler = _select(classes, confidences, per_class=10, min_confidence=0.3, seed=5)

  expected = []
  for klass in sizes:  # oracle: sort each class's candidates by confidence
    rows = [i for i, k in enumerate(classes) if k == klass and confidences[i] >= 0.3]
    expected += sorted(rows, key=lambda i: -confidences[i])[:10]
  assert selected == sorted(expected)
  chosen = {k: sum(classes[i] == k for i in selected) for k in sizes}
  available = {
    k: sum(1 for i, c in enumerate(classes) if c == k and confidences[i] >= 0.3) for k in sizes
  }
  assert chosen == {k: min(10, available[k]) for k in sizes}
  assert chosen["a"] == chosen["c"] == 10 and chosen["b"] == available["b"] < 10
  assert chosen["d"] == 0
  assert all(confidences[i] >= 0.3 for i in selected)
  counts = sampler.counts(["e", "a"])  # listed classes first, also without examples
  assert list(counts) == ["e", "a", *[k for k in dict.fromkeys(classes) if k != "a"]]
  assert counts["e"] == {"in_file": 0, "available": 0, "selected": 0}
  assert counts["b"] == {"in_file": 7, "available": available["b"], "selected": available["b"]}
  assert counts["d"] == {"in_file": 5, "available": 0, "selected": 0}


def test_equal_confidences_are_broken_by_the_seed_not_by_position():
  classes = ["x"] * 60 + ["y"] * 60
  confidences = [1.0] * 120
  first, _ = _select(classes, confidences, per_class=8, seed=1)
  again, _ = _select(classes, confidences, per_class=8, seed=1)
  other, _ = _select(classes, confidences, per_class=8, seed=2)
  assert first == again and len(first) == 16
  assert first != other
  assert first[:8] != list(range(8))  # not the head of the file
  assert sum(i < 60 for i in first) == 8

  # Three above a tie of five: the three always, two of the tie, as the seed says.
  confidences = [0.5, 0.9, 0.95, 0.9, 0.99, 0.9, 0.9, 0.1, 0.97, 0.9]
  picks = {seed: _select(["x"] * 10, confidences, per_class=5, seed=seed)[0] for seed in range(8)}
  for seed, selected in picks.items():
    assert {2, 4, 8} <= set(selected) and len(selected) == 5
    assert set(selected) - {2, 4, 8} <= {1, 3, 5, 6, 9}
    assert selected == _select(["x"] * 10, confidences, per_class=5, seed=seed)[0]
  assert len({tuple(s) for s in picks.values()}) > 1

  # Filtering low confidences does not reshuffle the rest: a tie key belongs
  # to an example, not to its rank among the candidates.
  classes = ["x"] * 50
  mixed = [1.0 if i % 3 else 0.2 for i in range(50)]
  assert (
    _select(classes, mixed, per_class=6, seed=4)[0]
    == _select(classes, mixed, per_class=6, min_confidence=0.5, seed=4)[0]
  )


def test_ner_sentences_are_binned_by_their_rarest_entity_type():
  sentences = [
    ["B-PER", "I-PER", "O"],
    ["B-PER"],
    ["O", "B-PER"],
    ["B-PER", "O"],  # PER: 5 sentences
    ["B-LOC", "I-LOC", "O", "B-PER"],  # LOC: 2 sentences, so this one is LOC's
    ["O", "I-LOC"],  # an I- after O starts an entity
    ["O", "O"],
    ["B-ORG", "B-MISC"],  # ORG and MISC: 1 sentence each, a tie: MISC by name
  ]
  frequency = self_training.type_frequency(sentences)
  assert frequency == {"PER": 5, "LOC": 2, "ORG": 1, "MISC": 1}
  assert [self_training.ner_bin(s, frequency) for s in sentences] == [
    "PER",
    "PER",
    "PER",
    "PER",
    "LOC",
    "LOC",
    "O",
    "MISC",
  ]
  assert self_training.ner_classes(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]) == ["O", "PER", "LOC"]


def test_report_and_its_printed_form():
  _, sampler = _select(["a", "a", "b", "a"], [0.9, 0.8, 0.7, 0.1], 1, 0.5, seed=3)
  summary = self_training.report(sampler, ["a", "b", "c"], "p*.tsv", ["p1.tsv"], 100)
  assert summary == {
    "pseudo_label_file": "p*.tsv",
    "files": ["p1.tsv"],
    "pseudo_per_class": 1,
    "pseudo_min_confidence": 0.5,
    "random_seed": 3,
    "labeled_examples": 100,
    "added": 2,
    "training_examples": 102,
    "classes": {
      "a": {"in_file": 3, "available": 2, "selected": 1},
      "b": {"in_file": 1, "available": 1, "selected": 1},
      "c": {"in_file": 0, "available": 0, "selected": 0},
    },
  }
  lines = self_training.describe(summary).splitlines()
  assert lines[0].startswith("self-training: 100 labeled + 2 pseudo-labeled = 102 training")
  assert lines[2].split() == ["a", "3", "2", "1"] and len(lines) == 5


# With TensorFlow: the files, the features, the job.


def _pseudo_file(path, lines, confidences):
  path.write_text("".join(lines), encoding="utf-8")
  (path.parent / (path.name + ".confidence")).write_text("".join(f"{c:.6f}\n" for c in confidences))
  return path


def _encoder(corpus, task="classification", **options):
  from bert_pl import features, input_files, tokenization

  tokenizer = tokenization.BertTokenizer(
    str(corpus / "vocab.txt"), True, options.get("tokenization", "wordpiece")
  )
  labels = input_files.read_labels(
    str(corpus / ("labels.txt" if task == "classification" else "tags.txt"))
  )
  return features.FeatureEncoder(tokenizer, 64, task, labels)


def _config(task="classification", **values):
  """The tests' fine-tuning settings (`test_finetuning`), with an output
  directory the helpers that write nothing do not use."""
  from test_finetuning import _finetuning_config

  return _finetuning_config(task, **{"output_dir": "unused", **values})


@pytest.fixture
def pool(corpus, tmp_path):
  """A pseudo-labeled classification file: lines 200..600 of train.tsv (their
  gold labels, 20 classes) with random confidences; and those confidences."""
  lines = (corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[200:600]
  confidences = np.random.default_rng(0).uniform(0.0, 1.0, len(lines)).round(6)
  return _pseudo_file(tmp_path / "pseudo.tsv", lines, confidences), lines, confidences


def _expected(lines, confidences, per_class, min_confidence):
  """Oracle: line numbers (0-based) of the most confident per label."""
  by_label = {}
  for i, line in enumerate(lines):
    if confidences[i] >= min_confidence:
      by_label.setdefault(line.split("\t")[0], []).append(i)
  return sorted(
    i for rows in by_label.values() for i in sorted(rows, key=lambda i: -confidences[i])[:per_class]
  )


def test_training_set_is_the_labeled_set_then_the_selected_examples(corpus, pool, tmp_path):
  from bert_pl import features, finetuning, input_files

  path, lines, confidences = pool
  encoder = _encoder(corpus)
  f = _config(
    train_file=str(corpus / "train.tsv"),
    pseudo_label_file=str(path),
    pseudo_per_class=6,
    pseudo_min_confidence=0.4,
  )
  train, summary = finetuning.training_set(f, encoder)
  labeled = features.encode_file(str(corpus / "train.tsv"), encoder, input_files.Counts())
  expected = _expected(lines, confidences, 6, 0.4)
  (tmp_path / "selected.tsv").write_text("".join(lines[i] for i in expected), encoding="utf-8")
  selected = features.encode_file(str(tmp_path / "selected.tsv"), encoder, input_files.Counts())
  assert sorted(train) == sorted(labeled) == ["input_ids", "input_mask", "label_ids", "segment_ids"]
  for key in train:
    np.testing.assert_array_equal(train[key], np.concatenate([labeled[key], selected[key]]))
  assert summary["labeled_examples"] == 2000 and summary["added"] == len(expected)
  assert summary["training_examples"] == 2000 + len(expected)
  assert sum(c["in_file"] for c in summary["classes"].values()) == 400
  assert max(c["selected"] for c in summary["classes"].values()) == 6
  assert len(summary["classes"]) == 20


def test_bad_pseudo_labels_name_the_file_and_line(corpus, pool, tmp_path):
  from bert_pl import finetuning, input_files

  path, lines, confidences = pool
  encoder = _encoder(corpus)
  bad = _pseudo_file(
    tmp_path / "bad.tsv", lines[:5] + ["炸鸭\t不是一个类\n"] + lines[5:10], confidences[:11]
  )
  f = _config(train_file=str(corpus / "train.tsv"), pseudo_label_file=str(bad), pseudo_per_class=3)
  with pytest.raises(input_files.InputError) as error:
    finetuning.pseudo_labeled(f, encoder, 2000)
  assert str(error.value) == f"{bad}:6: label '炸鸭' is not in the label file"
  # Pseudo-labels of another model are never skipped.
  with pytest.raises(input_files.InputError, match=f"{bad}:6: "):
    finetuning.pseudo_labeled(dataclasses.replace(f, skip_bad_lines=True), encoder, 2000)

  (tmp_path / "bare.tsv").write_text("".join(lines[:3]), encoding="utf-8")
  f = _config(pseudo_label_file=str(tmp_path / "bare.tsv"), pseudo_per_class=3)
  with pytest.raises(input_files.InputError) as error:
    finetuning.pseudo_labeled(f, encoder, 2000)
  assert str(error.value).startswith(f"{tmp_path / 'bare.tsv.confidence'}: file not found")

  ner = _pseudo_file(
    tmp_path / "ner.txt", ["奶 B-FLAVOR\n茶 I-FLAVOR\n\n", "冰 B-COLOR\n\n"], [0.9, 0.8]
  )
  f = _config("ner", pseudo_label_file=str(ner), pseudo_per_class=3)
  with pytest.raises(input_files.InputError) as error:
    finetuning.pseudo_labeled(f, _encoder(corpus, "ner", tokenization="char"), 10)
  assert str(error.value) == f"{ner}:4: tag 'B-COLOR' is not in the label file"


def test_ner_pseudo_labeled_sentences_per_bin(corpus, tmp_path):
  from bert_pl import finetuning

  tags = (corpus / "tags.txt").read_text(encoding="utf-8").split()
  sentences = (
    [("少糖", ["B-FLAVOR", "I-FLAVOR"])] * 5  # FLAVOR alone: 5 sentences
    + [("大杯少糖", ["B-SIZE", "I-SIZE", "B-FLAVOR", "I-FLAVOR"])] * 3  # SIZE: rarer
    + [("好吃", ["O", "O"])] * 4
  )
  confidences = [0.9, 0.5, 0.8, 0.7, 0.6, 0.95, 0.1, 0.85, 0.3, 0.2, 0.4, 0.99]
  blocks = ["".join(f"{c} {t}\n" for c, t in zip(text, t_)) + "\n" for text, t_ in sentences]
  path = _pseudo_file(tmp_path / "ner_pseudo.txt", blocks, confidences)
  f = _config(
    "ner",
    tokenization="char",
    train_file=str(corpus / "ner_train.txt"),
    pseudo_label_file=str(path),
    pseudo_per_class=2,
    pseudo_min_confidence=0.2,
  )
  encoded, summary = finetuning.pseudo_labeled(f, _encoder(corpus, "ner", tokenization="char"), 300)
  classes = summary["classes"]
  assert list(classes)[0] == "O" and set(classes) == {"O"} | {t[2:] for t in tags if t != "O"}
  assert classes["FLAVOR"] == {"in_file": 5, "available": 5, "selected": 2}
  assert classes["SIZE"] == {"in_file": 3, "available": 2, "selected": 2}
  assert classes["O"] == {"in_file": 4, "available": 4, "selected": 2}
  assert summary["added"] == 6 and len(encoded["input_ids"]) == 6
  # Sentences 0, 2 (FLAVOR 0.9, 0.8), 5, 7 (SIZE 0.95, 0.85), 10, 11 (O 0.4, 0.99), in order.
  lengths = encoded["input_mask"].sum(1) - 2
  np.testing.assert_array_equal(lengths, [2, 2, 4, 4, 2, 2])
  b_size = tags.index("B-SIZE")
  assert [int(row[1] == b_size) for row in encoded["tag_ids"]] == [0, 0, 1, 1, 0, 0]


def _head(source, target, n):
  target.write_text(
    "".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8"
  )
  return target


def test_run_classifier_adds_the_selected_examples(corpus, pool, tmp_path, capsys):
  from test_training import _random_init

  from bert_pl import finetuning

  path, lines, confidences = pool
  init = _random_init(corpus, tmp_path)
  train = _head(corpus / "train.tsv", tmp_path / "train.tsv", 200)
  test = _head(corpus / "test.tsv", tmp_path / "test.tsv", 100)
  capsys.readouterr()
  output = tmp_path / "model"
  results = finetuning.run(
    _config(
      "classification",
      init_checkpoint=str(init),
      train_file=str(train),
      eval_file=str(test),
      label_file=str(corpus / "labels.txt"),
      output_dir=str(output),
      num_train_epochs=1.0,
      pseudo_label_file=str(path),
      pseudo_per_class=12,
      pseudo_min_confidence=0.5,
      random_seed=11,
    )
  )
  printed = capsys.readouterr().out
  added = len(_expected(lines, confidences, 12, 0.5))
  assert 100 < added < 20 * 12  # 20 classes, up to 12 each, 10 on average above 0.5
  assert results["global_step"] == math.ceil((200 + added) / 32)  # epochs over both
  assert f"self-training: 200 labeled + {added} pseudo-labeled = {200 + added} training" in printed
  assert f"train {train}: read 200, written 200," in printed
  assert f"pseudo-labeled {path}: read 400, written {added}," in printed
  assert f"eval {test}: read 100, written 100," in printed
  assert results["num_examples"] == 100  # the eval set is not mixed
  report = json.loads((output / finetuning.SELF_TRAINING_FILE).read_text(encoding="utf-8"))
  assert report["added"] == added and report["training_examples"] == 200 + added
  assert report["random_seed"] == 11 and report["pseudo_per_class"] == 12
  assert report["pseudo_min_confidence"] == 0.5 and report["files"] == [str(path)]
  classes = report["classes"].values()
  assert sum(c["selected"] for c in classes) == added
  assert all(c["selected"] == min(12, c["available"]) for c in classes)
  assert {c["selected"] for c in classes} >= {12} and min(c["selected"] for c in classes) < 12


def test_self_training_flags_are_refused_alone(tmp_path):
  from conftest import run_job

  result = run_job(
    "run_classifier", "--do_train", f"--output_dir={tmp_path}", "--pseudo_per_class=5", check=False
  )
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert result.returncode == 2 and errors == [
    "error: classic self-training needs both --pseudo_label_file and --pseudo_per_class > 0; "
    "got --pseudo_label_file=None --pseudo_per_class=5"
  ]
  from bert_pl import finetuning

  for values, message in [
    (dict(pseudo_label_file="p.tsv"), "needs both"),
    (dict(pseudo_per_class=-1), "is negative"),
    (dict(pseudo_min_confidence=0.5), "needs --pseudo_label_file"),
    (
      dict(pseudo_label_file="p.tsv", pseudo_per_class=2, pseudo_min_confidence=1.5),
      r"outside \[0, 1\]",
    ),
    (dict(pseudo_label_file="p.tsv", pseudo_per_class=2, do_train=False), "needs --do_train"),
  ]:
    with pytest.raises(ValueError, match=message):
      finetuning.check_self_training_flags(_config(**values))
