"""Examples/s of bert_pl's create_pretraining_data vs tf-models-official's.

Both jobs run as separate processes pinned to one core (`taskset -c 0`) on the
same generated corpus: one example per line (the sample corpus's unlabeled
pool, ~28 characters per line), max_seq_length 64, max_predictions_per_seq 10,
dupe_factor 1. tf-models-official's job reads documents separated by blank
lines, so the baseline's copy of the corpus has a blank line after each line
(each line one document: one instance per line, as ours). Rates are examples
written per second of process wall time, imports included.

    .venv/bin/python bench/bench_create_pretraining_data.py --lines=50000
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

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from data_prep import build_vocab, make_sample_corpus  # noqa: E402


def _timed(command):
  start = time.perf_counter()
  result = subprocess.run(["taskset", "-c", "0", sys.executable, *command], cwd=REPO,
                          capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                               "CUDA_VISIBLE_DEVICES": ""})
  elapsed = time.perf_counter() - start
  if result.returncode:
    raise SystemExit(f"{command[1]} failed:\n{result.stderr[-3000:]}")
  return elapsed


def _count(pattern):
  return sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=50000)
  parser.add_argument("--json_output", default=None, help="Also write the results here.")
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_cpd_"))
  try:
    make_sample_corpus.main([f"--output_dir={work}", f"--num_unlabeled={args.lines}",
                             "--num_ner_unlabeled=10", "--num_train=10", "--num_test=10",
                             "--num_ner_train=10", "--num_ner_test=10"])
    corpus = work / "unlabeled.txt"
    build_vocab.main([f"--input_file={corpus}", f"--output_file={work}/vocab.txt"])
    documents = work / "documents.txt"
    documents.write_text(corpus.read_text(encoding="utf-8").replace("\n", "\n\n"),
                         encoding="utf-8")
    common = [f"--vocab_file={work}/vocab.txt", "--max_seq_length=64",
              "--max_predictions_per_seq=10", "--dupe_factor=1", "--do_lower_case=true"]
    ours_time = _timed(["-m", "bert_pl.create_pretraining_data", f"--input_file={corpus}",
                        f"--output_file={work}/ours.tfrecord", "--num_workers=1", *common])
    theirs_time = _timed(["-m", "official.nlp.data.create_pretraining_data",
                          f"--input_file={documents}", f"--output_file={work}/theirs.tfrecord",
                          *common])
    ours, theirs = _count(f"{work}/ours.tfrecord"), _count(f"{work}/theirs.tfrecord")
    results = {
        "lines": args.lines,
        "bert_pl_examples": ours, "bert_pl_seconds": round(ours_time, 2),
        "bert_pl_examples_per_s": round(ours / ours_time, 1),
        "tf_models_examples": theirs, "tf_models_seconds": round(theirs_time, 2),
        "tf_models_examples_per_s": round(theirs / theirs_time, 1),
    }
    results["ratio"] = round(results["bert_pl_examples_per_s"]
                             / results["tf_models_examples_per_s"], 2)
    print(f"{'job':<34}{'examples':>10}{'seconds':>10}{'examples/s':>12}")
    print(f"{'bert_pl create_pretraining_data':<34}{ours:>10}{ours_time:>10.1f}"
          f"{results['bert_pl_examples_per_s']:>12.0f}")
    print(f"{'tf-models create_pretraining_data':<34}{theirs:>10}{theirs_time:>10.1f}"
          f"{results['tf_models_examples_per_s']:>12.0f}")
    print(f"ratio (bert_pl / tf-models, one core each): {results['ratio']:.2f}x (target >= 5x)")
    if args.json_output:
      pathlib.Path(args.json_output).write_text(json.dumps(results, indent=2) + "\n")
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
