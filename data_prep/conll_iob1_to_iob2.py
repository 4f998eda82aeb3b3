"""Converts CoNLL-2003 NER files (`word POS chunk NER`, IOB1 tags, `-DOCSTART-` lines) into `word tag` lines
in IOB2 (BIO), a blank line after each sentence: the labeled-NER format of DESIGN.md section 2.

The word is the first column and the tag the last, so any column layout with the tag last works. In IOB1 an
entity usually starts with I-; B- only marks an entity that directly follows one of the same type. IOB2
starts every entity with B-, so I-X becomes B-X when the previous tag is not B-X/I-X; B- and O are kept
(input already in IOB2 passes through unchanged). `-DOCSTART-` lines are document markers, not sentences, and
are dropped; sentence boundaries are kept. A line with fewer than two columns or a tag that is not O, B-X or
I-X stops the job with `path:line: message`.
"""

import argparse
import os
import sys

if __package__ in (None, ""):  # run as `python data_prep/conll_iob1_to_iob2.py`: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data_prep import common

DOCSTART = "-DOCSTART-"


def is_valid_tag(tag):
    """True for O, B-TYPE and I-TYPE."""
    prefix, dash, entity_type = tag.partition("-")
    return tag == "O" or (prefix in ("B", "I") and dash == "-" and bool(entity_type))


def iob1_to_iob2(tags):
    """Returns the IOB2 version of one sentence's (valid) IOB1 tags."""
    converted = []
    previous_type = None
    for tag in tags:
        if tag == "O":
            converted.append(tag)
            previous_type = None
            continue
        prefix, _, entity_type = tag.partition("-")
        if prefix == "I" and entity_type != previous_type:
            tag = f"B-{entity_type}"
        converted.append(tag)
        previous_type = entity_type
    return converted


def convert(input_path, output_path):
    """Converts one IOB1 CoNLL file into a `word tag` IOB2 file; returns the counts."""
    counts = dict(read=0, written=0, docstarts=0, tokens=0, tags_changed=0)
    with common.atomic_open(output_path) as out:
        for block in common.read_conll_blocks(input_path):
            words, tags = [], []
            for number, fields in block:
                if fields[0] == DOCSTART:
                    counts["docstarts"] += 1
                    continue
                if len(fields) < 2:
                    raise common.DataError(input_path, number, "expected `word ... tag`, found one column")
                if not is_valid_tag(fields[-1]):
                    raise common.DataError(input_path, number, f"tag {fields[-1]!r} is not O, B-TYPE or I-TYPE")
                words.append(fields[0])
                tags.append(fields[-1])
            if not words:
                continue
            counts["read"] += 1
            new_tags = iob1_to_iob2(tags)
            common.write_conll_sentence(out, words, new_tags)
            counts["written"] += 1
            counts["tokens"] += len(words)
            counts["tags_changed"] += sum(old != new for old, new in zip(tags, new_tags))
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, help="CoNLL-2003 file, e.g. eng.train")
    parser.add_argument("--output_file", required=True, help="`word tag` IOB2 output")
    args = parser.parse_args(argv)
    counts = convert(args.input_file, args.output_file)
    common.print_counts("conll_iob1_to_iob2", **counts)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
