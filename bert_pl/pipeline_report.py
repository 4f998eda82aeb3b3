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
    with open(os.path.join(work_dir, EXPORT_CHECK_FILE), encoding="utf-8") as f:
      check = json.load(f)
    report["export"] = {
      "dir": os.path.join(work_dir, export[0]),
      "model": export[1],
      "examples": [
        {"text": text, "prediction": describe_prediction(task, check["outputs"], i)}
        for i, text in enumerate(check["texts"])
      ],
      "outputs": check["outputs"],
    }
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
  export = report.get("export")
  if export:
    lines += [
      "## Export",
      "",
      f"SavedModel `{export['dir']}` ({export['model']}), loaded in a "
      "process that imports only tensorflow and tensorflow_text:",
      "",
    ]
    lines += [
      f"- `{e['text']}` → {e['prediction']}".replace("\t", " ⇥ ") for e in export["examples"]
    ]
    lines.append("")
  lines += ["## Wall time per job", "", "| job | seconds |", "|---|---|"]
  lines += [
    f"| {name} | {'—' if s is None else f'{s:.0f}'} |" for name, s in report["timings"].items()
  ]
  lines += ["", f"Total: {report['total_seconds']:.0f} s", "", "![models](report.png)", ""]
  return "\n".join(lines)


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


def write_report(work_dir: str, report: Dict) -> None:
  """WORK/report.json, report.md and report.png, each written whole."""
  for name, text in (
    ("report.json", json.dumps(report, indent=1, ensure_ascii=False)),
    ("report.md", to_markdown(report)),
  ):
    path = os.path.join(work_dir, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.write(text + "\n")
    os.replace(path + ".tmp", path)
  plot(report, os.path.join(work_dir, "report.png.tmp"))
  os.replace(os.path.join(work_dir, "report.png.tmp"), os.path.join(work_dir, "report.png"))
