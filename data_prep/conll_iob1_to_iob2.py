"""Converts CoNLL-2003 NER files (`word POS chunk NER`, IOB1 tags,
`-DOCSTART-` lines) into `word tag` lines in IOB2 (BIO), a blank line after
each sentence: the labeled-NER format of docs/DESIGN.md section 2.

The jobs read IOB1 themselves (`--tag_scheme=iob1`); this tool writes the
files once in the scheme every bert_pl output uses, two columns wide. The word
is the first column and the tag the last, so any column layout with the tag
last works. The conversion is `tag_schemes.to_bio`'s: in IOB1 an entity
usually starts with I-; B- only marks an entity that directly follows one of
the same type. IOB2 starts every entity with B-, so I-X becomes B-X when the
previous tag is not B-X/I-X; B- and O are kept (input already in IOB2 passes
through unchanged). `-DOCSTART-` lines are document markers, not sentences,
and are dropped; sentence boundaries are kept. A line with fewer than two
columns or a tag that is not O, B-X or I-X stops the job with
`error: path:line: message`.
"""

import dataclasses
from typing import Dict

from absl import flags

from bert_pl import cli, errors, tag_schemes
from data_prep import common

DOCSTART = "-DOCSTART-"


@dataclasses.dataclass(frozen=True)
class ConllIob1ToIob2Config:
  """A CoNLL file with IOB1 tags (e.g. eng.train) and the IOB2 file to write."""

  input_file: str
  output_file: str


def run(config: ConllIob1ToIob2Config) -> Dict[str, int]:
  """Converts one IOB1 CoNLL file into a `word tag` IOB2 file; returns the counts."""
  path = config.input_file
  counts = dict(read=0, written=0, docstarts=0, tokens=0, tags_changed=0)
  with common.outputs([config.output_file], f"--output_file={config.output_file}", path) as (out,):
    for block in common.read_conll_blocks(path):
      words, tags, numbers = [], [], []
      for number, fields in block:
        if fields[0] == DOCSTART:
          counts["docstarts"] += 1
          continue
        if len(fields) < 2:
          raise errors.InputError(f"{path}:{number}: expected `word ... tag`, found one column")
        words.append(fields[0])
        tags.append(fields[-1])
        numbers.append(number)
      if not words:
        continue
      counts["read"] += 1
      try:
        new_tags = tag_schemes.to_bio(tags, "iob1")
      except tag_schemes.TagError as e:
        raise errors.InputError(f"{path}:{numbers[e.index]}: {e}") from None
      common.write_conll_sentence(out, words, new_tags)
      counts["written"] += 1
      counts["tokens"] += len(words)
      counts["tags_changed"] += sum(old != new for old, new in zip(tags, new_tags))
  return counts


def define_flags():
  flags.DEFINE_string("input_file", None, "CoNLL-2003 file, e.g. eng.train.")
  flags.DEFINE_string("output_file", None, "`word tag` IOB2 output.")
  flags.mark_flags_as_required(["input_file", "output_file"])


def main(argv):
  del argv
  f = flags.FLAGS
  config = ConllIob1ToIob2Config(input_file=f.input_file, output_file=f.output_file)
  common.print_counts("conll_iob1_to_iob2", run(config))


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
