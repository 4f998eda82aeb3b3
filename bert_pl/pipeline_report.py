"""The report of a pipeline run (`bert_pl.pipeline`): every model's evaluation
against Model-B, the pseudo-labels of each round and their quality, the
teacher check of each step-3 output (bert_pl.teacher_check: a degenerate
teacher flagged from the pseudo-labels alone, given the labeled training
set), wall time per job, and the exported SavedModel's answers.

Written as WORK/report.json (everything; experiments/reproduce_paper.py reads
it), WORK/report.md and WORK/report.png (the headline metric of every
fine-tuned model). Nothing is typed in: the numbers come from the model
directories' eval_results.txt, the pseudo-label files and their side files,
the jobs' done-markers and the export check, so re-running a finished
pipeline rewrites the same report.
"""

import itertools
import json
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from bert_pl import comparison, evaluation, features, input_files, teacher_check
from bert_pl.errors import InputError

HEADLINE = {"classification": "accuracy", "ner": "f1"}
EXPORT_CHECK_FILE = "export_check.json"  # under WORK, written by the driver's export check
DEV_RESULTS_FILE = "dev_results.json"  # in a model directory, by bert_pl.dev_selection
# Eval results shown beside the headline (fine-tuning, then pre-training).
OTHER_METRICS = (
  "macro_f1",
  "precision",
  "recall",
  "mlm",
  "mlm_accuracy",
  "task",
  "task_accuracy",
  "global_step",
)


def read_eval_results(path: str) -> Optional[Dict[str, float]]:
  if not os.path.exists(path):
    return None
  results = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      key, _, value = line.partition(" = ")
      results[key.strip()] = float(value)
  return results


