"""Converts CLUENER2020 JSON lines into CoNLL BIO: one character per line as `char tag`, a blank line after
each sentence (the labeled-NER format of DESIGN.md section 2, character level as the paper uses for Chinese).

Input lines look like {"text": ..., "label": {type: {entity: [[start, end_inclusive], ...]}}}. The test split
has no "label"; its sentences come out all `O`, which keeps the file readable by the same NER reader.

Whitespace: BERT's tokenizers treat whitespace as a separator, never as a token, and a whitespace "token"
cannot be written as a `token tag` line. So whitespace characters are dropped; the remaining characters keep
their tags, and an entity whose first character is whitespace gets its B- tag on its first kept character.
CLUENER2020 itself has no whitespace in any text; the number of dropped characters is reported anyway.

A line is bad when it is not a JSON object with a string "text", when a span is out of range or its text
differs from the entity string it is listed under, or when spans overlap (CLUENER's train split has one such
line: a book title containing two company names). A bad line stops the job with `path:line: message`, or,
with --skip_bad_lines, is skipped and counted. Empty texts have no tokens to write and are skipped and counted.
"""

import argparse
import json
import os
import sys

if __package__ in (None, ""):  # run as `python data_prep/cluener_to_conll.py`: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data_prep import common


def span_tags(text, label):
    """Returns one BIO tag per character of `text` for CLUENER's `label` dict; ValueError if inconsistent."""
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
                if not (isinstance(span, list) and len(span) == 2 and all(isinstance(i, int) for i in span)):
                    raise ValueError(f"span {span!r} of {entity!r} is not [start, end]")
                start, end = span
                if not 0 <= start <= end < len(text):
                    raise ValueError(f"span {span!r} of {entity!r} is outside the text (length {len(text)})")
                if text[start:end + 1] != entity:
                    raise ValueError(f"span {span!r} is {text[start:end + 1]!r}, not the entity {entity!r}")
                if any(tag != "O" for tag in tags[start:end + 1]):
                    raise ValueError(f"span {span!r} of {entity!r} overlaps another entity")
                tags[start:end + 1] = [f"I-{entity_type}"] * (end + 1 - start)
                tags[start] = f"B-{entity_type}"
    return tags


def drop_whitespace(chars, tags):
    """Removes whitespace characters, moving a dropped B- tag onto the entity's next kept character."""
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
    """Returns (characters, tags, entity_count, dropped_whitespace) for one JSON line; ValueError if bad."""
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


def convert(input_path, output_path, skip_bad_lines=False):
    """Converts one CLUENER JSON-lines file into a CoNLL BIO file; returns the counts."""
    counts = dict(read=0, written=0, skipped_bad=0, skipped_empty=0, entities=0, dropped_whitespace=0)
    with common.atomic_open(output_path) as out:
        for number, line in common.read_lines(input_path):
            if not line.strip():
                continue
            counts["read"] += 1
            try:
                chars, tags, entity_count, dropped = parse_line(line)
            except ValueError as e:
                if not skip_bad_lines:
                    raise common.DataError(input_path, number, str(e)) from None
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, help="CLUENER2020 JSON lines (train/dev/test.jsonl)")
    parser.add_argument("--output_file", required=True, help="CoNLL BIO output, one character per line")
    common.add_bool_flag(parser, "--skip_bad_lines", False, "skip and count bad lines instead of stopping")
    args = parser.parse_args(argv)
    counts = convert(args.input_file, args.output_file, args.skip_bad_lines)
    common.print_counts("cluener_to_conll", **counts)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
