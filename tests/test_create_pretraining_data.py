"""create_pretraining_data: schema, masking statistics, determinism, labels, errors."""

import hashlib
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_pl import (
  features,
  input_files,
  input_pipeline,
  prediction,
  tag_schemes,
  tfrecords,
  tokenization,
)
from bert_pl.create_pretraining_data import CreatePretrainingDataConfig, run
from bert_pl.errors import InputError
from data_prep.common import write_parts

from conftest import kill_when, run_job

MAX_SEQ, MAX_PRED = 64, 10


def _original_spec(task):
  """google-research/bert run_pretraining.py's name_to_features, plus the labels."""
  spec = {
    "input_ids": tf.io.FixedLenFeature([MAX_SEQ], tf.int64),
    "input_mask": tf.io.FixedLenFeature([MAX_SEQ], tf.int64),
    "segment_ids": tf.io.FixedLenFeature([MAX_SEQ], tf.int64),
    "masked_lm_positions": tf.io.FixedLenFeature([MAX_PRED], tf.int64),
    "masked_lm_ids": tf.io.FixedLenFeature([MAX_PRED], tf.int64),
    "masked_lm_weights": tf.io.FixedLenFeature([MAX_PRED], tf.float32),
    "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
  }
  if task == "classification":
    spec["label_ids"] = tf.io.FixedLenFeature([1], tf.int64)
  if task == "ner":
    spec["tag_ids"] = tf.io.FixedLenFeature([MAX_SEQ], tf.int64)
  return spec


def _read(paths, task="none", extra=None):
  spec = dict(_original_spec(task), **(extra or {}))
  records = list(tf.data.TFRecordDataset(paths).as_numpy_iterator())
  parsed = tf.io.parse_example(records, spec)
  return {k: v.numpy() for k, v in parsed.items()}


def _config(corpus, input_file, output_file, **changes):
  values = dict(
    input_file=str(input_file),
    output_file=str(output_file),
    vocab_file=str(corpus / "vocab.txt"),
    max_seq_length=MAX_SEQ,
    max_predictions_per_seq=MAX_PRED,
  )
  values.update(changes)
  return CreatePretrainingDataConfig(**values)


def _run(corpus, input_file, output_file, **changes):
  return run(_config(corpus, input_file, output_file, **changes))


def test_masking_statistics_over_12000_examples(corpus, tmp_path):
  out = str(tmp_path / "pretrain.tfrecord")
  counts = _run(corpus, corpus / "unlabeled.txt", out)
  assert (counts.read, counts.written, counts.skipped) == (12000, 12000, 0)
  f = _read([out])
  original = f["input_ids"].copy()
  tok = tokenization.BertTokenizer(str(corpus / "vocab.txt"))
  rows, cols = np.nonzero(f["masked_lm_weights"])
  positions = f["masked_lm_positions"][rows, cols]
  original[rows, positions] = f["masked_lm_ids"][rows, cols]  # undo the masking
  special = np.isin(original, [tok.cls_id, tok.sep_id, tok.pad_id])
  real = (f["input_mask"] == 1) & ~special
  selected = f["masked_lm_weights"].sum()
  assert selected / real.sum() == pytest.approx(0.15, abs=0.01)
  assert not special[rows, positions].any()  # [CLS]/[SEP]/[PAD] never selected
  assert (f["input_mask"][rows, positions] == 1).all()
  assert set(np.unique(f["masked_lm_weights"])) == {0.0, 1.0}
  per_row = f["masked_lm_weights"].sum(1)
  assert per_row.max() <= MAX_PRED and per_row.min() >= 1
  for row in range(len(per_row)):  # sorted, then padding with zeros
    k = int(per_row[row])
    assert (np.diff(f["masked_lm_positions"][row, :k]) > 0).all()
    assert not f["masked_lm_positions"][row, k:].any() and not f["masked_lm_ids"][row, k:].any()
  now = f["input_ids"][rows, positions]
  was = f["masked_lm_ids"][rows, cols]
  masked = (now == tok.mask_id).mean()
  kept = (now == was).mean()
  assert masked == pytest.approx(0.8, abs=0.02)
  assert kept == pytest.approx(0.1, abs=0.02)
  assert 1 - masked - kept == pytest.approx(0.1, abs=0.02)
  assert not f["next_sentence_labels"].any()
  print(
    f"\nselected {selected / real.sum():.4f} of real tokens; "
    f"[MASK] {masked:.4f} / kept {kept:.4f} / random {1 - masked - kept:.4f}"
  )


# Whole words from the segmenter (loaded in each worker), in n-grams.
SEGMENTED = ["--do_whole_word_mask", "--segmenter=rjieba", "--ngram_mask_max=3"]


