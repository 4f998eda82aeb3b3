r"""TFRecords for masked-LM pre-training, with pseudo-labels (steps 1 and 4).

    python -m bert_pl.create_pretraining_data --input_file='pool/*.txt' \
      --output_file=data/pretrain.tfrecord --num_output_shards=8 \
      --vocab_file=vocab.txt --max_seq_length=64 --max_predictions_per_seq=10 \
      --task=classification --label_file=labels.txt --num_workers=2

Reads unlabeled text (`--task=none`) or pseudo-labeled files in the labeled
formats (`--task=classification|ner`, confidences from `<file>.confidence`,
the teacher's logits from `<file>.logits` when every input file has one),
streaming: memory does not grow with the corpus. Each input file is cut into
chunks of a fixed number of examples; chunk k of the f-th file (in sorted
order), re-masking d, draws its masks from a generator seeded with
(`--random_seed`, f, k, d), so the output is byte-identical for any
`--num_workers`, and the Beam job (`bert_pl.beam.create_pretraining_data`),
which spreads the chunks over machines, writes the same examples. Records go
round-robin to the shards, the `--dupe_factor` re-maskings of an example one
after another; shuffling is left to the training input pipeline (the original
held the whole corpus in memory to shuffle it). Shards are written under
hidden temporary names (`.NAME.tmp-PID`, which no glob of the outputs
matches; a re-run removes those a killed run left) and renamed when the job
completes; then their manifest, `OUTPUT.manifest.json` (`bert_pl.manifest`),
says what they hold, for run_pretraining to check.

`--do_whole_word_mask` masks whole words: by default those the text's spaces
and punctuation delimit (WordPiece continuations join their word); with
`--segmenter=rjieba|jieba` (the `segment` extra), a Chinese segmenter's words
(bert_pl.segmentation), loaded once per worker; `--ngram_mask_max=N` masks
spans of up to N whole words (bert_pl.masking).

`--masked_lm_prob=0` writes task data without masking (the method's later
version trains step 4 on the unmasked input, without the MLM loss): only with
a task, since MLM-only data without masks teaches nothing, and with one
`--dupe_factor`, since every copy would be the same.
"""

import collections
import dataclasses
import multiprocessing
import time
from typing import Iterator, List, Optional, Tuple

import numpy as np
from absl import flags, logging

from bert_pl import (
  cli,
  errors,
  features,
  input_files,
  job_config,
  manifest,
  masking,
  segmentation,
  tfrecords,
  tokenization,
)

CHUNK_SIZE = 1024  # examples; part of the seeding scheme, so fixed


