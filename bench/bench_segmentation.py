"""What Chinese whole-word masking costs: create_pretraining_data's examples/s
with and without a segmenter, on the real Chinese pool.

The pool is the reviews of online_shopping_10_cats (../shared/data), one per
line, tokenized by character with bert-base-chinese's vocab, max_seq_length
128, max_predictions_per_seq 20, dupe_factor 1. Each setting runs the job's
own `ChunkProcessor` (encode, segment, mask, serialize) in this process on the
same chunks of `CHUNK_SIZE` examples, after one untimed chunk (graph tracing,
the segmenter's dictionary), so the rates are the steady state of one
worker; the ratios are against the baseline (random token masking) timed in
the same run, by CPU time of the process (`time.process_time`, all threads),
which a busy shared machine disturbs less than wall time (also reported).
`segment_chars_per_s` is the segmenter alone (CPU time).

    .venv/bin/python -m bench.bench_segmentation --lines=8192
"""

import argparse
import csv
import json
import pathlib
import tempfile
import time

from bert_pl import create_pretraining_data, input_files, segmentation
from bert_pl.create_pretraining_data import CHUNK_SIZE, CreatePretrainingDataConfig

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
SETTINGS = {  # name -> the job's masking settings
  "baseline": {},
  "whole_word_none": {"do_whole_word_mask": True},
  "rjieba": {"do_whole_word_mask": True, "segmenter": "rjieba"},
  "rjieba_ngram3": {"do_whole_word_mask": True, "segmenter": "rjieba", "ngram_mask_max": 3},
  "jieba": {"do_whole_word_mask": True, "segmenter": "jieba"},
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=8192, help="Reviews timed per setting.")
  parser.add_argument("--data_dir", default=str(DATA))
  parser.add_argument("--json_output", default=None, help="Also write the results here.")
  args = parser.parse_args()
  with open(
    pathlib.Path(args.data_dir, "online_shopping_10_cats", "online_shopping_10_cats.csv"),
    encoding="utf-8-sig",
    newline="",
  ) as f:
    texts = [" ".join(row["review"].split()) for row in csv.DictReader(f)]
  texts = [t for t in texts if t][: args.lines + CHUNK_SIZE]
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_seg_"))
  pool = work / "pool.txt"
  pool.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
  base = dict(
    input_file=str(pool),
    output_file=str(work / "unused.tfrecord"),
    vocab_file=str(pathlib.Path(args.data_dir, "bert-base-chinese", "vocab.txt")),
    tokenization="char",
  )
  results = {"lines": args.lines, "mean_chars": round(sum(map(len, texts)) / len(texts), 1)}
  for name, masking in SETTINGS.items():
    config = CreatePretrainingDataConfig(**base, **masking)
    chunks = list(
      create_pretraining_data.read_file_chunks(
        str(pool), 0, config, None, input_files.Counts(skip_bad_lines=False)
      )
    )
    processor = create_pretraining_data.ChunkProcessor(config, None)
    processor(chunks[0])  # tracing, dictionaries
    start, cpu = time.perf_counter(), time.process_time()
    examples = sum(len(processor(chunk)[0]) for chunk in chunks[1:])
    cpu, seconds = time.process_time() - cpu, time.perf_counter() - start
    results[name] = {
      "examples": examples,
      "examples_per_cpu_s": round(examples / cpu, 1),
      "examples_per_wall_s": round(examples / seconds, 1),
    }
  for name in ("rjieba", "jieba"):
    segmenter = segmentation.Segmenter(name)
    start = time.process_time()
    for text in texts:
      segmenter.cut(text)
    results[name]["segment_chars_per_s"] = round(
      sum(map(len, texts)) / (time.process_time() - start)
    )
  baseline = results["baseline"]["examples_per_cpu_s"]
  print(f"{'masking (one process)':<24}{'examples/CPU s':>15}{'vs baseline':>13}")
  for name in SETTINGS:
    rate = results[name]["examples_per_cpu_s"]
    results[name]["ratio"] = round(rate / baseline, 3)
    print(f"{name:<24}{rate:>15.0f}{rate / baseline:>12.2f}x")
  if args.json_output:
    pathlib.Path(args.json_output).write_text(json.dumps(results, indent=2) + "\n")
  print(json.dumps(results))
  for path in work.iterdir():
    path.unlink()
  work.rmdir()


if __name__ == "__main__":
  main()
