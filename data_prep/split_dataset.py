"""Splits a labeled data set into the paper's setting: a small labeled train set, a labeled test set, and a
large unlabeled pool (to be pseudo-labeled in step 3), plus the pool's held-back labels so that the accuracy
of the pseudo-labels can be measured later.

Formats (DESIGN.md section 2):
  --format=tsv:   examples are lines `label<TAB>field...`; writes train.tsv and test.tsv (labeled), pool.txt
                  (`field...`, the label column dropped) and pool_labels.txt (one label per line).
  --format=conll: examples are blocks of `token tag` lines; writes train.txt and test.txt (CoNLL), pool.txt
                  (one sentence per line, its tokens joined by --token_separator: "" for Chinese characters,
                  " " for words) and pool_labels.txt (the pool's sentences in CoNLL, ready to score
                  pseudo-tagged output against).

The split streams the input twice instead of holding it in memory: the first pass validates and counts the
examples, then --num_train + --num_test example numbers are drawn with random.Random(--seed); the second pass
writes every example, in input order, to its part. Same input and seed give byte-identical outputs. Empty
lines in TSV input are skipped and counted; a TSV line without a TAB or with an empty label, or a CoNLL line
without a tag, stops the job with `path:line: message`.
"""

import argparse
import contextlib
import os
import random
import sys

if __package__ in (None, ""):  # run as `python data_prep/split_dataset.py`: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data_prep import common


def read_tsv_examples(path, counts):
    """Yields (label, fields_text, line) per TSV example; counts skipped empty lines in `counts`."""
    for number, line in common.read_lines(path):
        if not line.strip():
            counts["skipped_empty"] += 1
            continue
        label, tab, fields = line.partition("\t")
        if not tab or not label.strip():
            raise common.DataError(path, number, "expected `label<TAB>text`")
        yield label, fields, line


def read_conll_examples(path):
    """Yields (tokens, tags) per CoNLL sentence; the tag is the last column."""
    for block in common.read_conll_blocks(path):
        for number, fields in block:
            if len(fields) < 2:
                raise common.DataError(path, number, "expected `token tag`, found one column")
        yield [fields[0] for _, fields in block], [fields[-1] for _, fields in block]


def choose_parts(num_examples, num_train, num_test, seed):
    """Returns {example_number: "train" | "test"} for a seeded random choice; all others go to the pool."""
    if num_train + num_test > num_examples:
        raise ValueError(f"--num_train + --num_test = {num_train + num_test} exceeds the {num_examples} examples")
    chosen = random.Random(seed).sample(range(num_examples), num_train + num_test)
    return {index: ("train" if i < num_train else "test") for i, index in enumerate(chosen)}


def read_examples(path, input_format, counts):
    """Yields the examples of a TSV or CoNLL file (see read_tsv_examples / read_conll_examples)."""
    if input_format == "tsv":
        return read_tsv_examples(path, counts)
    return read_conll_examples(path)


def split(input_path, output_dir, input_format="tsv", num_train=1000, num_test=1000, seed=12345,
          token_separator=""):
    """Writes train/test/pool/pool_labels files into `output_dir`; returns the counts."""
    num_examples = sum(1 for _ in read_examples(input_path, input_format, dict(skipped_empty=0)))
    try:
        parts = choose_parts(num_examples, num_train, num_test, seed)
    except ValueError as e:
        raise common.DataError(input_path, None, str(e)) from None
    suffix = ".tsv" if input_format == "tsv" else ".txt"
    names = dict(train="train" + suffix, test="test" + suffix, pool="pool.txt", pool_labels="pool_labels.txt")
    os.makedirs(output_dir, exist_ok=True)
    counts = dict(read=0, train=0, test=0, pool=0, skipped_empty=0)
    with contextlib.ExitStack() as stack:
        out = {part: stack.enter_context(common.atomic_open(os.path.join(output_dir, name)))
               for part, name in names.items()}
        for index, example in enumerate(read_examples(input_path, input_format, counts)):
            counts["read"] += 1
            part = parts.get(index, "pool")
            counts[part] += 1
            if input_format == "tsv":
                label, fields, line = example
                if part == "pool":
                    out["pool"].write(fields + "\n")
                    out["pool_labels"].write(label + "\n")
                else:
                    out[part].write(line + "\n")
            else:
                tokens, tags = example
                if part == "pool":
                    out["pool"].write(token_separator.join(tokens) + "\n")
                common.write_conll_sentence(out["pool_labels" if part == "pool" else part], tokens, tags)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, help="labeled TSV or CoNLL file")
    parser.add_argument("--output_dir", required=True, help="directory for train/test/pool/pool_labels")
    parser.add_argument("--format", choices=["tsv", "conll"], default="tsv", help="input format (default tsv)")
    parser.add_argument("--num_train", type=int, default=1000, help="labeled training examples (default 1000)")
    parser.add_argument("--num_test", type=int, default=1000, help="labeled test examples (default 1000)")
    parser.add_argument("--seed", type=int, default=12345, help="random seed of the split (default 12345)")
    parser.add_argument("--token_separator", default="",
                        help='CoNLL only: joins a pool sentence\'s tokens ("" for characters, " " for words)')
    args = parser.parse_args(argv)
    if args.num_train < 0 or args.num_test < 0:
        parser.error("--num_train and --num_test must be >= 0")
    counts = split(args.input_file, args.output_dir, args.format, args.num_train, args.num_test, args.seed,
                   args.token_separator)
    common.print_counts("split_dataset", **counts)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
