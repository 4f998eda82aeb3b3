"""tf.data input for training and evaluation.

Pre-training reads TFRecords (DESIGN §3): files are sharded across input
pipelines (workers), shuffled and interleaved, records shuffled in a buffer
(the data job does not shuffle), batched per replica, parsed in parallel, and
the int64 features cast to int32. Fine-tuning reads the feature arrays of
`features.encode_file` (labeled sets fit in memory).

Length bucketing (`bucket_width` > 0): examples are grouped into batches of
similar length (real tokens, from input_mask, in buckets `bucket_width`
wide) and each batch is cut to its longest row. Records are padded to
max_seq_length, but user texts are short: at the paper's lengths (28 of 64
tokens on average) most of a padded batch's compute is padding, and a
random batch's longest row is close to max_seq_length, so cutting alone gains
nothing. Batches then differ in width, so the training step is traced once
for a dynamic sequence length. Batches hold examples of one length range,
which changes the optimisation slightly: hence a flag (`--bucket_width`).
"""

import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from bert_pl.errors import InputError


def _cast(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in features.items()}


# Features with one value per token: what `bucket_width` cuts to the longest row.
SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids", "tag_ids")


def cut_to_longest_row(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """Drops the padding columns that no row of the batch uses."""
  width = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(batch["input_mask"], tf.int32), 1)), 1)
  return {k: v[:, :width] if k in SEQUENCE_FEATURES else v for k, v in batch.items()}


def bucket_by_length(
  dataset: tf.data.Dataset,
  batch_size: int,
  max_seq_length: int,
  bucket_width: int,
  drop_remainder: bool,
) -> tf.data.Dataset:
  """Unbatched examples -> batches of examples whose real lengths fall in the
  same `bucket_width`-wide bucket, each cut to its longest row."""
  boundaries = list(range(bucket_width + 1, max_seq_length + 1, bucket_width))
  dataset = dataset.bucket_by_sequence_length(
    lambda example: tf.reduce_sum(tf.cast(example["input_mask"], tf.int32)),
    bucket_boundaries=boundaries,
    bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    no_padding=True,
    drop_remainder=drop_remainder,
  )
  return dataset.map(cut_to_longest_row, num_parallel_calls=tf.data.AUTOTUNE)


