r"""The pipeline's report: every step's metrics, Model-B vs Model-D.

    python -m bert_pl.pipeline_report --work_dir=output/pipeline

Reads, for each task directory under `--work_dir` (classification, ner), the
`eval_results.txt` of baseline (fine-tuned from the initial checkpoint),
model_a (step 1), model_b (step 2), model_c (step 4) and model_d (step 5),
the pseudo-labels of step 3 (count, mean confidence) and `timings.tsv`
(`step<TAB>seconds` lines the pipeline appends), and writes
`pipeline_report.md`, `pipeline_report.json` and `pipeline_report.png`.
"""

import json
import os
from typing import Dict, Optional

import numpy as np
from absl import flags

from bert_pl import cli, input_files

MODELS = (("baseline", "fine-tuned from the initial checkpoint"),
          ("model_a", "step 1: domain pre-training (MLM)"),
          ("model_b", "step 2: fine-tuned Model-A"),
          ("model_c", "step 4: MLM + task loss on pseudo-labels"),
          ("model_d", "step 5: fine-tuned Model-C"))
HEADLINE = {"classification": "accuracy", "ner": "f1"}


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
  if not os.path.isdir(directory):
    return None
  values = []
  for name in sorted(os.listdir(directory)):
    if name.endswith(input_files.CONFIDENCE_SUFFIX):
      with open(os.path.join(directory, name), encoding="utf-8") as f:
        values += [float(line) for line in f if line.strip()]
  if not values:
    return None
  return {"examples": len(values), "mean_confidence": float(np.mean(values)),
          "share_confidence_over_0.9": float(np.mean(np.array(values) > 0.9))}


def collect(work_dir: str) -> Dict:
  report = {"tasks": {}, "timings": {}}
  timings = os.path.join(work_dir, "timings.tsv")
  if os.path.exists(timings):
    with open(timings, encoding="utf-8") as f:
      for line in f:
        step, _, seconds = line.rstrip("\n").partition("\t")
        report["timings"][step] = float(seconds)
  for task in ("classification", "ner"):
    task_dir = os.path.join(work_dir, task)
    if not os.path.isdir(task_dir):
      continue
    entry = {name: read_eval_results(os.path.join(task_dir, name, "eval_results.txt"))
             for name, _ in MODELS}
    entry["pseudo_labels"] = pseudo_label_stats(os.path.join(task_dir, "pseudo"))
    report["tasks"][task] = entry
  return report


def _fmt(value) -> str:
  return "—" if value is None else f"{value:.4f}"


def to_markdown(report: Dict) -> str:
  lines = ["# Pipeline report", ""]
  for task, entry in report["tasks"].items():
    metric = HEADLINE[task]
    lines += [f"## {task}", "", f"| model | what | {metric} | other metrics |", "|---|---|---|---|"]
    for name, what in MODELS:
      results = entry.get(name) or {}
      if name in ("model_a", "model_c"):
        shown = {k: v for k, v in results.items() if k in ("mlm", "mlm_accuracy", "task",
                                                            "task_accuracy", "global_step")}
        lines.append(f"| {name} | {what} | | " + ", ".join(
            f"{k} {v:.4g}" for k, v in sorted(shown.items())) + " |")
      else:
        others = {k: v for k, v in results.items()
                  if k in ("macro_f1", "precision", "recall", "global_step")}
        lines.append(f"| {name} | {what} | {_fmt(results.get(metric))} | " + ", ".join(
            f"{k} {v:.4g}" for k, v in sorted(others.items())) + " |")
    pseudo = entry.get("pseudo_labels")
    if pseudo:
      lines += ["", f"Step 3 pseudo-labels: {pseudo['examples']} examples, mean confidence "
                f"{pseudo['mean_confidence']:.3f}, {pseudo['share_confidence_over_0.9']:.1%} "
                "above 0.9."]
    b, d = (entry.get("model_b") or {}).get(metric), (entry.get("model_d") or {}).get(metric)
    if b is not None and d is not None:
      verdict = "better than" if d > b else ("equal to" if d == b else "worse than")
      lines += ["", f"Model-D ({d:.4f}) is {verdict} Model-B ({b:.4f}) on {metric}, "
                f"difference {d - b:+.4f} (one run, one seed: not a significance test)."]
    lines.append("")
  if report["timings"]:
    lines += ["## Wall time per step", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in report["timings"].items()]
    lines += ["", f"Total: {sum(report['timings'].values()):.0f} s", ""]
  lines += ["![Model-B vs Model-D](pipeline_report.png)", ""]
  return "\n".join(lines)


def plot(report: Dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  tasks = list(report["tasks"])
  figure, axes = plt.subplots(1, max(len(tasks), 1), figsize=(5 * max(len(tasks), 1), 4))
  axes = np.atleast_1d(axes)
  for axis, task in zip(axes, tasks):
    metric = HEADLINE[task]
    names = ["baseline", "model_b", "model_d"]
    values = [(report["tasks"][task].get(n) or {}).get(metric, 0.0) for n in names]
    bars = axis.bar(["baseline\n(initial ckpt)", "Model-B\n(step 2)", "Model-D\n(step 5)"],
                    values, color=["#999999", "#4c72b0", "#dd8452"])
    axis.bar_label(bars, fmt="%.3f")
    axis.set_title(f"{task}: {metric} on held-out data")
    axis.set_ylim(0, 1.05)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def write_report(work_dir: str) -> Dict:
  report = collect(work_dir)
  with open(os.path.join(work_dir, "pipeline_report.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  with open(os.path.join(work_dir, "pipeline_report.md"), "w", encoding="utf-8") as f:
    f.write(to_markdown(report))
  plot(report, os.path.join(work_dir, "pipeline_report.png"))
  return report


def main(argv):
  del argv
  write_report(flags.FLAGS.work_dir)
  print(open(os.path.join(flags.FLAGS.work_dir, "pipeline_report.md"), encoding="utf-8").read())


def run_main():
  flags.DEFINE_string("work_dir", None, "The pipeline's output directory.")
  flags.mark_flag_as_required("work_dir")
  cli.run(main)


if __name__ == "__main__":
  run_main()
