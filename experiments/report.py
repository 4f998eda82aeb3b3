"""The experiments' report, all made from the runs' JSONs (nothing typed in):
RESULTS.md, with the real-weights runs' sections (real_report.py, from
results_real.json and any results_real_<tag>.json) first, then the Chinese
from-scratch run's (this module, from results.json: a table of mean and
standard deviation over the seeds and results.png). One command remakes all of it byte for byte:

    python -m experiments.report --report_dir=experiments
"""

import json
import os
import platform
import re
import subprocess

from absl import flags

from bert_pl import comparison, errors
from experiments import real_report

ROWS = (
  ("baseline", "fine-tuned from the initial checkpoint (no domain pre-training)"),
  ("model_b", "Model-B: step 1 (MLM on the pool), then fine-tuned"),
  (
    "model_d",
    "Model-D: step 4 (MLM + task loss on pseudo-labels) from the initial "
    "checkpoint, then fine-tuned",
  ),
  ("model_d_from_a", "Model-D, step 4 from Model-A instead"),
  (
    "model_d_wwm",
    "Model-D, steps 1 and 4 masking whole words (rjieba's; quick and full modes)",
  ),
)
# The plot's bar labels and colours, per row.
BARS = {
  "baseline": ("baseline", "#999999"),
  "model_b": ("Model-B", "#4c72b0"),
  "model_d": ("Model-D", "#dd8452"),
  "model_d_from_a": ("Model-D\n(4 from A)", "#c44e52"),
  "model_d_wwm": ("Model-D\n(whole words)", "#55a868"),
}
METRICS = {
  "classification": (("accuracy", "accuracy"), ("macro_f1", "macro-F1")),
  "ner": (("f1", "entity F1"),),
}
DATA = {
  "classification": "online_shopping_10_cats: the label is the product category (10); "
  "train, test and pool drawn from all 62,774 reviews with seed 12345",
  "ner": "CLUENER2020 (10 entity types, BIO tags, characters as tokens): train and pool "
  "drawn from its train set with seed 12345; the test set is its dev set (1,343 "
  "sentences), or that set's first sentences when the sizes say fewer",
}
PAPER = {
  "classification": "84.96 / 85.78 / 86.01 (accuracy)",
  "ner": "73.33 / 73.39 / 74.05 (entity F1)",
}


def environment():
  """Versions and hardware, for the record."""
  import tensorflow as tf

  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((s.split(":", 1)[1].strip() for s in f if s.startswith("model name")), cpu)
  except OSError:
    pass
  commit = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"],
    capture_output=True,
    text=True,
    cwd=os.path.dirname(os.path.dirname(__file__)),
  ).stdout.strip()
  return {
    "python": platform.python_version(),
    "tensorflow": tf.__version__,
    "cpu": cpu,
    "cores": os.cpu_count(),
    "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    "commit": commit,
  }


def _difference(seeds, key, better, worse):
  """`better` minus `worse`, paired by seed (same split, same initial
  checkpoint): the spread of a difference, not of two means."""
  results = {s: {row: (seeds[s].get(row) or {}).get(key) for row in (better, worse)} for s in seeds}
  return list(comparison.paired(results, better, worse).values())


def table(task, seeds):
  """Markdown rows: each model's metrics, mean ± std (sample) over seeds, in %."""
  metrics = METRICS[task]
  lines = [
    "| model | " + " | ".join(label for _, label in metrics) + " |",
    "|---|" + "---|" * len(metrics),
  ]
  for name, description in ROWS:
    if not any(seeds[s].get(name) for s in seeds):
      continue  # not run in this mode (model_d_wwm in smoke)
    cells = [
      comparison.mean_std_text([(seeds[s].get(name) or {}).get(key) for s in seeds])
      for key, _ in metrics
    ]
    lines.append(f"| {description} | " + " | ".join(cells) + " |")
  for better, worse, label in (
    ("model_d", "model_b", "Model-D − Model-B"),
    ("model_b", "baseline", "Model-B − baseline"),
  ):
    cells = [
      comparison.mean_std_text(_difference(seeds, key, better, worse), signed=True)
      for key, _ in metrics
    ]
    lines.append(f"| {label}, paired by seed | " + " | ".join(cells) + " |")
  quality = comparison.mean_std_text([seeds[s]["pseudo_labels"][metrics[0][0]] for s in seeds])
  lines.append(
    f"| step 3: pseudo-labels of the pool vs its held-back labels | {quality} |"
    + " |" * (len(metrics) - 1)
  )
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
    names = [name for name, _ in ROWS if any(seeds[s].get(name) for s in seeds)]
    for name in names:
      mean, std = comparison.mean_std(
        [100 * seeds[s][name][key] for s in seeds if seeds[s].get(name)]
      )
      means.append(mean)
      stds.append(std or 0.0)
    axis.bar(range(len(names)), means, yerr=stds, capsize=4, color=[BARS[n][1] for n in names])
    axis.set_xticks(range(len(names)))
    axis.set_xticklabels([BARS[n][0] for n in names])
    axis.set_ylabel(f"test {METRICS[task][0][1]} (%)")
    axis.set_title(f"{task} ({len(seeds)} seeds)")
    low = min(m - s for m, s in zip(means, stds))
    axis.set_ylim(max(0.0, low - 5), min(100.0, max(m + s for m, s in zip(means, stds)) + 3))
  figure.tight_layout()
  real_report.save_png(figure, path)
  plt.close(figure)


