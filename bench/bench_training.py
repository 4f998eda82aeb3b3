"""Training-step throughput of run_pretraining vs Hugging Face transformers.

The paper's model (3 layers, hidden 768, vocab 21,128; random weights: speed
does not depend on them), global batch 64, on the generated corpus:
  cls  MLM (10 predictions) + classification loss, max_seq_length 64;
  ner  MLM (20 predictions) + CRF loss, max_seq_length 128.
bert_pl runs the real job, `python -m bert_pl.run_pretraining`, on TFRecords
written by `bert_pl.create_pretraining_data`; it reports the real tokens/s
and the padding share of its last save interval (`--warmup_steps` steps
first: tracing, oneDNN set-up), which this script reads from its output.
Variants: padded to max_seq_length (`--bucket_width=0`), length-bucketed
(`--bucket_width=8`), and bucketed in bfloat16 (`--dtype=bfloat16`; only
when TensorFlow's bfloat16 matmul beats float32 here by 20%: without native
bfloat16 it is emulated, many times slower, and skipped).

Hugging Face: `bench/hf_training.py` in the bench-only environment
(.venv-bench: PyTorch CPU, transformers), `BertModel` + MLM head at the same
gathered positions + the same task head (a CRF in PyTorch for NER), AdamW,
clipping, fp32, on the same examples in file order, each batch padded to its
longest row (what a DataCollatorWithPadding does).

Efficiency: the FLOPs the step computes (padding included, `common.
training_flops`) per second, over the best fp32 (bf16) matmul rate of
TensorFlow on the model's GEMM shapes, measured in this run.

Prints one JSON object (last line).

    .venv/bin/python -m bench.bench_training --timed_steps=10
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench import common

TASKS = {  # task -> (max_seq_length, max_predictions_per_seq, input, labels)
  "classification": (64, 10, "train.tsv", "labels.txt"),
  "ner": (128, 20, "ner_train.txt", "tags.txt"),
}
VARIANTS = {  # name -> run_pretraining flags
  "padded": ["--bucket_width=0"],
  "bucketed": ["--bucket_width=8"],
  "bucketed_bf16": ["--bucket_width=8", "--dtype=bfloat16"],
}


def create_data(corpus, task, work):
  seq, predictions, input_name, labels = TASKS[task]
  output = work / f"{task}.tfrecord"
  subprocess.run(
    [
      sys.executable,
      "-m",
      "bert_pl.create_pretraining_data",
      f"--input_file={corpus['dir']}/{input_name}",
      f"--output_file={output}",
      f"--vocab_file={corpus['vocab']}",
      f"--max_seq_length={seq}",
      f"--max_predictions_per_seq={predictions}",
      f"--task={task}",
      f"--label_file={corpus['dir']}/{labels}",
      "--random_seed=1",
    ],
    cwd=common.REPO,
    check=True,
    capture_output=True,
  )
  return output


def run_bert_pl(task, data, corpus, config, variant, args, work):
  seq, predictions, _, labels = TASKS[task]
  output_dir = work / f"model_{task}_{variant}"
  command = [
    sys.executable,
    "-m",
    "bert_pl.run_pretraining",
    f"--input_file={data}",
    f"--output_dir={output_dir}",
    f"--bert_config_file={config}",
    f"--vocab_file={corpus['vocab']}",
    f"--max_seq_length={seq}",
    f"--max_predictions_per_seq={predictions}",
    f"--task_loss={task}",
    f"--label_file={corpus['dir']}/{labels}",
    f"--train_batch_size={args.batch_size}",
    f"--num_train_steps={args.warmup_steps + args.timed_steps}",
    f"--save_checkpoints_steps={args.warmup_steps}",
    "--num_warmup_steps=0",
    "--learning_rate=1e-4",
    "--random_seed=1",
    "--do_train",
    *VARIANTS[variant],
  ]
  result = subprocess.run(
    command,
    cwd=common.REPO,
    capture_output=True,
    text=True,
    env={**common.os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
  )
  if result.returncode:
    raise SystemExit(f"run_pretraining failed:\n{result.stderr[-3000:]}")
  line = [s for s in result.stdout.splitlines() if s.startswith("run_pretraining:")][-1]
  values = dict(re.findall(r"(\w+)=([-\d.e+naif]+)", line))
  examples = float(values["examples_per_second"])
  real = float(values["real_tokens_per_second"])
  padded = real / (1.0 - float(values["padding_share"]))
  width = padded / examples
  num_labels = len(pathlib.Path(corpus["dir"], labels).read_text(encoding="utf-8").split())
  flops = common.training_flops(padded, width, examples, predictions, task, num_labels)
  return {
    "examples_per_s": round(examples, 2),
    "real_tokens_per_s": round(real, 1),
    "padding_share": round(float(values["padding_share"]), 3),
    "mean_width": round(width, 1),
    "gflops_per_s": round(flops / 1e9, 1),
    "total_loss": float(values["total_loss"]),
  }


def export_examples(data, task, path):
  """The TFRecords as arrays, in file order, for the PyTorch benchmark."""
  import tensorflow as tf

  from bert_pl import tfrecords

  seq, predictions, _, _ = TASKS[task]
  spec = tfrecords.pretraining_feature_spec(seq, predictions, task)
  batch = next(
    iter(
      tf.data.TFRecordDataset(str(data)).batch(1 << 20).map(lambda r: tf.io.parse_example(r, spec))
    )
  )
  np.savez(path, **{k: v.numpy() for k, v in batch.items()})


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", type=int, default=4096)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--warmup_steps", type=int, default=3)
  parser.add_argument("--timed_steps", type=int, default=10)
  parser.add_argument("--tasks", default="classification,ner")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument(
    "--hf_python",
    default=str(common.REPO / ".venv-bench/bin/python"),
    help="Python of the bench-only environment; empty: skip Hugging Face.",
  )
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_training_"))
  corpus = common.make_corpus(work / "corpus", num_train=args.examples, num_ner_train=args.examples)
  config = common.write_paper_config(work / "bert_config.json")
  # The model's GEMMs at batch 64 x ~36 tokens.
  peaks = {
    dtype: round(common.matmul_peak(common.model_gemm_shapes(2304), dtype), 1)
    for dtype in ("float32", "bfloat16")
  }
  results = {
    "batch_size": args.batch_size,
    "timed_steps": args.timed_steps,
    "matmul_peak": peaks,
    "skipped": {},
  }
  variants = args.variants.split(",")
  if "bucketed_bf16" in variants and peaks["bfloat16"] < 1.2 * peaks["float32"]:
    variants.remove("bucketed_bf16")
    results["skipped"]["bucketed_bf16"] = (
      f"bfloat16 matmul {peaks['bfloat16']} GFLOP/s vs float32 {peaks['float32']}: "
      "no native bfloat16 here"
    )
  for task in args.tasks.split(","):
    data = create_data(corpus, task, work)
    seq = TASKS[task][0]
    row = results[task] = {"max_seq_length": seq}
    for variant in variants:
      start = time.perf_counter()
      row[variant] = run_bert_pl(task, data, corpus, config, variant, args, work)
      row[variant]["wall_s"] = round(time.perf_counter() - start, 1)
    if args.hf_python:
      arrays = work / f"{task}.npz"
      export_examples(data, task, arrays)
      num_labels = len(
        pathlib.Path(corpus["dir"], TASKS[task][3]).read_text(encoding="utf-8").split()
      )
      row["hf_fp32"] = common.run_json(
        [
          args.hf_python,
          str(common.REPO / "bench/hf_training.py"),
          f"--examples={arrays}",
          f"--task={task}",
          f"--num_labels={num_labels}",
          f"--batch_size={args.batch_size}",
          f"--warmup_steps={args.warmup_steps}",
          f"--timed_steps={args.timed_steps}",
        ]
      )
  print(json.dumps(results))


if __name__ == "__main__":
  main()
