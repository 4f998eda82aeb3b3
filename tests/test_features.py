"""Fine-tuning features: the shared conversion of labeled files."""

import numpy as np

from bert_pl import features, input_files, tokenization
from data_prep import build_vocab, make_sample_corpus


def test_labeled_files_to_features(tmp_path):
  make_sample_corpus.run(
    make_sample_corpus.MakeSampleCorpusConfig(
      str(tmp_path), num_unlabeled=10, num_ner_unlabeled=10, num_train=300, num_ner_train=200
    )
  )
  build_vocab.run(
    build_vocab.BuildVocabConfig(
      f"{tmp_path}/train.tsv,{tmp_path}/ner_train.txt", f"{tmp_path}/vocab.txt", format="text"
    )
  )
  tok = tokenization.BertTokenizer(str(tmp_path / "vocab.txt"), mode="char")

  labels = features.collect_labels(str(tmp_path / "train.tsv"), "classification")
  assert sorted(labels) == sorted(input_files.read_labels(str(tmp_path / "labels.txt")))
  counts = input_files.Counts()
  encoder = features.FeatureEncoder(tok, 48, "classification", labels)
  cls = features.encode_file(str(tmp_path / "train.tsv"), encoder, counts, batch_size=64)
  lines = (tmp_path / "train.tsv").read_text(encoding="utf-8").splitlines()
  assert (counts.read, counts.written) == (300, 300)
  assert cls["input_ids"].shape == (300, 48) and cls["label_ids"].shape == (300,)
  assert cls["label_ids"].tolist() == [labels.index(s.split("\t")[0]) for s in lines]
  # Character mode: real length = characters of the three fields + [CLS] + 3 x [SEP].
  for row, line in enumerate(lines[:50]):
    chars = sum(len(f) for f in line.split("\t")[1:])
    assert cls["input_mask"][row].sum() == min(chars + 4, 48)
  assert counts.truncated == sum(sum(len(f) for f in s.split("\t")[1:]) + 4 > 48 for s in lines)

  tags = features.collect_labels(str(tmp_path / "ner_train.txt"), "ner")
  assert tags[0] == "O" and sorted(tags) == sorted(
    input_files.read_labels(str(tmp_path / "tags.txt"))
  )
  ner = features.encode_file(
    str(tmp_path / "ner_train.txt"),
    features.FeatureEncoder(tok, 64, "ner", tags),
    input_files.Counts(),
  )
  assert ner["tag_ids"].shape == (200, 64)
  sentences = (tmp_path / "ner_train.txt").read_text(encoding="utf-8").strip().split("\n\n")
  for row, block in enumerate(sentences[:50]):
    gold = [line.split(" ")[1] for line in block.splitlines()][:62]
    assert [tags[i] for i in ner["tag_ids"][row, 1 : 1 + len(gold)]] == gold
  assert np.all(ner["tag_ids"][ner["input_mask"] == 0] == 0)


def test_rows_without_tokens_at_the_end_encode(corpus):
  """A last row (or last field) that tokenizes to nothing used to crash the
  word-continuation flags (scatter_nd at a row start equal to the token count)."""
  tok = tokenization.BertTokenizer(str(corpus / "vocab.txt"))
  encoder = features.FeatureEncoder(tok, 16, "none")
  encoded, _ = encoder.encode([input_files.Example("x", ["奶茶", ""])])
  assert encoded["input_mask"][0].sum() == 5  # [CLS] 奶 茶 [SEP] [SEP]
  encoded, _ = encoder.encode([input_files.Example(str(i), [t]) for i, t in enumerate("ab ")])
  assert encoded["input_mask"].sum(1).tolist() == [3, 3, 2]
  assert not encoded["word_continues"].any()
