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

`--masked_lm_prob=0` writes task data without masking (the method's later
version trains step 4 on the unmasked input, without the MLM loss): only with
a task, since MLM-only data without masks teaches nothing, and with one
`--dupe_factor`, since every copy would be the same.
"""

import collections
import dataclasses
import multiprocessing
import time
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from absl import flags, logging

from bert_pl import cli, errors, features, input_files, manifest, masking, tfrecords, tokenization

CHUNK_SIZE = 1024  # examples; part of the seeding scheme, so fixed


@dataclasses.dataclass(frozen=True)
class Options:
  vocab_file: str
  do_lower_case: bool = True
  tokenization: str = "wordpiece"
  max_seq_length: int = 128
  max_predictions_per_seq: int = 20
  masked_lm_prob: float = 0.15
  dupe_factor: int = 1
  do_whole_word_mask: bool = False
  random_seed: int = 12345
  task: str = "none"
  labels: Optional[Tuple[str, ...]] = None
  field_join: str = "sep"

  def __post_init__(self):
    if not 0 <= self.masked_lm_prob <= 1:
      raise errors.InputError(f"--masked_lm_prob={self.masked_lm_prob:g}: must be in [0, 1]")
    if self.masked_lm_prob > 0 and self.max_predictions_per_seq < 1:
      raise errors.InputError(f"--max_predictions_per_seq={self.max_predictions_per_seq} with "
                              f"--masked_lm_prob={self.masked_lm_prob:g}: no token could be "
                              "masked; give at least 1 (or --masked_lm_prob=0: no masking)")
    if self.dupe_factor < 1:
      raise errors.InputError(f"--dupe_factor={self.dupe_factor}: must be at least 1")
    if self.masked_lm_prob == 0 and self.task == "none":
      raise errors.InputError("--masked_lm_prob=0 (no masking) needs --task=classification or "
                              "ner: unmasked data without labels has nothing to learn")
    if self.masked_lm_prob == 0 and self.dupe_factor > 1:
      raise errors.InputError(f"--dupe_factor={self.dupe_factor} with --masked_lm_prob=0 would "
                              "write each example unchanged several times; use --dupe_factor=1")

  def manifest_settings(self) -> dict:
    """What the dataset's manifest records of these options: all but the
    vocabulary's path, which its sha256 and size replace."""
    settings = dataclasses.asdict(self)
    settings["labels"] = list(self.labels) if self.labels is not None else None
    settings.update(manifest.vocab_fingerprint(settings.pop("vocab_file")))
    return settings


def check_counts(num_output_shards: int, num_workers: int = 1) -> None:
  """Refuses shard and worker counts below 1 (`InputError`)."""
  for name, value in (("num_output_shards", num_output_shards), ("num_workers", num_workers)):
    if value < 1:
      raise errors.InputError(f"--{name}={value}: must be at least 1")


class ChunkProcessor:
  """Encodes, masks and serializes one chunk of examples."""

  def __init__(self, options: Options):
    self.options = options
    tokenizer = tokenization.BertTokenizer(options.vocab_file, options.do_lower_case,
                                           options.tokenization)
    self.encoder = features.FeatureEncoder(tokenizer, options.max_seq_length, options.task,
                                           options.labels, options.field_join)
    self.masker = masking.Masker(
        tokenizer.vocab_size,
        [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
         tokenizer.mask_id],
        tokenizer.mask_id, options.masked_lm_prob, options.max_predictions_per_seq,
        options.do_whole_word_mask)

  def __call__(self, chunk: Tuple[Tuple[int, int], List[input_files.Example]]
               ) -> Tuple[List[bytes], int, int]:
    """(chunk key, examples) -> (records, number of truncated examples,
    number of examples with the teacher's logits)."""
    (file_index, chunk_index), examples = chunk
    encoded, truncated = self.encoder.encode(examples)
    n = len(examples)
    per_dupe = []
    for dupe in range(self.options.dupe_factor):
      rng = np.random.default_rng([self.options.random_seed, file_index, chunk_index, dupe])
      masked = self.masker.mask(encoded["input_ids"], encoded["input_mask"], rng,
                                encoded["word_continues"])
      record = dict(encoded, **masked)
      del record["word_continues"]
      record["next_sentence_labels"] = np.zeros([n, 1], np.int64)
      per_dupe.append(tfrecords.serialize_examples(record))
    records = [per_dupe[d][i] for i in range(n) for d in range(self.options.dupe_factor)]
    with_logits = "label_logits" in encoded or "tag_logits" in encoded
    return records, int(truncated.sum()), n if with_logits else 0