def _masking_flags(masking):
  if masking:
    pytest.importorskip("rjieba", reason="the segment extra is not installed")
  return masking


@pytest.mark.parametrize("masking", [[], SEGMENTED], ids=["default", "segmented"])
def test_byte_identical_for_same_seed_and_any_worker_count(corpus, tmp_path, masking):
  common = [
    *_masking_flags(masking),
    "--input_file=" + str(corpus / "unlabeled.txt"),
    "--vocab_file=" + str(corpus / "vocab.txt"),
    f"--max_seq_length={MAX_SEQ}",
    f"--max_predictions_per_seq={MAX_PRED}",
    "--dupe_factor=2",
    "--num_output_shards=3",
    "--random_seed=7",
  ]
  outputs = {}
  for name, workers in (("a", 1), ("c", 2)):
    result = run_job(
      "create_pretraining_data",
      *common,
      f"--num_workers={workers}",
      f"--output_file={tmp_path / name / 'data.tfrecord'}",
    )
    assert "read 12000, written 24000, skipped 0" in result.stdout
    outputs[name] = [
      (tmp_path / name / f"data.tfrecord-0000{i}-of-00003").read_bytes() for i in range(3)
    ]
  assert outputs["a"] == outputs["c"]
  other_seed = _read([str(tmp_path / "a" / "data.tfrecord-00000-of-00003")])
  # The two re-maskings of one example differ (dupes alternate between shards).
  a = _read([str(tmp_path / "a" / f"data.tfrecord-0000{i}-of-00003") for i in range(3)])
  assert not np.array_equal(
    a["masked_lm_positions"][0::2][:100], a["masked_lm_positions"][1::2][:100]
  )
  assert other_seed["input_ids"].shape == (8000, MAX_SEQ)


def test_classification_labels_and_confidences(corpus, tmp_path):
  pseudo = tmp_path / "pseudo.tsv"
  lines = (corpus / "train.tsv").read_text(encoding="utf-8").splitlines()[:50]
  pseudo.write_text("\n".join(lines) + "\n", encoding="utf-8")
  (tmp_path / "pseudo.tsv.confidence").write_text(
    "".join(f"{0.5 + i / 100:.2f}\n" for i in range(50))
  )
  labels = input_files.read_labels(str(corpus / "labels.txt"))
  out = str(tmp_path / "cls.tfrecord")
  _run(corpus, pseudo, out, task="classification", label_file=str(corpus / "labels.txt"))
  f = _read([out], "classification", {"label_weights": tf.io.FixedLenFeature([1], tf.float32)})
  assert f["label_ids"][:, 0].tolist() == [labels.index(s.split("\t")[0]) for s in lines]
  np.testing.assert_allclose(f["label_weights"][:, 0], [0.5 + i / 100 for i in range(50)])
  # Fields joined with [SEP]: three fields -> three [SEP], type ids 0 then 1.
  tok = tokenization.BertTokenizer(str(corpus / "vocab.txt"))
  assert ((f["input_ids"] == tok.sep_id).sum(1) == 3).all()
  first_sep = np.argmax(f["input_ids"] == tok.sep_id, axis=1)
  for row in range(50):
    assert f["segment_ids"][row, : first_sep[row] + 1].max() == 0
    assert f["segment_ids"][row, first_sep[row] + 1] == 1


def _conll(sentences, path):
  path.write_text(
    "\n\n".join("\n".join(f"{t} {g}" for t, g in s) for s in sentences) + "\n", encoding="utf-8"
  )


def _char_entities(tokens, bio_tags):
  text, spans = features.join_conll_tokens(tokens)
  per_char = features.char_tags(bio_tags, spans, len(text))
  return text, tag_schemes.entities(per_char)


