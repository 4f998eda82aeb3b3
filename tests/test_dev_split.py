"""data_prep.dev_split: the stratified, seeded dev split of the decision mode."""

import collections

import pytest

from bert_pl import errors
from data_prep import dev_split


def _run(source, output_dir, **options):
  return dev_split.run(dev_split.DevSplitConfig(str(source), str(output_dir), **options))


def _lines(path):
  return path.read_text(encoding="utf-8").split("\n")[:-1]


@pytest.mark.parametrize(
  "n, fraction, expected",
  [(1, 0.2, 0), (2, 0.2, 1), (10, 0.2, 2), (10, 0.25, 2), (12, 0.25, 3), (3, 0.9, 2)],
)
def test_dev_count_keeps_both_sides(n, fraction, expected):
  assert dev_split.dev_count(n, fraction) == expected


def test_tsv_split_is_stratified_seeded_disjoint_and_in_order(tmp_path):
  # 10 examples of A, 5 of B, 1 of C: dev gets 2 of A, 1 of B, none of C.
  lines = [f"A\ta {i}" for i in range(10)] + [f"B\tb {i}" for i in range(5)] + ["C\tc 0"]
  lines = [lines[i] for i in (0, 10, 1, 2, 11, 3, 15, 4, 12, 5, 6, 13, 7, 8, 14, 9)]  # mixed
  source = tmp_path / "train.tsv"
  source.write_text("\n".join(lines) + "\n", encoding="utf-8")
  counts = _run(source, tmp_path / "s1", dev_fraction=0.2, seed=1)
  assert counts == dict(read=16, train=13, dev=3, skipped_empty=0)
  train, dev = _lines(tmp_path / "s1" / "train.tsv"), _lines(tmp_path / "s1" / "dev.tsv")
  labels = collections.Counter(line.split("\t")[0] for line in dev)
  assert labels == {"A": 2, "B": 1}
  assert not set(train) & set(dev) and sorted(train + dev) == sorted(lines)
  assert train == [line for line in lines if line in train]  # input order kept
  assert dev == [line for line in lines if line in dev]
  _run(source, tmp_path / "again", dev_fraction=0.2, seed=1)
  assert (tmp_path / "again" / "dev.tsv").read_bytes() == (tmp_path / "s1" / "dev.tsv").read_bytes()
  for seed in range(2, 6):
    _run(source, tmp_path / f"s{seed}", dev_fraction=0.2, seed=seed)
  others = [_lines(tmp_path / f"s{seed}" / "dev.tsv") for seed in range(2, 6)]
  assert any(split != dev for split in others)  # the seed chooses


def test_conll_split_takes_whole_sentences(tmp_path):
  sentences = [f"w{i} B-PER\nx{i} O\n" for i in range(10)]
  source = tmp_path / "train.txt"
  source.write_text("\n".join(sentences), encoding="utf-8")
  counts = _run(source, tmp_path / "out", format="conll", dev_fraction=0.3, seed=7)
  assert counts == dict(read=10, train=7, dev=3, skipped_empty=0)
  train = (tmp_path / "out" / "train.txt").read_text(encoding="utf-8").split("\n\n")[:-1]
  dev = (tmp_path / "out" / "dev.txt").read_text(encoding="utf-8").split("\n\n")[:-1]
  assert sorted(s + "\n" for s in train + dev) == sorted(sentences)


@pytest.mark.parametrize(
  "options, content, message",
  [
    (dict(dev_fraction=0.0), "A\tx\nB\ty\n", "--dev_fraction=0.0: must be in (0, 1)"),
    (dict(dev_fraction=1.0), "A\tx\nB\ty\n", "--dev_fraction=1.0: must be in (0, 1)"),
    (dict(), "A\tx\n", "1 example(s): a dev split needs at least 2"),
    (dict(), "A\tx\nno tab here\n", ":2: expected `label<TAB>text`"),
  ],
)
def test_bad_input_is_one_error(tmp_path, options, content, message):
  source = tmp_path / "train.tsv"
  source.write_text(content, encoding="utf-8")
  with pytest.raises(errors.InputError) as raised:
    _run(source, tmp_path / "out", **options)
  assert message in str(raised.value)
  assert not (tmp_path / "out" / "dev.tsv").exists()


def test_output_over_its_input_is_refused(tmp_path):
  source = tmp_path / "train.tsv"
  source.write_text("A\tx\nA\ty\n", encoding="utf-8")
  with pytest.raises(errors.InputError, match="an input file, which --output_dir would overwrite"):
    _run(source, tmp_path)
  assert source.read_text(encoding="utf-8") == "A\tx\nA\ty\n"
