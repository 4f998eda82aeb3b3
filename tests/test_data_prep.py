"""Tests of data_prep/: the sample-corpus generator, the vocabulary builder and
the converters, on hand-written inputs with exact expected outputs, on their
error paths (through `run(config)`, and as real processes: exit code 2, one
`error: path:line: message` line, no traceback, nothing written), and on the
real public data sets in ../shared/data when present.
"""

import collections
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bert_pl import tokenization
from bert_pl.errors import InputError
from data_prep import (
  build_vocab,
  cluener_to_conll,
  conll_iob1_to_iob2,
  csv_to_tsv,
  make_sample_corpus,
  split_dataset,
)

from conftest import REPO, SHARED_DATA

SMALL_CORPUS = dict(
  num_train=300,
  num_test=100,
  num_unlabeled=500,
  num_ner_train=200,
  num_ner_test=50,
  num_ner_unlabeled=300,
)


def run_tool(tool, *args):
  """Runs `python -m data_prep.<tool> args...` as a real process; returns the CompletedProcess."""
  return subprocess.run(
    [sys.executable, "-m", f"data_prep.{tool}", *map(str, args)],
    capture_output=True,
    text=True,
    cwd=REPO,
    timeout=300,
  )


def assert_bad_input(result, path, line, message):
  """The one-line error contract of every job (`cli.run`): exit code 2, no
  traceback, exactly one `error: path[:line]: message` line."""
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  errors = [text for text in result.stderr.splitlines() if text.startswith("error:")]
  assert len(errors) == 1, result.stderr
  where = f"{path}:{line}" if line is not None else f"{path}"
  assert errors[0] == f"error: {where}: {message}", errors[0]


def parse_counts(stdout):
  """Parses the final `job: key=value ...` line."""
  return {
    key: int(value)
    for key, value in (
      item.split("=") for item in stdout.strip().splitlines()[-1].split(": ", 1)[1].split()
    )
  }


def read_conll(path):
  """Returns the sentences of a `token tag` file as lists of (token, tag)."""
  sentences = []
  for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
    if block.strip():
      sentences.append([tuple(line.split(" ")) for line in block.strip("\n").split("\n")])
  return sentences


def entities(tags):
  """Returns the (type, start, end_inclusive) entities of a BIO tag sequence;
  asserts it is valid IOB2."""
  found = []
  for i, tag in enumerate(tags):
    if tag.startswith("B-"):
      found.append([tag[2:], i, i])
    elif tag.startswith("I-"):
      assert found and found[-1][0] == tag[2:] and found[-1][2] == i - 1, (
        f"I- without B- at {i}: {tags}"
      )
      found[-1][2] = i
    else:
      assert tag == "O", tag
  return [tuple(entity) for entity in found]


def require_shared_data(*parts):
  path = SHARED_DATA.joinpath(*parts)
  if not path.exists():
    pytest.skip(f"../shared/data not found: {path}")
  return path


def files_in(directory):
  """The names in `directory`: what a failed tool must leave (no output,
  no temporary)."""
  return sorted(os.listdir(directory))


# ---------------------------------------------------------------- make_sample_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """The sample corpus with the default sizes, written once for the module."""
  output_dir = tmp_path_factory.mktemp("corpus")
  make_sample_corpus.run(make_sample_corpus.MakeSampleCorpusConfig(str(output_dir)))
  return output_dir


def _corpus(directory, **changes):
  config = make_sample_corpus.MakeSampleCorpusConfig(str(directory), **SMALL_CORPUS)
  return make_sample_corpus.run(dataclasses.replace(config, **changes))


