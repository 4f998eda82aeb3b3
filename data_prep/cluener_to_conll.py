"""Converts CLUENER2020 JSON lines into CoNLL BIO: one character per line as
`char tag`, a blank line after each sentence (the labeled-NER format of
docs/DESIGN.md section 2, character level as the paper uses for Chinese).

Input lines look like {"text": ..., "label": {type: {entity: [[start,
end_inclusive], ...]}}}. The test split has no "label"; its sentences come out
all `O`, which keeps the file readable by the same NER reader.

Whitespace: BERT's tokenizers treat whitespace as a separator, never as a
token, and a whitespace "token" cannot be written as a `token tag` line. So
whitespace characters are dropped; the remaining characters keep their tags,
and an entity whose first character is whitespace gets its B- tag on its first
kept character. CLUENER2020 itself has no whitespace in any text; the number
of dropped characters is reported anyway.

A line is bad when it is not a JSON object with a string "text", when a span
is out of range or its text differs from the entity string it is listed under,
or when spans overlap (CLUENER's train split has one such line: a book title
containing two company names). A bad line stops the job with
`error: path:line: message`, or, with --skip_bad_lines, is skipped and
counted. Empty texts have no tokens to write and are skipped and counted.
"""

import dataclasses
import json
from typing import Dict

from absl import flags

from bert_pl import cli, errors, input_files
from data_prep import common


def span_tags(text, label):
  """Returns one BIO tag per character of `text` for CLUENER's `label` dict;
  ValueError if inconsistent."""
  if not isinstance(label, dict):
    raise ValueError('"label" is not an object')
  tags = ["O"] * len(text)
  for entity_type, entities in label.items():
    if not entity_type or any(c.isspace() for c in entity_type) or not isinstance(entities, dict):
      raise ValueError(f"bad entity type {entity_type!r} or its entities are not an object")
    for entity, spans in entities.items():
      if not isinstance(spans, list):
        raise ValueError(f"spans of {entity!r} are not a list")
      for span in spans:
        if not (
          isinstance(span, list) and len(span) == 2 and all(isinstance(i, int) for i in span)
        ):
          raise ValueError(f"span {span!r} of {entity!r} is not [start, end]")
        start, end = span
        if not 0 <= start <= end < len(text):
          raise ValueError(f"span {span!r} of {entity!r} is outside the text (length {len(text)})")
        if text[start : end + 1] != entity:
          raise ValueError(f"span {span!r} is {text[start : end + 1]!r}, not the entity {entity!r}")
        if any(tag != "O" for tag in tags[start : end + 1]):
          raise ValueError(f"span {span!r} of {entity!r} overlaps another entity")
        tags[start : end + 1] = [f"I-{entity_type}"] * (end + 1 - start)
        tags[start] = f"B-{entity_type}"
  return tags


def drop_whitespace(chars, tags):
  """Removes whitespace characters, moving a dropped B- tag onto the entity's
  next kept character."""
  kept_chars, kept_tags = [], []
  pending_begin = None
  for char, tag in zip(chars, tags):
    if tag.startswith("B-"):
      pending_begin = tag
    elif not tag.startswith("I-"):
      pending_begin = None
    if char.isspace():
      continue
    if pending_begin is not None:
      tag = pending_begin
      pending_begin = None
    kept_chars.append(char)
    kept_tags.append(tag)
  return kept_chars, kept_tags


def parse_line(line):
  """Returns (characters, tags, entity_count, dropped_whitespace) for one JSON
  line; ValueError if bad."""
  record = json.loads(line)
  if not isinstance(record, dict) or not isinstance(record.get("text"), str):
    raise ValueError('not a JSON object with a string "text"')
  text = record["text"]
  tags = span_tags(text, record.get("label", {}))
  entity_count = sum(tag.startswith("B-") for tag in tags)
  chars, tags = drop_whitespace(list(text), tags)
  if entity_count != sum(tag.startswith("B-") for tag in tags):
    raise ValueError("an entity consists of whitespace only")
  return chars, tags, entity_count, len(text) - len(chars)


@dataclasses.dataclass(frozen=True)
class CluenerToConllConfig:
  """A CLUENER JSON-lines file, the CoNLL BIO file to write, and whether bad
  lines are skipped (and counted) instead of stopping the job."""

  input_file: str
  output_file: str
  skip_bad_lines: bool = False


def run(config: CluenerToConllConfig) -> Dict[str, int]:
  """Converts one CLUENER JSON-lines file into a CoNLL BIO file; returns the counts."""
  counts = dict(read=0, written=0, skipped_bad=0, skipped_empty=0, entities=0, dropped_whitespace=0)
  with common.outputs(
    [config.output_file], f"--output_file={config.output_file}", config.input_file
  ) as (out,):
    for number, line in input_files.numbered_lines(config.input_file):
      if not line.strip():
        continue
      counts["read"] += 1
      try:
        chars, tags, entity_count, dropped = parse_line(line)
      except ValueError as e:
        if not config.skip_bad_lines:
          raise errors.InputError(f"{config.input_file}:{number}: {e}") from None
        counts["skipped_bad"] += 1
        continue
      if not chars:
        counts["skipped_empty"] += 1
        continue
      counts["dropped_whitespace"] += dropped
      common.write_conll_sentence(out, chars, tags)
      counts["written"] += 1
      counts["entities"] += entity_count
  return counts


def define_flags():
  flags.DEFINE_string("input_file", None, "CLUENER2020 JSON lines (train/dev/test.jsonl).")
  flags.DEFINE_string("output_file", None, "CoNLL BIO output, one character per line.")
  flags.DEFINE_bool(
    "skip_bad_lines",
    CluenerToConllConfig.skip_bad_lines,
    "Skip and count bad lines instead of stopping.",
  )
  flags.mark_flags_as_required(["input_file", "output_file"])


def main(argv):
  del argv
  f = flags.FLAGS
  config = CluenerToConllConfig(
    input_file=f.input_file, output_file=f.output_file, skip_bad_lines=f.skip_bad_lines
  )
  common.print_counts("cluener_to_conll", run(config))


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