def _setting(sizes):
  """The mode's sizes as a sentence."""
  count = lambda n: "all" if n is None else f"{n:,}"  # noqa: E731
  splits = "; ".join(
    f"{task} {' / '.join(count(n) for n in sizes[task])}" for task in METRICS if task in sizes
  )
  return (
    f"Labeled train / test / unlabeled pool: {splits}. Model: hidden {sizes['hidden']}, "
    f"{sizes['layers']} layers, {sizes['heads']} heads, intermediate "
    f"{sizes['intermediate']}. Steps 1 and 4: {sizes['pretrain_steps']:,} steps of batch "
    f"{sizes['batch']} at learning rate {sizes['pretrain_lr']:g}. Fine-tuning: "
    f"{sizes['epochs']} epochs at {sizes['finetune_lr']:g}. Seeds: "
    f"{', '.join(str(seed) for seed in sizes['seeds'])}."
  )


def section(summary, level=1):
  """The Chinese from-scratch run's markdown, its title a heading of LEVEL
  (1 alone, 2 below the real run's section)."""
  title, task_heading = "#" * level, "#" * (level + 1)
  lines = [
    f"{title} Reproducing the paper's comparison ({summary['mode']} run)",
    "",
    "Made by `experiments/report.py` from `results.json`, which the run below wrote; "
    "nothing is typed in.",
    "",
    f"Command: `{summary['command']}`",
    "",
    real_report.environment_line(summary) + " (of this invocation: a re-run skips the "
    "jobs already done; the times per step below add up every run).",
    "",
    _setting(summary["sizes"]),
    "",
    "The initial checkpoint is a randomly "
    "initialised BERT of that shape: no pretrained Chinese weights exist on these "
    "machines, so Model-A is pre-trained from scratch on the pool.",
    "",
  ]
  for task, seeds in summary["tasks"].items():
    lines += [
      f"{task_heading} {task}",
      "",
      f"Test set, mean ± standard deviation over "
      f"{len(seeds)} seed(s), in %. The paper (plain BERT / Model-B / Model-D): "
      f"{PAPER[task]}.",
      "",
      f"Data: {DATA[task]}.",
      "",
      table(task, seeds),
      "",
    ]
    timings = summary["timings"].get(task, {})
    lines += [
      "Wall time per step, all seeds (s): "
      + ", ".join(f"{step} {seconds:.0f}" for step, seconds in timings.items()),
      "",
    ]
  lines += ["![results](results.png)", ""]
  return "\n".join(lines)


def document(chinese=None, reals=()):
  """RESULTS.md: the real runs' sections first (REALS: (name, summary)
  pairs, in order), then the Chinese run's (alone, it is the whole document,
  as before the real runs existed)."""
  if not reals:
    return section(chinese)
  names = [f"`{name}.json`" for name, _ in reals] + (["`results.json`"] if chinese else [])
  sources = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
  lines = [
    "# Results",
    "",
    f"Made by `python -m experiments.report --report_dir=experiments` from {sources}, "
    "which the runs below wrote.",
    "",
    *(real_report.section(summary, name) for name, summary in reals),
  ]
  if chinese is not None:
    lines.append(section(chinese, level=2))
  return "\n".join(lines)


def _load(path):
  """A results JSON, or None when the file does not exist."""
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise errors.InputError(f"{path}:{e.lineno}: not JSON: {e.msg}") from None


def real_names(report_dir):
  """The real runs' results in REPORT_DIR, by name (file name without
  .json): results_real first, then results_real_<tag> in sorted order."""
  names = [
    name[: -len(".json")]
    for name in os.listdir(report_dir)
    if name.endswith(".json") and re.fullmatch(real_report.NAME_PATTERN, name[: -len(".json")])
  ]
  return sorted(names, key=lambda name: (name != real_report.DEFAULT_NAME, name))


def regenerate(report_dir, chinese=None):
  """Writes REPORT_DIR/RESULTS.md, results.png (Chinese run) and one
  NAME.png per real run's NAME.json (real_names), each whole; returns the
  markdown. CHINESE, when not passed, is read from REPORT_DIR/results.json
  where that exists."""
  if chinese is None:
    chinese = _load(os.path.join(report_dir, "results.json"))
  reals = [
    (name, _load(os.path.join(report_dir, name + ".json"))) for name in real_names(report_dir)
  ]
  if chinese is None and not reals:
    raise errors.InputError(f"{report_dir}: neither results.json nor results_real*.json")
  markdown = document(chinese, reals)
  path = os.path.join(report_dir, "RESULTS.md")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(markdown)
  os.replace(path + ".tmp", path)
  if chinese is not None:
    plot(chinese, os.path.join(report_dir, "results.png"))
  for name, summary in reals:
    real_report.plot(summary, os.path.join(report_dir, name + ".png"))
  return markdown


def write(summary, out):
  """The Chinese run's report in OUT (RESULTS.md, with the real run's
  section first when OUT/results_real.json exists, and the plots); returns
  the markdown."""
  return regenerate(out, chinese=summary)


def main(argv):
  """Remakes RESULTS.md and the plots from the JSONs in --report_dir, e.g.
  after the report's format changed."""
  if len(argv) > 1:
    raise errors.InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  print(regenerate(flags.FLAGS.report_dir))


if __name__ == "__main__":
  from bert_pl import cli  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string(
    "report_dir",
    os.path.dirname(os.path.abspath(__file__)),
    "The directory of results.json and/or results_real.json, where "
    "RESULTS.md, results.png and results_real.png are written (default: "
    "experiments/, the committed runs).",
  )
  cli.run(main)
