"""Runs every benchmark and prints one table of ratios against baselines
measured in the same run; writes all numbers as JSON for comparing versions.

Each benchmark runs in its own process (bench_*.py, each printing a JSON
object); see their docstrings for what exactly is timed. Called by
run_scripts/bench.sh, which first sets up the bench-only environment
(.venv-bench: PyTorch CPU + transformers) for the Hugging Face baseline.

    .venv/bin/python -m bench.run_all --output=output/bench/results.json [--quick]
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from bench import common

SIZES = {  # benchmark -> arguments, full and --quick
  "training": (
    ["--examples=4096", "--warmup_steps=3", "--timed_steps=10"],
    ["--examples=1024", "--warmup_steps=2", "--timed_steps=3", "--variants=padded,bucketed"],
  ),
  "predict_pseudo_labels": (["--lines=8192"], ["--lines=2048"]),
  "create_pretraining_data": (["--lines=20000"], ["--lines=5000"]),
  "tokenization": (["--lines=20000"], ["--lines=5000"]),
  "segmentation": (["--lines=8192"], ["--lines=2048"]),
  "beam": (
    ["--cpd_lines=40000", "--predict_lines=4000"],
    ["--cpd_lines=8000", "--predict_lines=800"],
  ),
}


def run(name, args, quick):
  command = [sys.executable, "-m", f"bench.bench_{name}", *SIZES[name][1 if quick else 0], *args]
  start = time.perf_counter()
  print(f"running bench.bench_{name} ...", file=sys.stderr, flush=True)
  result = common.run_json(command)
  result["wall_s"] = round(time.perf_counter() - start, 1)
  return result


def rows(results):
  """(what, measured, baseline, ratio, target) for the table."""
  out = []
  training = results.get("training", {})
  peak = training.get("matmul_peak", {}).get("float32")
  for task, label in (("classification", "cls, seq 64"), ("ner", "ner, seq 128")):
    r = training.get(task)
    if not r:
      continue
    best = r.get("bucketed") or r["padded"]
    if "hf_fp32" in r:
      out.append(
        (
          f"pre-training real tokens/s ({label}), bert_pl vs HF transformers fp32",
          best["real_tokens_per_s"],
          r["hf_fp32"]["real_tokens_per_s"],
          ">= 3x",
        )
      )
    if "bucketed" in r and "padded" in r:
      out.append(
        (
          f"pre-training real tokens/s ({label}), bucketed vs padded",
          r["bucketed"]["real_tokens_per_s"],
          r["padded"]["real_tokens_per_s"],
          "",
        )
      )
    if "bucketed_bf16" in r:
      out.append(
        (
          f"pre-training real tokens/s ({label}), bfloat16 vs float32",
          r["bucketed_bf16"]["real_tokens_per_s"],
          best["real_tokens_per_s"],
          ">= 1.4x",
        )
      )
    for variant in ("padded", "bucketed"):
      if variant in r and peak:
        out.append(
          (
            f"training GFLOP/s ({label}, {variant}) / fp32 matmul peak",
            r[variant]["gflops_per_s"],
            peak,
            ">= 0.70",
          )
        )
  predict = results.get("predict_pseudo_labels")
  if predict:
    rate = predict["lines_per_s"]
    out.append(
      (
        "predict_pseudo_labels lines/s, job vs padded to max_seq_length",
        rate["job"],
        rate["padded"],
        ">= 2x",
      )
    )
    out.append(
      (
        "predict_pseudo_labels lines/s, job vs no-padding ideal",
        rate["job"],
        rate["ideal"],
        ">= 0.85",
      )
    )
    for variant in ("job_xla", "job_bf16"):
      if variant in rate:
        out.append(
          (
            f"predict_pseudo_labels lines/s, {variant[4:]} vs job",
            rate[variant],
            rate["job"],
            "kept if > 1",
          )
        )
  cpd = results.get("create_pretraining_data")
  if cpd:
    out.append(
      (
        "create_pretraining_data examples/s (steady, 1 core) vs tf-models",
        cpd["bert_pl"]["steady_examples_per_s"],
        cpd["tf_models"]["steady_examples_per_s"],
        ">= 5x",
      )
    )
  segmented = results.get("segmentation")
  for name in ("rjieba", "rjieba_ngram3", "jieba") if segmented else ():
    out.append(
      (
        f"create_pretraining_data examples/CPU s, whole words by {name} vs random masking",
        segmented[name]["examples_per_cpu_s"],
        segmented["baseline"]["examples_per_cpu_s"],
        "",
      )
    )
  for texts, label in (("generated", "generated corpus"), ("real_chinese", "real Chinese texts")):
    rate = results.get("tokenization", {}).get(texts, {}).get("strings_per_s")
    if rate:
      out.append(
        (
          f"tokenization strings/s ({label}) vs original FullTokenizer",
          rate["bert_pl"],
          rate["full_tokenizer"],
          "",
        )
      )
  beam = results.get("beam")
  if beam:
    workers = beam["workers"]
    for job in ("create_pretraining_data", "predict_pseudo_labels"):
      r = beam[job]
      out.append(
        (
          f"beam {job} lines/s, 1 worker vs single-process job",
          r["beam_1"]["lines_per_s"],
          r["single_process"]["lines_per_s"],
          "",
        )
      )
      out.append(
        (
          f"beam {job} lines/s, {workers} workers vs single-process job",
          r[f"beam_{workers}"]["lines_per_s"],
          r["single_process"]["lines_per_s"],
          "",
        )
      )
  return [(what, m, b, m / b, target) for what, m, b, target in out]


def format_table(table):
  lines = [
    f"| {'benchmark':<78} | {'measured':>9} | {'baseline':>9} | {'ratio':>6} | target |",
    f"|{'-' * 80}|{'-' * 11}|{'-' * 11}|{'-' * 8}|--------|",
  ]
  for what, measured, baseline, ratio, target in table:
    lines.append(
      f"| {what:<78} | {measured:>9.1f} | {baseline:>9.1f} | {ratio:>6.2f} | {target:<6} |"
    )
  return "\n".join(lines)


def environment():
  import tensorflow as tf

  with open("/proc/cpuinfo") as f:
    flags = f.read()
  cpu = next(
    (s.split(":", 1)[1].strip() for s in flags.splitlines() if s.startswith("model name")),
    platform.processor(),
  )
  commit = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], cwd=common.REPO, capture_output=True, text=True
  ).stdout.strip()
  return {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "commit": commit,
    "cpu": cpu,
    "cores": os.cpu_count(),
    "avx512": "avx512f" in flags,
    "avx512_bf16": "avx512_bf16" in flags,
    "amx": "amx_bf16" in flags,
    "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    "python": platform.python_version(),
    "tensorflow": tf.__version__,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", default=str(common.REPO / "output/bench/results.json"))
  parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
  parser.add_argument("--only", default=",".join(SIZES), help="comma list of benchmarks")
  parser.add_argument("--hf_python", default=str(common.REPO / ".venv-bench/bin/python"))
  args = parser.parse_args()
  results = {"environment": environment(), "quick": args.quick}
  for name in args.only.split(","):
    extra = [f"--hf_python={args.hf_python}"] if name == "training" else []
    results[name] = run(name, extra, args.quick)
  table = rows(results)
  results["table"] = [
    dict(zip(("benchmark", "measured", "baseline", "ratio", "target"), r)) for r in table
  ]
  output = pathlib.Path(args.output)
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(results, indent=2) + "\n")
  env = results["environment"]
  print(
    f"{env['cpu']}, {env['cores']} cores, GPUs {env['gpus'] or 'none'}, TF {env['tensorflow']}, "
    f"commit {env['commit']}, {env['date']}"
  )
  print(format_table(table))
  for name in ("training", "predict_pseudo_labels"):
    for variant, why in results.get(name, {}).get("skipped", {}).items():
      print(f"skipped {name} {variant}: {why}")
  print(f"all numbers: {output}")


if __name__ == "__main__":
  main()