def test_corpus_is_deterministic(tmp_path):
  first = run_tool(
    "make_sample_corpus",
    "--output_dir",
    tmp_path / "a",
    *[f"--{key}={value}" for key, value in SMALL_CORPUS.items()],
  )
  assert first.returncode == 0, first.stderr
  assert first.stdout == (
    "make_sample_corpus: train_tsv=300 test_tsv=100 unlabeled_txt=500 "
    "ner_train_txt=200 ner_test_txt=50 ner_unlabeled_txt=300 labels_txt=20 "
    "tags_txt=9\n"
  )
  assert _corpus(tmp_path / "b") == parse_counts(first.stdout)
  _corpus(tmp_path / "c", seed=7)
  names = files_in(tmp_path / "a")
  assert names == [
    "labels.txt",
    "ner_test.txt",
    "ner_train.txt",
    "ner_unlabeled.txt",
    "tags.txt",
    "test.tsv",
    "train.tsv",
    "unlabeled.txt",
  ]
  for name in names:
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
  assert (tmp_path / "a" / "train.tsv").read_bytes() != (tmp_path / "c" / "train.tsv").read_bytes()
  # Each file has its own random stream: a different --num_train leaves test.tsv unchanged.
  _corpus(tmp_path / "d", num_train=50)
  assert (tmp_path / "a" / "test.tsv").read_bytes() == (tmp_path / "d" / "test.tsv").read_bytes()


def test_corpus_classification_shape(corpus):
  labels = (corpus / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
  assert len(labels) == 20 and len(set(labels)) == 20
  for name, count, labeled in [
    ("train.tsv", 2000, True),
    ("test.tsv", 500, True),
    ("unlabeled.txt", 20000, False),
  ]:
    text = (corpus / name).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.split("\n")[:-1]]
    assert len(rows) == count
    assert all(len(row) == (4 if labeled else 3) and all(row) for row in rows)
    texts = [row[1:] if labeled else row for row in rows]
    average = sum(len("".join(fields)) for fields in texts) / count
    assert 20 <= average <= 36, average  # the paper's average is 28
    assert not any(c.isspace() for fields in texts for field in fields for c in field)
    if labeled:
      assert {row[0] for row in rows} == set(labels)
  train_lines = (corpus / "train.tsv").read_text(encoding="utf-8").splitlines()
  train_labels = collections.Counter(line.split("\t")[0] for line in train_lines)
  assert min(train_labels.values()) >= 50  # roughly balanced: 2000 / 20 = 100 each


def test_corpus_ner_shape(corpus):
  tags = (corpus / "tags.txt").read_text(encoding="utf-8").split("\n")[:-1]
  assert tags == [
    "O",
    "B-FLAVOR",
    "I-FLAVOR",
    "B-INGREDIENT",
    "I-INGREDIENT",
    "B-SIZE",
    "I-SIZE",
    "B-TEMP",
    "I-TEMP",
  ]
  for name, count in [("ner_train.txt", 1000), ("ner_test.txt", 300)]:
    sentences = read_conll(corpus / name)
    assert len(sentences) == count
    types = collections.Counter()
    for sentence in sentences:
      assert all(len(token) == 1 and not token.isspace() and tag in tags for token, tag in sentence)
      types.update(entity[0] for entity in entities([tag for _, tag in sentence]))
    assert set(types) == {"FLAVOR", "INGREDIENT", "SIZE", "TEMP"}
    assert sum(types.values()) > count  # most descriptions have several properties
  lines = (corpus / "ner_unlabeled.txt").read_text(encoding="utf-8").split("\n")[:-1]
  assert len(lines) == 10000 and all(line and not any(c.isspace() for c in line) for line in lines)


# ---------------------------------------------------------------- build_vocab


@pytest.fixture(scope="module")
def corpus_vocab(corpus, tmp_path_factory):
  """vocab.txt built from the corpus's text files, and the build's counts."""
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  inputs = f"{corpus}/unlabeled.txt,{corpus}/ner_unlabeled.txt,{corpus}/t*.tsv"
  counts = build_vocab.run(build_vocab.BuildVocabConfig(inputs, str(path)))
  assert counts == dict(
    files=4,
    lines=32500,
    distinct_words=8034,
    characters=603,
    cjk_characters=562,
    dropped_rare_characters=0,
    wordpieces=883,
    vocab_size=1590,
  )
  return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_vocab_is_the_pure_python_builds(corpus_vocab):
  """The words come from the project's tokenizer (TensorFlow ops) since issue
  18; before, a pure-Python copy of BERT's BasicTokenizer split them. The
  vocabulary of the default corpus is the one that copy built, byte for byte
  (its sha256, recorded before the change)."""
  text = "".join(token + "\n" for token in corpus_vocab)
  assert hashlib.sha256(text.encode("utf-8")).hexdigest() == (
    "01dcecb6924c4f939174390a0d46ec0518a6312385f052fe2bf3976f29b8a189"
  )