def input_paths(options: Options, input_patterns: str) -> Tuple[List[str], bool]:
  """The input files, and whether they have `.logits` side files (all of
  them, or none: else `InputError`)."""
  paths = input_files.expand_input_files(input_patterns)
  return paths, options.task != "none" and input_files.logits_side_files(paths)


def read_file_chunks(path: str, file_index: int, task: str, counts: input_files.Counts,
                     labels=None, tag_scheme: str = "bio", with_logits: bool = False
                     ) -> Iterator[Tuple[Tuple[int, int], list]]:
  """((file index, chunk index), examples) of one file; an empty file is an error."""
  chunk, index = [], 0
  before = counts.read
  for example in input_files.read_examples(path, task, counts, labels, tag_scheme,
                                           with_logits):
    chunk.append(example)
    if len(chunk) == CHUNK_SIZE:
      yield (file_index, index), chunk
      chunk, index = [], index + 1
  if counts.read == before:
    raise input_files.InputError(f"{path}: empty file (no examples)")
  if chunk:
    yield (file_index, index), chunk


def read_chunks(paths: Sequence[str], task: str, counts: input_files.Counts,
                labels=None, tag_scheme: str = "bio", with_logits: bool = False
                ) -> Iterator[Tuple[Tuple[int, int], list]]:
  """The chunks of every file, in order."""
  for file_index, path in enumerate(paths):
    yield from read_file_chunks(path, file_index, task, counts, labels, tag_scheme,
                                with_logits)


_WORKER: Optional[ChunkProcessor] = None


def _init_worker(options: Options) -> None:
  global _WORKER
  _WORKER = ChunkProcessor(options)


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


def create_pretraining_data(options: Options, input_patterns: str, output_file: str,
                            num_output_shards: int = 1, num_workers: int = 1,
                            skip_bad_lines: bool = False,
                            tag_scheme: str = "bio") -> input_files.Counts:
  """Runs the job: the shards, then their manifest; returns the counts.
  Raises `InputError` on bad input."""
  check_counts(num_output_shards, num_workers)
  paths, with_logits = input_paths(options, input_patterns)
  input_files.check_not_inputs(tfrecords.shard_paths(output_file, num_output_shards), paths,
                               f"--output_file={output_file}")
  settings = options.manifest_settings()
  counts = input_files.Counts(skip_bad_lines=skip_bad_lines)
  chunks = read_chunks(paths, options.task, counts, options.labels, tag_scheme, with_logits)
  pool = None
  manifest.remove(output_file)  # the earlier run's, whose shards are being replaced
  try:
    with tfrecords.ShardedWriter(output_file, num_output_shards) as writer:
      if num_workers > 1:
        pool = multiprocessing.get_context("spawn").Pool(
            num_workers, initializer=_init_worker, initargs=(options,))
        results = _ordered_parallel(pool, chunks, 2 * num_workers)
      else:
        results = map(ChunkProcessor(options), chunks)
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
          logging.info("%d lines read (%.0f lines/s), %d examples written",
                       counts.read, counts.read / elapsed, counts.written)
  finally:
    if pool is not None:
      pool.terminate()
  manifest.write(output_file, settings,
                 [manifest.shard_stats(path) for path in writer.final_paths])
  return counts


