"""The real-weights section of RESULTS.md and its plot, made from
results_real.json (nothing typed in).

The Chinese from-scratch run (report.py) starts from a random model, so it
cannot say whether the method helps a pretrained BERT. The real run starts,
as the paper does, from the first 3 layers of a real one (MiniLM) on two
English tasks, with every step-4 variant. With 3 to 5 seeds a point of
difference can be noise, so every comparison is paired by seed (both sides
come from the same seed's pipeline run, which shares Model-A and the
pseudo-labels) and given a 95% t interval, and the plain-words lines are
computed from those intervals: the text cannot claim more than the numbers.
The statistics (means, intervals, wins, verdicts, the bars) are
bert_pl.comparison's, the pipeline's own; this module holds what is the
experiment's: its rows, their words, and the layout of RESULTS.md.
"""

import os
import re

from bert_pl import comparison

# A report directory's real runs: results_real.json, and beside it any
# results_real_<tag>.json (a run of other settings, e.g. --sizes=low alone),
# each its own section and plot.
DEFAULT_NAME = "results_real"
NAME_PATTERN = r"results_real(_[a-z0-9_]+)?"

# The rows, in order: (key in the JSON, label in the tables, name in the
# plain-words lines, tick in the plot).
ROWS = (
  (
    "baseline_3layers",
    "3-layer baseline: MiniLM's first 3 layers fine-tuned",
    "the 3-layer baseline",
    "3 layers",
  ),
  (
    "baseline_6layers",
    "6-layer baseline: all 6 layers fine-tuned",
    "the 6-layer baseline",
    "6 layers",
  ),
  ("model_b", "Model-B: step 1 (MLM on the pool), then fine-tuned", "Model-B", "Model-B"),
  (
    "self_training",
    "classic self-training: Model-A fine-tuned on labeled + pseudo-labels",
    "classic self-training",
    "self-\ntraining",
  ),
  (
    "hard_mlm",
    "Model-D: hard labels + MLM (the paper's first version)",
    "Model-D (hard + MLM)",
    "hard\n+ MLM",
  ),
  (
    "hard_nomask",
    "Model-D: hard labels, no masking",
    "Model-D (hard, no masking)",
    "hard\nno mask",
  ),
  ("kl_mlm", "Model-D: KL on logits + MLM", "Model-D (KL + MLM)", "KL\n+ MLM"),
  (
    "kl_nomask",
    "Model-D: KL on logits, no masking (the later version's best)",
    "Model-D (KL, no masking)",
    "KL\nno mask",
  ),
  (
    "kl_nomask_from_a",
    "Model-D: KL, no masking, step 4 from Model-A",
    "Model-D (KL, no masking, from Model-A)",
    "KL no mask\nfrom A",
  ),
)
LABELS = {key: label for key, label, _, _ in ROWS}
NAMES = {key: name for key, _, name, _ in ROWS}
QUALITY = "pseudo_label_quality"
QUALITY_LABEL = "step 3: pseudo-labels vs the pool's held-back labels"
# Each reference and the rows compared with it; Model-B and the 6-layer
# baseline against the 3-layer one are context (what step 1 and depth add).
COMPARED = ("self_training", "hard_mlm", "hard_nomask", "kl_mlm", "kl_nomask", "kl_nomask_from_a")
PAIRS = (("model_b", COMPARED), ("baseline_3layers", COMPARED + ("model_b", "baseline_6layers")))
# The words of bert_pl.comparison's verdicts in RESULTS.md.
VERDICTS = (
  ("better", "better beyond the noise (95% CI above 0)"),
  ("noise", "inside the noise (CI contains 0)"),
  ("worse", "worse beyond the noise (CI below 0)"),
  ("few", "too few seeds for an interval (n < 2)"),
)
# The pipeline's job names (bert_pl.pipeline.job_name) -> the method's steps.
STEPS = (
  (r"tune\..*", "tuning"),
  (r"baseline(_.*)?", "baselines"),
  (r"data|model_a", "step 1"),
  (r"model_b", "step 2"),
  (r"(.*\.)?round\d+\.pseudo", "step 3"),
  (r"(.*\.)?round\d+\.records(_.*)?|.*\.model_c", "step 4"),
  (r".*\.model_d", "step 5"),
)
COLORS = {
  "baseline_3layers": "#999999",
  "baseline_6layers": "#666666",
  "model_b": "#4c72b0",
  "self_training": "#55a868",
}


