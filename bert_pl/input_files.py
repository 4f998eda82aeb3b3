"""Readers for the input files of DESIGN §2, streaming, with file:line errors.

Formats:
  unlabeled       one example per line, fields separated by TAB;
  classification  `label<TAB>field1[<TAB>field2...]`;
  ner             CoNLL: `token<whitespace>tag` per line (the last column is
                  the tag, as in CoNLL-2003), a blank line between sentences.
Pseudo-labeled files (step 3) are in the same formats; their confidences are
in a side file `<file>.confidence`, one float per example in the same order.

A bad example raises `InputError("file:line: what")`, or, when the `Counts`
passed in allows skipping, is counted as skipped and logged. Empty lines of
unlabeled/classification files are skipped and counted as `empty`.
"""

import dataclasses
import glob
from typing import Iterator, List, Optional, Sequence, Tuple

import tensorflow as tf
from absl import logging

from bert_pl import tag_schemes
from bert_pl.cli import InputError

CONFIDENCE_SUFFIX = ".confidence"
LOGITS_SUFFIX = ".logits"


@dataclasses.dataclass
class Counts:
  """What a job read, wrote, skipped and truncated; printed at the end."""
  skip_bad_lines: bool = False
  read: int = 0
  written: int = 0
  skipped: int = 0
  empty: int = 0
  truncated: int = 0

  def bad(self, message: str) -> None:
    """A malformed example: fail, or count it when skipping is allowed."""
    if not self.skip_bad_lines:
      raise InputError(message)
    self.skipped += 1
    logging.warning("skipped: %s", message)

  def add(self, other: "Counts") -> None:
    for field in ("read", "written", "skipped", "empty", "truncated"):
      setattr(self, field, getattr(self, field) + getattr(other, field))

  def summary(self) -> str:
    return (f"read {self.read}, written {self.written}, skipped {self.skipped} "
            f"(bad) + {self.empty} (empty), truncated {self.truncated}")


@dataclasses.dataclass
class Example:
  """One input example. `fields` are the text fields (TSV columns) or, for
  NER, the CoNLL tokens; `tags` the BIO tags of those tokens."""
  source: str  # "file:line" of its first line, for messages
  fields: List[str]
  label: Optional[str] = None
  tags: Optional[List[str]] = None
  confidence: Optional[float] = None


def expand_input_files(patterns: str) -> List[str]:
  """A comma list of paths and globs -> sorted, existing files."""
  files = []
  for pattern in filter(None, (p.strip() for p in patterns.split(","))):
    matches = [pattern]
    if any(c in pattern for c in "*?["):
      # A glob over a pseudo-label directory must not pick up the side files
      # or the unfinished outputs of an interrupted job.
      matches = sorted(m for m in glob.glob(pattern)
                       if not m.endswith((CONFIDENCE_SUFFIX, ".tmp")))
    if not matches:
      raise InputError(f"{pattern}: no file matches")
    for path in matches:
      if not tf.io.gfile.exists(path):
        raise InputError(f"{path}: file not found")
      files.append(path)
  if not files:
    raise InputError("no input file given")
  return files


def _lines(path: str) -> Iterator[Tuple[int, str]]:
  """(line number, text without newline); invalid UTF-8 names its line."""
  with tf.io.gfile.GFile(path, "rb") as f:
    for number, raw in enumerate(f, start=1):
      try:
        text = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise InputError(f"{path}:{number}: invalid UTF-8 ({e.reason} at byte "
                         f"{e.start})") from None
      if number == 1:
        text = text.lstrip("\ufeff")
      yield number, text.rstrip("\r\n")


def _confidences(path: str) -> Optional[Iterator[Tuple[int, float]]]:
  side = path + CONFIDENCE_SUFFIX
  if not tf.io.gfile.exists(side):
    return None

  def parse():
    for number, text in _lines(side):
      try:
        value = float(text)
      except ValueError:
        raise InputError(f"{side}:{number}: not a number: {text!r}") from None
      if not 0.0 <= value <= 1.0:
        raise InputError(f"{side}:{number}: confidence {value} is outside [0, 1]")
      yield number, value
  return parse()


