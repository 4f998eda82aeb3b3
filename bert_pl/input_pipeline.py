"""tf.data input for training and evaluation.

Pre-training reads TFRecords (DESIGN §3): files are sharded across input
pipelines (workers), shuffled and interleaved, records shuffled in a buffer
(the data job does not shuffle), batched per replica, parsed, and the int64
features cast to int32. Fine-tuning reads the feature arrays of
`features.encode_file` (labeled sets fit in memory).
"""

from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from bert_pl.cli import InputError


def expand_patterns(patterns: str) -> List[str]:
  files = []
  for pattern in filter(None, (p.strip() for p in patterns.split(","))):
    matches = tf.io.gfile.glob(pattern)
    if not matches:
      raise InputError(f"{pattern}: no file matches")
    files.extend(sorted(matches))
  return files


def _cast(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in features.items()}


def pretraining_dataset(files: List[str], spec: Dict[str, tf.io.FixedLenFeature],
                        batch_size: int, is_training: bool,
                        input_context: Optional[tf.distribute.InputContext] = None,
                        shuffle_buffer: int = 10000, seed: Optional[int] = None
                        ) -> tf.data.Dataset:
  """Batches of parsed pre-training examples; `batch_size` is per replica."""
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if input_context and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
  if is_training:
    dataset = dataset.repeat().shuffle(len(files), seed=seed)
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    dataset = dataset.shuffle(shuffle_buffer, seed=seed)
  else:
    dataset = dataset.flat_map(tf.data.TFRecordDataset)
  dataset = dataset.batch(batch_size, drop_remainder=is_training)
  dataset = dataset.map(lambda records: _cast(tf.io.parse_example(records, spec)),
                        num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


def array_dataset(features: Dict[str, np.ndarray], batch_size: int, is_training: bool,
                  input_context: Optional[tf.distribute.InputContext] = None,
                  seed: Optional[int] = None) -> tf.data.Dataset:
  """Batches of in-memory features; `batch_size` is per replica."""
  dataset = tf.data.Dataset.from_tensor_slices(features)
  if input_context and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
  if is_training:
    count = len(next(iter(features.values())))
    dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat()
  dataset = dataset.batch(batch_size, drop_remainder=is_training)
  return dataset.map(_cast).prefetch(tf.data.AUTOTUNE)


def distribute(strategy: tf.distribute.Strategy, global_batch_size: int, make_dataset):
  """`make_dataset(per_replica_batch_size, input_context)` distributed."""
  replicas = strategy.num_replicas_in_sync
  if global_batch_size % replicas:
    raise ValueError(f"the global batch size {global_batch_size} is not divisible by "
                     f"the {replicas} replicas")
  return strategy.distribute_datasets_from_function(
      lambda context: make_dataset(context.get_per_replica_batch_size(global_batch_size),
                                   context))