def results(seeds, metric):
  """{seed: {row: metric}} of a size's seeds (bert_pl.comparison's input);
  row QUALITY: step 3's pseudo-labels scored against the pool's held-back
  labels."""
  found = {}
  for seed, entry in seeds.items():
    rows = {row: (result or {}).get(metric) for row, result in (entry.get("rows") or {}).items()}
    found[seed] = {**rows, QUALITY: (entry.get(QUALITY) or {}).get(metric)}
  return found


def paired(seeds, row, reference, metric):
  """row − reference, per seed that has both."""
  return list(comparison.paired(results(seeds, metric), row, reference).values())


def step_of(job):
  """The method's step of a pipeline job (its output path with '.' for '/')."""
  for pattern, step in STEPS:
    if re.fullmatch(pattern, job):
      return step
  return "other"


def step_minutes(summary, task):
  """{step: minutes} of a task, summed over its jobs in every size and seed."""
  timings = [summary.get("step1_timings", {}).get(task) or {}]
  for size in (summary["tasks"][task].get("sizes") or {}).values():
    timings += [entry.get("timings") or {} for entry in (size.get("seeds") or {}).values()]
  minutes = {}
  for jobs in timings:
    for job, seconds in jobs.items():
      if seconds is not None:
        step = step_of(job)
        minutes[step] = minutes.get(step, 0.0) + seconds / 60
  order = [step for _, step in STEPS] + ["other"]
  return {step: minutes[step] for step in order if step in minutes}


def environment_line(summary):
  """'Environment: versions, hardware; commit; wall time' of a run. The
  commit of a --report_only report is the report's, not the jobs'."""
  env = summary["environment"]
  commit = env["commit"] + (" (the report's: --report_only)" if summary.get("report_only") else "")
  return (
    f"Environment: Python {env['python']}, TensorFlow {env['tensorflow']}, {env['cpu']}, "
    f"{env['cores']} cores, GPUs: {', '.join(env['gpus']) or 'none'}; commit "
    f"{commit}; wall time {summary['wall_seconds'] / 60:.1f} min"
  )


def _value(value):
  """A setting as a markdown cell."""
  if isinstance(value, dict):
    return ", ".join(f"{key} {_value(item)}" for key, item in value.items())
  if isinstance(value, (list, tuple)):
    return ", ".join(_value(item) for item in value)
  if isinstance(value, float):
    return f"{value:g}"
  return str(value).replace("|", "\\|")


