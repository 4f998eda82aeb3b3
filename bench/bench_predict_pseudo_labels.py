"""predict_pseudo_labels throughput: length-sorted, cut batches vs padding.

The paper's model shape (3 layers, hidden 768, vocab 21,128; random weights:
speed does not depend on them) classifies the generated corpus's texts
(~28 characters) at max_seq_length 64, batch 256, in one process. Model time
on the encoded lines, by how batches are formed:
  padded      input order, padded to max_seq_length (the baseline);
  job         what the job does (`prediction.predict_sorted`): windows of
              64 batches sorted by length, each batch cut to its longest row;
  ideal       no padding at all: every batch holds rows of exactly one length;
  job_xla     the job with `--use_xla`;
  job_bf16    the job with `--dtype=bfloat16`, only when bfloat16 matmul is
              faster than float32 on this machine (else emulated and skipped).
Each mode runs once to warm up, then is timed; rates are lines/s. Then the
whole job (`predict_pseudo_labels.run`: reading, tokenization, prediction,
writing) on a model directory of that model, lines/s end to end.

Prints one JSON object (last line).

    .venv/bin/python -m bench.bench_predict_pseudo_labels --lines=8192
"""

import argparse
import json
import pathlib
import tempfile
import time

import numpy as np
import tensorflow as tf

from bench import common
from bert_pl import (
  features,
  input_files,
  model_dir,
  modeling,
  precision,
  predict_pseudo_labels,
  prediction,
  task_models,
  tokenization,
)


def exact_length_batches(predictor, encoded):
  """No padding: rows grouped by length, batches within a group."""
  lengths = encoded["input_mask"].sum(1)
  for length in np.unique(lengths):
    rows = np.flatnonzero(lengths == length)
    predictor.predict({k: v[rows] for k, v in encoded.items()})


def write_model_dir(directory, config, vocab, model, labels):
  model_dir.write(
    str(directory),
    config,
    vocab,
    {
      "task": "classification",
      "labels": labels,
      "max_seq_length": 64,
      "do_lower_case": True,
      "tokenization": "wordpiece",
      "field_join": "sep",
      "trained_by": "bench",
    },
  )
  tf.train.CheckpointManager(
    tf.train.Checkpoint(bert=model.bert, head=model.head), str(directory), 1
  ).save()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=8192)
  parser.add_argument("--batch_size", type=int, default=256)
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_predict_"))
  corpus = common.make_corpus(work / "corpus", num_unlabeled=args.lines)
  pool = str(work / "corpus" / "unlabeled.txt")
  tokenizer = tokenization.BertTokenizer(corpus["vocab"])
  examples = list(input_files.read_unlabeled(pool, input_files.Counts()))
  encoded, _ = features.FeatureEncoder(tokenizer, 64, "none").encode(examples)
  encoded = {k: encoded[k] for k in ("input_ids", "input_mask", "segment_ids")}
  lengths = encoded["input_mask"].sum(1)
  config = modeling.BertConfig(vocab_size=tokenizer.vocab_size, **common.PAPER_MODEL)
  labels = [f"label{i}" for i in range(20)]
  model = task_models.BertTaskModel(config, "classification", len(labels))
  peaks = {
    dtype: common.matmul_peak(common.model_gemm_shapes(8192), dtype)
    for dtype in ("float32", "bfloat16")
  }

  def job(predictor):
    window = 64 * args.batch_size
    for start in range(0, len(lengths), window):
      prediction.predict_sorted(
        predictor, {k: v[start : start + window] for k, v in encoded.items()}
      )

  modes = {
    # An all-ones input_mask: every batch is computed at max_seq_length, as a
    # job without trimming would (the same work; the outputs are not used).
    "padded": lambda: prediction.Predictor(model, args.batch_size).predict(
      dict(encoded, input_mask=np.ones_like(encoded["input_mask"]))
    ),
    "job": lambda: job(prediction.Predictor(model, args.batch_size)),
    "ideal": lambda: exact_length_batches(prediction.Predictor(model, args.batch_size), encoded),
    "job_xla": lambda: job(prediction.Predictor(model, args.batch_size, use_xla=True)),
  }
  skipped = {}
  if peaks["bfloat16"] > 1.2 * peaks["float32"]:
    with precision.policy("bfloat16"):
      model_bf16 = task_models.BertTaskModel(config, "classification", len(labels))
    model_bf16.set_weights(model.get_weights())
    modes["job_bf16"] = lambda: job(prediction.Predictor(model_bf16, args.batch_size))
  else:
    skipped["job_bf16"] = (
      f"bfloat16 matmul {peaks['bfloat16']:.0f} GFLOP/s vs float32 "
      f"{peaks['float32']:.0f}: no native bfloat16 here"
    )
  rates = {}
  for name, run in modes.items():
    run()
    start = time.perf_counter()
    run()
    rates[name] = round(len(lengths) / (time.perf_counter() - start), 1)

  directory = work / "model_b"
  write_model_dir(directory, config, corpus["vocab"], model, labels)
  start = time.perf_counter()
  predict_pseudo_labels.run(
    predict_pseudo_labels.PredictPseudoLabelsConfig(
      str(directory), pool, str(work / "pseudo"), predict_batch_size=args.batch_size
    )
  )
  rates["whole_job"] = round(len(lengths) / (time.perf_counter() - start), 1)
  print(
    json.dumps(
      {
        "lines": len(lengths),
        "batch_size": args.batch_size,
        "mean_tokens": round(float(lengths.mean()), 1),
        "max_tokens": int(lengths.max()),
        "lines_per_s": rates,
        "skipped": skipped,
        "matmul_peak": {k: round(v, 1) for k, v in peaks.items()},
      }
    )
  )


if __name__ == "__main__":
  main()