@dataclasses.dataclass(frozen=True)
class CreatePretrainingDataConfig:
  """The job's settings; the flags have the same names and defaults."""

  input_file: str  # comma list of files or globs
  output_file: str
  vocab_file: str
  num_output_shards: int = 1
  do_lower_case: bool = True
  tokenization: str = "wordpiece"
  max_seq_length: int = 128
  max_predictions_per_seq: int = 20
  masked_lm_prob: float = masking.MASKED_LM_PROB
  dupe_factor: int = 1
  do_whole_word_mask: bool = False
  segmenter: str = segmentation.NONE
  segmenter_user_dict: Optional[str] = None
  ngram_mask_max: int = 1
  random_seed: int = 12345
  task: str = "none"
  label_file: Optional[str] = None
  tag_scheme: str = "bio"
  field_join: str = "sep"
  num_workers: int = 1  # the Beam job has none: its runner has workers
  skip_bad_lines: bool = False

  def __post_init__(self):
    if self.task != "none" and not self.label_file:
      raise errors.InputError(f"--task={self.task} needs --label_file")
    if not 0 <= self.masked_lm_prob <= 1:
      raise errors.InputError(f"--masked_lm_prob={self.masked_lm_prob:g}: must be in [0, 1]")
    if self.masked_lm_prob > 0 and self.max_predictions_per_seq < 1:
      raise errors.InputError(
        f"--max_predictions_per_seq={self.max_predictions_per_seq} with "
        f"--masked_lm_prob={self.masked_lm_prob:g}: no token could be "
        "masked; give at least 1 (or --masked_lm_prob=0: no masking)"
      )
    if self.dupe_factor < 1:
      raise errors.InputError(f"--dupe_factor={self.dupe_factor}: must be at least 1")
    if self.masked_lm_prob == 0 and self.task == "none":
      raise errors.InputError(
        "--masked_lm_prob=0 (no masking) needs --task=classification or "
        "ner: unmasked data without labels has nothing to learn"
      )
    if self.masked_lm_prob == 0 and self.dupe_factor > 1:
      raise errors.InputError(
        f"--dupe_factor={self.dupe_factor} with --masked_lm_prob=0 would "
        "write each example unchanged several times; use --dupe_factor=1"
      )
    if self.ngram_mask_max < 1:
      raise errors.InputError(f"--ngram_mask_max={self.ngram_mask_max}: must be at least 1")
    for name, used in (
      ("segmenter", self.segmenter != segmentation.NONE),
      ("ngram_mask_max", self.ngram_mask_max > 1),
    ):
      if used and not self.do_whole_word_mask:
        raise errors.InputError(f"--{name}={getattr(self, name)} needs --do_whole_word_mask")
    for name in ("num_output_shards", "num_workers"):
      if getattr(self, name) < 1:
        raise errors.InputError(f"--{name}={getattr(self, name)}: must be at least 1")

  def masking_note(self) -> str:
    return (
      "no masking" if self.masked_lm_prob == 0 else f"{self.dupe_factor} masking(s) per example"
    )

  def logits_note(self, counts: input_files.Counts) -> str:
    return "" if self.task == "none" else f"; {counts.logits} examples with teacher logits"


Labels = Optional[Tuple[str, ...]]


def manifest_settings(config: CreatePretrainingDataConfig, labels: Labels) -> dict:
  """What the dataset's manifest records of the settings: those that decide
  the records, the vocabulary as its sha256 and size (not its path)."""
  settings = {
    name: getattr(config, name)
    for name in (
      "do_lower_case",
      "tokenization",
      "max_seq_length",
      "max_predictions_per_seq",
      "masked_lm_prob",
      "dupe_factor",
      "do_whole_word_mask",
      "segmenter",
      "ngram_mask_max",
      "random_seed",
      "task",
    )
  }
  settings["labels"] = list(labels) if labels is not None else None
  settings["field_join"] = config.field_join
  if config.segmenter_user_dict:
    settings["segmenter_user_dict_sha256"] = manifest.sha256_of(config.segmenter_user_dict)
  settings.update(manifest.vocab_fingerprint(config.vocab_file))
  return settings


def job_inputs(config: CreatePretrainingDataConfig) -> Tuple[Labels, List[str], bool]:
  """The labels (None for `--task=none`), the input files, and whether they
  have `.logits` side files (all of them, or none: else `InputError`); no
  output shard may be one of the inputs."""
  segmentation.check(config.segmenter, config.segmenter_user_dict)
  labels = None
  if config.task != "none":
    labels = tuple(input_files.read_labels(config.label_file))
  paths = input_files.expand_input_files(config.input_file)
  input_files.check_not_inputs(
    tfrecords.shard_paths(config.output_file, config.num_output_shards),
    f"--output_file={config.output_file}",
    {
      "--input_file": paths,
      "--vocab_file": [config.vocab_file],
      "--label_file": [config.label_file],
      "--segmenter_user_dict": [config.segmenter_user_dict],
    },
  )
  return labels, paths, config.task != "none" and input_files.logits_side_files(paths)


