"""teacher_check: fires on degenerate pseudo-labels (almost one class, almost
no entity, I- without B-) and stays silent on healthy ones; files written in
step 3's formats (with their .confidence side files), read as bert_pl reads
them."""

from bert_pl import teacher_check


def _tsv(path, labels):
  path.write_text("".join(f"{label}\ttext {i}\n" for i, label in enumerate(labels)))
  return str(path)


def _pseudo_tsv(path, labels):
  """A step-3 classification output: labeled TSV plus its confidences."""
  (path.parent / (path.name + ".confidence")).write_text("0.900000\n" * len(labels))
  return _tsv(path, labels)


def _pseudo_conll(path, sentences):
  """A step-3 NER output: one character per line, a blank line after each
  sentence, and the confidences. SENTENCES: (text, a tag per character)."""
  path.write_text(
    "".join("".join(f"{c} {t}\n" for c, t in zip(text, tags)) + "\n" for text, tags in sentences)
  )
  (path.parent / (path.name + ".confidence")).write_text("0.800000\n" * len(sentences))
  return str(path)


def _labeled_conll(tmp_path):
  """Words with tags: 3 entities in 2 sentences, 1.5 per sentence."""
  path = tmp_path / "train.txt"
  path.write_text("John B-PER\nlives O\nin O\nParis B-LOC\n\nBob B-PER\nruns O\n\n")
  return str(path)


def test_classification_fires_on_almost_one_class_and_not_on_a_healthy_teacher(tmp_path):
  train = _tsv(tmp_path / "train.tsv", ["a"] * 4 + ["b"] * 3 + ["c"] * 3)
  (tmp_path / "healthy").mkdir()
  (tmp_path / "degenerate").mkdir()
  # a: 50% against 40% labeled; the threshold is 40% + (100% − 40%) / 2 = 70%.
  healthy = _pseudo_tsv(tmp_path / "healthy" / "pool.txt", ["a"] * 5 + ["b"] * 3 + ["c"] * 2)
  result = teacher_check.check("classification", [healthy], train)
  assert result["warnings"] == []
  assert result["pseudo_labels"] == {"examples": 10, "shares": {"a": 0.5, "b": 0.3, "c": 0.2}}
  assert result["labeled"]["shares"] == {"a": 0.4, "b": 0.3, "c": 0.3}
  assert teacher_check.describe("classification", result) == (
    "no sign of a degenerate teacher: its most frequent class 'a' has 50.0% of the pool, "
    "40.0% of the labeled set."
  )
  # b: 80% against 30% labeled (threshold 65%); a's 10% is below its share.
  degenerate = _pseudo_tsv(tmp_path / "degenerate" / "pool.txt", ["b"] * 8 + ["a", "c"])
  result = teacher_check.check("classification", [degenerate], train)
  assert result["warnings"] == [
    "the teacher gave 80.0% of 10 pool examples the class 'b', which has 30.0% of the labeled "
    "set: a degenerate teacher (almost one class); steps 4-5 would learn that class"
  ]
  assert teacher_check.describe("classification", result).startswith("WARNING: the teacher")


def test_classification_threshold_is_halfway_to_one_class():
  labeled = {"examples": 770, "shares": {str(i): 1 / 77 for i in range(77)}}
  for share, fires in ((0.5, False), (0.51, True)):  # 1/77 + (1 − 1/77) / 2 = 0.5065
    pseudo = {"examples": 100, "shares": {"0": share, "1": 1 - share}}
    assert bool(teacher_check._class_warnings(pseudo, labeled)) == fires
  binary = {"examples": 10, "shares": {"yes": 0.5, "no": 0.5}}
  for share, fires in ((0.74, False), (0.75, True)):
    pseudo = {"examples": 100, "shares": {"yes": share, "no": 1 - share}}
    assert bool(teacher_check._class_warnings(pseudo, binary)) == fires


def test_ner_fires_on_almost_no_entity_and_on_broken_bio(tmp_path):
  train = _labeled_conll(tmp_path)
  for name in ("healthy", "empty", "broken"):
    (tmp_path / name).mkdir()
  per = ["B-PER", "I-PER", "I-PER"]
  healthy = _pseudo_conll(
    tmp_path / "healthy" / "pool.txt",
    [("Amyxyz", per + ["O"] * 3), ("Tom", per)],  # 1.0 entity per sentence: not below 0.375
  )
  result = teacher_check.check("ner", [healthy], train)
  assert result["labeled"] == {"sentences": 2, "entities": 3, "broken": 0}
  assert result["pseudo_labels"] == {"sentences": 2, "entities": 2, "broken": 0}
  assert result["warnings"] == []
  assert teacher_check.describe("ner", result) == (
    "no sign of a degenerate teacher: 1.000 entities per pool sentence (labeled set: 1.500), "
    "0 I- tags without B-."
  )
  # One entity in 4 sentences: 0.25 per sentence, below a quarter of 1.5 (0.375).
  empty = _pseudo_conll(
    tmp_path / "empty" / "pool.txt",
    [("Amy", per), ("abc", ["O"] * 3), ("def", ["O"] * 3), ("ghi", ["O"] * 3)],
  )
  assert teacher_check.check("ner", [empty], train)["warnings"] == [
    "the teacher found 1 entities in 4 pool sentences (0.250 per sentence), the labeled set "
    "has 1.500: a degenerate teacher (almost no entity); steps 4-5 would learn to find none"
  ]
  # O I-PER I-PER and B-LOC I-PER: two of three entities start without their B-.
  broken = _pseudo_conll(
    tmp_path / "broken" / "pool.txt",
    [("Amy", ["O", "I-PER", "I-PER"]), ("Rome", ["B-LOC", "I-PER", "I-PER", "O"])],
  )
  result = teacher_check.check("ner", [broken], train)
  assert result["pseudo_labels"] == {"sentences": 2, "entities": 3, "broken": 2}
  assert result["warnings"] == [
    "2 of the teacher's 3 entities start with an I- tag without B- (the BIO scheme is "
    "broken): its tag sequences are not learned"
  ]


def test_broken_starts():
  assert teacher_check.broken_starts(["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]) == 0
  assert teacher_check.broken_starts(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]) == 3


def test_no_pseudo_label_at_all_is_a_warning(tmp_path):
  """Every pool example below --min_confidence: an empty output file."""
  train = _tsv(tmp_path / "train.tsv", ["a", "b"])
  (tmp_path / "pseudo").mkdir()
  empty = _pseudo_tsv(tmp_path / "pseudo" / "pool.txt", [])
  result = teacher_check.check("classification", [empty], train)
  assert result["warnings"] == [
    "the teacher wrote no pseudo-label (all below --min_confidence?): steps 4-5 have nothing "
    "to learn from"
  ]
  assert teacher_check.describe("classification", result).startswith("WARNING: the teacher wrote")
  conll = _pseudo_conll(tmp_path / "pseudo" / "pool.conll", [])
  result = teacher_check.check("ner", [conll], _labeled_conll(tmp_path))
  assert result["pseudo_labels"] == {"sentences": 0, "entities": 0, "broken": 0}
  assert result["warnings"][0].startswith("the teacher wrote no pseudo-label")