@pytest.mark.parametrize("scheme", ["bio", "iob1", "bmes"])
def test_ner_tags_decode_to_input_entities_char_mode(corpus, tmp_path, scheme):
  bio_sentences = []
  for block in (corpus / "ner_train.txt").read_text(encoding="utf-8").strip().split("\n\n")[:200]:
    bio_sentences.append([tuple(line.split(" ")) for line in block.splitlines()])
  converted = []
  for sentence in bio_sentences:
    tags = [g for _, g in sentence]
    if scheme == "iob1":
      out = [
        ("I" + g[1:]) if g.startswith("B-") and (i == 0 or tags[i - 1][2:] != g[2:]) else g
        for i, g in enumerate(tags)
      ]
    elif scheme == "bmes":
      ents = tag_schemes.entities(tags)
      out = ["O"] * len(tags)
      for kind, s, e in ents:
        if e - s == 1:
          out[s] = f"S-{kind}"
        else:
          out[s], out[e - 1] = f"B-{kind}", f"E-{kind}"
          for i in range(s + 1, e - 1):
            out[i] = f"M-{kind}"
    else:
      out = tags
    assert tag_schemes.to_bio(out, scheme) == tags
    converted.append([(t, g) for (t, _), g in zip(sentence, out)])
  _conll(converted, tmp_path / "ner.txt")
  tags_list = tuple(input_files.read_labels(str(corpus / "tags.txt")))
  out_file = str(tmp_path / "ner.tfrecord")
  _run(
    corpus,
    tmp_path / "ner.txt",
    out_file,
    task="ner",
    label_file=str(corpus / "tags.txt"),
    tokenization="char",
    tag_scheme=scheme,
  )
  f = _read([out_file], "ner")
  total = 0
  for row, sentence in enumerate(bio_sentences):
    tokens = [t for t, _ in sentence]
    text, expected = _char_entities(tokens, [g for _, g in sentence])
    n = int(f["input_mask"][row].sum()) - 2
    assert n == len(text)  # one token per character
    tag_ids = f["tag_ids"][row, 1 : 1 + n]
    decoded = features.decode_entities(tag_ids, list(range(n)), list(range(1, n + 1)), tags_list)
    assert decoded == [(k, s, e) for k, s, e in expected]
    assert f["tag_ids"][row, 0] == f["tag_ids"][row, n + 1] == tags_list.index("O")
    total += len(expected)
  assert total > 200


MIXED_LABELS = ("O", "B-PRODUCT", "I-PRODUCT", "B-LOC", "I-LOC", "B-X", "I-X")


def _mixed_vocab(corpus, tmp_path):
  """The corpus vocabulary plus WordPiece pieces of a few English words."""
  vocab = tmp_path / "vocab.txt"
  base = (corpus / "vocab.txt").read_text(encoding="utf-8").splitlines()
  added = [
    t
    for t in ["iphone", "##13", "pro", "max", "##x", "我", "买", "了", "在", "北", "京"]
    if t not in base
  ]
  vocab.write_text("\n".join(base + added) + "\n", encoding="utf-8")
  (tmp_path / "mixed_tags.txt").write_text("".join(t + "\n" for t in MIXED_LABELS))
  return vocab


def test_ner_wordpiece_mode_on_mixed_chinese_english(corpus, tmp_path):
  vocab = _mixed_vocab(corpus, tmp_path)
  sentence = [
    ("我", "O"),
    ("买", "O"),
    ("了", "O"),
    ("iPhone13", "B-PRODUCT"),
    ("Pro", "I-PRODUCT"),
    ("Max", "I-PRODUCT"),
    ("在", "O"),
    ("北", "B-LOC"),
    ("京", "I-LOC"),
    ("maxx", "B-X"),
  ]
  _conll([sentence], tmp_path / "mixed.txt")
  labels = MIXED_LABELS
  tok = tokenization.BertTokenizer(str(vocab))
  encoder = features.FeatureEncoder(tok, MAX_SEQ, "ner", labels)
  example = next(input_files.read_conll(str(tmp_path / "mixed.txt"), input_files.Counts()))
  encoded, _ = encoder.encode([example])
  n = int(encoded["input_mask"][0].sum()) - 2
  pieces = tok.convert_ids_to_tokens(encoded["input_ids"][0, 1 : 1 + n])
  tags = [labels[i] for i in encoded["tag_ids"][0, 1 : 1 + n]]
  assert list(zip(pieces, tags)) == [
    ("我", "O"),
    ("买", "O"),
    ("了", "O"),
    ("iphone", "B-PRODUCT"),
    ("##13", "I-PRODUCT"),
    ("pro", "I-PRODUCT"),
    ("max", "I-PRODUCT"),
    ("在", "O"),
    ("北", "B-LOC"),
    ("京", "I-LOC"),
    ("max", "B-X"),
    ("##x", "I-X"),
  ]
  text, _ = features.join_conll_tokens([t for t, _ in sentence])
  tokens = tok.tokenize_with_offsets(tf.constant([text]))
  entities = features.decode_entities(
    encoded["tag_ids"][0, 1 : 1 + n], tokens.starts.to_list()[0], tokens.ends.to_list()[0], labels
  )
  assert [(k, text[s:e]) for k, s, e in entities] == [
    ("PRODUCT", "iPhone13 Pro Max"),
    ("LOC", "北 京"),
    ("X", "maxx"),
  ]
  out = str(tmp_path / "mixed.tfrecord")
  _run(
    corpus,
    tmp_path / "mixed.txt",
    out,
    vocab_file=str(vocab),
    task="ner",
    label_file=str(tmp_path / "mixed_tags.txt"),
  )
  np.testing.assert_array_equal(_read([out], "ner")["tag_ids"], encoded["tag_ids"])


