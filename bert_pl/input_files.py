"""Readers for the input files of DESIGN §2, streaming, with file:line errors.

Formats:
  unlabeled       one example per line, fields separated by TAB;
  classification  `label<TAB>field1[<TAB>field2...]`;
  ner             CoNLL: `token<whitespace>tag` per line (the last column is
                  the tag, as in CoNLL-2003), a blank line between sentences.
Pseudo-labeled files (step 3) are in the same formats; their confidences are
in a side file `<file>.confidence`, one float per example in the same order,
and the teacher's pre-softmax logits, when asked for (`with_logits`), in
`<file>.logits` (DESIGN §9): one line per example, classification
`v1 ... vK` or top-k pairs `id:value`, NER `num_tokens * num_tags` values
row-major. A side file is read in lockstep with its data file: a skipped
(malformed) example skips its side lines too, so they never shift.

A bad example raises `InputError("file:line: what")`, or, when the `Counts`
passed in allows skipping, is counted as skipped and logged. Empty lines of
unlabeled/classification files are skipped and counted as `empty`.
"""

import dataclasses
import os
import re
from typing import Callable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from bert_pl import errors, tag_schemes
from bert_pl.errors import InputError

# The tasks, each with its file format (above): fine-tuning's have labels;
# "none" is unlabeled text (domain pre-training, prediction).
FINETUNE_TASKS = ("classification", "ner")
TASKS = ("none",) + FINETUNE_TASKS
CONFIDENCE_SUFFIX = ".confidence"
LOGITS_SUFFIX = ".logits"
# A pre-training dataset's manifest, beside its shards (bert_pl.manifest).
MANIFEST_SUFFIX = ".manifest.json"
# What a glob of input files never yields: side files, manifests, the
# pipeline driver's job markers.
NOT_DATA_SUFFIXES = (CONFIDENCE_SUFFIX, LOGITS_SUFFIX, MANIFEST_SUFFIX, ".done")
# Top-k logits: a label outside the k kept gets the smallest kept value minus
# this, so that its softmax weight is negligible (e^-20 ~ 2e-9).
TOP_K_FILL_MARGIN = 20.0


@dataclasses.dataclass
class Counts:
  """What a job read, wrote, skipped and truncated; printed at the end."""

  skip_bad_lines: bool = False
  read: int = 0
  written: int = 0
  skipped: int = 0
  empty: int = 0
  truncated: int = 0
  logits: int = 0  # examples with the teacher's logits

  def bad(self, message: str) -> None:
    """A malformed example: fail, or count it when skipping is allowed."""
    if not self.skip_bad_lines:
      raise InputError(message)
    self.skipped += 1
    logging.warning("skipped: %s", message)

  def add(self, other: "Counts") -> None:
    for field in ("read", "written", "skipped", "empty", "truncated", "logits"):
      setattr(self, field, getattr(self, field) + getattr(other, field))

  def summary(self) -> str:
    return (
      f"read {self.read}, written {self.written}, skipped {self.skipped} "
      f"(bad) + {self.empty} (empty), truncated {self.truncated}"
    )


@dataclasses.dataclass
class Example:
  """One input example. `fields` are the text fields (TSV columns) or, for
  NER, the CoNLL tokens; `tags` the BIO tags of those tokens."""

  source: str  # "file:line" of its first line, for messages
  fields: List[str]
  label: Optional[str] = None
  tags: Optional[List[str]] = None
  confidence: Optional[float] = None
  logits: Optional[np.ndarray] = None  # [num_labels], or NER [num_tokens, num_tags]


def expand_input_files(patterns: Optional[str]) -> List[str]:
  """A comma list of paths and globs -> the input files: the one rule of
  every job (and of data_prep).

  Each glob's matches are sorted, the patterns keep their order, and a file
  named twice is kept once. A glob skips what is not data: directories,
  hidden names (the jobs' temporaries, `.NAME.tmp-PID`), other temporaries
  (`*.tmp`, `*.tmp-N`, Beam's `beam-temp-*`), side files, manifests and
  markers (`*.confidence`, `*.logits`, `*.manifest.json`, `*.done`), so that
  `data/pool.tfrecord*` or `pseudo/*` name the data alone. A path without
  glob characters is taken as it is (a side file may be named on purpose),
  but must be an existing file. A pattern matching nothing (after skipping)
  is an error.
  """
  files, seen = [], set()
  for pattern in filter(None, (p.strip() for p in (patterns or "").split(","))):
    if any(c in pattern for c in "*?["):
      matches = sorted(
        m
        for m in tf.io.gfile.glob(pattern)
        if not _skipped_by_globs(m) and not tf.io.gfile.isdir(m)
      )
      if not matches:
        raise InputError(f"{pattern}: no file matches")
    else:
      errors.check_file(pattern)
      matches = [pattern]
    files.extend(m for m in matches if m not in seen)
    seen.update(matches)
  if not files:
    raise InputError("no input file given")
  return files


