"""pipeline_report: every step's metrics, the B vs D verdict, the plot."""

import json

from bert_pl import pipeline_report


def _eval(path, **values):
  path.mkdir(parents=True)
  (path / "eval_results.txt").write_text("".join(f"{k} = {v}\n" for k, v in values.items()))


def test_report_from_model_directories(tmp_path):
  cls = tmp_path / "classification"
  _eval(cls / "baseline", accuracy=0.90, macro_f1=0.89, global_step=250)
  _eval(cls / "model_a", mlm=3.7, mlm_accuracy=0.25, global_step=300)
  _eval(cls / "model_b", accuracy=0.93, macro_f1=0.92, global_step=250)
  _eval(cls / "model_c", mlm=3.9, task=0.4, task_accuracy=0.9, global_step=300)
  _eval(cls / "model_d", accuracy=0.95, macro_f1=0.94, global_step=250)
  (cls / "pseudo").mkdir()
  (cls / "pseudo" / "pool.txt.confidence").write_text("0.5\n0.95\n1.0\n0.99\n")
  _eval(tmp_path / "ner" / "model_b", f1=0.7, precision=0.6, recall=0.8)
  (tmp_path / "timings.tsv").write_text("classification step 1\t60\nner step 2\t30\n")
  report = pipeline_report.write_report(str(tmp_path))
  assert report["tasks"]["classification"]["model_d"]["accuracy"] == 0.95
  pseudo = report["tasks"]["classification"]["pseudo_labels"]
  assert pseudo["examples"] == 4 and pseudo["share_confidence_over_0.9"] == 0.75
  assert abs(pseudo["mean_confidence"] - 0.86) < 1e-12
  assert report["tasks"]["ner"]["model_d"] is None
  markdown = (tmp_path / "pipeline_report.md").read_text()
  assert "| model_d | step 5: fine-tuned Model-C | 0.9500 |" in markdown
  assert "Model-D (0.9500) is better than Model-B (0.9300) on accuracy, difference +0.0200" in markdown
  assert "| model_a | step 1: domain pre-training (MLM) | | global_step 300, mlm 3.7, mlm_accuracy 0.25 |" in markdown
  assert "Total: 90 s" in markdown
  assert json.loads((tmp_path / "pipeline_report.json").read_text())["timings"]["ner step 2"] == 30
  assert (tmp_path / "pipeline_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
