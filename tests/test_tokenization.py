"""The tokenizer against the original BERT algorithm, in batch and in graph."""

import csv
import json
import random

import numpy as np
import pytest
import tensorflow as tf
from official.nlp.tools import tokenization as original

from bert_pl import tokenization

from conftest import minilm_dir, shared_path

# Full-width letters and punctuation, accents, emoji, control and format
# characters, whitespace runs, over-long words, CJK extensions and
# compatibility ideographs, special-token look-alikes.
HAND_PICKED = [
  "ＡＢＣ，ｄｅｆ１２３。全角！",
  "Café naïve ÉCOLE Ångström",
  "ok😀好吃😀 ！👍🏽 ☕️",
  "a\x00b\u200bc\ufeffd \x0bx\x1fy\x7f",
  "  a \t\t b\n\r\u3000c\u2028d\u00a0e  ",
  "x" * 201,
  "y" * 200,
  "中" * 300,
  "İstanbul ΟΔΟΣ ß",
  "\u0301 a\u0301,b",
  "[MASK] [UNK] ##ab [CLS]",
  "\ufffd中\U00020000文\uf900",
  "ﬁle ½ ²",
  "한국어 テスト",
  "",
  "   ",
  "价格￥25.5元，好评~~~!!!",
]


def _original(vocab_file, do_lower_case):
  tok = original.FullTokenizer(vocab_file, do_lower_case)
  # google-research/bert uses 200; tf-models-official's copy says 400.
  tok.wordpiece_tokenizer.max_input_chars_per_word = 200
  return tok


def _mismatches(tokenizer, reference, texts, batch_size=512):
  ours = []
  for i in range(0, len(texts), batch_size):
    ours += tokenizer.tokenize(texts[i : i + batch_size])
  bad = []
  for text, ids in zip(texts, ours):
    expected = reference.convert_tokens_to_ids(reference.tokenize(text))
    if ids != expected:
      bad.append((text, tokenizer.convert_ids_to_tokens(ids), reference.tokenize(text)))
  return bad


def _vocabs():
  """Real vocabularies: Google's Chinese one (shared data) and MiniLM's English one."""
  return [
    ("bert-base-chinese", lambda: str(shared_path("bert-base-chinese", "vocab.txt"))),
    ("minilm-uncased", lambda: str(minilm_dir() / "vocab.txt")),
  ]


@pytest.mark.parametrize("name,vocab", _vocabs(), ids=[v[0] for v in _vocabs()])
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_hand_picked_cases_match_original(name, vocab, do_lower_case):
  vocab_file = vocab()
  tokenizer = tokenization.BertTokenizer(vocab_file, do_lower_case)
  bad = _mismatches(tokenizer, _original(vocab_file, do_lower_case), HAND_PICKED)
  assert not bad, bad[:3]


def test_decisions_on_awkward_input():
  """The documented behaviour, spelled out on the real Chinese vocab."""
  tokenizer = tokenization.BertTokenizer(
    str(shared_path("bert-base-chinese", "vocab.txt")), do_lower_case=True
  )

  def tokens(text):
    return tokenizer.convert_ids_to_tokens(tokenizer.tokenize([text])[0])

  assert tokens("好，") == ["好", "，"]  # full-width comma is not folded to ','
  assert tokens("ＡＢ") == ["ａ", "##ｂ"]  # full-width letters lower-cased, not folded
  assert tokens("Café") == ["cafe"]  # accents stripped with do_lower_case
  assert tokens("a\x00b") == ["ab"]  # control characters deleted, no split
  assert tokens("a \t\n\u3000 b") == ["a", "b"]  # whitespace runs split once
  assert tokens("a" * 201) == ["[UNK]"]  # over-long word
  assert tokens("好😀吃") == ["好", "[UNK]", "吃"]  # emoji alone between CJK


