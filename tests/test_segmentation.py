"""Whole-word and n-gram masking with a Chinese segmenter, on real reviews."""

import csv
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_pl import masking, segmentation, tokenization
from bert_pl.create_pretraining_data import CreatePretrainingDataConfig, run
from bert_pl.errors import InputError

from conftest import shared_path

rjieba = pytest.importorskip("rjieba", reason="the segment extra is not installed")

MAX_SEQ, MAX_PRED, NUM_REVIEWS = 64, 10, 2500


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
  """The first reviews of online_shopping_10_cats, one per line, and the vocab."""
  data = shared_path("online_shopping_10_cats", "online_shopping_10_cats.csv")
  vocab = str(shared_path("bert-base-chinese", "vocab.txt"))
  with open(data, encoding="utf-8-sig", newline="") as f:
    texts = [" ".join(row["review"].split()) for row in csv.DictReader(f)]
  texts = [t for t in texts if t][:NUM_REVIEWS]
  pool = tmp_path_factory.mktemp("reviews") / "pool.txt"
  pool.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
  return pool, vocab, texts


def _masked(reviews, tmp_path_factory, ngram_mask_max):
  pool, vocab, _ = reviews
  out = str(tmp_path_factory.mktemp("wwm") / "data.tfrecord")
  run(
    CreatePretrainingDataConfig(
      input_file=str(pool),
      output_file=out,
      vocab_file=vocab,
      tokenization="char",
      max_seq_length=MAX_SEQ,
      max_predictions_per_seq=MAX_PRED,
      do_whole_word_mask=True,
      segmenter="rjieba",
      ngram_mask_max=ngram_mask_max,
    )
  )
  spec = {
    name: tf.io.FixedLenFeature([size], dtype)
    for name, size, dtype in (
      ("input_ids", MAX_SEQ, tf.int64),
      ("input_mask", MAX_SEQ, tf.int64),
      ("masked_lm_positions", MAX_PRED, tf.int64),
      ("masked_lm_ids", MAX_PRED, tf.int64),
      ("masked_lm_weights", MAX_PRED, tf.float32),
    )
  }
  records = list(tf.data.TFRecordDataset(out).as_numpy_iterator())
  return {k: v.numpy() for k, v in tf.io.parse_example(records, spec).items()}


@pytest.fixture(scope="module", params=[1, 3], ids=["words", "ngrams3"])
def masked(request, reviews, tmp_path_factory):
  return request.param, _masked(reviews, tmp_path_factory, request.param)