def dev_best(model_dir: str) -> Optional[float]:
  """The headline dev metric of the epoch a fine-tuning chose on dev
  (bert_pl.dev_selection), None without dev results."""
  path = os.path.join(model_dir, DEV_RESULTS_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    record = json.load(f)
  (best,) = [e for e in record["epochs"] if e["epoch"] == record["best_epoch"]]
  return best[record["metric"]]


def pseudo_label_stats(directory: str) -> Optional[Dict[str, float]]:
  """Count and confidence of the pseudo-labels in a step-3 output directory."""
  if not os.path.isdir(directory):
    return None
  values = []
  for name in sorted(os.listdir(directory)):
    if name.endswith(input_files.CONFIDENCE_SUFFIX):
      with open(os.path.join(directory, name), encoding="utf-8") as f:
        values += [float(line) for line in f if line.strip()]
  if not values:
    return None
  return {
    "examples": len(values),
    "mean_confidence": float(np.mean(values)),
    "share_confidence_over_0.9": float(np.mean(np.array(values) > 0.9)),
  }


def _char_tags(example: input_files.Example) -> List[str]:
  """A CoNLL sentence's tags per non-space character: step 3 writes one
  character per line, a held-back file may have words."""
  text, spans = features.join_conll_tokens(example.fields)
  tags = features.char_tags(example.tags, spans, len(text))
  return [tag for char, tag in zip(text, tags) if not char.isspace()]


def _held_back_labels(path: str) -> Iterator[str]:
  """Labels, one per line (split_dataset's pool_labels.txt), or the first
  field of labeled TSV lines."""
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.strip():
        yield line.split("\t", 1)[0].strip()


def pseudo_label_quality(
  task: str, pseudo_files: Sequence[str], gold_files: Sequence[str]
) -> Dict[str, float]:
  """Step 3's pseudo-labels against the pool's held-back labels (file by
  file, example by example, as data_prep/split_dataset.py writes them: a
  label per line, or CoNLL sentences): accuracy, or CoNLL entity-level F1."""
  predicted, gold = [], []
  for pseudo_file, gold_file in zip(pseudo_files, gold_files):
    held_back = (
      _held_back_labels(gold_file)
      if task == "classification"
      else input_files.read_conll(gold_file, input_files.Counts())
    )
    for mine, theirs in itertools.zip_longest(
      input_files.read_examples(pseudo_file, task, input_files.Counts()), held_back
    ):
      if mine is None or theirs is None:
        raise InputError(
          f"{gold_file}: not as many examples as its pseudo-labels "
          f"{pseudo_file} (held-back labels follow the pool's order)"
        )
      if task == "classification":
        predicted.append(mine.label)
        gold.append(theirs)
        continue
      mine_tags, their_tags = _char_tags(mine), _char_tags(theirs)
      if len(mine_tags) != len(their_tags):
        raise InputError(
          f"{theirs.source}: {len(their_tags)} characters, but the pseudo-"
          f"labels at {mine.source} have {len(mine_tags)}"
        )
      predicted.append(mine_tags)
      gold.append(their_tags)
  if task == "classification":
    return {
      "accuracy": float(np.mean([p == g for p, g in zip(predicted, gold)])),
      "num_examples": len(gold),
    }
  metrics = evaluation.ner_metrics(gold, predicted)
  return {
    "f1": metrics["f1"],
    "precision": metrics["precision"],
    "recall": metrics["recall"],
    "num_examples": len(gold),
  }


def describe_prediction(task: str, outputs: Dict[str, list], row: int) -> str:
  """One answer of the SavedModel's serving signature, in words."""
  if task == "classification":
    return f"{outputs['labels'][row]} (confidence {outputs['confidence'][row]:.3f})"
  entities = [
    f"{kind}:{text}"
    for kind, text in zip(outputs["entity_types"][row], outputs["entity_texts"][row])
    if kind
  ]
  return f"[{', '.join(entities)}] (confidence {outputs['confidence'][row]:.3f})"


def collect(
  work_dir: str,
  task: str,
  models: Sequence[Tuple[str, str]],
  pseudo_labels: Sequence[Tuple[str, str]],
  pool_files: Sequence[str],
  pool_label_files: Optional[Sequence[str]],
  timings: Dict[str, Optional[float]],
  export: Optional[Tuple[str, str]],
  train_file: Optional[str] = None,
) -> Dict:
  """The report's numbers. `models`: (directory under work_dir, what it is);
  `pseudo_labels`: (step-3 output directory, its teacher's directory);
  `export`: (SavedModel directory, the model directory it exports);
  `train_file`: the labeled training set, for the teacher check of every
  step-3 output (bert_pl.teacher_check; none without it)."""
  report = {
    "task": task,
    "headline": HEADLINE[task],
    "models": {},
    "pseudo_labels": {},
    "timings": timings,
    "total_seconds": round(sum(s for s in timings.values() if s is not None), 1),
  }
  for directory, what in models:
    report["models"][directory] = {
      "what": what,
      "results": read_eval_results(os.path.join(work_dir, directory, "eval_results.txt")),
    }
  for directory, teacher in pseudo_labels:
    entry = {"teacher": teacher, **(pseudo_label_stats(os.path.join(work_dir, directory)) or {})}
    files = [os.path.join(work_dir, directory, os.path.basename(f)) for f in pool_files]
    if pool_label_files:
      entry["quality"] = pseudo_label_quality(task, files, pool_label_files)
    if train_file:
      entry["teacher_check"] = teacher_check.check(task, files, train_file)
    report["pseudo_labels"][directory] = entry
  if export:
    report["export"] = export_entry(work_dir, task, export)
  return report


def export_entry(work_dir: str, task: str, export: Tuple[str, str]) -> Dict:
  """The exported SavedModel (directory, model directory) and its answers
  in the export check."""
  with open(os.path.join(work_dir, EXPORT_CHECK_FILE), encoding="utf-8") as f:
    check = json.load(f)
  return {
    "dir": os.path.join(work_dir, export[0]),
    "model": export[1],
    "examples": [
      {"text": text, "prediction": describe_prediction(task, check["outputs"], i)}
      for i, text in enumerate(check["texts"])
    ],
    "outputs": check["outputs"],
  }


def over_seeds(
  task: str,
  seeds: Dict[str, Dict],
  rows: Dict[str, str],
  timings: Dict[str, Optional[float]],
  work_dir: str,
  export: Optional[Tuple[str, str]],
) -> Dict:
  """The decision mode's report from each seed's own (`collect`): `rows`
  (model directory -> name) compared over the seeds (bert_pl.comparison),
  each seed's teacher checks and, with held-back pool labels, the
  pseudo-labels' quality per step-3 directory over the seeds."""
  metric = HEADLINE[task]
  results = {
    seed: {row: ((r["models"].get(row) or {}).get("results") or {}).get(metric) for row in rows}
    for seed, r in seeds.items()
  }
  report = {
    "task": task,
    "headline": metric,
    "comparison": comparison.compare(results, list(rows), names=rows),
    "teacher_checks": {},
    "pseudo_label_quality": {},
    "timings": timings,
    "total_seconds": round(sum(s for s in timings.values() if s is not None), 1),
  }
  for seed, r in seeds.items():
    for directory, entry in r["pseudo_labels"].items():
      if "teacher_check" in entry:
        report["teacher_checks"].setdefault(seed, {})[directory] = entry["teacher_check"]
      if entry.get("quality"):
        quality = report["pseudo_label_quality"].setdefault(directory, {})
        quality[seed] = entry["quality"][metric]
  if export:
    report["export"] = export_entry(work_dir, task, export)
  return report


def _fmt(value) -> str:
  return "—" if value is None else f"{value:.4f}"


def to_markdown(report: Dict) -> str:
  metric = report["headline"]
  reference = (report["models"].get("model_b", {}).get("results") or {}).get(metric)
  lines = [
    f"# Pipeline report: {report['task']}",
    "",
    f"| model | what | {metric} | vs Model-B | other metrics |",
    "|---|---|---|---|---|",
  ]
  for name, entry in report["models"].items():
    results = entry["results"] or {}
    value = results.get(metric)
    versus = (
      "" if value is None or reference is None or name == "model_b" else f"{value - reference:+.4f}"
    )
    others = ", ".join(f"{k} {results[k]:.4g}" for k in OTHER_METRICS if k in results)
    lines.append(f"| {name} | {entry['what']} | {_fmt(value)} | {versus} | {others} |")
  lines += ["", "One run, one seed: differences are not a significance test.", ""]
  if report["pseudo_labels"]:
    quality = [entry.get("quality") for entry in report["pseudo_labels"].values()]
    score = f" | {metric} vs --pool_labels" if any(quality) else ""
    lines += [
      "## Pseudo-labels (step 3)",
      "",
      f"| directory | teacher | examples | mean confidence | share > 0.9{score} |",
      "|---|---|---|---|---" + ("|---" if score else "") + "|",
    ]
    for directory, entry in report["pseudo_labels"].items():
      row = (
        f"| {directory} | {entry['teacher']} | {entry.get('examples', '—')} | "
        f"{_fmt(entry.get('mean_confidence'))} | "
        f"{_fmt(entry.get('share_confidence_over_0.9'))} |"
      )
      if score:
        row += f" {_fmt((entry.get('quality') or {}).get(metric))} |"
      lines.append(row)
    lines.append("")
    checks = [
      (d, e["teacher_check"]) for d, e in report["pseudo_labels"].items() if "teacher_check" in e
    ]
    if checks:
      lines += ["Teacher check (the pseudo-labels against the labeled set, no gold needed):", ""]
      lines += [f"- {d}: {teacher_check.describe(report['task'], c)}" for d, c in checks]
      lines.append("")
  lines += _choices_lines(report) + _export_lines(report) + _timing_lines(report)
  return "\n".join(lines)


def _choices_lines(report: Dict) -> List[str]:
  """What was chosen on dev: each unit's learning rate, the exported variant."""
  choices = report.get("choices")
  if not choices:
    return []
  lines = ["## Chosen on dev", ""]
  for unit, found in choices["learning_rates"].items():
    rates = ", ".join(f"{rate}: {_fmt(value)}" for rate, value in found["dev"].items())
    lines.append(
      f"- {unit or 'learning rate'}: {found['chosen']:g} (dev {report['headline']}: {rates})"
    )
  if choices.get("export_why"):
    lines.append(f"- exported: {choices['export_why']}")
  return lines + [""]


def _export_lines(report: Dict) -> List[str]:
  export = report.get("export")
  if not export:
    return []
  lines = [
    "## Export",
    "",
    f"SavedModel `{export['dir']}` ({export['model']}), loaded in a "
    "process that imports only tensorflow and tensorflow_text:",
    "",
  ]
  lines += [f"- `{e['text']}` → {e['prediction']}".replace("\t", " ⇥ ") for e in export["examples"]]
  return lines + [""]


def _timing_lines(report: Dict) -> List[str]:
  lines = ["## Wall time per job", "", "| job | seconds |", "|---|---|"]
  lines += [
    f"| {name} | {'—' if s is None else f'{s:.0f}'} |" for name, s in report["timings"].items()
  ]
  return lines + ["", f"Total: {report['total_seconds']:.0f} s", "", "![models](report.png)", ""]


def seeds_markdown(report: Dict) -> str:
  """The decision report: the rows over the seeds and the recommendation,
  the teacher checks, the pseudo-labels' quality, the choices on dev."""
  seeds = report["comparison"]["seeds"]
  lines = [f"# Decision report: {report['task']}, {len(seeds)} seeds", ""]
  lines += [comparison.to_markdown(report["comparison"], report["headline"])]
  lines += ["## Teacher check (step 3's pseudo-labels against the labeled set)", ""]
  lines += [
    f"- seed {seed}, {directory}: {teacher_check.describe(report['task'], check)}"
    for seed, checks in report["teacher_checks"].items()
    for directory, check in checks.items()
  ]
  lines.append("")
  if report["pseudo_label_quality"]:
    lines += [
      f"## Pseudo-labels against --pool_labels ({report['headline']} %, mean ± std over seeds)",
      "",
    ]
    lines += [
      f"- {directory}: {comparison.mean_std_text(list(values.values()))}"
      for directory, values in report["pseudo_label_quality"].items()
    ]
    lines.append("")
  lines += _choices_lines(report) + _export_lines(report)
  lines += [f"Each seed's own report: {', '.join(f'seed{s}/report.md' for s in seeds)}.", ""]
  return "\n".join(lines + _timing_lines(report))


def seeds_plot(report: Dict, path: str) -> None:
  comparison.plot(report["comparison"], path, f"{report['task']}: test {report['headline']}")


def plot(report: Dict, path: str) -> None:
  """Bars of the headline metric of every evaluated fine-tuned model."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  metric = report["headline"]
  names = [
    name
    for name, entry in report["models"].items()
    if (entry["results"] or {}).get(metric) is not None
  ]
  values = [report["models"][name]["results"][metric] for name in names]
  figure = Figure(figsize=(max(4.0, 1.3 * len(names)), 4.5))
  axis = figure.subplots()
  bars = axis.bar(
    range(len(names)),
    values,
    color=[comparison.color(name) for name in names],
  )
  axis.bar_label(bars, fmt="%.3f")
  axis.set_xticks(range(len(names)))
  axis.set_xticklabels([name.replace("/", "\n") for name in names], fontsize=8)
  axis.set_title(f"{report['task']}: {metric} on the test set")
  axis.set_ylim(0, 1.05)
  figure.tight_layout()
  figure.savefig(path, dpi=100, format="png")


def write_report(work_dir: str, report: Dict, markdown=to_markdown, draw=plot) -> None:
  """WORK/report.json, report.md (`markdown`) and report.png (`draw`), each written whole."""
  for name, text in (
    ("report.json", json.dumps(report, indent=1, ensure_ascii=False)),
    ("report.md", markdown(report)),
  ):
    path = os.path.join(work_dir, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.write(text + "\n")
    os.replace(path + ".tmp", path)
  draw(report, os.path.join(work_dir, "report.png.tmp"))
  os.replace(os.path.join(work_dir, "report.png.tmp"), os.path.join(work_dir, "report.png"))