def test_vocab_special_token_layout(corpus_vocab, tmp_path):
  vocab = corpus_vocab
  assert vocab[0] == "[PAD]" and vocab[1] == "[unused1]" and vocab[99] == "[unused99]"
  assert vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  assert len(vocab) == len(set(vocab))
  assert all(token and not any(c.isspace() for c in token) for token in vocab)
  google_vocab = SHARED_DATA / "bert-base-chinese" / "vocab.txt"
  if google_vocab.exists():
    assert vocab[:104] == google_vocab.read_text(encoding="utf-8").split("\n")[:104]
  vocab_path = tmp_path / "vocab.txt"
  tsv = tmp_path / "a.tsv"
  tsv.write_text("label_x\tHello 世界\n", encoding="utf-8")
  build_vocab.run(
    build_vocab.BuildVocabConfig(
      str(tsv), str(vocab_path), format="tsv", num_unused=0, do_lower_case=False
    )
  )
  small = vocab_path.read_text(encoding="utf-8").split("\n")[:-1]
  assert small[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  assert {"H", "e", "l", "o", "世", "界"} <= set(small)
  assert "label_x" not in small and "x" not in small


def test_vocab_covers_corpus(corpus, corpus_vocab, tmp_path):
  """The project's own tokenizer, in both modes, never maps corpus text to
  [UNK] with the built vocabulary."""
  vocab = corpus_vocab
  assert sum(len(token) == 1 and tokenization.is_cjk(token) for token in vocab) > 400
  assert {"coffee", "pizza"} <= set(vocab)
  vocab_path = tmp_path / "vocab.txt"
  vocab_path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
  for mode in ("wordpiece", "char"):
    tokenizer = tokenization.BertTokenizer(str(vocab_path), do_lower_case=True, mode=mode)
    assert tokenizer.unk_id == 100
    for name in ["train.tsv", "test.tsv", "unlabeled.txt", "ner_unlabeled.txt"]:
      lines = (corpus / name).read_text(encoding="utf-8").split("\n")[:-1]
      ids = [i for line_ids in tokenizer.tokenize(lines) for i in line_ids]
      assert len(ids) > 10 * len(lines), (mode, name)
      assert 100 not in ids, (mode, name)
  # The characters of CoNLL sentences, which the vocabulary was not built
  # from, are covered too.
  words, _ = build_vocab.count_words([str(corpus / "ner_test.txt")], "conll", True)
  assert set("".join(words)) <= set(vocab)
  # Same input, same output.
  result = run_tool(
    "build_vocab",
    "--input_file",
    f"{corpus}/unlabeled.txt,{corpus}/ner_unlabeled.txt,{corpus}/t*.tsv",
    "--output_file",
    tmp_path / "again.txt",
  )
  assert result.stdout == (
    "build_vocab: files=4 lines=32500 distinct_words=8034 characters=603 "
    "cjk_characters=562 dropped_rare_characters=0 wordpieces=883 "
    "vocab_size=1590\n"
  ), result.stderr
  assert (tmp_path / "again.txt").read_text(encoding="utf-8").split("\n")[:-1] == vocab


def test_basic_tokenize_matches_bert():
  """Word splitting as google-research/bert BasicTokenizer: control
  characters, accents, punctuation, CJK."""
  assert build_vocab.basic_tokenize(
    ["Héllo,\u200bWORLD！北京abc 12.5ml\u3000x", "", "\x00"], True
  ) == [["hello", ",", "world", "！", "北", "京", "abc", "12", ".", "5ml", "x"], [], []]
  assert build_vocab.basic_tokenize(["Héllo ＡＢＣ，"], False) == [["Héllo", "ＡＢＣ", "，"]]


def test_vocab_missing_input(tmp_path):
  # The file list is expanded by bert_pl's one rule (input_files.expand_input_files), with its
  # messages.
  assert_bad_input(
    run_tool(
      "build_vocab",
      "--input_file",
      tmp_path / "missing.txt",
      "--output_file",
      tmp_path / "vocab.txt",
    ),
    tmp_path / "missing.txt",
    None,
    "file not found",
  )
  assert files_in(tmp_path) == []
  with pytest.raises(
    InputError,
    match=re.escape(
      f"{tmp_path}: a directory, not a file (for the files in it, give {tmp_path}/*)"
    ),
  ):
    build_vocab.run(build_vocab.BuildVocabConfig(str(tmp_path), str(tmp_path / "v")))
  assert files_in(tmp_path) == []
  result = run_tool(
    "build_vocab", "--input_file", tmp_path, "--output_file", tmp_path / "v", "--min_count=0"
  )
  assert_bad_input(result, "--min_count=0", None, "must be >= 1")


# ---------------------------------------------------------------- cluener_to_conll

CLUENER_LINES = [
  '{"text": "张三在北京", "label": {"name": {"张三": [[0, 1]]}, "address": {"北京": [[3, 4]]}}}',
  '{"id": 0, "text": "你好"}',
  '{"text": "去 New York", "label": {"address": {" New York": [[1, 9]]}}}',
  "",
  '{"text": "   ", "label": {}}',
]
CLUENER_EXPECTED = (
  "张 B-name\n三 I-name\n在 O\n北 B-address\n京 I-address\n\n"
  "你 O\n好 O\n\n"
  "去 O\nN B-address\ne I-address\nw I-address\nY I-address\no I-address\n"
  "r I-address\nk I-address\n\n"
)


def _cluener(source, output, skip_bad_lines=False):
  return cluener_to_conll.run(
    cluener_to_conll.CluenerToConllConfig(str(source), str(output), skip_bad_lines=skip_bad_lines)
  )


def test_cluener_to_conll(tmp_path):
  source = tmp_path / "in.jsonl"
  source.write_text("\n".join(CLUENER_LINES) + "\n", encoding="utf-8")
  result = run_tool(
    "cluener_to_conll", "--input_file", source, "--output_file", tmp_path / "out.txt"
  )
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "out.txt").read_text(encoding="utf-8") == CLUENER_EXPECTED
  assert result.stdout == (
    "cluener_to_conll: read=4 written=3 skipped_bad=0 skipped_empty=1 "
    "entities=3 dropped_whitespace=2\n"
  )