def test_ner_tag_logits_follow_wordpiece_tokens(corpus, tmp_path):
  """Step 3 writes a row per character (a token's row on all its characters);
  step 4 gives each token the row of its first character: every WordPiece
  token, continuations included, gets back its own emission row."""
  vocab = _mixed_vocab(corpus, tmp_path)
  text = "我买了iPhone13在北京maxx"
  tok = tokenization.BertTokenizer(str(vocab))
  encoded, _ = features.FeatureEncoder(tok, MAX_SEQ, "none", field_join="concat").encode(
    [input_files.Example("-", [text])]
  )
  n = int(encoded["input_mask"][0].sum())
  assert tok.convert_ids_to_tokens(encoded["input_ids"][0, 4:6]) == ["iphone", "##13"]
  logits = np.random.default_rng(0).normal(size=[1, MAX_SEQ, 7]).astype(np.float32)
  pseudo = tmp_path / "pseudo.txt"
  pseudo.write_text(
    "".join(
      prediction.ner_blocks(
        [text], encoded["starts"], encoded["ends"], np.zeros([1, MAX_SEQ], int), MIXED_LABELS
      )
    ),
    encoding="utf-8",
  )
  side = prediction.tag_logits_lines([text], encoded["starts"], encoded["ends"], logits)
  (tmp_path / "pseudo.txt.logits").write_text("".join(side))
  rows = np.array(side[0].split(), np.float32).reshape(len(text), 7)
  np.testing.assert_allclose(rows[3:9], logits[0, [4] * 6], rtol=1e-3)  # "iPhone": iphone's
  np.testing.assert_allclose(rows[9:11], logits[0, [5] * 2], rtol=1e-3)  # "13": ##13's
  out = str(tmp_path / "ner.tfrecord")
  counts = _run(
    corpus,
    pseudo,
    out,
    vocab_file=str(vocab),
    task="ner",
    label_file=str(tmp_path / "mixed_tags.txt"),
    masked_lm_prob=0,
  )
  assert counts.logits == 1
  f = _read([out], "ner", {"tag_logits": tf.io.FixedLenFeature([MAX_SEQ * 7], tf.float32)})
  np.testing.assert_array_equal(f["input_ids"], encoded["input_ids"])
  got = f["tag_logits"].reshape(MAX_SEQ, 7)
  np.testing.assert_allclose(got[1 : n - 1], logits[0, 1 : n - 1], rtol=1e-3, atol=1e-6)
  assert not got[0].any() and not got[n - 1 :].any()  # [CLS], [SEP], padding


def test_ner_pseudo_labels_of_text_with_spaces_are_words_and_read_back_the_same(corpus, tmp_path):
  """Step 3 on English-like text writes one word per line (one character
  per line would lose the spaces: step 4 would read "iPhone13ProMax"); each
  CJK character stays a unit; step 4 reads back the same tokens and tags."""
  vocab = _mixed_vocab(corpus, tmp_path)
  text = "iPhone13 Pro Max 在北京"
  tok = tokenization.BertTokenizer(str(vocab))
  encoded, _ = features.FeatureEncoder(tok, MAX_SEQ, "none", field_join="concat").encode(
    [input_files.Example("-", [text])]
  )
  assert tok.convert_ids_to_tokens(encoded["input_ids"][0, 1:8]) == [
    "iphone",
    "##13",
    "pro",
    "max",
    "在",
    "北",
    "京",
  ]
  tag_ids = np.zeros([1, MAX_SEQ], int)
  tag_ids[0, 1:8] = [1, 2, 2, 2, 0, 3, 4]
  block = "".join(
    prediction.ner_blocks([text], encoded["starts"], encoded["ends"], tag_ids, MIXED_LABELS)
  )
  assert block == ("iPhone13 B-PRODUCT\nPro I-PRODUCT\nMax I-PRODUCT\n在 O\n北 B-LOC\n京 I-LOC\n\n")
  logits = np.random.default_rng(0).normal(size=[1, MAX_SEQ, 7]).astype(np.float32)
  side = prediction.tag_logits_lines([text], encoded["starts"], encoded["ends"], logits)
  rows = np.array(side[0].split(), np.float32).reshape(6, 7)
  np.testing.assert_allclose(rows, logits[0, [1, 3, 4, 5, 6, 7]], rtol=1e-3)  # first pieces
  (tmp_path / "pseudo.txt").write_text(block, encoding="utf-8")
  out = str(tmp_path / "ner.tfrecord")
  _run(
    corpus,
    tmp_path / "pseudo.txt",
    out,
    vocab_file=str(vocab),
    task="ner",
    label_file=str(tmp_path / "mixed_tags.txt"),
    masked_lm_prob=0,
  )
  f = _read([out], "ner")
  np.testing.assert_array_equal(f["input_ids"], encoded["input_ids"])
  np.testing.assert_array_equal(f["tag_ids"][0, 1:8], [1, 2, 2, 2, 0, 3, 4])