def _with_confidence(path: str, examples: Iterator[Example]) -> Iterator[Example]:
  """Attaches the side file's confidences; their counts must agree."""
  confidences = _confidences(path)
  if confidences is None:
    yield from examples
    return
  side = path + CONFIDENCE_SUFFIX
  for example in examples:
    item = next(confidences, None)
    if item is None:
      raise InputError(f"{side}: fewer confidences than examples in {path} "
                       f"(none for {example.source})")
    example.confidence = item[1]
    yield example
  extra = next(confidences, None)
  if extra is not None:
    raise InputError(f"{side}:{extra[0]}: more confidences than examples in {path}")


def read_unlabeled(path: str, counts: Counts) -> Iterator[Example]:
  for number, text in _lines(path):
    counts.read += 1
    if not text.strip():
      counts.empty += 1
      continue
    yield Example(f"{path}:{number}", text.split("\t"))


def read_classification(path: str, counts: Counts,
                        labels: Optional[Sequence[str]] = None) -> Iterator[Example]:
  """Labeled TSV; with `labels`, a label outside it is a bad line."""
  known = set(labels) if labels is not None else None

  def examples():
    for number, text in _lines(path):
      counts.read += 1
      if not text.strip():
        counts.empty += 1
        continue
      label, sep, rest = text.partition("\t")
      source = f"{path}:{number}"
      if not sep or not rest.strip():
        counts.bad(f"{source}: expected `label<TAB>text`, got {text[:60]!r}")
        continue
      if known is not None and label not in known:
        counts.bad(f"{source}: label {label!r} is not in the label file")
        continue
      yield Example(source, rest.split("\t"), label=label)
  return _with_confidence(path, examples())


def read_conll(path: str, counts: Counts, scheme: str = "bio",
               tags: Optional[Sequence[str]] = None) -> Iterator[Example]:
  """CoNLL sentences with tags converted from `scheme` to BIO."""
  known = set(tags) if tags is not None else None

  def sentence(line_numbers, tokens, raw_tags):
    counts.read += 1
    source = f"{path}:{line_numbers[0]}"
    try:
      bio = tag_schemes.to_bio(raw_tags, scheme)
    except tag_schemes.TagError as e:
      counts.bad(f"{path}:{line_numbers[e.index]}: {e}")
      return None
    unknown = sorted(set(bio) - known) if known is not None else []
    if unknown:
      counts.bad(f"{source}: tag {unknown[0]!r} is not in the label file")
      return None
    return Example(source, tokens, tags=bio)

  def examples():
    tokens, raw_tags, line_numbers, bad = [], [], [], False
    for number, text in _lines(path):
      columns = text.split()
      if not columns or columns[0] == "-DOCSTART-":
        if tokens and not bad:
          example = sentence(line_numbers, tokens, raw_tags)
          if example:
            yield example
        tokens, raw_tags, line_numbers, bad = [], [], [], False
        continue
      if len(columns) < 2:
        if not bad:
          counts.read += 1
          counts.bad(f"{path}:{number}: token {columns[0]!r} has no tag "
                     "(expected `token<whitespace>tag`)")
        bad = True
        continue
      tokens.append(columns[0])
      raw_tags.append(columns[-1])
      line_numbers.append(number)
    if tokens and not bad:
      example = sentence(line_numbers, tokens, raw_tags)
      if example:
        yield example
  return _with_confidence(path, examples())


def read_labels(path: str) -> List[str]:
  """A label (or tag) file: one per line, no duplicates."""
  labels = []
  for number, text in _lines(path):
    label = text.strip()
    if not label:
      continue
    if label in labels:
      raise InputError(f"{path}:{number}: duplicate label {label!r}")
    labels.append(label)
  if not labels:
    raise InputError(f"{path}: the label file is empty")
  return labels


def read_examples(path: str, task: str, counts: Counts, labels=None,
                  scheme: str = "bio") -> Iterator[Example]:
  """Examples of `task` ("none", "classification", "ner") from one file."""
  if task == "classification":
    return read_classification(path, counts, labels)
  if task == "ner":
    return read_conll(path, counts, scheme, labels)
  return read_unlabeled(path, counts)