@pytest.mark.parametrize(
  "bad_line, message",
  [
    (
      '{"text": "张三", "label": {"name": {"李四": [[0, 1]]}}}',
      "span [0, 1] is '张三', not the entity '李四'",
    ),
    (
      '{"text": "张三丰", "label": {"name": {"张三": [[0, 1]], "三丰": [[1, 2]]}}}',
      "span [1, 2] of '三丰' overlaps another entity",
    ),
    (
      '{"text": "张三", "label": {"name": {"张三": [[0, 5]]}}}',
      "span [0, 5] of '张三' is outside the text (length 2)",
    ),
    (
      '{"text": "张三", "label": {"name": {"张三"',
      "Expecting ':' delimiter: line 1 column 39 (char 38)",
    ),
    ('["not an object"]', 'not a JSON object with a string "text"'),
  ],
)
def test_cluener_to_conll_bad_lines(tmp_path, bad_line, message):
  source = tmp_path / "bad.jsonl"
  source.write_text(
    CLUENER_LINES[0] + "\n" + bad_line + "\n" + CLUENER_LINES[1] + "\n", encoding="utf-8"
  )
  output = tmp_path / "out.txt"
  with pytest.raises(InputError) as raised:
    _cluener(source, output)
  assert str(raised.value) == f"{source}:2: {message}"
  assert files_in(tmp_path) == ["bad.jsonl"]
  counts = _cluener(source, output, skip_bad_lines=True)
  assert counts["skipped_bad"] == 1 and len(read_conll(output)) == 2


