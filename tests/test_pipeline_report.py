"""pipeline_report: every model against Model-B, pseudo-label quality, the
export's answers, wall times; from files, against hand-computed numbers."""

import json

import pytest

from bert_pl import pipeline_report
from bert_pl.errors import InputError


def _eval(path, **values):
  path.mkdir(parents=True)
  (path / "eval_results.txt").write_text("".join(f"{k} = {v}\n" for k, v in values.items()))


def test_report_from_a_work_directory(tmp_path):
  _eval(tmp_path / "baseline", accuracy=0.85, macro_f1=0.80, global_step=250)
  _eval(tmp_path / "model_b", accuracy=0.90, macro_f1=0.89, global_step=250)
  _eval(tmp_path / "hard_mlm" / "round1" / "model_c", mlm=3.9, task=0.4, global_step=300)
  _eval(tmp_path / "hard_mlm" / "round1" / "model_d", accuracy=0.95, macro_f1=0.94)
  pseudo = tmp_path / "round1" / "pseudo"
  pseudo.mkdir(parents=True)
  (pseudo / "pool.txt").write_text(
    "奶茶\t珍珠奶茶\n咖啡\t拿铁\n炸鸡\t鸡翅\n奶茶\t摩卡\n", encoding="utf-8"
  )
  (pseudo / "pool.txt.confidence").write_text("0.5\n0.95\n1.0\n0.99\n")
  gold = tmp_path / "pool_labels.tsv"
  gold.write_text("奶茶\n咖啡\n炸鸡\n咖啡\n", encoding="utf-8")  # split_dataset's format
  (tmp_path / pipeline_report.EXPORT_CHECK_FILE).write_text(
    json.dumps(
      {
        "texts": ["珍珠奶茶\t大杯", "拿铁"],
        "outputs": {"labels": ["奶茶", "咖啡"], "confidence": [0.91, 0.4567]},
      }
    )
  )
  models = [
    ("baseline", "fine-tuned from the initial checkpoint"),
    ("model_b", "step 2"),
    ("hard_mlm/round1/model_c", "step 4"),
    ("hard_mlm/round1/model_d", "step 5"),
    ("kl_nomask/round1/model_d", "not run"),
  ]
  report = pipeline_report.collect(
    str(tmp_path),
    "classification",
    models,
    [("round1/pseudo", "model_b")],
    ["/pool/pool.txt"],
    [str(gold)],
    {"model_b": 30.0, "hard_mlm.round1.model_c": 60.0},
    ("export", "hard_mlm/round1/model_d"),
  )
  assert report["models"]["hard_mlm/round1/model_d"]["results"]["accuracy"] == 0.95
  assert report["models"]["kl_nomask/round1/model_d"]["results"] is None
  entry = report["pseudo_labels"]["round1/pseudo"]
  assert entry["examples"] == 4 and entry["share_confidence_over_0.9"] == 0.75
  assert abs(entry["mean_confidence"] - 0.86) < 1e-12
  assert entry["quality"] == {"accuracy": 0.75, "num_examples": 4}
  assert report["total_seconds"] == 90.0
  assert [e["prediction"] for e in report["export"]["examples"]] == [
    "奶茶 (confidence 0.910)",
    "咖啡 (confidence 0.457)",
  ]
  pipeline_report.write_report(str(tmp_path), report)
  markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
  assert "| hard_mlm/round1/model_d | step 5 | 0.9500 | +0.0500 | macro_f1 0.94 |" in markdown
  assert "| baseline | fine-tuned from the initial checkpoint | 0.8500 | -0.0500 |" in markdown
  assert "| model_b | step 2 | 0.9000 |  | macro_f1 0.89, global_step 250 |" in markdown
  assert "| hard_mlm/round1/model_c | step 4 | — |  | mlm 3.9, task 0.4, global_step 300 |" in (
    markdown
  )
  assert "| round1/pseudo | model_b | 4 | 0.8600 | 0.7500 | 0.7500 |" in markdown
  assert "- `珍珠奶茶 ⇥ 大杯` → 奶茶 (confidence 0.910)" in markdown
  assert "| hard_mlm.round1.model_c | 60 |" in markdown and "Total: 90 s" in markdown
  assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == report
  assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not list(tmp_path.glob("*.tmp"))


