"""experiments/reproduce_paper.py --mode=smoke on the real public data (the
whole method and its baselines, both tasks, as separate jobs), then resumed."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, shared_path


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