def test_masked_spans_are_whole_segmenter_words_15_percent_80_10_10(reviews, masked):
  _, vocab, texts = reviews
  ngram_mask_max, f = masked
  tokenizer = tokenization.BertTokenizer(vocab, mode="char")
  tokens = tokenizer.tokenize_with_offsets(tf.constant(texts))
  special = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id]
  original = f["input_ids"].copy()
  rows, slots = np.nonzero(f["masked_lm_weights"])
  positions = f["masked_lm_positions"][rows, slots]
  original[rows, positions] = f["masked_lm_ids"][rows, slots]
  candidates = (f["input_mask"] == 1) & ~np.isin(original, special)
  share = len(rows) / candidates.sum()
  assert share == pytest.approx(0.15, abs=0.01)
  now, was = f["input_ids"][rows, positions], f["masked_lm_ids"][rows, slots]
  replaced = now == tokenizer.mask_id
  kept = now == was
  assert len(rows) > 20000  # enough characters for +-0.01 on the split
  assert replaced.mean() == pytest.approx(0.8, abs=0.01)
  assert kept.mean() == pytest.approx(0.1, abs=0.01)
  assert (~replaced & ~kept).mean() == pytest.approx(0.1, abs=0.01)
  mixed_words = 0
  for row, text in enumerate(texts):
    words = rjieba.cut(text)  # the segmenter's own output
    word_of_char = np.repeat(np.arange(len(words)), [len(w) for w in words])
    length = int(f["input_mask"][row].sum()) - 2  # without [CLS], [SEP]
    starts = tokens.starts[row].numpy()[:length]
    word = np.full([MAX_SEQ], -1)
    word[1 : 1 + length] = word_of_char[starts]
    # [UNK] is never masked: it cuts its word in two parts, masked apart.
    part = word * MAX_SEQ + np.cumsum(~candidates[row])
    is_masked = np.zeros([MAX_SEQ], bool)
    is_masked[positions[rows == row]] = True
    for p in np.unique(part[is_masked]):
      # Every character of a masked word (part) is masked.
      in_word = (part == p) & candidates[row]
      assert is_masked[in_word].all(), (text, words[p // MAX_SEQ])
      choice = f["input_ids"][row, in_word] == tokenizer.mask_id
      mixed_words += choice.any() and not choice.all()
  # [MASK] / random / keep is chosen per character: a word can be part [MASK].
  assert mixed_words > 100
  print(
    f"\nn-grams <= {ngram_mask_max}: masked {share:.4f} of {candidates.sum()} characters; "
    f"[MASK] {replaced.mean():.4f} / kept {kept.mean():.4f}; {mixed_words} mixed words"
  )


def test_ngram_spans_respect_n_and_follow_1_over_n():
  masker = masking.Masker(100, [0], 1, do_whole_word_mask=True, ngram_mask_max=3)
  rng = np.random.default_rng(0)
  # Words of 1-2 tokens, one sequence of consecutive positions.
  lengths = rng.integers(1, 3, 20000)
  ends = np.cumsum(lengths)
  words = [list(range(end - n, end)) for n, end in zip(lengths, ends)]
  spans = masker.ngram_spans(words, 3000, rng)
  assert sum(len(words[i]) for span in spans for i in span) == 3000
  assert all(1 <= len(span) <= 3 and span == list(range(span[0], span[-1] + 1)) for span in spans)
  # The budget is 10% of the tokens: few spans are cut by a taken word.
  share = np.bincount([len(s) for s in spans], minlength=4)[1:] / len(spans)
  assert share == pytest.approx([6 / 11, 3 / 11, 2 / 11], abs=0.03)
  # A span never joins words that are not adjacent (a [SEP] between them).
  apart = [[1], [2], [4], [5]]
  for seed in range(20):
    for span in masker.ngram_spans(apart, 4, np.random.default_rng(seed)):
      assert span in ([0], [1], [2], [3], [0, 1], [2, 3])


@pytest.mark.parametrize("name", ["rjieba", "jieba"])
def test_user_dict_keeps_domain_words_whole(tmp_path, name):
  pytest.importorskip(name)
  text = "点了宫保鸡丁和杨枝甘露"
  plain = segmentation.Segmenter(name).cut(text)
  assert "宫保鸡丁" not in plain and "".join(plain) == text
  user = tmp_path / "user.txt"
  user.write_text("宫保鸡丁\n杨枝甘露 20 n\n", encoding="utf-8")
  assert segmentation.Segmenter(name, str(user)).cut(text) == [
    "点",
    "了",
    "宫保鸡丁",
    "和",
    "杨枝甘露",
  ]
  assert segmentation.Segmenter(name).cut(text) == plain  # another instance: no user words


def test_bad_segmenter_settings_one_line(tmp_path, monkeypatch):
  bad = tmp_path / "user.txt"
  bad.write_text("宫保鸡丁 3 n\n杨枝 甘露 n\n", encoding="utf-8")
  with pytest.raises(InputError, match=f"^{bad}:2: expected 'word \\[frequency\\] \\[tag\\]'"):
    segmentation.check("rjieba", str(bad))
  with pytest.raises(InputError, match="^--segmenter_user_dict needs --segmenter=rjieba or jieba$"):
    segmentation.check("none", str(bad))
  base = dict(input_file="x", output_file="y", vocab_file="z")
  with pytest.raises(InputError, match="^--segmenter=rjieba needs --do_whole_word_mask$"):
    CreatePretrainingDataConfig(**base, segmenter="rjieba")
  with pytest.raises(InputError, match="^--ngram_mask_max=2 needs --do_whole_word_mask$"):
    CreatePretrainingDataConfig(**base, ngram_mask_max=2)
  with pytest.raises(InputError, match="^--ngram_mask_max=0: must be at least 1$"):
    CreatePretrainingDataConfig(**base, ngram_mask_max=0)
  # Without the extra: one line that tells how to install it.
  monkeypatch.setitem(sys.modules, "rjieba", None)
  with pytest.raises(InputError) as error:
    segmentation.check("rjieba", None)
  assert str(error.value) == (
    "--segmenter=rjieba: the package rjieba is not installed; install it with "
    "pip install -e '.[segment]' (or pip install rjieba jieba)"
  )
