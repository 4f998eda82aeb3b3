"""Beam jobs: throughput per worker against the single-process jobs.

Runs, as a user would (`python -m ...`, DirectRunner), on the generated
corpus cut into 8 files:
  create_pretraining_data  the single-process job (1 worker process) vs
                           the Beam job in_memory (1 worker) and
                           multi_processing with --direct_num_workers=W;
  predict_pseudo_labels    the same three, with a model directory of the
                           paper's shape (3 layers, hidden 768, random
                           weights: speed does not depend on them).
Rates are input lines/s over the job's own run time (the "in X s" it
prints: pipeline start-up and model loading included, Python imports not),
and per worker (divided by the worker count). On a machine with C cores,
W = C workers share them, so per-worker rates fall below the single-process
rate as soon as the cores are busy: the number to read is lines/s per
worker at W = 1 against the single-process job (the Beam overhead), and the
total at W = C.

Prints one JSON object (last line).

    .venv/bin/python -m bench.bench_beam --cpd_lines=40000 --predict_lines=4000
"""

import argparse
import json
import os
import pathlib
import re
import sys
import tempfile

from bench import common
from bench.bench_predict_pseudo_labels import write_model_dir
from bert_pl import modeling, task_models
from data_prep.common import write_parts


def timed(module: str, args, lines: int, workers: int = 0):
  """Runs a job; returns lines/s (total and per worker) from its own timing."""
  options = []
  if workers:
    mode = "in_memory" if workers == 1 else "multi_processing"
    options = [f"--direct_running_mode={mode}", f"--direct_num_workers={workers}"]
  result = common.run_output([sys.executable, "-m", module, *args, *options])
  seconds = float(re.search(r" in ([0-9.]+)s", result).group(1))
  workers = workers or 1
  return {
    "workers": workers,
    "seconds": seconds,
    "lines_per_s": round(lines / seconds, 1),
    "lines_per_s_per_worker": round(lines / seconds / workers, 1),
  }


def compare(
  job: str, args, output_flag: str, output_name: str, lines: int, workers: int, work: pathlib.Path
):
  """The single-process job, then the Beam job with 1 and `workers` workers."""

  def output(run):
    return [f"{output_flag}={work / job / run / output_name}"]

  return {
    "single_process": timed(f"bert_pl.{job}", args + output("single"), lines),
    "beam_1": timed(f"bert_pl.beam.{job}", args + output("beam_1"), lines, 1),
    f"beam_{workers}": timed(
      f"bert_pl.beam.{job}", args + output(f"beam_{workers}"), lines, workers
    ),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cpd_lines", type=int, default=40000)
  parser.add_argument("--predict_lines", type=int, default=4000)
  parser.add_argument("--workers", type=int, default=os.cpu_count())
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_beam_"))
  corpus = common.make_corpus(work / "corpus", num_unlabeled=args.cpd_lines)
  lines = (work / "corpus" / "unlabeled.txt").read_text(encoding="utf-8").splitlines(True)
  pool = write_parts(lines, work / "pool", 8)
  results = {"workers": args.workers}

  cpd = [
    f"--input_file={pool}",
    f"--vocab_file={corpus['vocab']}",
    "--max_seq_length=64",
    "--max_predictions_per_seq=10",
    "--num_output_shards=8",
  ]
  results["create_pretraining_data"] = compare(
    "create_pretraining_data", cpd, "--output_file", "data", args.cpd_lines, args.workers, work
  )

  small = write_parts(lines[: args.predict_lines], work / "small", 8)
  config = modeling.BertConfig(vocab_size=common.CHINESE_VOCAB_SIZE, **common.PAPER_MODEL)
  labels = [f"label{i}" for i in range(20)]
  model = task_models.BertTaskModel(config, "classification", len(labels))
  write_model_dir(work / "model_b", config, corpus["vocab"], model, labels)
  predict = [f"--model_dir={work}/model_b", f"--input_file={small}", "--predict_batch_size=256"]
  results["predict_pseudo_labels"] = compare(
    "predict_pseudo_labels", predict, "--output_dir", "", args.predict_lines, args.workers, work
  )
  print(json.dumps(results))


if __name__ == "__main__":
  main()