def differences_table(seeds, metric):
  """Markdown: each row minus Model-B and minus the 3-layer baseline."""
  lines = [
    "| row | − Model-B | 95% CI | wins | − 3-layer baseline | 95% CI | wins |",
    "|---|---|---|---|---|---|---|",
  ]
  for row in PAIRS[1][1]:
    cells = []
    for reference, rows in PAIRS:
      cells += (
        comparison.difference_cells(paired(seeds, row, reference, metric))
        if row in rows
        else ["", "", ""]
      )
    lines.append(f"| {LABELS[row]} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plain_words(seeds, metric):
  """A list item per reference: which rows beat it beyond the noise, which
  are inside the noise, which are worse."""
  sentences = []
  for reference, rows in PAIRS:
    groups = {key: [] for key, _ in VERDICTS}
    for row in rows:
      groups[comparison.verdict(paired(seeds, row, reference, metric))].append(NAMES[row])
    parts = [
      f"{text}: {', '.join(groups[key]) or 'none'}"
      for key, text in VERDICTS
      if groups[key] or key != "few"
    ]
    sentences.append(f"- Against {NAMES[reference]}, " + "; ".join(parts) + ".")
  return sentences


def _tuning(tuning, metric_label):
  """The learning-rate/epochs grid on the dev split, the chosen point marked."""
  grid, chosen = tuning.get("grid") or [], tuning.get("chosen") or {}
  keys = [key for key in (grid[0] if grid else chosen) if key != "dev"]
  lines = [
    f"Tuning on the dev split (carved from the labeled set, never the test set): dev "
    f"{metric_label} per grid point; chosen: {_value(chosen) or 'n/a'}.",
    "",
    "| " + " | ".join(keys) + f" | dev {metric_label} (%) |",
    "|---" * (len(keys) + 1) + "|",
  ]
  for point in grid:
    dev = "n/a" if point.get("dev") is None else f"{100 * point['dev']:.2f}"
    mark = " ← chosen" if chosen and all(point.get(k) == v for k, v in chosen.items()) else ""
    lines.append("| " + " | ".join(_value(point.get(key)) for key in keys) + f" | {dev}{mark} |")
  return lines


def size_section(task, size):
  """The '###' subsection of one task and labeled size."""
  metric, label = task["metric"], task["metric_label"]
  seeds = size.get("seeds") or {}
  lines = [
    f"### {task['title']}: {size['label']}",
    "",
    f"| row | test {label} (%), mean ± std | seeds |",
    "|---|---|---|",
  ]
  values = results(seeds, metric)
  for row in (*LABELS, QUALITY):
    found = list(comparison.row_values(values, row).values())
    lines.append(
      f"| {LABELS.get(row, QUALITY_LABEL)} | {comparison.mean_std_text(found)} | {len(found)} |"
    )
  lines += [
    "",
    f"Paired by seed, in points of test {label}:",
    "",
    differences_table(seeds, metric),
    "",
    *plain_words(seeds, metric),
    "",
  ]
  if size.get("split"):
    lines += [f"Split: {_value(size['split'])}.", ""]
  if size.get("tuning"):
    lines += [*_tuning(size["tuning"], label), ""]
  lines += [f"Published anchor: {task['anchor']}.", ""]
  return lines


def section(summary, name=DEFAULT_NAME):
  """The markdown section ('##' title, '###' per task and size) of the real
  run whose results are NAME.json (its plot: NAME.png)."""
  title = "## Real pretrained weights: MiniLM's first 3 layers on English tasks"
  lines = [
    title if name == DEFAULT_NAME else f"{title} (`{name}`)",
    "",
    f"Made by `experiments/real_report.py` from `{name}.json`, the results of the run "
    "below; nothing is typed in.",
    "",
    f"Command: `{summary['command']}`",
    "",
    environment_line(summary) + ".",
    "",
    *([f"Note: {summary['note']}", ""] if summary.get("note") else []),
    "| setting | value |",
    "|---|---|",
  ]
  lines += [f"| {key} | {_value(value)} |" for key, value in summary["settings"].items()]
  lines += [
    "",
    "Wall time per step, summed over the jobs of every seed and labeled size (min):",
    "",
  ]
  for task in summary["tasks"]:
    minutes = step_minutes(summary, task)
    lines.append(
      f"- {task}: "
      + ", ".join(f"{step} {m:.1f}" for step, m in minutes.items())
      + f"; total {sum(minutes.values()):.1f}"
    )
  lines += [
    "",
    "Each table: the test metric's mean ± sample standard deviation over the seeds, "
    "in %. Differences are paired by seed (both sides from the same seed's run), with "
    "the 95% t confidence interval of their mean (mean ± t(0.975, n−1)·sd/√n) and the "
    "seeds on which the row is strictly higher (wins). The plot's whiskers are the same "
    "interval for each row's mean.",
    "",
    f"![real weights]({name}.png)",
    "",
  ]
  for task in summary["tasks"].values():
    for size in (task.get("sizes") or {}).values():
      lines += size_section(task, size)
  return "\n".join(lines)


def save_png(figure, path):
  """FIGURE as PATH, written whole (a temporary name, then renamed) and
  without the Software tag: the same numbers give the same bytes."""
  figure.savefig(path + ".tmp", dpi=100, format="png", metadata={"Software": None})
  os.replace(path + ".tmp", path)


def _panel(axis, name, task, size_name, size):
  """Bars of one task and size: each row's mean, whiskers its 95% t CI."""
  metric = task["metric"]
  seeds = size.get("seeds") or {}
  values = results(seeds, metric)
  bars, colors = [], []
  for row, _, _, tick in ROWS:
    found = list(comparison.row_values(values, row).values())
    if found:
      bars.append((tick, *comparison.t_interval(found, scale=100)))
      colors.append(COLORS.get(row, "#dd8452"))
  axis.set_title(f"{name}: {size_name.replace('_', ' ')} ({len(seeds)} seeds)")
  axis.set_ylabel(f"test {task['metric_label']} (%)")
  if not bars:
    axis.text(0.5, 0.5, "no results", ha="center", transform=axis.transAxes)
    return
  comparison.draw_bars(axis, bars, colors)


def plot(summary, path):
  """One panel per (task, size): a row of panels per task."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  tasks = [(name, task) for name, task in summary["tasks"].items() if task.get("sizes")]
  columns = max((len(task["sizes"]) for _, task in tasks), default=1)
  figure = Figure(figsize=(6 * columns, 4.5 * max(1, len(tasks))))
  axes = figure.subplots(max(1, len(tasks)), columns, squeeze=False)
  for axis in axes.flat:
    axis.set_visible(False)
  for panels, (name, task) in zip(axes, tasks):
    for axis, (size_name, size) in zip(panels, task["sizes"].items()):
      axis.set_visible(True)
      _panel(axis, name, task, size_name, size)
  figure.tight_layout()
  save_png(figure, path)