def _skipped_by_globs(path: str) -> bool:
  name = os.path.basename(path)
  return (
    name.startswith((".", "beam-temp-"))
    or name.endswith(NOT_DATA_SUFFIXES)
    or re.search(r"\.tmp(-\d+)?$", name) is not None
  )


def check_not_inputs(
  outputs: Sequence[str], writer: str, inputs: Mapping[str, Sequence[Optional[str]]]
) -> None:
  """Refuses to write an output over one of the job's inputs: the job would
  destroy what it reads or, when it skips finished outputs, take its inputs
  for them and do nothing. The one check of every job: `outputs` are the
  files it writes (or directories it replaces whole), `writer` the output
  flag as given (`--output_file=out.txt`), `inputs` each input flag
  (`--input_file`) with its files (None: not given). See `_overwrites`."""
  for flag, paths in inputs.items():
    for path in filter(None, paths):
      if any(_overwrites(output, path) for output in outputs):
        raise InputError(f"{writer} would write over {flag}={path}; write the output elsewhere")


def _overwrites(output: str, path: str) -> bool:
  """Whether writing `output` replaces the file `path`: the same real path
  (links resolved), a path inside the output (a directory replaced whole),
  or, when both exist, the same file by another name (a hard link, another
  mount of it)."""
  real_output, real_input = os.path.realpath(output), os.path.realpath(path)
  if real_input == real_output or real_input.startswith(real_output.rstrip("/") + "/"):
    return True
  try:
    return os.path.samefile(output, path)
  except OSError:  # one of them does not exist (yet), or is not a local file
    return False


def files_in(directory: str) -> List[str]:
  """The files directly in `directory` (none when it is not a directory):
  a model directory's, which an output must not replace."""
  if not tf.io.gfile.isdir(directory):
    return []
  paths = (os.path.join(directory, name) for name in sorted(tf.io.gfile.listdir(directory)))
  return [path for path in paths if not tf.io.gfile.isdir(path)]


def numbered_lines(path: str) -> Iterator[Tuple[int, str]]:
  """(line number, text without newline); invalid UTF-8 names its line."""
  errors.check_file(path)
  with errors.reading(path), tf.io.gfile.GFile(path, "rb") as f:
    for number, raw in enumerate(f, start=1):
      try:
        text = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise InputError(f"{path}:{number}: invalid UTF-8 ({e.reason} at byte {e.start})") from None
      if number == 1:
        text = text.lstrip("\ufeff")
      yield number, text.rstrip("\r\n")


def logits_side_files(paths: Sequence[str]) -> bool:
  """Whether the input files have `.logits` side files: all of them or none
  (a job cannot train on the teacher's logits for only part of its data)."""
  present = [tf.io.gfile.exists(p + LOGITS_SUFFIX) for p in paths]
  if any(present) and not all(present):
    missing = paths[present.index(False)]
    having = paths[present.index(True)]
    raise InputError(
      f"{missing}: no {LOGITS_SUFFIX} side file, but {having} has one "
      "(every input file needs one, or none)"
    )
  return all(present)


def _confidence(text: str, where: str, example: Example) -> None:
  try:
    value = float(text)
  except ValueError:
    raise InputError(f"{where}: not a number: {text!r}") from None
  if not 0.0 <= value <= 1.0:
    raise InputError(f"{where}: confidence {value} is outside [0, 1]")
  example.confidence = value