def _pseudo_classification(tmp_path, logits_lines, data="甲\t一\n乙\t二\n丙\t三\n"):
  """3 pseudo-labeled examples, their confidences and the given logits lines."""
  (tmp_path / "labels.txt").write_text("甲\n乙\n丙\n", encoding="utf-8")
  path = tmp_path / "p.tsv"
  path.write_text(data, encoding="utf-8")
  (tmp_path / "p.tsv.confidence").write_text("0.5\n0.6\n0.7\n")
  (tmp_path / "p.tsv.logits").write_text("".join(line + "\n" for line in logits_lines))
  return path


def test_skipped_example_skips_its_side_lines(corpus, tmp_path):
  """--skip_bad_lines: a skipped example's confidence and logits are skipped
  with it, so the next examples keep their own."""
  path = _pseudo_classification(
    tmp_path, ["1 2 3", "4 5 6", "0:9 2:8"], data="甲\t一\n外\t二\n丙\t三\n"
  )
  out = str(tmp_path / "o.tfrecord")
  counts = _run(
    corpus,
    path,
    out,
    task="classification",
    label_file=str(tmp_path / "labels.txt"),
    skip_bad_lines=True,
  )
  assert (counts.written, counts.skipped, counts.logits) == (2, 1, 2)
  f = _read(
    [out],
    "classification",
    {
      "label_weights": tf.io.FixedLenFeature([1], tf.float32),
      "label_logits": tf.io.FixedLenFeature([3], tf.float32),
    },
  )
  np.testing.assert_allclose(f["label_weights"][:, 0], [0.5, 0.7])
  np.testing.assert_array_equal(f["label_logits"], [[1, 2, 3], [9, 8 - 20, 8]])
  conll = tmp_path / "n.txt"
  conll.write_text("我 O\n爱 O\n\n北\n京 I-X\n\n北 B-X\n", encoding="utf-8")
  (tmp_path / "n.txt.confidence").write_text("0.1\n0.2\n0.3\n")
  (tmp_path / "n.txt.logits").write_text("1 2 3 4 5 6\n7 8 9 10 11 12\n13 14 15\n")
  counts = input_files.Counts(skip_bad_lines=True)
  sentences = list(
    input_files.read_conll(str(conll), counts, tags=("O", "B-X", "I-X"), with_logits=True)
  )
  assert counts.skipped == 1 and [s.confidence for s in sentences] == [0.1, 0.3]
  np.testing.assert_array_equal(sentences[1].logits, [[13, 14, 15]])


OK = "1 2 3"
BAD_LOGITS = [
  (
    "fewer",
    [OK, OK],
    "p.tsv.logits: fewer logits lines than examples in {dir}/p.tsv (none for {dir}/p.tsv:3)",
  ),
  ("more", [OK] * 4, "p.tsv.logits:4: more logits lines than examples in {dir}/p.tsv"),
  (
    "width",
    [OK, "1 2", OK],
    "p.tsv.logits:2: expected 3 logits (one per label) or id:value pairs, got 2 values",
  ),
  ("nan", [OK, "1 nan 3", OK], "p.tsv.logits:2: logit 'nan' is not finite"),
  ("inf", ["1 2 -inf", OK, OK], "p.tsv.logits:1: logit '-inf' is not finite"),
  ("abc", [OK, OK, "1 abc 3"], "p.tsv.logits:3: not a number: 'abc'"),
  (
    "top_k_id",
    ["0:1.5 7:0.2", OK, OK],
    "p.tsv.logits:1: label id 7 is out of range (there are 3 labels)",
  ),
  (
    "top_k_pair",
    ["0:1.5 2", OK, OK],
    "p.tsv.logits:1: expected id:value pairs (top-k logits), got '0:1.5 2'",
  ),
]


@pytest.mark.parametrize("name,lines,message", BAD_LOGITS, ids=[b[0] for b in BAD_LOGITS])
def test_bad_logits_side_file(corpus, tmp_path, name, lines, message):
  path = _pseudo_classification(tmp_path, lines)
  out = tmp_path / "out" / "o.tfrecord"
  with pytest.raises(InputError) as error:
    _run(
      corpus,
      path,
      out,
      task="classification",
      label_file=str(tmp_path / "labels.txt"),
      num_output_shards=2,
    )
  assert str(error.value) == f"{tmp_path}/" + message.format(dir=tmp_path)
  assert not os.listdir(out.parent)  # no shard, not even a temporary one