def test_ner_pseudo_label_quality_per_character(tmp_path):
  """Step 3 writes one character per line; held-back labels may have words.
  Gold PER(John) LOC(Paris); predicted PER(John) LOC(Par): P = R = F1 = 1/2."""
  gold = tmp_path / "gold.txt"
  gold.write_text("John B-PER\nlives O\nin O\nParis B-LOC\n\n", encoding="utf-8")
  tags = ["B-PER", "I-PER", "I-PER", "I-PER"] + ["O"] * 7 + ["B-LOC", "I-LOC", "I-LOC", "O", "O"]
  pseudo = tmp_path / "pseudo.txt"
  pseudo.write_text(
    "".join(f"{c} {t}\n" for c, t in zip("JohnlivesinParis", tags)) + "\n", encoding="utf-8"
  )
  quality = pipeline_report.pseudo_label_quality("ner", [str(pseudo)], [str(gold)])
  assert quality == {"f1": 0.5, "precision": 0.5, "recall": 0.5, "num_examples": 1}
  assert (
    pipeline_report.describe_prediction(
      "ner",
      {
        "entity_types": [["PER", "LOC", ""]],
        "entity_texts": [["John", "Par", ""]],
        "confidence": [0.25],
      },
      0,
    )
    == "[PER:John, LOC:Par] (confidence 0.250)"
  )
  short = tmp_path / "short.txt"
  short.write_text("John B-PER\nlives O\n\n", encoding="utf-8")
  with pytest.raises(
    InputError, match=f"{short}:1: 9 characters, but the pseudo-labels at {pseudo}:1 have 16"
  ):
    pipeline_report.pseudo_label_quality("ner", [str(pseudo)], [str(short)])
  gold.write_text(gold.read_text() + "Bob B-PER\n\n")
  with pytest.raises(InputError, match=f"{gold}: not as many examples as its pseudo-labels"):
    pipeline_report.pseudo_label_quality("ner", [str(pseudo)], [str(gold)])


def _collect(tmp_path, task, train_file):
  return pipeline_report.collect(
    str(tmp_path),
    task,
    [],
    [("round1/pseudo", "model_b"), ("kl_nomask/round2/pseudo", "kl_nomask/round1/model_d")],
    ["/pool/pool.txt"],
    None,
    {},
    None,
    train_file=str(train_file),
  )


def test_teacher_check_per_step3_output_in_json_and_markdown(tmp_path):
  """Round 1's teacher predicts almost one class (a warning), round 2's is
  healthy; without --train_file (the old call) there is no check."""
  train = tmp_path / "train.tsv"
  train.write_text("".join(f"{label}\tx\n" for label in "aabbcc"))
  for directory, labels in (("round1/pseudo", "aaaaaaaaab"), ("kl_nomask/round2/pseudo", "aabbc")):
    (tmp_path / directory).mkdir(parents=True)
    (tmp_path / directory / "pool.txt").write_text("".join(f"{label}\tx\n" for label in labels))
  report = _collect(tmp_path, "classification", train)
  first = report["pseudo_labels"]["round1/pseudo"]["teacher_check"]
  assert first["pseudo_labels"] == {"examples": 10, "shares": {"a": 0.9, "b": 0.1}}
  assert first["warnings"] == [
    "the teacher gave 90.0% of 10 pool examples the class 'a', which has 33.3% of the labeled "
    "set: a degenerate teacher (almost one class); steps 4-5 would learn that class"
  ]
  assert report["pseudo_labels"]["kl_nomask/round2/pseudo"]["teacher_check"]["warnings"] == []
  pipeline_report.write_report(str(tmp_path), report)
  assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == report
  markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
  assert (
    "Teacher check (the pseudo-labels against the labeled set, no gold needed):\n\n"
    "- round1/pseudo: WARNING: the teacher gave 90.0% of 10 pool examples the class 'a', "
  ) in markdown
  assert (
    "- kl_nomask/round2/pseudo: no sign of a degenerate teacher: its most frequent class 'a' "
    "has 40.0% of the pool, 33.3% of the labeled set.\n"
  ) in markdown
  old = pipeline_report.collect(
    str(tmp_path),
    "classification",
    [],
    [("round1/pseudo", "model_b")],
    ["/p/pool.txt"],
    None,
    {},
    None,
  )
  assert "teacher_check" not in old["pseudo_labels"]["round1/pseudo"]
  assert "Teacher check" not in pipeline_report.to_markdown(old)


