"""The pre-training TFRecord schema (DESIGN §3) and atomic sharded writing.

Feature names, dtypes and shapes are those of google-research/bert's
`run_pretraining.py` input function, plus the pseudo-label features:
`label_ids` [1] (classification), `tag_ids` [max_seq_length] (NER), the
optional `label_weights` [1] (the pseudo-label's confidence; 1.0 when absent)
and the teacher's pre-softmax logits for the KL loss (DESIGN §9):
`label_logits` [num_labels] or `tag_logits` [max_seq_length * num_tags]
(row-major; zero rows on [CLS], [SEP] and padding).
"""

import os
import re
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from bert_pl import atomic_files, errors

_INT_FEATURES = (
  "input_ids",
  "input_mask",
  "segment_ids",
  "masked_lm_positions",
  "masked_lm_ids",
  "next_sentence_labels",
  "label_ids",
  "tag_ids",
)
_FLOAT_FEATURES = ("masked_lm_weights", "label_weights", "label_logits", "tag_logits")
# The teacher-logits feature of each task.
LOGITS_FEATURES = {"classification": "label_logits", "ner": "tag_logits"}


def pretraining_feature_spec(
  max_seq_length: int,
  max_predictions_per_seq: int,
  task: str = "none",
  num_labels: int = 0,
  with_logits: bool = False,
) -> Dict[str, tf.io.FixedLenFeature]:
  """`tf.io.parse_example` spec; the first six entries are the original's.
  `with_logits` adds the task's teacher logits (required: records without
  them fail to parse), which need `num_labels`."""
  spec = {
    "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
    "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
    "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
    "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
    "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
    "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
    "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
  }
  if task == "classification":
    spec["label_ids"] = tf.io.FixedLenFeature([1], tf.int64)
    spec["label_weights"] = tf.io.FixedLenFeature([1], tf.float32, default_value=[1.0])
  elif task == "ner":
    spec["tag_ids"] = tf.io.FixedLenFeature([max_seq_length], tf.int64)
    spec["label_weights"] = tf.io.FixedLenFeature([1], tf.float32, default_value=[1.0])
  if with_logits:
    if task not in LOGITS_FEATURES or num_labels < 1:
      raise ValueError(
        f"teacher logits need task classification or ner and num_labels >= 1, "
        f"got task={task!r}, num_labels={num_labels}"
      )
    width = num_labels if task == "classification" else max_seq_length * num_labels
    spec[LOGITS_FEATURES[task]] = tf.io.FixedLenFeature([width], tf.float32)
  return spec


def record_features(path: str) -> Optional[Dict[str, int]]:
  """Feature name -> number of values, of a TFRecord file's first record
  (say, whether and how wide the file carries the teacher's logits); None
  for a file without records."""
  for record in tf.data.TFRecordDataset(path).take(1):
    features = tf.train.Example.FromString(record.numpy()).features.feature
    return {
      name: len(feature.float_list.value) + len(feature.int64_list.value)
      for name, feature in features.items()
    }
  return None


def feature_dtype(name: str) -> str:
  """The dtype a feature of the schema is written with."""
  return "float32" if name in _FLOAT_FEATURES else "int64"


def _list_proto(values: tf.Tensor, message: str) -> tf.Tensor:
  """[n, k] values -> n serialized Int64List/FloatList messages."""
  n, k = tf.shape(values)[0], tf.shape(values)[1]
  return tf.io.encode_proto(tf.fill([n, 1], k), [values], ["value"], message)


def _submessage(field: str, serialized: tf.Tensor, message: str) -> tf.Tensor:
  return tf.io.encode_proto(
    tf.ones([tf.shape(serialized)[0], 1], tf.int32), [serialized[:, None]], [field], message
  )


@tf.function
def _encode_examples(features: Dict[str, tf.Tensor]) -> tf.Tensor:
  """Serializes a batch of `tf.train.Example`s in the graph with
  `tf.io.encode_proto`, about 7x faster than building the messages in Python."""
  entries = []
  for name in sorted(features):
    value = features[name]
    if value.dtype == tf.float32:
      feature = _submessage(
        "float_list", _list_proto(value, "tensorflow.FloatList"), "tensorflow.Feature"
      )
    else:
      feature = _submessage(
        "int64_list", _list_proto(value, "tensorflow.Int64List"), "tensorflow.Feature"
      )
    n = tf.shape(feature)[0]
    entries.append(
      tf.io.encode_proto(
        tf.ones([n, 2], tf.int32),
        [tf.fill([n, 1], name), feature[:, None]],
        ["key", "value"],
        "tensorflow.Features.FeatureEntry",
      )
    )
  entries = tf.stack(entries, axis=1)
  n = tf.shape(entries)[0]
  container = tf.io.encode_proto(
    tf.fill([n, 1], len(features)), [entries], ["feature"], "tensorflow.Features"
  )
  return _submessage("features", container, "tensorflow.Example")


def serialize_examples(features: Dict[str, np.ndarray]) -> List[bytes]:
  """Rows of a feature batch -> serialized `tf.train.Example`s."""
  n = len(next(iter(features.values())))
  batch = {}
  for name in _INT_FEATURES + _FLOAT_FEATURES:
    if name in features:
      dtype = np.float32 if name in _FLOAT_FEATURES else np.int64
      batch[name] = tf.constant(np.asarray(features[name], dtype).reshape(n, -1))
  return _encode_examples(batch).numpy().tolist()


def shard_paths(output_file: str, num_shards: int) -> List[str]:
  """`output_file` itself for one shard, else `output_file-0000k-of-0000n`."""
  if num_shards == 1:
    return [output_file]
  return [f"{output_file}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def remove_stale_temporaries(output_file: str) -> int:
  """Removes what killed runs writing `output_file` left: the temporaries
  of its shards (any shard count) and manifest, and Beam's
  `beam-temp-NAME-*` directories (`atomic_files.remove_stale_temporaries`)."""
  directory, name = os.path.split(output_file)
  return atomic_files.remove_stale_temporaries(
    directory,
    rf"{re.escape(name)}(-\d{{5}}-of-\d{{5}}|\.manifest\.json)?",
    rf"beam-temp-{re.escape(name)}-[0-9a-f]{{32}}",
  )


class ShardedWriter(atomic_files.AtomicFiles):
  """Writes records round-robin to shards under temporary names
  (`atomic_files.temporary_path`); `commit()` renames them to their final
  names, so an interrupted job leaves no file under a final shard name, and
  the next run removes what it left (see `atomic_files`: a context manager; a
  shard that cannot be written raises `errors.OutputError`, no temporary
  shard left)."""

  def __init__(self, output_file: str, num_shards: int):
    paths = shard_paths(output_file, num_shards)
    directory = os.path.dirname(output_file)
    if directory:
      atomic_files.makedirs(directory)
    remove_stale_temporaries(output_file)
    super().__init__(paths, [atomic_files.temporary_path(p) for p in paths], tf.io.TFRecordWriter)
    self._next = 0

  def write(self, record: bytes) -> None:
    with errors.writing(self.final_paths[self._next]):
      self.writers[self._next].write(record)
    self._next = (self._next + 1) % len(self.writers)