def test_real_corpora_match_original():
  """Every text of CLUENER2020 and online_shopping_10_cats, id for id (their
  speed: bench/bench_tokenization.py)."""
  vocab_file = str(shared_path("bert-base-chinese", "vocab.txt"))
  texts = []
  for split in ("train", "dev", "test"):
    with open(shared_path("cluener2020", f"{split}.jsonl"), encoding="utf-8") as f:
      texts += [json.loads(line)["text"] for line in f]
  with open(
    shared_path("online_shopping_10_cats", "online_shopping_10_cats.csv"), encoding="utf-8"
  ) as f:
    texts += [row["review"] for row in csv.DictReader(f)]
  assert len(texts) == 10748 + 1343 + 1345 + 62774
  tokenizer = tokenization.BertTokenizer(vocab_file, do_lower_case=True)
  bad = _mismatches(tokenizer, _original(vocab_file, True), texts)
  assert not bad, (len(bad), bad[:3])


class _Serving(tf.Module):
  def __init__(self, tokenizer):
    super().__init__()
    self.tokenizer = tokenizer

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def __call__(self, texts):
    tokens = self.tokenizer.tokenize_with_offsets(texts)
    return {
      "ids": tokens.ids.to_tensor(-1),
      "starts": tokens.starts.to_tensor(-1),
      "ends": tokens.ends.to_tensor(-1),
    }


@pytest.mark.parametrize("mode", ["wordpiece", "char"])
def test_batch_and_saved_model_paths_identical(tmp_path, mode):
  vocab_file = str(minilm_dir() / "vocab.txt")
  tokenizer = tokenization.BertTokenizer(vocab_file, True, mode)
  texts = HAND_PICKED + ["The quick brown fox jumped.", "unaffable 中文 mixed"]
  export_dir = str(tmp_path / "saved")
  tf.saved_model.save(_Serving(tokenizer), export_dir)
  loaded = tf.saved_model.load(export_dir)
  served = loaded(tf.constant(texts))
  batch = tokenizer.tokenize_with_offsets(tf.constant(texts))
  for key, value in zip(("ids", "starts", "ends"), batch):
    np.testing.assert_array_equal(served[key].numpy(), value.to_tensor(-1).numpy())
  assert any(p.name == "vocab.txt" for p in (tmp_path / "saved" / "assets").iterdir())


def test_char_mode_one_token_per_character():
  vocab_file = str(shared_path("bert-base-chinese", "vocab.txt"))
  tokenizer = tokenization.BertTokenizer(vocab_file, True, "char")
  vocab = {t: i for i, t in enumerate(tokenizer.vocab)}
  texts = ["上海市 浦东新区，iPhone 13！", "Café\t😀\x00好", "  "]
  tokens = tokenizer.tokenize_with_offsets(tf.constant(texts))
  for text, ids, starts, ends in zip(
    texts, tokens.ids.to_list(), tokens.starts.to_list(), tokens.ends.to_list()
  ):
    kept = [i for i, c in enumerate(text) if not c.isspace() and c != "\x00"]
    assert starts == kept
    assert ends == [i + 1 for i in kept]
    for token_id, start in zip(ids, starts):
      char = text[start].lower().replace("é", "e")
      assert token_id == vocab.get(char, tokenizer.unk_id), (text, start)
  assert tokens.ids.to_list()[0][:3] == [vocab["上"], vocab["海"], vocab["市"]]


def test_wordpiece_offsets_point_into_raw_text():
  vocab_file = str(minilm_dir() / "vocab.txt")
  tokenizer = tokenization.BertTokenizer(vocab_file, True)
  texts = ["Unaffable  HOTEL,中文 ok", "naïve café", "a\x00b xyz"]
  tokens = tokenizer.tokenize_with_offsets(tf.constant(texts))
  pieces = [tokenizer.convert_ids_to_tokens(ids) for ids in tokens.ids.to_list()]
  spans = [
    [t[s:e] for s, e in zip(ss, es)]
    for t, ss, es in zip(texts, tokens.starts.to_list(), tokens.ends.to_list())
  ]
  # Same-length words: exact piece spans.
  assert pieces[0] == ["una", "##ffa", "##ble", "hotel", ",", "中", "文", "ok"]
  assert spans[0] == ["Una", "ffa", "ble", "HOTEL", ",", "中", "文", "ok"]
  # Normalisation changed the byte length: the piece spans the whole word.
  assert pieces[1] == ["naive", "cafe"]
  assert spans[1] == ["naïve", "café"]
  # A deleted control character: the word's span includes it.
  assert pieces[2] == ["ab", "x", "##y", "##z"]
  assert spans[2] == ["a\x00b", "x", "y", "z"]


