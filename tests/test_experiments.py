"""experiments/reproduce_paper.py --mode=smoke on the real public data (the
whole method and its baselines, both tasks, as separate jobs), then resumed."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, minilm_dir, shared_path


@pytest.mark.slow
def test_smoke_run_writes_every_row_and_resumes(tmp_path):
  data_dir = shared_path()
  for needed in ("online_shopping_10_cats", "cluener2020", "bert-base-chinese"):
    shared_path(needed)
  report_dir = tmp_path / "report"
  command = [sys.executable, "-m", "experiments.reproduce_paper", "--smoke", "--seeds=7",
             f"--data_dir={data_dir}", f"--output_dir={tmp_path}", f"--report_dir={report_dir}"]
  first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)
  assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
  summary = json.loads((report_dir / "results.json").read_text())
  assert set(summary["tasks"]) == {"classification", "ner"} and summary["mode"] == "smoke"
  assert summary["sizes"]["seeds"] == [7] and (tmp_path / "ner" / "seed7" / "logs").is_dir()
  for task, key in (("classification", "accuracy"), ("ner", "f1")):
    seed = summary["tasks"][task]["seed7"]
    for row in ("baseline", "model_b", "model_d", "model_d_from_a"):
      assert 0.0 <= seed[row][key] <= 1.0, (task, row, seed[row])
    assert seed["model_b"]["global_step"] > 0
    pool = (tmp_path / task / "data" / "pool.txt").read_text(encoding="utf-8").splitlines()
    assert seed["pseudo_labels"]["num_examples"] == len(pool) == (1500 if task ==
                                                                  "classification" else 600)
    assert 0.0 <= seed["pseudo_labels"][key] <= 1.0
  # The pool is drawn across the (category-sorted) data set, not its first rows.
  labels = (tmp_path / "classification" / "data" / "pool_labels.txt").read_text(
      encoding="utf-8").split()
  assert len(set(labels)) == 10
  markdown = (report_dir / "RESULTS.md").read_text(encoding="utf-8")
  assert "| Model-D, step 4 from Model-A instead |" in markdown
  assert "| Model-D − Model-B, paired by seed |" in markdown
  assert (report_dir / "results.png").stat().st_size > 10000
  # A re-run finds every job done and only rewrites the report.
  again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "===" not in again.stdout
  assert json.loads((report_dir / "results.json").read_text())["tasks"] == summary["tasks"]


@pytest.mark.parametrize("flags, message", [
    (["--mode=smoke"], "error: {data_dir}/cluener2020 not found (--data_dir: the layout of "
                       "../shared/data/README.md)"),
    (["--smoke", "--full"], "error: choose one of --smoke --full")])
def test_bad_input_is_a_one_line_error(flags, message, tmp_path):
  (tmp_path / "online_shopping_10_cats").mkdir()
  result = subprocess.run([sys.executable, "-m", "experiments.reproduce_paper", *flags,
                           f"--data_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == message.format(data_dir=tmp_path)
  assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_smoke_run_on_minilm_writes_every_row(tmp_path):
  """--mode=real_smoke: the real-weights path (MiniLM's first 3 layers, both
  English tasks, every row, tuning on the dev split) at tiny sizes."""
  data_dir = shared_path()
  for needed in ("banking77_en", "conll2003_en"):
    shared_path(needed)
  minilm_dir()
  report_dir = tmp_path / "report"
  command = [sys.executable, "-m", "experiments.reproduce_paper", "--mode=real_smoke",
             f"--data_dir={data_dir}", f"--output_dir={tmp_path}", f"--report_dir={report_dir}"]
  run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1500)
  assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
  summary = json.loads((report_dir / "results_real.json").read_text())
  assert summary["mode"] == "real_smoke" and set(summary["tasks"]) == {"banking77", "conll2003"}
  for name, size, metric in (("banking77", "2_per_class", "accuracy"),
                             ("conll2003", "20_sentences", "f1")):
    result = summary["tasks"][name]["sizes"][size]
    assert result["split"]["pool"] == 200 and result["split"]["test"] == 200
    assert result["tuning"]["chosen"] == {"learning_rate": 1e-3, "epochs": 1}
    seed = result["seeds"]["1"]
    assert set(seed["rows"]) == {"baseline_3layers", "baseline_6layers", "model_b",
                                 "self_training", "hard_mlm", "hard_nomask", "kl_mlm",
                                 "kl_nomask", "kl_nomask_from_a"}
    for row, results in seed["rows"].items():
      assert 0.0 <= results[metric] <= 1.0, (name, row, results)
    assert seed["pseudo_label_quality"]["num_examples"] == 200
    assert 0.0 <= seed["pseudo_label_quality"][metric] <= 1.0
  # BANKING77's labeled set: 2 per class of its 77 classes; CoNLL's pool is
  # sentences of words joined by spaces.
  data = tmp_path / "banking77" / "data"
  labeled = (data / "2_per_class" / "train.tsv").read_text(encoding="utf-8").splitlines()
  assert len(labeled) == 154 and len({line.split("\t")[0] for line in labeled}) == 77
  first = (tmp_path / "conll2003" / "data" / "pool.txt").read_text(encoding="utf-8").split("\n")[0]
  assert " " in first
  markdown = (report_dir / "RESULTS.md").read_text(encoding="utf-8")
  assert "kl_nomask" in markdown.lower() or "KL on logits, no masking" in markdown
  assert (report_dir / "results_real.png").stat().st_size > 0
