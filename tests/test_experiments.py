"""experiments/reproduce_paper.py --mode=smoke on the real public data (the
whole method and its baselines, both tasks, as separate jobs), then resumed."""

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO, shared_path

# The smoke mode's sizes (experiments/reproduce_paper.py MODES["smoke"]):
# labeled train / test / pool per task, fine-tuning epochs and batch,
# pre-training steps; every job the driver runs for one seed.
SIZES = {"classification": [200, 300, 1500], "ner": [150, 200, 600]}
EPOCHS, BATCH, PRETRAIN_STEPS = 2, 32, 40
ROWS = ("baseline", "model_b", "model_d", "model_d_from_a")
JOBS = {
  "init",
  "data",
  "model_a",
  "model_b",
  "baseline",
  "round1.pseudo",
  "round1.records_mlm",
  "hard_mlm.round1.model_c",
  "hard_mlm.round1.model_d",
  "hard_mlm_from_a.round1.model_c",
  "hard_mlm_from_a.round1.model_d",
}


def _conll_sentences(path):
  blocks = path.read_text(encoding="utf-8").split("\n\n")
  return [block.splitlines() for block in blocks if block.strip()]


def _check_task(task, seed, summary, out):
  """What one task's smoke run must show: every row trained for its exact
  step count and evaluated on the whole test set, the pseudo-labels and the
  step-4 records covering the whole pool, every job timed."""
  train, test, pool = SIZES[task]
  data, work = out / task / "data", out / task / "seed7"
  steps = math.ceil(train * EPOCHS / BATCH)  # 13 (classification), 10 (NER)
  assert set(seed) == {*ROWS, "pseudo_labels"}, sorted(seed)
  if task == "classification":
    assert len((data / "train.tsv").read_text(encoding="utf-8").splitlines()) == train
    labels = (data / "labels.txt").read_text(encoding="utf-8").split()
    assert len(labels) == 10
  else:
    assert len(_conll_sentences(data / "train.txt")) == train
    sentences = _conll_sentences(data / "test.txt")
    labels = (data / "labels.txt").read_text(encoding="utf-8").split()
    gold = sum(line.split()[-1].startswith("B-") for s in sentences for line in s)
    truncated = sum(len(s) > 64 - 2 for s in sentences)
  for row in ROWS:
    results = seed[row]
    assert all(math.isfinite(v) for v in results.values()), (task, row, results)
    assert results["global_step"] == steps, (task, row, results)
    if task == "classification":
      assert results["num_examples"] == test, (task, row, results)
      # Floor: chance with 10 classes. The smoke's models learn next to
      # nothing (they predict one class: 0.177); a run evaluating with
      # the wrong label ids or on other data scores below it.
      assert 0.1 <= results["accuracy"] <= 1.0, (task, row, results)
      assert 0.0 <= results["macro_f1"] <= 1.0, (task, row, results)
    else:
      # The whole test set, its entities counted here from the file. The
      # smoke's NER models find no entity (F1 0): no floor to assert, but
      # F1 must be the one of the entity counts.
      assert results["num_sentences"] == test == len(sentences), (task, row, results)
      assert results["gold_entities"] == gold > 0, (task, row, results)
      assert results["truncated_sentences"] == truncated, (task, row, results)
      correct, predicted = results["correct_entities"], results["predicted_entities"]
      assert 0 <= correct <= min(predicted, gold), (task, row, results)
      assert results["f1"] == pytest.approx(2 * correct / (gold + predicted)), (task, row, results)
  # Step 3 labelled the whole pool, a confidence per example; the pool's
  # held-back labels scored them.
  quality = seed["pseudo_labels"]
  assert quality["num_examples"] == pool, quality
  assert len((data / "pool.txt").read_text(encoding="utf-8").splitlines()) == pool
  pseudo = work / "round1" / "pseudo" / "pool.txt"
  if task == "classification":
    assert len(pseudo.read_text(encoding="utf-8").splitlines()) == pool
    assert 0.1 <= quality["accuracy"] <= 1.0, quality  # chance, as above
  else:
    assert len(_conll_sentences(pseudo)) == pool
    assert 0.0 <= quality["f1"] <= 1.0, quality
  confidences = [float(v) for v in pseudo.with_name("pool.txt.confidence").read_text().split()]
  assert len(confidences) == pool and all(0.0 <= c <= 1.0 for c in confidences)
  # Step 4's records: one per pool example (dupe_factor 1), with its pseudo-label.
  manifest = json.loads(
    (work / "round1" / "records_mlm" / "pool.tfrecord.manifest.json").read_text()
  )
  assert manifest["records"] == pool and manifest["task"] == task
  assert manifest["labels"] == labels
  assert ("label_ids" if task == "classification" else "tag_ids") in manifest["features"]
  for variant in ("hard_mlm", "hard_mlm_from_a"):
    results = (work / variant / "round1" / "model_c" / "eval_results.txt").read_text()
    assert f"global_step = {PRETRAIN_STEPS}\n" in results, (variant, results)
  # No checkpoint stays but the initial one, Model-A's and Model-B's
  # (--keep_checkpoints=false).
  kept = {str(p.relative_to(work)).split("/")[0] for p in work.glob("**/checkpoint")}
  assert kept == {"init", "model_a", "model_b"}, kept
  timings = summary["timings"][task]
  assert set(timings) == JOBS and all(s > 0 for s in timings.values()), timings