def test_bad_ner_logits_width_and_mixed_side_files(corpus, tmp_path):
  conll = tmp_path / "n.txt"
  conll.write_text("我 O\n爱 O\n吃 O\n\n北 B-X\n京 I-X\n", encoding="utf-8")
  (tmp_path / "n.txt.logits").write_text("1 2 3 4 5 6 7 8 9\n1 2 3 4 5\n")
  (tmp_path / "tags.txt").write_text("O\nB-X\nI-X\n")
  ner = dict(task="ner", label_file=str(tmp_path / "tags.txt"))
  with pytest.raises(
    InputError,
    match=rf"^{tmp_path}/n.txt.logits:2: expected 2 tokens x 3 "
    r"tags = 6 logits, got 5$",
  ):
    _run(corpus, conll, tmp_path / "o.tfrecord", **ner)
  (tmp_path / "n.txt.logits").write_text("1 2 3 4 5 6 7 8 9\n1 2 3 4 5 6\n")
  other = tmp_path / "other.txt"
  other.write_text("我 O\n", encoding="utf-8")
  with pytest.raises(InputError, match=rf"^{other}: no .logits side file, but {conll} has one"):
    _run(corpus, f"{conll},{other}", tmp_path / "o.tfrecord", **ner)
  assert _run(corpus, conll, tmp_path / "o.tfrecord", **ner).logits == 2


def test_bad_logits_stop_the_job_with_one_line(corpus, tmp_path):
  path = _pseudo_classification(tmp_path, ["1 2 3", "1 NaN 3", "1 2 3"])
  result = run_job(
    "create_pretraining_data",
    f"--input_file={path}",
    f"--output_file={tmp_path / 'o.tfrecord'}",
    f"--vocab_file={corpus / 'vocab.txt'}",
    "--task=classification",
    f"--label_file={tmp_path / 'labels.txt'}",
    check=False,
  )
  assert result.returncode == 2 and "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [f"error: {path}.logits:2: logit 'NaN' is not finite"]
  assert not list(tmp_path.glob("o.tfrecord*"))


def test_unmasked_task_data(corpus, tmp_path):
  """--masked_lm_prob=0: the input as it is, the masked_lm_* features all 0
  (the original spec still parses them); refused without a task or with
  several dupes."""
  pseudo = tmp_path / "pseudo.tsv"
  lines = (corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:300]
  pseudo.write_text("".join(lines), encoding="utf-8")
  labels = tuple(input_files.read_labels(str(corpus / "labels.txt")))
  out = str(tmp_path / "cls.tfrecord")
  _run(
    corpus,
    pseudo,
    out,
    task="classification",
    label_file=str(corpus / "labels.txt"),
    masked_lm_prob=0,
  )
  f = _read([out], "classification")
  tok = tokenization.BertTokenizer(str(corpus / "vocab.txt"))
  encoder = features.FeatureEncoder(tok, MAX_SEQ, "classification", labels)
  examples = list(input_files.read_classification(str(pseudo), input_files.Counts(), labels))
  np.testing.assert_array_equal(f["input_ids"], encoder.encode(examples)[0]["input_ids"])
  assert not (f["input_ids"] == tok.mask_id).any()
  for name in ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights"):
    assert f[name].shape == (300, MAX_PRED) and not f[name].any(), name
  assert "label_logits" not in tfrecords.record_features(out)
  with pytest.raises(ValueError, match="--masked_lm_prob=0 .* needs --task=classification or ner"):
    _config(corpus, pseudo, out, masked_lm_prob=0)
  result = run_job(
    "create_pretraining_data",
    f"--input_file={pseudo}",
    f"--output_file={out}2",
    f"--vocab_file={corpus / 'vocab.txt'}",
    "--task=classification",
    f"--label_file={corpus / 'labels.txt'}",
    "--masked_lm_prob=0",
    "--dupe_factor=2",
    check=False,
  )
  assert result.returncode == 2
  assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
    "error: --dupe_factor=2 with --masked_lm_prob=0 would write each example unchanged "
    "several times; use --dupe_factor=1"
  ]
  assert not list(tmp_path.glob("cls.tfrecord2*"))


def test_whole_word_masking_masks_whole_words(corpus, tmp_path):
  text = tmp_path / "words.txt"
  text.write_text(
    "".join("奶茶 珍珠 大杯 少糖 炸鸡 外卖 披萨 寿司\n" for _ in range(300)), encoding="utf-8"
  )
  out = str(tmp_path / "wwm.tfrecord")
  _run(corpus, text, out, do_whole_word_mask=True, masked_lm_prob=0.25)
  f = _read([out])
  for row in range(300):
    k = int(f["masked_lm_weights"][row].sum())
    positions = set(f["masked_lm_positions"][row, :k].tolist())
    assert k % 2 == 0 and k > 0  # every word has two characters
    for p in positions:  # words are at positions (1,2), (3,4), ...
      assert (p + 1 if p % 2 else p - 1) in positions