class ChunkProcessor:
  """Encodes, masks and serializes one chunk of examples."""

  def __init__(self, config: CreatePretrainingDataConfig, labels: Labels):
    self.config = config
    tokenizer = tokenization.BertTokenizer(
      config.vocab_file, config.do_lower_case, config.tokenization
    )
    segmenter = None
    if config.segmenter != segmentation.NONE:
      segmenter = segmentation.Segmenter(config.segmenter, config.segmenter_user_dict)
    self.encoder = features.FeatureEncoder(
      tokenizer, config.max_seq_length, config.task, labels, config.field_join, segmenter
    )
    self.masker = masking.Masker(
      tokenizer.vocab_size,
      [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id],
      tokenizer.mask_id,
      config.masked_lm_prob,
      config.max_predictions_per_seq,
      config.do_whole_word_mask,
      config.ngram_mask_max,
    )

  def __call__(
    self, chunk: Tuple[Tuple[int, int], List[input_files.Example]]
  ) -> Tuple[List[bytes], int, int]:
    """(chunk key, examples) -> (records, number of truncated examples,
    number of examples with the teacher's logits)."""
    (file_index, chunk_index), examples = chunk
    encoded, truncated = self.encoder.encode(examples)
    n = len(examples)
    dupe_factor = self.config.dupe_factor
    per_dupe = []
    for dupe in range(dupe_factor):
      rng = np.random.default_rng([self.config.random_seed, file_index, chunk_index, dupe])
      masked = self.masker.mask(
        encoded["input_ids"], encoded["input_mask"], rng, encoded["word_continues"]
      )
      record = dict(encoded, **masked)
      del record["word_continues"]
      record["next_sentence_labels"] = np.zeros([n, 1], np.int64)
      per_dupe.append(tfrecords.serialize_examples(record))
    records = [per_dupe[d][i] for i in range(n) for d in range(dupe_factor)]
    with_logits = "label_logits" in encoded or "tag_logits" in encoded
    return records, int(truncated.sum()), n if with_logits else 0


def read_file_chunks(
  path: str,
  file_index: int,
  config: CreatePretrainingDataConfig,
  labels: Labels,
  counts: input_files.Counts,
  with_logits: bool = False,
) -> Iterator[Tuple[Tuple[int, int], list]]:
  """((file index, chunk index), examples) of one file; an empty file is an error."""
  chunk, index = [], 0
  before = counts.read
  for example in input_files.read_examples(
    path, config.task, counts, labels, config.tag_scheme, with_logits
  ):
    chunk.append(example)
    if len(chunk) == CHUNK_SIZE:
      yield (file_index, index), chunk
      chunk, index = [], index + 1
  if counts.read == before:
    raise errors.InputError(f"{path}: empty file (no examples)")
  if chunk:
    yield (file_index, index), chunk


_WORKER: Optional[ChunkProcessor] = None


def _init_worker(config: CreatePretrainingDataConfig, labels: Labels) -> None:
  global _WORKER
  _WORKER = ChunkProcessor(config, labels)


def _work(chunk):
  return _WORKER(chunk)


def _ordered_parallel(pool, chunks, max_in_flight: int):
  """Like `pool.imap`, but reads ahead at most `max_in_flight` chunks, so
  memory stays flat however fast the input is read."""
  pending = collections.deque()
  for chunk in chunks:
    pending.append(pool.apply_async(_work, (chunk,)))
    if len(pending) >= max_in_flight:
      yield pending.popleft().get()
  while pending:
    yield pending.popleft().get()


def run(config: CreatePretrainingDataConfig) -> input_files.Counts:
  """Runs the job: the shards, then their manifest; returns the counts.
  Raises `InputError` on bad input."""
  labels, paths, with_logits = job_inputs(config)
  output_file, num_workers = config.output_file, config.num_workers
  settings = manifest_settings(config, labels)
  counts = input_files.Counts(skip_bad_lines=config.skip_bad_lines)
  chunks = (
    chunk
    for file_index, path in enumerate(paths)
    for chunk in read_file_chunks(path, file_index, config, labels, counts, with_logits)
  )
  pool = None
  manifest.remove(output_file)  # the earlier run's, whose shards are being replaced
  try:
    with tfrecords.ShardedWriter(output_file, config.num_output_shards) as writer:
      if num_workers > 1:
        pool = multiprocessing.get_context("spawn").Pool(
          num_workers, initializer=_init_worker, initargs=(config, labels)
        )
        results = _ordered_parallel(pool, chunks, 2 * num_workers)
      else:
        results = map(ChunkProcessor(config, labels), chunks)
      start, last_log = time.time(), 0.0
      for records, truncated, with_logits in results:
        for record in records:
          writer.write(record)
        counts.written += len(records)
        counts.truncated += truncated
        counts.logits += with_logits
        elapsed = time.time() - start
        if elapsed - last_log > 10:
          last_log = elapsed
          logging.info(
            "%d lines read (%.0f lines/s), %d examples written",
            counts.read,
            counts.read / elapsed,
            counts.written,
          )
  finally:
    if pool is not None:
      pool.terminate()
  manifest.write(output_file, settings, [manifest.shard_stats(path) for path in writer.final_paths])
  return counts