def test_teacher_check_of_ner_pseudo_labels_in_the_report(tmp_path):
  train = tmp_path / "train.txt"
  train.write_text("John B-PER\nlives O\nin O\nParis B-LOC\n\n", encoding="utf-8")
  for directory, blocks in (
    ("round1/pseudo", ["a O\nb O\n\n"] * 3 + ["J B-PER\n\n"]),  # 0.25 per sentence, labeled 2
    ("kl_nomask/round2/pseudo", ["J B-PER\no I-PER\nx O\nP B-LOC\n\n"]),
  ):
    (tmp_path / directory).mkdir(parents=True)
    (tmp_path / directory / "pool.txt").write_text("".join(blocks), encoding="utf-8")
  report = _collect(tmp_path, "ner", train)
  checks = {d: e["teacher_check"] for d, e in report["pseudo_labels"].items()}
  assert checks["round1/pseudo"]["warnings"] == [
    "the teacher found 1 entities in 4 pool sentences (0.250 per sentence), the labeled set "
    "has 2.000: a degenerate teacher (almost no entity); steps 4-5 would learn to find none"
  ]
  assert checks["kl_nomask/round2/pseudo"]["warnings"] == []
  assert (
    "- kl_nomask/round2/pseudo: no sign of a degenerate teacher: 2.000 entities per pool "
    "sentence (labeled set: 2.000), 0 I- tags without B-." in pipeline_report.to_markdown(report)
  )


def test_report_over_seeds_ner_teacher_check_rows_and_recommendation(tmp_path):
  """The decision mode's report from two seeds' own: seed 1's NER teacher
  finds almost no entity (warned), seed 2's is healthy (not warned); every
  row over the seeds with its paired interval and the recommendation line."""
  train = tmp_path / "train.txt"
  train.write_text("John B-PER\nlives O\nin O\nParis B-LOC\n\n", encoding="utf-8")
  pools = {"1": ["a O\nb O\n\n"] * 3 + ["J B-PER\n\n"], "2": ["J B-PER\nx O\nP B-LOC\n\n"]}
  f1 = {"1": {"baseline": 0.50, "model_b": 0.60}, "2": {"baseline": 0.55, "model_b": 0.70}}
  seeds = {}
  for seed, blocks in pools.items():
    unit = tmp_path / f"seed{seed}"
    (unit / "round1" / "pseudo").mkdir(parents=True)
    (unit / "round1" / "pseudo" / "pool.txt").write_text("".join(blocks), encoding="utf-8")
    for row, value in f1[seed].items():
      _eval(unit / row, f1=value)
    seeds[seed] = pipeline_report.collect(
      str(unit),
      "ner",
      [("baseline", "B0"), ("model_b", "B")],
      [("round1/pseudo", "model_b")],
      ["/pool/pool.txt"],
      None,
      {},
      None,
      train_file=str(train),
    )
  rows = {"baseline": "baseline", "model_b": "Model-B"}
  report = pipeline_report.over_seeds("ner", seeds, rows, {"model_b": 2.0}, str(tmp_path), None)
  assert report["teacher_checks"]["1"]["round1/pseudo"]["warnings"]
  assert report["teacher_checks"]["2"]["round1/pseudo"]["warnings"] == []
  summary = report["comparison"]
  assert summary["rows"]["model_b"]["per_seed"] == {"1": 0.60, "2": 0.70}
  gain = summary["differences"]["baseline"]["model_b"]
  # Paired differences 0.10 and 0.15: mean 0.125, sd 0.0354, t(0.975, 1) = 12.706.
  assert (gain["mean"], gain["low"], gain["high"], gain["wins"]) == pytest.approx(
    (0.125, 0.125 - 12.7062 * 0.025, 0.125 + 12.7062 * 0.025, 2), abs=1e-4
  )
  text = pipeline_report.seeds_markdown(report)
  assert "- seed 1, round1/pseudo: WARNING: the teacher found 1 entities" in text
  assert "- seed 2, round1/pseudo: no sign of a degenerate teacher" in text
  assert f"**Recommendation:** {summary['recommendation']['line']}." in text
  assert summary["recommendation"]["case"] == "noise"
  pipeline_report.write_report(
    str(tmp_path), report, pipeline_report.seeds_markdown, pipeline_report.seeds_plot
  )
  assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
  assert (tmp_path / "report.png").stat().st_size > 0
