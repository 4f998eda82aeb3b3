"""Examples/s of bert_pl's create_pretraining_data vs tf-models-official's.

Both jobs run as separate processes pinned to one core (`taskset -c 0`) on the
same generated corpus: one example per line (the sample corpus's unlabeled
pool, ~28 characters per line), max_seq_length 64, max_predictions_per_seq 10,
dupe_factor 1. tf-models-official's job reads documents separated by blank
lines, so its copy of the corpus has a blank line after each line (each line
one document: one instance per line, as ours).

Two rates per job: whole process (examples / wall time, imports and graph
tracing included) and steady state, N / (time for 2N lines - time for N
lines), which cancels the fixed start-up cost of both jobs. N is per job,
`--lines` for tf-models-official's and 10x that for bert_pl's, so that for
both the difference is seconds of work, well above the jitter of start-up
(~10 s for bert_pl; with equal N, its difference was under a second and
the ratio swung between 2.8x and 12.9x from run to run). The ratio of the
steady-state rates is the target (>= 5x).

    .venv/bin/python -m bench.bench_create_pretraining_data --lines=20000
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import tensorflow as tf

from data_prep import build_vocab, make_sample_corpus

REPO = pathlib.Path(__file__).resolve().parent.parent


def _timed(command):
  start = time.perf_counter()
  result = subprocess.run(
    ["taskset", "-c", "0", sys.executable, *command],
    cwd=REPO,
    capture_output=True,
    text=True,
    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
  )
  elapsed = time.perf_counter() - start
  if result.returncode:
    raise SystemExit(f"{command[1]} failed:\n{result.stderr[-3000:]}")
  return elapsed


def _count(pattern):
  return sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--lines", type=int, default=20000, help="tf-models' largest input; bert_pl's is 10x"
  )
  parser.add_argument("--json_output", default=None, help="Also write the results here.")
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_cpd_"))
  try:
    make_sample_corpus.run(
      make_sample_corpus.MakeSampleCorpusConfig(
        str(work),
        num_unlabeled=10 * args.lines,
        num_ner_unlabeled=10,
        num_train=10,
        num_test=10,
        num_ner_train=10,
        num_ner_test=10,
      )
    )
    lines = (work / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    build_vocab.run(build_vocab.BuildVocabConfig(f"{work}/unlabeled.txt", f"{work}/vocab.txt"))
    common = [
      f"--vocab_file={work}/vocab.txt",
      "--max_seq_length=64",
      "--max_predictions_per_seq=10",
      "--dupe_factor=1",
      "--do_lower_case=true",
    ]
    results = {"lines": args.lines}
    for name, module, separator, full in (
      ("bert_pl", "bert_pl.create_pretraining_data", "", 10 * args.lines),
      ("tf_models", "official.nlp.data.create_pretraining_data", "\n", args.lines),
    ):
      times, half = {}, full // 2
      for size in (half, full):
        corpus = work / f"{name}_{size}.txt"
        corpus.write_text("".join(line + separator for line in lines[:size]), encoding="utf-8")
        extra = ["--num_workers=1"] if name == "bert_pl" else []
        times[size] = _timed(
          [
            "-m",
            module,
            f"--input_file={corpus}",
            f"--output_file={work}/{name}_{size}.tfrecord",
            *common,
            *extra,
          ]
        )
      examples = _count(f"{work}/{name}_{full}.tfrecord")
      results[name] = {
        "examples": examples,
        "seconds": round(times[full], 2),
        "process_examples_per_s": round(examples / times[full], 1),
        "steady_examples_per_s": round((full - half) / (times[full] - times[half]), 1),
      }
    ours, theirs = results["bert_pl"], results["tf_models"]
    results["ratio_steady"] = round(
      ours["steady_examples_per_s"] / theirs["steady_examples_per_s"], 2
    )
    print(
      f"{'job (one core)':<36}{'examples':>9}{'seconds':>9}{'process ex/s':>14}{'steady ex/s':>13}"
    )
    for label, r in (
      ("bert_pl create_pretraining_data", ours),
      ("tf-models create_pretraining_data", theirs),
    ):
      print(
        f"{label:<36}{r['examples']:>9}{r['seconds']:>9.1f}"
        f"{r['process_examples_per_s']:>14.0f}{r['steady_examples_per_s']:>13.0f}"
      )
    print(f"ratio bert_pl / tf-models, steady state: {results['ratio_steady']:.2f}x (target >= 5x)")
    if args.json_output:
      pathlib.Path(args.json_output).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