def main(argv):
  del argv
  config = job_config.config_from_flags(CreatePretrainingDataConfig)
  start = time.time()
  counts = run(config)
  elapsed = time.time() - start
  print(
    f"create_pretraining_data: {counts.summary()} "
    f"({config.masking_note()}{config.logits_note(counts)}) in {elapsed:.1f}s, "
    f"{counts.read / max(elapsed, 1e-9):.0f} lines/s -> "
    f"{', '.join(tfrecords.shard_paths(config.output_file, config.num_output_shards))} "
    f"(+ {manifest.path_of(config.output_file)})"
  )


def define_flags(local_workers: bool = True):
  """The job's flags; the Beam job has no --num_workers (its runner has workers)."""
  d = job_config.field_defaults(CreatePretrainingDataConfig)
  flags.DEFINE_string("input_file", None, "Comma list of input files or globs.")
  flags.DEFINE_string(
    "output_file",
    None,
    "Output TFRecord path; with --num_output_shards=N > 1, shards are named OUTPUT-0000k-of-0000N.",
  )
  flags.DEFINE_integer("num_output_shards", d["num_output_shards"], "Number of output shards.")
  flags.DEFINE_string("vocab_file", None, "vocab.txt of the model.")
  cli.define_tokenizer_flags()
  flags.DEFINE_integer(
    "max_seq_length", d["max_seq_length"], "Sequence length, [CLS] and [SEP] included."
  )
  flags.DEFINE_integer(
    "max_predictions_per_seq", d["max_predictions_per_seq"], "Maximum masked tokens per sequence."
  )
  flags.DEFINE_float(
    "masked_lm_prob",
    d["masked_lm_prob"],
    "Share of real tokens to mask; 0: no masking (task data only, the "
    "masked_lm_* features all zero).",
  )
  flags.DEFINE_integer(
    "dupe_factor",
    d["dupe_factor"],
    "Independent re-maskings of each example (1 with --masked_lm_prob=0).",
  )
  flags.DEFINE_bool(
    "do_whole_word_mask",
    d["do_whole_word_mask"],
    "Mask whole words: those the spaces and punctuation delimit, or --segmenter's.",
  )
  flags.DEFINE_enum(
    "segmenter",
    d["segmenter"],
    list(segmentation.SEGMENTERS),
    "With --do_whole_word_mask: the words of a Chinese segmenter (rjieba: the "
    f"fast one; needs {segmentation.INSTALL_HINT}); none: spaces and punctuation.",
  )
  flags.DEFINE_string(
    "segmenter_user_dict",
    None,
    "--segmenter's user dictionary (jieba's format: 'word [frequency] [tag]' per line).",
  )
  flags.DEFINE_integer(
    "ngram_mask_max",
    d["ngram_mask_max"],
    "With --do_whole_word_mask: mask spans of up to N whole words (p(n) ~ 1/n).",
  )
  flags.DEFINE_integer("random_seed", d["random_seed"], "Seed of the masking.")
  flags.DEFINE_enum(
    "task",
    d["task"],
    list(input_files.TASKS),
    "none: unlabeled text; classification|ner: pseudo-labeled files.",
  )
  cli.define_reader_flags()
  if local_workers:
    flags.DEFINE_integer("num_workers", d["num_workers"], "Worker processes.")
  flags.mark_flags_as_required(["input_file", "output_file", "vocab_file"])
  cli.require_max_seq_length()
  cli.require(lambda v: v >= 1, ">= 1", "dupe_factor")


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