BAD_INPUTS = [
  ("invalid_utf8", "none", b"good line\n\xff\xfe bad\n", "bad.txt:2: invalid UTF-8"),
  (
    "unknown_label",
    "classification",
    "食品\t一个\n外星\t两个\n".encode(),
    "bad.txt:2: label '外星' is not in the label file",
  ),
  ("ner_no_tag", "ner", "我 O\n爱\n\n北 B-LOC\n".encode(), "bad.txt:2: token '爱' has no tag"),
  (
    "bad_tag",
    "ner",
    "我 O\n爱 X-LOC\n".encode(),
    "bad.txt:2: tag 'X-LOC' is not valid in the BIO scheme",
  ),
  ("malformed_tag", "ner", "我 O\n爱 B_LOC\n".encode(), "bad.txt:2: malformed tag 'B_LOC'"),
  ("empty_file", "none", b"", "bad.txt: empty file"),
]


@pytest.mark.parametrize("name,task,content,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_one_line_error(corpus, tmp_path, name, task, content, message):
  bad = tmp_path / "bad.txt"
  bad.write_bytes(content)
  (tmp_path / "labels.txt").write_text("食品\nO\nB-LOC\nI-LOC\n", encoding="utf-8")
  args = [
    f"--input_file={bad}",
    f"--output_file={tmp_path / 'out.tfrecord'}",
    f"--vocab_file={corpus / 'vocab.txt'}",
    f"--task={task}",
    f"--label_file={tmp_path / 'labels.txt'}",
  ]
  result = run_job("create_pretraining_data", *args, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert f"error: {tmp_path}/{message}" in result.stderr
  assert not (tmp_path / "out.tfrecord").exists()
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
  if name in ("unknown_label", "ner_no_tag", "bad_tag", "malformed_tag"):
    skipped = run_job("create_pretraining_data", *args, "--skip_bad_lines")
    assert "skipped 1 (bad)" in skipped.stdout
    assert (tmp_path / "out.tfrecord").exists()


def test_missing_file_and_confidence_count_mismatch(corpus, tmp_path):
  missing = run_job(
    "create_pretraining_data",
    f"--input_file={tmp_path}/nope.txt",
    f"--output_file={tmp_path}/o",
    f"--vocab_file={corpus / 'vocab.txt'}",
    check=False,
  )
  assert missing.returncode == 2 and "Traceback" not in missing.stderr
  assert f"error: {tmp_path}/nope.txt: file not found" in missing.stderr
  data = tmp_path / "p.tsv"
  data.write_text("炸鸡\t一\n炸鸡\t二\n", encoding="utf-8")
  (tmp_path / "p.tsv.confidence").write_text("0.9\n")
  (tmp_path / "labels.txt").write_text("炸鸡\n", encoding="utf-8")
  result = run_job(
    "create_pretraining_data",
    f"--input_file={data}",
    f"--output_file={tmp_path}/o",
    f"--vocab_file={corpus / 'vocab.txt'}",
    "--task=classification",
    f"--label_file={tmp_path}/labels.txt",
    check=False,
  )
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "p.tsv.confidence: fewer confidences than examples" in result.stderr


def test_killed_job_leaves_no_final_shard(corpus, tmp_path):
  big = tmp_path / "big.txt"
  big.write_text((corpus / "unlabeled.txt").read_text(encoding="utf-8") * 8, encoding="utf-8")
  out = tmp_path / "out" / "data.tfrecord"
  kill_when(
    [
      sys.executable,
      "-m",
      "bert_pl.create_pretraining_data",
      f"--input_file={big}",
      f"--output_file={out}",
      f"--vocab_file={corpus / 'vocab.txt'}",
      "--num_output_shards=2",
    ],
    lambda: (
      out.parent.exists()
      and sum(os.path.getsize(out.parent / p) for p in os.listdir(out.parent) if ".tmp-" in p)
      > 100_000
    ),
  )
  left = os.listdir(out.parent)
  # Its temporaries, and the locks of the shards it was writing (free now: it is dead).
  temporaries = [p for p in left if ".tmp-" in p]
  assert temporaries and all(
    p.startswith(".data.tfrecord-0000") and (".tmp-" in p or p.endswith(".lock")) for p in left
  ), left
  with pytest.raises(InputError, match="no file matches"):  # the job's glob matches none
    input_files.expand_input_files(f"{out}*")
  # The next run (here on less input) removes them.
  small = tmp_path / "small.txt"
  small.write_text("一\n二\n三\n", encoding="utf-8")
  result = run_job(
    "create_pretraining_data",
    f"--input_file={small}",
    f"--output_file={out}",
    f"--vocab_file={corpus / 'vocab.txt'}",
    "--num_output_shards=2",
  )
  assert (
    f"removed {len(temporaries)} stale temporary file(s) of an earlier run from {out.parent}"
    in (result.stderr)
  )
  assert sorted(os.listdir(out.parent)) == [
    "data.tfrecord-00000-of-00002",
    "data.tfrecord-00001-of-00002",
    "data.tfrecord.manifest.json",
  ]


def _rows(paths):
  """Every decoded example as a tuple of its features (sortable, comparable)."""
  features = _read([str(p) for p in paths])
  names = sorted(features)
  return sorted(
    tuple(tuple(features[n][i].tolist()) for n in names) for i in range(len(features["input_ids"]))
  )


@pytest.mark.slow
@pytest.mark.parametrize(
  "mode,masking",
  [("in_memory", []), ("multi_processing", SEGMENTED)],
  ids=["in_memory", "multi_processing_segmented"],
)
def test_beam_job_writes_the_single_process_examples(corpus, tmp_path, mode, masking):
  write_parts(
    (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True),
    tmp_path / "pool",
    4,
  )
  common = [
    *_masking_flags(masking),
    f"--input_file={tmp_path}/pool/part-*.txt",
    f"--vocab_file={corpus / 'vocab.txt'}",
    f"--max_seq_length={MAX_SEQ}",
    f"--max_predictions_per_seq={MAX_PRED}",
    "--dupe_factor=2",
    "--num_output_shards=3",
    "--random_seed=7",
  ]
  single = run_job(
    "create_pretraining_data", *common, f"--output_file={tmp_path / 'single' / 'data.tfrecord'}"
  )
  beam = run_job(
    "beam.create_pretraining_data",
    *common,
    "--runner=DirectRunner",
    f"--direct_running_mode={mode}",
    "--direct_num_workers=2",
    f"--output_file={tmp_path / 'beam' / 'data.tfrecord'}",
  )
  assert "read 12000, written 24000, skipped 0" in single.stdout
  assert "read 12000, written 24000, skipped 0" in beam.stdout
  shards = [f"data.tfrecord-0000{i}-of-00003" for i in range(3)]
  assert sorted(os.listdir(tmp_path / "beam")) == shards + ["data.tfrecord.manifest.json"]
  beam_rows = _rows(tmp_path / "beam" / s for s in shards)
  assert len(beam_rows) == 24000
  assert beam_rows == _rows(tmp_path / "single" / s for s in shards)
  # The same manifest, but for the shards' contents (Beam spreads the records
  # otherwise), which it describes as they are.
  beam, single = (
    json.loads((tmp_path / job / "data.tfrecord.manifest.json").read_text())
    for job in ("beam", "single")
  )
  beam_shards, _ = beam.pop("shards"), single.pop("shards")
  assert beam == single and beam["records"] == 24000 and beam["dupe_factor"] == 2
  assert beam_shards == [
    {
      "file": name,
      "records": input_pipeline.count_records(str(tmp_path / "beam" / name)),
      "bytes": os.path.getsize(tmp_path / "beam" / name),
      "sha256": hashlib.sha256((tmp_path / "beam" / name).read_bytes()).hexdigest(),
    }
    for name in shards
  ]


def test_beam_job_bad_input_refused_mode_and_shard_count(corpus, tmp_path):
  bad = tmp_path / "bad.txt"
  bad.write_bytes("一行\n二行\n".encode() + b"\xff\xfe\n")
  args = [f"--vocab_file={corpus / 'vocab.txt'}", f"--output_file={tmp_path / 'out.tfrecord'}"]
  result = run_job("beam.create_pretraining_data", f"--input_file={bad}", *args, check=False)
  assert result.returncode == 2
  assert f"error: {bad}:3: invalid UTF-8" in result.stderr
  assert "Traceback" not in result.stderr
  result = run_job(
    "beam.create_pretraining_data",
    f"--input_file={corpus / 'unlabeled.txt'}",
    *args,
    "--direct_running_mode=multi_threading",
    check=False,
  )
  assert result.returncode == 2
  assert "multi_threading is not supported" in result.stderr
  assert not list(tmp_path.glob("out.tfrecord*"))
  result = run_job(
    "beam.create_pretraining_data",
    f"--input_file={corpus / 'unlabeled.txt'}",
    *args,
    "--num_output_shards=0",
    check=False,
  )
  assert result.returncode == 2
  assert "error: --num_output_shards=0: must be at least 1" in result.stderr
  assert not list(tmp_path.glob("out.tfrecord*"))