def options_from_flags(f) -> Options:
  """The job's `Options` from its parsed flags (entry points only)."""
  labels = None
  if f.task != "none":
    if not f.label_file:
      raise errors.InputError(f"--task={f.task} needs --label_file")
    labels = tuple(input_files.read_labels(f.label_file))
  return Options(
      vocab_file=f.vocab_file, do_lower_case=f.do_lower_case,
      tokenization=f.tokenization, max_seq_length=f.max_seq_length,
      max_predictions_per_seq=f.max_predictions_per_seq,
      masked_lm_prob=f.masked_lm_prob, dupe_factor=f.dupe_factor,
      do_whole_word_mask=f.do_whole_word_mask, random_seed=f.random_seed,
      task=f.task, labels=labels, field_join=f.field_join)


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  options = options_from_flags(FLAGS)
  start = time.time()
  counts = create_pretraining_data(options, FLAGS.input_file, FLAGS.output_file,
                                   FLAGS.num_output_shards, FLAGS.num_workers,
                                   FLAGS.skip_bad_lines, FLAGS.tag_scheme)
  elapsed = time.time() - start
  print(f"create_pretraining_data: {counts.summary()} "
        f"({masking_note(FLAGS.masked_lm_prob, FLAGS.dupe_factor)}"
        f"{logits_note(FLAGS.task, counts)}) in {elapsed:.1f}s, "
        f"{counts.read / max(elapsed, 1e-9):.0f} lines/s -> "
        f"{', '.join(tfrecords.shard_paths(FLAGS.output_file, FLAGS.num_output_shards))} "
        f"(+ {manifest.path_of(FLAGS.output_file)})")


def masking_note(masked_lm_prob: float, dupe_factor: int) -> str:
  return "no masking" if masked_lm_prob == 0 else f"{dupe_factor} masking(s) per example"


def logits_note(task: str, counts: input_files.Counts) -> str:
  return "" if task == "none" else f"; {counts.logits} examples with teacher logits"


def define_flags(local_workers: bool = True):
  """The job's flags; the Beam job has no --num_workers (its runner has workers)."""
  flags.DEFINE_string("input_file", None, "Comma list of input files or globs.")
  flags.DEFINE_string("output_file", None,
                      "Output TFRecord path; with --num_output_shards=N > 1, shards are "
                      "named OUTPUT-0000k-of-0000N.")
  flags.DEFINE_integer("num_output_shards", 1, "Number of output shards.")
  flags.DEFINE_string("vocab_file", None, "vocab.txt of the model.")
  flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents.")
  flags.DEFINE_enum("tokenization", "wordpiece", ["wordpiece", "char"],
                    "WordPiece or one token per character.")
  flags.DEFINE_integer("max_seq_length", 128, "Sequence length, [CLS] and [SEP] included.")
  flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum masked tokens per sequence.")
  flags.DEFINE_float("masked_lm_prob", 0.15,
                     "Share of real tokens to mask; 0: no masking (task data only, the "
                     "masked_lm_* features all zero).")
  flags.DEFINE_integer("dupe_factor", 1,
                       "Independent re-maskings of each example (1 with --masked_lm_prob=0).")
  flags.DEFINE_bool("do_whole_word_mask", False,
                    "Mask whole words (Chinese text needs spaces between words).")
  flags.DEFINE_integer("random_seed", 12345, "Seed of the masking.")
  flags.DEFINE_enum("task", "none", list(features.TASKS),
                    "none: unlabeled text; classification|ner: pseudo-labeled files.")
  flags.DEFINE_string("label_file", None, "Labels (classification) or BIO tags (ner), "
                      "one per line.")
  flags.DEFINE_enum("tag_scheme", "bio", ["bio", "iob1", "bioes", "bmes"],
                    "Tag scheme of NER input files (converted to BIO).")
  flags.DEFINE_enum("field_join", "sep", list(features.FIELD_JOINS),
                    "Join TAB-separated fields with [SEP] between them, or concatenate.")
  if local_workers:
    flags.DEFINE_integer("num_workers", 1, "Worker processes.")
  flags.DEFINE_bool("skip_bad_lines", False,
                    "Skip and count malformed examples instead of failing on the first.")
  flags.mark_flags_as_required(["input_file", "output_file", "vocab_file"])
  cli.require_max_seq_length()
  cli.require(lambda v: v >= 1, ">= 1", "dupe_factor")


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