def test_cluener_to_conll_errors_as_a_process(tmp_path):
  source = tmp_path / "bad.jsonl"
  source.write_text(CLUENER_LINES[0] + "\n" + '["not an object"]' + "\n", encoding="utf-8")
  assert_bad_input(
    run_tool("cluener_to_conll", "--input_file", source, "--output_file", tmp_path / "out.txt"),
    source,
    2,
    'not a JSON object with a string "text"',
  )
  result = run_tool(
    "cluener_to_conll",
    "--input_file",
    source,
    "--output_file",
    tmp_path / "out.txt",
    "--skip_bad_lines",
  )
  assert parse_counts(result.stdout)["skipped_bad"] == 1, result.stderr
  assert files_in(tmp_path) == ["bad.jsonl", "out.txt"]


def test_cluener_to_conll_invalid_utf8_and_missing_file(tmp_path):
  source = tmp_path / "bad.jsonl"
  source.write_bytes(
    CLUENER_LINES[0].encode() + b"\n" + CLUENER_LINES[1].encode() + b"\n\xff\xfe{}\n"
  )
  with pytest.raises(InputError) as raised:
    _cluener(source, tmp_path / "o")
  assert str(raised.value) == f"{source}:3: invalid UTF-8 (invalid start byte at byte 0)"
  missing = tmp_path / "missing.jsonl"
  with pytest.raises(InputError) as raised:
    _cluener(missing, tmp_path / "o")
  assert str(raised.value) == f"{missing}: file not found"
  assert files_in(tmp_path) == ["bad.jsonl"]


def test_cluener_dev_round_trip(tmp_path):
  dev = require_shared_data("cluener2020", "dev.jsonl")
  counts = _cluener(dev, tmp_path / "dev.txt")
  assert counts == dict(
    read=1343, written=1343, skipped_bad=0, skipped_empty=0, entities=3072, dropped_whitespace=0
  )
  sentences = read_conll(tmp_path / "dev.txt")
  records = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines()]
  assert len(sentences) == len(records) == 1343
  total = 0
  for sentence, record in zip(sentences, records):
    text = "".join(token for token, _ in sentence)
    assert text == record["text"]
    expected = sorted(
      (entity_type, start, end)
      for entity_type, spans in record["label"].items()
      for entity, positions in spans.items()
      for start, end in positions
    )
    found = entities([tag for _, tag in sentence])
    assert sorted(found) == expected
    total += len(found)
  assert total == 3072


def test_cluener_train_overlap_is_reported(tmp_path):
  train = require_shared_data("cluener2020", "train.jsonl")
  output = tmp_path / "train.txt"
  with pytest.raises(InputError) as raised:
    _cluener(train, output)
  assert str(raised.value) == (f"{train}:1507: span [16, 19] of '招商银行' overlaps another entity")
  assert _cluener(train, output, skip_bad_lines=True) == dict(
    read=10748, written=10747, skipped_bad=1, skipped_empty=0, entities=23968, dropped_whitespace=0
  )


# ---------------------------------------------------------------- conll_iob1_to_iob2

IOB1_INPUT = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O


Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

A DT I-NP I-LOC
B NNP I-NP B-LOC
C NNP I-NP I-PER
-DOCSTART- -X- O O
"""
IOB2_EXPECTED = """EU B-ORG
rejects O
German B-MISC
call O
. O

Peter B-PER
Blackburn I-PER

A B-LOC
B B-LOC
C B-PER

