"""The experiment's report: a table of mean and standard deviation over the
seeds, a plot, and RESULTS.md, all made from results.json (nothing typed in)."""

import json
import os
import platform
import subprocess
import sys

import numpy as np

ROWS = (("baseline", "fine-tuned from the initial checkpoint (no domain pre-training)"),
        ("model_b", "Model-B: step 1 (MLM on the pool), then fine-tuned"),
        ("model_d", "Model-D: step 4 (MLM + task loss on pseudo-labels) from the initial "
                    "checkpoint, then fine-tuned"),
        ("model_d_from_a", "Model-D, step 4 from Model-A instead"))
METRICS = {"classification": (("accuracy", "accuracy"), ("macro_f1", "macro-F1")),
           "ner": (("f1", "entity F1"),)}
DATA = {"classification": "online_shopping_10_cats: the label is the product category (10); "
                          "train, test and pool drawn from all 62,774 reviews with seed 12345",
        "ner": "CLUENER2020 (10 entity types, BIO tags, characters as tokens): train and pool "
               "drawn from its train set with seed 12345; the test set is its dev set (1,343 "
               "sentences), or that set's first sentences when the sizes say fewer"}
PAPER = {"classification": "84.96 / 85.78 / 86.01 (accuracy)",
         "ner": "73.33 / 73.39 / 74.05 (entity F1)"}


def environment():
  """Versions and hardware, for the record."""
  import tensorflow as tf
  cpu = platform.processor()
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.dirname(__file__))).stdout.strip()
  return {"python": platform.python_version(), "tensorflow": tf.__version__,
          "cpu": cpu, "cores": os.cpu_count(),
          "gpus": [d.name for d in tf.config.list_physical_devices("GPU")], "commit": commit}


def _stats(values, signed=False):
  values = [v for v in values if v is not None]
  if not values:
    return "n/a"
  mean = f"{100 * float(np.mean(values)):{'+' if signed else ''}.2f}"
  if len(values) == 1:
    return mean
  return f"{mean} ± {100 * float(np.std(values, ddof=1)):.2f}"


def _difference(seeds, key, better, worse):
  """`better` minus `worse`, paired by seed (same split, same initial
  checkpoint): the spread of a difference, not of two means."""
  return [seeds[s][better][key] - seeds[s][worse][key] for s in seeds
          if seeds[s].get(better) and seeds[s].get(worse)]


def table(task, seeds):
  """Markdown rows: each model's metrics, mean ± std (sample) over seeds, in %."""
  metrics = METRICS[task]
  lines = ["| model | " + " | ".join(label for _, label in metrics) + " |",
           "|---|" + "---|" * len(metrics)]
  for name, description in ROWS:
    cells = [_stats([(seeds[s].get(name) or {}).get(key) for s in seeds]) for key, _ in metrics]
    lines.append(f"| {description} | " + " | ".join(cells) + " |")
  for better, worse, label in (("model_d", "model_b", "Model-D − Model-B"),
                               ("model_b", "baseline", "Model-B − baseline")):
    cells = [_stats(_difference(seeds, key, better, worse), signed=True) for key, _ in metrics]
    lines.append(f"| {label}, paired by seed | " + " | ".join(cells) + " |")
  quality = _stats([seeds[s]["pseudo_labels"][metrics[0][0]] for s in seeds])
  lines.append(f"| step 3: pseudo-labels of the pool vs its held-back labels | {quality} |"
               + " |" * (len(metrics) - 1))
  return "\n".join(lines)


