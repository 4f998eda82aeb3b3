"""Carves a dev set out of a labeled training set, for choosing on dev only.

    python -m data_prep.dev_split --input_file=train.tsv --output_dir=split \
      --format=tsv --dev_fraction=0.2 --seed=12345

writes split/train.tsv and split/dev.tsv (CoNLL: train.txt and dev.txt), the
lines of each example unchanged and in input order.

Why stratified: with little labeled data (the setting the method is for, e.g.
10 examples per class) a plain random fifth leaves some classes out of dev and
others out of train, so the dev metric that chooses epochs and learning rates
would not see them. TSV examples are therefore split per label: a label with n
examples gives round(n * fraction) of them to dev, at least 1 and at most
n - 1 (a label with a single example stays in train). CoNLL sentences carry
several entities, so they are split as a whole: round(N * fraction), at least
1 and at most N - 1. The choice draws from random.Random(--seed), per label in
sorted label order, so the same input and seed give byte-identical outputs.
"""

import dataclasses
import os
import random
from typing import Dict, List, Sequence

from absl import flags

from bert_pl import atomic_files, cli, errors, input_files, job_config
from data_prep import common, split_dataset

PARTS = ("train", "dev")


@dataclasses.dataclass(frozen=True)
class DevSplitConfig:
  """The labeled file, where train/dev go, and the dev share (see the flags)."""

  input_file: str
  output_dir: str
  format: str = "tsv"
  dev_fraction: float = 0.2
  seed: int = 12345

  def __post_init__(self):
    if not 0 < self.dev_fraction < 1:
      raise errors.InputError(f"--dev_fraction={self.dev_fraction}: must be in (0, 1)")
    if self.format not in split_dataset.FORMATS:
      raise errors.InputError(
        f"--format={self.format}: choose from {', '.join(split_dataset.FORMATS)}"
      )


def dev_count(num_examples: int, fraction: float) -> int:
  """How many of a group's examples go to dev: round(n * fraction), kept
  within [1, n - 1] so that both sides see the group (0 for a single one)."""
  if num_examples < 2:
    return 0
  return min(max(round(num_examples * fraction), 1), num_examples - 1)


def choose_dev(groups: Dict[str, List[int]], fraction: float, seed: int) -> set:
  """The example numbers that go to dev: a seeded sample of each group."""
  rng = random.Random(seed)
  chosen = set()
  for key in sorted(groups):
    members = groups[key]
    chosen.update(rng.sample(members, dev_count(len(members), fraction)))
  return chosen


def _groups(examples: Sequence, tsv: bool) -> Dict[str, List[int]]:
  """Example numbers per label (TSV), or all of them in one group (CoNLL)."""
  groups: Dict[str, List[int]] = {}
  for index, example in enumerate(examples):
    groups.setdefault(example[0] if tsv else "", []).append(index)
  return groups


def run(config: DevSplitConfig) -> Dict[str, int]:
  """Writes OUTPUT_DIR/{train,dev}.{tsv,txt}; returns the counts per part."""
  path, tsv = config.input_file, config.format == "tsv"
  counts = dict(read=0, train=0, dev=0, skipped_empty=0)
  examples = list(split_dataset.read_examples(path, config.format, counts))
  if len(examples) < 2:
    raise errors.InputError(f"{path}: {len(examples)} example(s): a dev split needs at least 2")
  dev = choose_dev(_groups(examples, tsv), config.dev_fraction, config.seed)
  suffix = ".tsv" if tsv else ".txt"
  paths = [os.path.join(config.output_dir, part + suffix) for part in PARTS]
  input_files.check_not_inputs(paths, [path], "--output_dir")
  atomic_files.makedirs(config.output_dir)
  with common.outputs(paths) as writers:
    out = dict(zip(PARTS, writers))
    for index, example in enumerate(examples):
      part = "dev" if index in dev else "train"
      counts["read"] += 1
      counts[part] += 1
      if tsv:
        out[part].write(example[2] + "\n")
      else:
        common.write_conll_sentence(out[part], *example)
  return counts


def define_flags():
  flags.DEFINE_string("input_file", None, "Labeled TSV (label<TAB>text) or CoNLL file.")
  flags.DEFINE_string("output_dir", None, "Directory for train and dev.")
  flags.DEFINE_enum("format", DevSplitConfig.format, split_dataset.FORMATS, "Input format.")
  flags.DEFINE_float(
    "dev_fraction", DevSplitConfig.dev_fraction, "Share of each label's examples in dev."
  )
  flags.DEFINE_integer("seed", DevSplitConfig.seed, "Random seed of the split.")
  flags.mark_flags_as_required(["input_file", "output_dir"])


def main(argv):
  del argv
  common.print_counts("dev_split", run(job_config.config_from_flags(DevSplitConfig)))


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