"""


def _iob1_to_iob2(source, output):
  return conll_iob1_to_iob2.run(conll_iob1_to_iob2.ConllIob1ToIob2Config(str(source), str(output)))


def test_conll_iob1_to_iob2(tmp_path):
  source = tmp_path / "in.conll"
  source.write_text(IOB1_INPUT, encoding="utf-8")
  result = run_tool(
    "conll_iob1_to_iob2", "--input_file", source, "--output_file", tmp_path / "out.txt"
  )
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "out.txt").read_text(encoding="utf-8") == IOB2_EXPECTED
  assert result.stdout == (
    "conll_iob1_to_iob2: read=3 written=3 docstarts=2 tokens=10 tags_changed=5\n"
  )
  # IOB2 input passes through unchanged.
  _iob1_to_iob2(tmp_path / "out.txt", tmp_path / "again.txt")
  assert (tmp_path / "again.txt").read_text(encoding="utf-8") == IOB2_EXPECTED


# The tags are checked by bert_pl.tag_schemes, with its messages.
@pytest.mark.parametrize(
  "bad_line, message",
  [
    ("Paris NNP I-NP X-LOC", "tag 'X-LOC' is not valid in the IOB1 scheme"),
    ("Paris", "expected `word ... tag`, found one column"),
    ("Paris NNP I-NP B-", "malformed tag 'B-'"),
    ("Paris NNP I-NP S-LOC", "tag 'S-LOC' is not valid in the IOB1 scheme"),
  ],
)
def test_conll_iob1_to_iob2_bad_lines(tmp_path, bad_line, message):
  source = tmp_path / "bad.conll"
  source.write_text(IOB1_INPUT.replace("Blackburn NNP I-NP I-PER", bad_line), encoding="utf-8")
  with pytest.raises(InputError) as raised:
    _iob1_to_iob2(source, tmp_path / "out.txt")
  assert str(raised.value) == f"{source}:11: {message}"
  assert files_in(tmp_path) == ["bad.conll"]


def test_conll2003_testa(tmp_path):
  testa = require_shared_data("conll2003_en", "eng.testa")
  counts = _iob1_to_iob2(testa, tmp_path / "testa.txt")
  assert counts == dict(read=3250, written=3250, docstarts=216, tokens=51362, tags_changed=5938)
  sentences = read_conll(tmp_path / "testa.txt")
  assert len(sentences) == 3250 and sum(map(len, sentences)) == counts["tokens"] == 51362
  types = collections.Counter(
    entity[0] for sentence in sentences for entity in entities([tag for _, tag in sentence])
  )
  assert set(types) == {"PER", "LOC", "ORG", "MISC"}
  assert sum(types.values()) == 5942  # the standard entity count of the CoNLL-2003 development set


# ---------------------------------------------------------------- csv_to_tsv

CSV_INPUT = (
  "\ufeffcat,label,review\n"
  '书籍,1,"\ufeff好书"\n'
  '平板,0,"屏幕\n不错\t就是贵"\n'
  "水果,1,\n"
  "手机,1,  很好用  \n"
)


def _csv_to_tsv(source, output, label_column, text_columns, **options):
  return csv_to_tsv.run(
    csv_to_tsv.CsvToTsvConfig(str(source), str(output), label_column, text_columns, **options)
  )


def test_csv_to_tsv(tmp_path):
  source = tmp_path / "in.csv"
  source.write_text(CSV_INPUT, encoding="utf-8")
  result = run_tool(
    "csv_to_tsv",
    "--input_file",
    source,
    "--output_file",
    tmp_path / "out.tsv",
    "--label_column",
    "cat",
    "--text_columns",
    "review",
    "--has_header",
  )
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "out.tsv").read_text(encoding="utf-8") == (
    "书籍\t好书\n平板\t屏幕 不错 就是贵\n手机\t很好用\n"
  )
  assert result.stdout == "csv_to_tsv: read=4 written=3 skipped_empty=1 skipped_bad=0\n"
  result = run_tool(
    "csv_to_tsv",
    "--input_file",
    source,
    "--output_file",
    tmp_path / "out2.tsv",
    "--label_column",
    "1",
    "--text_columns",
    "2,0",
    "--has_header=true",
    "--label_map",
    "0:negative,1:positive",
  )
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "out2.tsv").read_text(encoding="utf-8") == (
    "positive\t好书\t书籍\nnegative\t屏幕 不错 就是贵\t平板\npositive\t\t水果\n"
    "positive\t很好用\t手机\n"
  )


def test_csv_to_tsv_crlf(tmp_path):
  """CRLF line ends, also inside a quoted field, read as LF ones: the lines
  come from input_files' reader without their ends (before issue 18 a CRLF
  inside a field became two spaces)."""
  source = tmp_path / "in.csv"
  source.write_bytes(CSV_INPUT.replace("\n", "\r\n").encode("utf-8"))
  _csv_to_tsv(source, tmp_path / "out.tsv", "cat", "review", has_header=True)
  assert (tmp_path / "out.tsv").read_text(encoding="utf-8") == (
    "书籍\t好书\n平板\t屏幕 不错 就是贵\n手机\t很好用\n"
  )


def test_csv_to_tsv_tsv_input(tmp_path):
  source = tmp_path / "in.tsv"
  source.write_text('0\tsay "hi\n1\tok\n', encoding="utf-8")
  _csv_to_tsv(source, tmp_path / "out.tsv", "0", "1", input_format="tsv")
  assert (tmp_path / "out.tsv").read_text(encoding="utf-8") == '0\tsay "hi\n1\tok\n'


def test_csv_to_tsv_bad_rows(tmp_path):
  source = tmp_path / "bad.csv"
  source.write_text(CSV_INPUT + "衣服\n", encoding="utf-8")
  output = tmp_path / "out.tsv"
  args = [
    "--input_file",
    source,
    "--output_file",
    output,
    "--label_column",
    "cat",
    "--text_columns",
    "review",
    "--has_header",
  ]
  assert_bad_input(
    run_tool("csv_to_tsv", *args), source, 7, "row has 1 columns, column 2 is needed"
  )
  assert files_in(tmp_path) == ["bad.csv"]
  assert _csv_to_tsv(source, output, "cat", "review", has_header=True, skip_bad_lines=True) == dict(
    read=5, written=3, skipped_empty=1, skipped_bad=1
  )
  with pytest.raises(InputError) as raised:
    _csv_to_tsv(source, output, "nope", "review", has_header=True)
  assert str(raised.value) == (
    f"{source}:1: column 'nope' is not in the header ['cat', 'label', 'review']"
  )
  with pytest.raises(InputError) as raised:
    _csv_to_tsv(source, output, "cat", "review", has_header=True, label_map="书籍:books")
  assert str(raised.value) == f"{source}:3: label '平板' is not in --label_map"
  assert_bad_input(
    run_tool("csv_to_tsv", *args, "--label_map=a:b,c"),
    "--label_map=a:b,c",
    None,
    "entry 'c' is not source:target",
  )


def test_online_shopping_10_cats(tmp_path):
  source = require_shared_data("online_shopping_10_cats", "online_shopping_10_cats.csv")
  output = tmp_path / "reviews.tsv"
  assert _csv_to_tsv(source, output, "cat", "review", has_header=True) == dict(
    read=62774, written=62773, skipped_empty=1, skipped_bad=0
  )
  rows = [line.split("\t") for line in output.read_text(encoding="utf-8").split("\n")[:-1]]
  assert len(rows) == 62773 and all(len(row) == 2 and row[1] for row in rows)
  assert {row[0] for row in rows} == set(
    "书籍 平板 手机 水果 洗发水 热水器 蒙牛 衣服 计算机 酒店".split()
  )
  assert "\ufeff" not in output.read_text(encoding="utf-8")


# ---------------------------------------------------------------- split_dataset


def _split(source, output_dir, **options):
  return split_dataset.run(
    split_dataset.SplitDatasetConfig(str(source), str(output_dir), **options)
  )


def test_split_dataset_tsv(tmp_path):
  lines = [f"L{i % 3}\ttext {i}\tfield{i}" for i in range(10)]
  source = tmp_path / "in.tsv"
  source.write_text("\n".join(lines[:5] + [""] + lines[5:]) + "\n", encoding="utf-8")
  result = run_tool(
    "split_dataset",
    "--input_file",
    source,
    "--output_dir",
    tmp_path / "a",
    "--num_train",
    3,
    "--num_test",
    2,
    "--seed",
    1,
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout == "split_dataset: read=10 train=3 test=2 pool=5 skipped_empty=1\n"
  part = {
    name: (tmp_path / "a" / name).read_text(encoding="utf-8").split("\n")[:-1]
    for name in ["train.tsv", "test.tsv", "pool.txt", "pool_labels.txt"]
  }
  assert [len(part[name]) for name in part] == [3, 2, 5, 5]
  restored = [
    f"{label}\t{fields}" for label, fields in zip(part["pool_labels.txt"], part["pool.txt"])
  ]
  assert sorted(part["train.tsv"] + part["test.tsv"] + restored) == sorted(lines)
  for name in ["train.tsv", "test.tsv"]:
    assert part[name] == [line for line in lines if line in part[name]]  # input order kept
  assert all(not line.startswith("L") for line in part["pool.txt"])
  _split(source, tmp_path / "b", num_train=3, num_test=2, seed=1)
  _split(source, tmp_path / "c", num_train=3, num_test=2, seed=2)
  assert (tmp_path / "b" / "train.tsv").read_text(encoding="utf-8") == (
    "\n".join(part["train.tsv"]) + "\n"
  )
  assert (tmp_path / "b" / "pool.txt").read_bytes() == (tmp_path / "a" / "pool.txt").read_bytes()
  seed_2 = [(tmp_path / "c" / name).read_bytes() for name in ["train.tsv", "test.tsv"]]
  assert seed_2 != [(tmp_path / "a" / name).read_bytes() for name in ["train.tsv", "test.tsv"]]


def test_split_dataset_conll(tmp_path):
  source = tmp_path / "in.txt"
  source.write_text(CLUENER_EXPECTED + "\n\n天 O\n", encoding="utf-8")
  counts = _split(source, tmp_path / "out", format="conll", num_train=1, num_test=1)
  assert counts == dict(read=4, train=1, test=1, pool=2, skipped_empty=0)
  sentences = {"张三在北京", "你好", "去NewYork", "天"}
  train, test = (read_conll(tmp_path / "out" / name) for name in ["train.txt", "test.txt"])
  pool = (tmp_path / "out" / "pool.txt").read_text(encoding="utf-8").split("\n")[:-1]
  pool_labels = read_conll(tmp_path / "out" / "pool_labels.txt")
  assert len(train) == len(test) == 1 and len(pool) == len(pool_labels) == 2
  assert pool == ["".join(token for token, _ in sentence) for sentence in pool_labels]
  assert {"".join(token for token, _ in sentence) for sentence in train + test} | set(pool) == (
    sentences
  )


def test_split_dataset_errors(tmp_path):
  source = tmp_path / "in.tsv"
  source.write_text("a\tx\nb\ty\n", encoding="utf-8")
  assert_bad_input(
    run_tool(
      "split_dataset",
      "--input_file",
      source,
      "--output_dir",
      tmp_path / "out",
      "--num_train",
      2,
      "--num_test",
      1,
    ),
    source,
    None,
    "--num_train + --num_test = 3 exceeds the 2 examples",
  )
  source.write_text("a\tx\nb\ty\nno label here\n", encoding="utf-8")
  with pytest.raises(InputError) as raised:
    _split(source, tmp_path / "out", num_train=1, num_test=1)
  assert str(raised.value) == f"{source}:3: expected `label<TAB>text`"
  assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
  assert_bad_input(
    run_tool(
      "split_dataset", "--input_file", source, "--output_dir", tmp_path / "out", "--num_test=-1"
    ),
    "--num_test=-1",
    None,
    "must be >= 0",
  )
