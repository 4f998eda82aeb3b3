"""Exact resume: checkpointing the input iterator vs skipping the batches taken.

Measures what `training`'s module doc weighs:
  distributed   whether tf.train.Checkpoint accepts the iterators of
                MirroredStrategy's distributed datasets (both ways of making
                them) on 2 logical CPUs;
  state         the size and save time of a plain tf.data iterator's state
                (its shuffle buffer) for the pre-training pipeline (records
                of max_seq_length 128, 20 predictions, shuffle buffer 10,000)
                and the fine-tuning one (the whole training set in memory);
  skip          how fast a resumed run re-reads the batches it skips:
                records/s through the pre-training pipeline, padded and
                length-bucketed, and examples/s through the fine-tuning one,
                per wall-clock and per CPU second.
Random token ids of real lengths (10 to 128 tokens) in 4 TFRecord shards.

Prints one JSON object (last line).

    .venv/bin/python -m bench.bench_resume --records=40000
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from bert_pl import input_pipeline, tfrecords

SEQ, PRED, BATCH, VOCAB = 128, 20, 32, 21128


def make_features(n: int):
  rng = np.random.default_rng(0)
  lengths = rng.integers(10, SEQ + 1, n)
  mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int64)
  return {
    "input_ids": rng.integers(100, VOCAB, (n, SEQ)) * mask,
    "input_mask": mask,
    "segment_ids": np.zeros([n, SEQ], np.int64),
    "masked_lm_positions": np.sort(rng.integers(1, 10, (n, PRED)), 1),
    "masked_lm_ids": rng.integers(100, VOCAB, (n, PRED)),
    "masked_lm_weights": np.ones([n, PRED], np.float32),
    "next_sentence_labels": np.zeros([n, 1], np.int64),
  }


def distributed_checkpointable(strategy) -> dict:
  dataset = tf.data.Dataset.range(64).batch(4)
  makers = {
    "distribute_datasets_from_function": lambda: strategy.distribute_datasets_from_function(
      lambda _: dataset
    ),
    "experimental_distribute_dataset": lambda: strategy.experimental_distribute_dataset(dataset),
  }
  out = {}
  for name, make in makers.items():
    try:
      tf.train.Checkpoint(iterator=iter(make()))
      out[name] = "checkpointable"
    except (TypeError, ValueError) as e:
      out[name] = f"{type(e).__name__}: {str(e)[:90]}"
  return out


def iterator_state(dataset, directory: str) -> dict:
  iterator = iter(dataset)
  next(iterator)
  time.sleep(2)  # prefetch buffers full, as in training
  start = time.time()
  prefix = tf.train.Checkpoint(iterator=iterator).save(os.path.join(directory, "ckpt"))
  seconds = time.time() - start
  size = sum(os.path.getsize(p) for p in tf.io.gfile.glob(prefix + "*"))
  return {"megabytes": round(size / 1e6, 2), "save_seconds": round(seconds, 2)}


def skip_rate(dataset, batches: int) -> dict:
  """Items (records or examples) per second through `dataset.skip(batches)`,
  per wall-clock second and per CPU second of this process (all threads: what
  a busy machine does not distort)."""
  start, cpu = time.time(), time.process_time()
  for _ in dataset.skip(batches).take(1):
    pass
  items = batches * BATCH
  return {
    "per_second": round(items / (time.time() - start)),
    "per_cpu_second": round(items / (time.process_time() - cpu)),
  }


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--records", type=int, default=40000)
  parser.add_argument("--finetuning_examples", type=int, default=10000)
  args = parser.parse_args()
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  result = {"distributed_iterator": distributed_checkpointable(strategy)}
  work = tempfile.mkdtemp()
  features = make_features(args.records)
  records = tfrecords.serialize_examples(features)
  files = [os.path.join(work, f"shard-{i}") for i in range(4)]
  for i, path in enumerate(files):
    with tf.io.TFRecordWriter(path) as writer:
      for record in records[i::4]:
        writer.write(record)
  result["record_bytes"] = round(float(np.mean([len(r) for r in records])))
  spec = tfrecords.pretraining_feature_spec(SEQ, PRED)
  small = {k: v[: args.finetuning_examples] for k, v in features.items()}
  batches = (args.records // BATCH) * 2 // 3
  for bucket_width in (0, 8):
    pretraining = input_pipeline.pretraining_dataset(
      files, spec, BATCH, True, seed=1, bucket_width=bucket_width
    )
    finetuning = input_pipeline.array_dataset(small, BATCH, True, seed=1, bucket_width=bucket_width)
    result[f"bucket_width={bucket_width}"] = {
      "pretraining_state": iterator_state(pretraining, os.path.join(work, f"p{bucket_width}")),
      "finetuning_state": iterator_state(finetuning, os.path.join(work, f"f{bucket_width}")),
      "pretraining_skip_records": skip_rate(pretraining, batches),
      "finetuning_skip_examples": skip_rate(finetuning, batches),
    }
  print(json.dumps(result))


if __name__ == "__main__":
  main()