def plot(summary, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  tasks = list(summary["tasks"])
  figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
  for axis, task in zip(axes[0], tasks):
    seeds = summary["tasks"][task]
    key = METRICS[task][0][0]
    means, stds = [], []
    for name, _ in ROWS:
      values = [100 * seeds[s][name][key] for s in seeds if seeds[s].get(name)]
      means.append(np.mean(values))
      stds.append(np.std(values, ddof=1) if len(values) > 1 else 0.0)
    axis.bar(range(len(ROWS)), means, yerr=stds, capsize=4,
             color=["#999999", "#4c72b0", "#dd8452", "#c44e52"])
    axis.set_xticks(range(len(ROWS)))
    axis.set_xticklabels(["baseline", "Model-B", "Model-D", "Model-D\n(4 from A)"])
    axis.set_ylabel(f"test {METRICS[task][0][1]} (%)")
    axis.set_title(f"{task} ({len(seeds)} seeds)")
    low = min(m - s for m, s in zip(means, stds))
    axis.set_ylim(max(0.0, low - 5), min(100.0, max(m + s for m, s in zip(means, stds)) + 3))
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def _setting(sizes):
  """The mode's sizes as a sentence."""
  count = lambda n: "all" if n is None else f"{n:,}"  # noqa: E731
  splits = "; ".join(f"{task} {' / '.join(count(n) for n in sizes[task])}"
                     for task in METRICS if task in sizes)
  return (f"Labeled train / test / unlabeled pool: {splits}. Model: hidden {sizes['hidden']}, "
          f"{sizes['layers']} layers, {sizes['heads']} heads, intermediate "
          f"{sizes['intermediate']}. Steps 1 and 4: {sizes['pretrain_steps']:,} steps of batch "
          f"{sizes['batch']} at learning rate {sizes['pretrain_lr']:g}. Fine-tuning: "
          f"{sizes['epochs']} epochs at {sizes['finetune_lr']:g}. Seeds: "
          f"{', '.join(str(seed) for seed in sizes['seeds'])}.")


def write(summary, out):
  """Writes OUT/RESULTS.md and OUT/results.png; returns the markdown."""
  env = summary["environment"]
  lines = [f"# Reproducing the paper's comparison ({summary['mode']} run)", "",
           "Made by `experiments/report.py` from `results.json`, which the run below wrote; "
           "nothing is typed in.", "",
           f"Command: `{summary['command']}`", "",
           f"Environment: Python {env['python']}, TensorFlow {env['tensorflow']}, {env['cpu']}, "
           f"{env['cores']} cores, GPUs: {', '.join(env['gpus']) or 'none'}; commit "
           f"{env['commit']}; wall time {summary['wall_seconds'] / 60:.1f} min (of this "
           "invocation: a re-run skips the jobs already done; the times per step below add "
           "up every run).", "",
           _setting(summary["sizes"]), "",
           "The initial checkpoint is a randomly "
           "initialised BERT of that shape: no pretrained Chinese weights exist on these "
           "machines, so Model-A is pre-trained from scratch on the pool.", ""]
  for task, seeds in summary["tasks"].items():
    lines += [f"## {task}", "", f"Test set, mean ± standard deviation over {len(seeds)} "
              f"seed(s), in %. The paper (plain BERT / Model-B / Model-D): {PAPER[task]}.", "",
              f"Data: {DATA[task]}.", "",
              table(task, seeds), ""]
    timings = summary["timings"].get(task, {})
    lines += ["Wall time per step, all seeds (s): " + ", ".join(
        f"{step} {seconds:.0f}" for step, seconds in timings.items()), ""]
  lines += ["![results](results.png)", ""]
  markdown = "\n".join(lines)
  with open(os.path.join(out, "RESULTS.md"), "w", encoding="utf-8") as f:
    f.write(markdown)
  plot(summary, os.path.join(out, "results.png"))
  return markdown


def main(argv):
  """Remakes RESULTS.md and results.png beside a results.json, e.g. after the
  report's format changed: `python -m experiments.report experiments/results.json`."""
  if len(argv) != 2:
    raise SystemExit("usage: python -m experiments.report RESULTS_JSON")
  with open(argv[1], encoding="utf-8") as f:
    summary = json.load(f)
  print(write(summary, os.path.dirname(os.path.abspath(argv[1]))))


if __name__ == "__main__":
  main(sys.argv)