def _truncate_seq_pair(a, b, max_length):
  """google-research/bert's _truncate_seq_pair."""
  a, b = list(a), list(b)
  while len(a) + len(b) > max_length:
    (a if len(a) > len(b) else b).pop()
  return a, b


def test_pack_inputs_matches_original_truncation():
  rng = random.Random(0)
  rows_a = [list(range(1000, 1000 + rng.randint(0, 20))) for _ in range(200)]
  rows_b = [list(range(2000, 2000 + rng.randint(0, 20))) for _ in range(200)]
  packed = tokenization.pack_inputs(
    [tf.ragged.constant(rows_a, tf.int64), tf.ragged.constant(rows_b, tf.int64)], 16, 101, 102
  )
  for row, (a, b) in enumerate(zip(rows_a, rows_b)):
    a, b = _truncate_seq_pair(a, b, 16 - 3)
    expected = [101] + a + [102] + b + [102]
    pad = 16 - len(expected)
    assert packed["input_word_ids"][row].numpy().tolist() == expected + [0] * pad
    assert packed["input_mask"][row].numpy().tolist() == [1] * len(expected) + [0] * pad
    assert packed["input_type_ids"][row].numpy().tolist() == (
      [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * pad
    )
  single = tokenization.pack_inputs(
    [tf.ragged.constant([list(range(1, 30))], tf.int64)], 8, 101, 102
  )
  assert single["input_word_ids"].numpy().tolist() == [[101, 1, 2, 3, 4, 5, 6, 102]]
  # Three fields: longest first, type ids 0 then 1.
  triple = tokenization.pack_inputs(
    [
      tf.ragged.constant([[1, 2, 3, 4, 5]], tf.int64),
      tf.ragged.constant([[6]], tf.int64),
      tf.ragged.constant([[7, 8, 9, 10]], tf.int64),
    ],
    10,
    101,
    102,
  )
  # (5, 1, 4) tokens into 6: pop 5 -> (4,1,4) -> tie pops the later -> ... (3, 1, 2).
  assert triple["input_word_ids"].numpy().tolist() == [[101, 1, 2, 3, 102, 6, 102, 7, 8, 102]]
  assert triple["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]]


def test_vocab_errors_name_the_file_and_line(tmp_path):
  bad_utf8 = tmp_path / "bad.txt"
  bad_utf8.write_bytes(b"[PAD]\n[UNK]\n\xff\xfe\n[CLS]\n[SEP]\n[MASK]\n")
  with pytest.raises(ValueError, match=r"bad.txt:3: invalid UTF-8"):
    tokenization.load_vocab(str(bad_utf8))
  no_mask = tmp_path / "no_mask.txt"
  no_mask.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
  with pytest.raises(ValueError, match=r"no_mask.txt: special tokens missing: \[MASK\]"):
    tokenization.load_vocab(str(no_mask))
  with pytest.raises(ValueError, match="missing.txt: file not found"):
    tokenization.load_vocab(str(tmp_path / "missing.txt"))


def test_duplicate_vocab_tokens_map_to_last_line_like_original(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text(
    "\n".join(
      ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ab", "##c", "x", "ab", "\u2028", "\u2029"]
    )
    + "\n",
    encoding="utf-8",
  )
  tokenizer = tokenization.BertTokenizer(str(vocab))
  reference = _original(str(vocab), True)
  for text in ["ab abc x", "abx"]:
    assert tokenizer.tokenize([text])[0] == reference.convert_tokens_to_ids(
      reference.tokenize(text)
    )
  assert tokenizer.tokenize(["ab"])[0] == [8]
  char = tokenization.BertTokenizer(str(vocab), mode="char")
  assert char.tokenize(["x"])[0] == [7]