@pytest.mark.slow
def test_smoke_run_writes_every_row_and_resumes(tmp_path):
  data_dir = shared_path()
  for needed in ("online_shopping_10_cats", "cluener2020", "bert-base-chinese"):
    shared_path(needed)
  report_dir = tmp_path / "report"
  command = [
    sys.executable,
    "-m",
    "experiments.reproduce_paper",
    "--smoke",
    "--seeds=7",
    f"--data_dir={data_dir}",
    f"--output_dir={tmp_path}",
    f"--report_dir={report_dir}",
  ]
  first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)
  assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
  summary = json.loads((report_dir / "results.json").read_text())
  assert set(summary["tasks"]) == {"classification", "ner"} and summary["mode"] == "smoke"
  assert summary["sizes"]["seeds"] == [7]
  assert {task: summary["sizes"][task] for task in SIZES} == SIZES
  assert (
    summary["sizes"]["epochs"],
    summary["sizes"]["batch"],
    summary["sizes"]["pretrain_steps"],
  ) == (EPOCHS, BATCH, PRETRAIN_STEPS)
  for task in SIZES:
    assert set(summary["tasks"][task]) == {"seed7"}
    _check_task(task, summary["tasks"][task]["seed7"], summary, tmp_path)
  # The pool is drawn across the (category-sorted) data set, not its first rows.
  labels = (
    (tmp_path / "classification" / "data" / "pool_labels.txt").read_text(encoding="utf-8").split()
  )
  assert len(set(labels)) == 10
  markdown = (report_dir / "RESULTS.md").read_text(encoding="utf-8")
  assert "| Model-D, step 4 from Model-A instead |" in markdown
  assert "| Model-D − Model-B, paired by seed |" in markdown
  assert (report_dir / "results.png").stat().st_size > 10000
  # A re-run finds every job done (no job runs: its done-marker is not
  # rewritten) and only rewrites the report.
  markers = {
    path: (path.stat().st_mtime_ns, path.read_text())
    for path in tmp_path.glob("*/seed7/logs/*.done")
  }
  assert len(markers) == 2 * len(JOBS)
  again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "===" not in again.stdout
  assert {
    path: (path.stat().st_mtime_ns, path.read_text())
    for path in tmp_path.glob("*/seed7/logs/*.done")
  } == markers
  assert json.loads((report_dir / "results.json").read_text())["tasks"] == summary["tasks"]


@pytest.mark.parametrize(
  "flags, message",
  [
    (
      ["--mode=smoke"],
      "error: {data_dir}/cluener2020 not found (--data_dir: the layout of "
      "../shared/data/README.md)",
    ),
    (["--smoke", "--full"], "error: choose one of --smoke --full"),
    (["--smoke", "--real"], "error: choose one of --smoke --real"),
    (["--real", "--sizes=low,middle"], "error: --sizes: unknown middle (low, high)"),
  ],
)
def test_bad_input_is_a_one_line_error(flags, message, tmp_path):
  (tmp_path / "online_shopping_10_cats").mkdir()
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.reproduce_paper",
      *flags,
      f"--data_dir={tmp_path}",
      f"--output_dir={tmp_path / 'out'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 2  # bad input (before: 1, as a bug's)
  assert result.stderr.strip().splitlines()[-1] == message.format(data_dir=tmp_path)
  assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
