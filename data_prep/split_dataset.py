"""Splits a labeled data set into the paper's setting: a small labeled train
set, a labeled test set, and a large unlabeled pool (to be pseudo-labeled in
step 3), plus the pool's held-back labels so that the accuracy of the
pseudo-labels can be measured later (`pipeline --pool_labels`).

Formats (docs/DESIGN.md section 2):
  --format=tsv:   examples are lines `label<TAB>field...`; writes train.tsv
                  and test.tsv (labeled), pool.txt (`field...`, the label
                  column dropped) and pool_labels.txt (one label per line).
  --format=conll: examples are blocks of `token tag` lines; writes train.txt
                  and test.txt (CoNLL), pool.txt (one sentence per line, its
                  tokens joined by --token_separator: "" for Chinese
                  characters, " " for words) and pool_labels.txt (the pool's
                  sentences in CoNLL, ready to score pseudo-tagged output
                  against).

The split streams the input twice instead of holding it in memory: the first
pass validates and counts the examples, then --num_train + --num_test example
numbers are drawn with random.Random(--seed); the second pass writes every
example, in input order, to its part. Same input and seed give byte-identical
outputs. Empty lines in TSV input are skipped and counted; a TSV line without
a TAB or with an empty label, or a CoNLL line without a tag, stops the job
with `error: path:line: message`.
"""

import dataclasses
import os
import random
from typing import Dict, Iterator, List, Tuple

from absl import flags

from bert_pl import atomic_files, cli, errors, input_files
from data_prep import common

FORMATS = ("tsv", "conll")


def read_tsv_examples(path: str, counts: Dict[str, int]) -> Iterator[Tuple[str, str, str]]:
  """(label, fields_text, line) per TSV example; counts skipped empty lines in `counts`."""
  for number, line in input_files.numbered_lines(path):
    if not line.strip():
      counts["skipped_empty"] += 1
      continue
    label, tab, fields = line.partition("\t")
    if not tab or not label.strip():
      raise errors.InputError(f"{path}:{number}: expected `label<TAB>text`")
    yield label, fields, line


def read_conll_examples(path: str) -> Iterator[Tuple[List[str], List[str]]]:
  """(tokens, tags) per CoNLL sentence; the tag is the last column."""
  for block in common.read_conll_blocks(path):
    for number, fields in block:
      if len(fields) < 2:
        raise errors.InputError(f"{path}:{number}: expected `token tag`, found one column")
    yield [fields[0] for _, fields in block], [fields[-1] for _, fields in block]


def read_examples(path: str, input_format: str, counts: Dict[str, int]) -> Iterator:
  """The examples of a TSV or CoNLL file (see read_tsv_examples / read_conll_examples)."""
  if input_format == "tsv":
    return read_tsv_examples(path, counts)
  return read_conll_examples(path)


def choose_parts(
  path: str, num_examples: int, num_train: int, num_test: int, seed: int
) -> Dict[int, str]:
  """{example number: "train" | "test"} for a seeded random choice; all
  others go to the pool."""
  if num_train + num_test > num_examples:
    raise errors.InputError(
      f"{path}: --num_train + --num_test = {num_train + num_test} "
      f"exceeds the {num_examples} examples"
    )
  chosen = random.Random(seed).sample(range(num_examples), num_train + num_test)
  return {index: ("train" if i < num_train else "test") for i, index in enumerate(chosen)}


@dataclasses.dataclass(frozen=True)
class SplitDatasetConfig:
  """The labeled file, the directory of the parts, and the split (see the flags)."""

  input_file: str
  output_dir: str
  format: str = "tsv"
  num_train: int = 1000
  num_test: int = 1000
  seed: int = 12345
  token_separator: str = ""


def run(config: SplitDatasetConfig) -> Dict[str, int]:
  """Writes train/test/pool/pool_labels files into `config.output_dir`; returns the counts."""
  path, tsv = config.input_file, config.format == "tsv"
  num_examples = sum(1 for _ in read_examples(path, config.format, dict(skipped_empty=0)))
  parts = choose_parts(path, num_examples, config.num_train, config.num_test, config.seed)
  suffix = ".tsv" if tsv else ".txt"
  names = dict(
    train="train" + suffix, test="test" + suffix, pool="pool.txt", pool_labels="pool_labels.txt"
  )
  atomic_files.makedirs(config.output_dir)
  counts = dict(read=0, train=0, test=0, pool=0, skipped_empty=0)
  paths = [os.path.join(config.output_dir, name) for name in names.values()]
  with common.outputs(paths, f"--output_dir={config.output_dir}", path) as writers:
    out = dict(zip(names, writers))
    for index, example in enumerate(read_examples(path, config.format, counts)):
      counts["read"] += 1
      part = parts.get(index, "pool")
      counts[part] += 1
      if tsv:
        label, fields, line = example
        if part == "pool":
          out["pool"].write(fields + "\n")
          out["pool_labels"].write(label + "\n")
        else:
          out[part].write(line + "\n")
      else:
        tokens, tags = example
        if part == "pool":
          out["pool"].write(config.token_separator.join(tokens) + "\n")
        common.write_conll_sentence(out["pool_labels" if part == "pool" else part], tokens, tags)
  return counts


def define_flags():
  flags.DEFINE_string("input_file", None, "Labeled TSV or CoNLL file.")
  flags.DEFINE_string("output_dir", None, "Directory for train/test/pool/pool_labels.")
  flags.DEFINE_enum("format", SplitDatasetConfig.format, FORMATS, "Input format.")
  flags.DEFINE_integer("num_train", SplitDatasetConfig.num_train, "Labeled training examples.")
  flags.DEFINE_integer("num_test", SplitDatasetConfig.num_test, "Labeled test examples.")
  flags.DEFINE_integer("seed", SplitDatasetConfig.seed, "Random seed of the split.")
  flags.DEFINE_string(
    "token_separator",
    SplitDatasetConfig.token_separator,
    'CoNLL only: joins a pool sentence\'s tokens ("" for characters, " " for words).',
  )
  flags.mark_flags_as_required(["input_file", "output_dir"])
  cli.require(lambda v: v >= 0, ">= 0", "num_train", "num_test")


def main(argv):
  del argv
  f = flags.FLAGS
  config = SplitDatasetConfig(
    input_file=f.input_file,
    output_dir=f.output_dir,
    format=f.format,
    num_train=f.num_train,
    num_test=f.num_test,
    seed=f.seed,
    token_separator=f.token_separator,
  )
  common.print_counts("split_dataset", run(config))


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