def pretraining_dataset(
  files: List[str],
  spec: Dict[str, tf.io.FixedLenFeature],
  batch_size: int,
  is_training: bool,
  input_context: Optional[tf.distribute.InputContext] = None,
  shuffle_buffer: int = 10000,
  seed: Optional[int] = None,
  bucket_width: int = 0,
) -> tf.data.Dataset:
  """Batches of parsed pre-training examples; `batch_size` is per replica."""
  dataset = tf.data.Dataset.from_tensor_slices(files)
  pipelines = input_context.num_input_pipelines if input_context else 1
  # Each input pipeline (worker) reads its own files, or, with fewer files
  # than workers, every file and its own share of the records.
  shard_files = pipelines > 1 and len(files) >= pipelines
  if shard_files:
    dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
  if is_training:
    dataset = dataset.repeat().shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
      tf.data.TFRecordDataset,
      cycle_length=min(len(files), 8),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=seed is not None,
    )
  else:
    dataset = dataset.flat_map(tf.data.TFRecordDataset)
  if pipelines > 1 and not shard_files:
    dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
  if is_training:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed)
  parse = lambda records: _cast(tf.io.parse_example(records, spec))
  if bucket_width:
    max_seq_length = spec["input_ids"].shape[0]
    dataset = dataset.batch(256).map(parse, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = bucket_by_length(dataset, batch_size, max_seq_length, bucket_width, is_training)
  else:
    dataset = dataset.batch(batch_size, drop_remainder=is_training)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


def array_dataset(
  features: Dict[str, np.ndarray],
  batch_size: int,
  is_training: bool,
  input_context: Optional[tf.distribute.InputContext] = None,
  seed: Optional[int] = None,
  bucket_width: int = 0,
) -> tf.data.Dataset:
  """Batches of in-memory features; `batch_size` is per replica.

  The examples' indices are shuffled, not the examples: the shuffle buffer,
  the whole training set, is saved with every checkpoint (`TrainingInput`)."""
  count = len(next(iter(features.values())))
  dataset = tf.data.Dataset.range(count)
  if input_context and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  if is_training:
    dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat()
  tensors = {k: tf.constant(v) for k, v in features.items()}
  gather = lambda indices: {k: tf.gather(v, indices) for k, v in tensors.items()}
  if bucket_width:
    max_seq_length = features["input_ids"].shape[1]
    dataset = bucket_by_length(
      dataset.map(gather), batch_size, max_seq_length, bucket_width, is_training
    )
  else:
    dataset = dataset.batch(batch_size, drop_remainder=is_training).map(gather)
  return dataset.map(_cast).prefetch(tf.data.AUTOTUNE)


def _check_batch_size(strategy: tf.distribute.Strategy, global_batch_size: int) -> None:
  replicas = strategy.num_replicas_in_sync
  if global_batch_size % replicas:
    raise InputError(
      f"the global batch size {global_batch_size} is not divisible by the {replicas} replicas"
    )


def distribute(strategy: tf.distribute.Strategy, global_batch_size: int, make_dataset):
  """`make_dataset(per_replica_batch_size, input_context)` distributed (for
  evaluation: the last batches may be partial, or missing on some replicas)."""
  _check_batch_size(strategy, global_batch_size)
  return strategy.distribute_datasets_from_function(
    lambda context: make_dataset(context.get_per_replica_batch_size(global_batch_size), context)
  )


def input_context(strategy: tf.distribute.Strategy) -> tf.distribute.InputContext:
  """The `InputContext` `strategy` gives this worker's input pipeline (the
  one `distribute_datasets_from_function` passes)."""
  contexts = []

  def capture(context):
    contexts.append(context)
    return tf.data.Dataset.range(1)

  strategy.distribute_datasets_from_function(capture)
  return contexts[0]


class TrainingInput(tf.Module):
  """The training batches of a strategy's replicas, from one plain tf.data
  iterator per worker (`make_dataset(per_replica_batch_size, input_context)`),
  so that its position can be saved with the checkpoints: TensorFlow 2.15
  cannot checkpoint the iterators of distributed datasets (`training` says
  why this matters). Each step takes the next per-replica batch for each of
  the worker's replicas in turn, as a distributed dataset does.

  `description`: what the position is a position in (files, seed, lengths,
  bucketing...); with the batch size and the replicas added, it decides
  whether a saved position applies to this input."""

  def __init__(
    self, strategy: tf.distribute.Strategy, global_batch_size: int, make_dataset, description: Dict
  ):
    _check_batch_size(strategy, global_batch_size)
    context = input_context(strategy)
    self.worker = context.input_pipeline_id
    self._local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
    self._strategy = strategy
    self.iterator = iter(
      make_dataset(context.get_per_replica_batch_size(global_batch_size), context)
    )
    self.description = json.dumps(
      dict(
        description,
        global_batch_size=global_batch_size,
        replicas=context.num_replicas_in_sync,
        input_pipelines=context.num_input_pipelines,
      ),
      sort_keys=True,
    )

  def __iter__(self):
    return self

  def __next__(self):
    """The next batch of every replica (a `PerReplica` value)."""
    batches = [next(self.iterator) for _ in range(self._local_replicas)]
    first = self.worker * self._local_replicas
    return self._strategy.experimental_distribute_values_from_function(
      lambda context: batches[context.replica_id_in_sync_group - first]
    )


def count_records(path: str) -> int:
  """The records of one TFRecord file; raises `tf.errors.DataLossError` at
  the first truncated or corrupted record (lengths and data are CRC-checked)."""
  return int(tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def drop_corrupt_files(files: List[str], skip: bool) -> List[str]:
  """Called when reading `files` failed with a `DataLossError` (which names
  no file): finds the corrupt files. Raises an `InputError` naming the first,
  or, with `skip`, logs a warning for each and returns the others."""
  corrupt = []
  for path in files:
    try:
      count_records(path)
    except tf.errors.DataLossError as e:
      corrupt.append((path, e.message.split("}}")[-1].split("[Op:")[0].strip()))
  if not corrupt:
    raise InputError(
      "reading the TFRecords failed with a data loss error, but every file "
      "reads back whole now: " + ", ".join(files[:5])
    )
  return refuse_or_skip(
    files, [(path, f"corrupt TFRecord file ({reason})") for path, reason in corrupt], skip
  )


def refuse_or_skip(files: List[str], bad: Sequence[Tuple[str, str]], skip: bool) -> List[str]:
  """`files` without the `bad` ones, given as (path, what is wrong): an
  `InputError` naming the first, or, with `skip` (--skip_corrupt_files), a
  warning for each."""
  if not bad:
    return files
  if not skip:
    path, what = bad[0]
    raise InputError(
      f"{path}: {what}; regenerate it, or pass --skip_corrupt_files to train without it"
    )
  for path, what in bad:
    logging.warning("skipping %s: %s", path, what)
  dropped = {path for path, _ in bad}
  good = [path for path in files if path not in dropped]
  if not good:
    raise InputError(f"every input file is corrupt ({len(files)} files)")
  return good