def _numbers(texts: Sequence[str], where: str) -> np.ndarray:
  try:
    values = np.array([float(t) for t in texts], np.float32)
  except ValueError:
    bad = next(t for t in texts if not _is_float(t))
    raise InputError(f"{where}: not a number: {bad!r}") from None
  if not np.isfinite(values).all():
    bad = texts[int(np.flatnonzero(~np.isfinite(values))[0])]
    raise InputError(f"{where}: logit {bad!r} is not finite")
  return values


def _is_float(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def parse_label_logits(text: str, num_labels: int, where: str) -> np.ndarray:
  """One classification line of a `.logits` file -> float32 [num_labels]:
  all labels' values, or `id:value` pairs of the top k, the others filled
  with (smallest kept value - TOP_K_FILL_MARGIN)."""
  items = text.split()
  if not items or ":" not in items[0]:
    if len(items) != num_labels:
      raise InputError(
        f"{where}: expected {num_labels} logits (one per label) or id:value "
        f"pairs, got {len(items)} values"
      )
    return _numbers(items, where)
  pairs = [item.partition(":") for item in items]
  if any(not sep for _, sep, _ in pairs):
    raise InputError(f"{where}: expected id:value pairs (top-k logits), got {text[:60]!r}")
  if not all(i.isascii() and i.isdigit() for i, _, _ in pairs):
    bad = next(i for i, _, _ in pairs if not (i.isascii() and i.isdigit()))
    raise InputError(f"{where}: label id {bad!r} is not a number")
  ids = np.array([int(i) for i, _, _ in pairs])
  if ids.max() >= num_labels:
    raise InputError(
      f"{where}: label id {ids.max()} is out of range (there are {num_labels} labels)"
    )
  if len(set(ids.tolist())) != len(ids):
    raise InputError(f"{where}: a label id appears twice")
  kept = _numbers([v for _, _, v in pairs], where)
  values = np.full([num_labels], float(kept.min()) - TOP_K_FILL_MARGIN, np.float32)
  values[ids] = kept
  return values


def parse_tag_logits(text: str, num_tokens: int, num_tags: int, where: str) -> np.ndarray:
  """One NER line of a `.logits` file -> float32 [num_tokens, num_tags]."""
  items = text.split()
  if len(items) != num_tokens * num_tags:
    raise InputError(
      f"{where}: expected {num_tokens} tokens x {num_tags} tags = "
      f"{num_tokens * num_tags} logits, got {len(items)}"
    )
  return _numbers(items, where).reshape(num_tokens, num_tags)


Attach = Callable[[str, str, Example], None]


def _with_side_file(
  path: str, suffix: str, what: str, examples: Iterator[Optional[Example]], attach: Attach
) -> Iterator[Optional[Example]]:
  """Reads `<path><suffix>` in lockstep with `examples` (None: a skipped
  example, which still has its side line); `attach(text, "side:line",
  example)` stores a line's value. Their counts must agree."""
  side = path + suffix
  lines = numbered_lines(side)
  for example in examples:
    item = next(lines, None)
    if item is None:
      source = example.source if example else "a skipped example"
      raise InputError(f"{side}: fewer {what} than examples in {path} (none for {source})")
    if example is not None:
      attach(item[1], f"{side}:{item[0]}", example)
    yield example
  extra = next(lines, None)
  if extra is not None:
    raise InputError(f"{side}:{extra[0]}: more {what} than examples in {path}")


def _with_side_files(
  path: str, examples: Iterator[Optional[Example]], logits: Optional[Attach]
) -> Iterator[Example]:
  """The examples with their confidences (when `<path>.confidence` exists)
  and logits (when `logits` parses them), skipped examples dropped."""
  if tf.io.gfile.exists(path + CONFIDENCE_SUFFIX):
    examples = _with_side_file(path, CONFIDENCE_SUFFIX, "confidences", examples, _confidence)
  if logits is not None:
    examples = _with_side_file(path, LOGITS_SUFFIX, "logits lines", examples, logits)
  return (e for e in examples if e is not None)


def read_unlabeled(path: str, counts: Counts) -> Iterator[Example]:
  """The examples of an unlabeled file; a file without a line is an error
  (as for every input file: a pool shard cut wrongly, most likely)."""
  number = 0
  for number, text in numbered_lines(path):
    counts.read += 1
    if not text.strip():
      counts.empty += 1
      continue
    yield Example(f"{path}:{number}", text.split("\t"))
  if not number:
    raise InputError(f"{path}: empty file (no examples)")


def read_classification(
  path: str, counts: Counts, labels: Optional[Sequence[str]] = None, with_logits: bool = False
) -> Iterator[Example]:
  """Labeled TSV; with `labels`, a label outside it is a bad line.
  `with_logits` reads `<path>.logits` (needs `labels`)."""
  known = set(labels) if labels is not None else None

  def examples():
    for number, text in numbered_lines(path):
      counts.read += 1
      if not text.strip():
        counts.empty += 1
        continue
      label, sep, rest = text.partition("\t")
      source = f"{path}:{number}"
      if not sep or not rest.strip():
        counts.bad(f"{source}: expected `label<TAB>text`, got {text[:60]!r}")
        yield None
      elif known is not None and label not in known:
        counts.bad(f"{source}: label {label!r} is not in the label file")
        yield None
      else:
        yield Example(source, rest.split("\t"), label=label)

  def logits(text, where, example):
    example.logits = parse_label_logits(text, len(labels), where)

  return _with_side_files(path, examples(), _needs_labels(logits, with_logits, labels))


def _needs_labels(attach: Attach, with_logits: bool, labels) -> Optional[Attach]:
  if not with_logits:
    return None
  if labels is None:
    raise ValueError("reading logits needs the label list (the width of a line)")
  return attach


def read_conll(
  path: str,
  counts: Counts,
  scheme: str = "bio",
  tags: Optional[Sequence[str]] = None,
  with_logits: bool = False,
) -> Iterator[Example]:
  """CoNLL sentences with tags converted from `scheme` to BIO.
  `with_logits` reads `<path>.logits` (needs `tags`)."""
  known = set(tags) if tags is not None else None

  def sentence(line_numbers, tokens, raw_tags):
    counts.read += 1
    source = f"{path}:{line_numbers[0]}"
    try:
      bio = tag_schemes.to_bio(raw_tags, scheme)
    except tag_schemes.TagError as e:
      counts.bad(f"{path}:{line_numbers[e.index]}: {e}")
      return None
    unknown = [i for i, tag in enumerate(bio) if tag not in known] if known is not None else []
    if unknown:
      counts.bad(
        f"{path}:{line_numbers[unknown[0]]}: tag {bio[unknown[0]]!r} is not in the label file"
      )
      return None
    return Example(source, tokens, tags=bio)

  def examples():
    tokens, raw_tags, line_numbers, bad = [], [], [], False
    for number, text in numbered_lines(path):
      columns = text.split()
      if not columns or columns[0] == "-DOCSTART-":
        if bad:
          yield None
        elif tokens:
          yield sentence(line_numbers, tokens, raw_tags)
        tokens, raw_tags, line_numbers, bad = [], [], [], False
        continue
      if len(columns) < 2:
        if not bad:
          counts.read += 1
          counts.bad(
            f"{path}:{number}: token {columns[0]!r} has no tag (expected `token<whitespace>tag`)"
          )
        bad = True
        continue
      tokens.append(columns[0])
      raw_tags.append(columns[-1])
      line_numbers.append(number)
    if bad:
      yield None
    elif tokens:
      yield sentence(line_numbers, tokens, raw_tags)

  def logits(text, where, example):
    example.logits = parse_tag_logits(text, len(example.fields), len(tags), where)

  return _with_side_files(path, examples(), _needs_labels(logits, with_logits, tags))


def read_labels(path: str) -> List[str]:
  """A label (or tag) file: one per line, no duplicates."""
  labels = []
  for number, text in numbered_lines(path):
    label = text.strip()
    if not label:
      continue
    if label in labels:
      raise InputError(f"{path}:{number}: duplicate label {label!r}")
    labels.append(label)
  if not labels:
    raise InputError(f"{path}: the label file is empty")
  return labels


def read_examples(
  path: str, task: str, counts: Counts, labels=None, scheme: str = "bio", with_logits: bool = False
) -> Iterator[Example]:
  """Examples of `task` (one of `TASKS`) from one file."""
  if task == "classification":
    return read_classification(path, counts, labels, with_logits)
  if task == "ner":
    return read_conll(path, counts, scheme, labels, with_logits)
  return read_unlabeled(path, counts)
