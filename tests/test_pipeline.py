"""bert_pl.pipeline: the jobs each variant runs, a tiny end-to-end run with
three variants that ends with a servable model, its re-run (no job runs,
same report), and bad flags."""

import collections
import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_training import _tiny_config

from bert_pl import input_files, masking, pipeline
from bert_pl.create_pretraining_data import CreatePretrainingDataConfig
from bert_pl.predict_pseudo_labels import PredictPseudoLabelsConfig

from conftest import REPO, run_job

BASE = dict(
  task="classification",
  work_dir="/w",
  pool="/d/pool.txt",
  train_file="/d/train.tsv",
  eval_file="/d/test.tsv",
  label_file="/d/labels.txt",
  init_checkpoint="/ckpt",
)


def _commands(**values):
  """Job name -> its flags, of a plan over one pool file /d/pool.txt."""
  plan = pipeline.make_plan(
    pipeline.PipelineConfig(**{**BASE, **values}), "/vocab.txt", ["/d/pool.txt"]
  )
  return {job.name: job.command for job in plan.jobs}, plan


def test_max_predictions_is_15_percent_rounded_up():
  assert [masking.default_max_predictions(n) for n in (20, 64, 100, 128, 512)] == [
    3,
    10,
    15,
    20,
    77,
  ]
  config = pipeline.PipelineConfig(**BASE)
  assert (config.max_seq_length, config.max_predictions_per_seq) == (64, 10)
  ner = pipeline.PipelineConfig(**{**BASE, "task": "ner"})
  assert (
    ner.max_seq_length,
    ner.max_predictions_per_seq,
    ner.pretrain_learning_rate,
    ner.pretrain_warmup_steps,
    ner.finetune_epochs,
  ) == (128, 20, 1e-5, 5000, 3.0)


def test_plan_of_every_kind_of_variant_and_rounds():
  jobs, plan = _commands(
    variants=["hard_mlm", "kl_nomask_from_a", "self_training"],
    rounds=2,
    pseudo_per_class=5,
    kl_temperature=2.0,
    logits_top_k=3,
    baseline=True,
    baseline_layers=6,
    num_hidden_layers=3,
    export=True,
    export_variant="kl_nomask_from_a",
  )
  assert list(jobs) == [
    "baseline",
    "baseline_6layers",
    "data",
    "model_a",
    "model_b",
    "round1.pseudo",
    "round1.records_mlm",
    "round1.records_nomask",
    "hard_mlm.round1.model_c",
    "hard_mlm.round1.model_d",
    "hard_mlm.round2.pseudo",
    "hard_mlm.round2.records",
    "hard_mlm.round2.model_c",
    "hard_mlm.round2.model_d",
    "kl_nomask_from_a.round1.model_c",
    "kl_nomask_from_a.round1.model_d",
    "kl_nomask_from_a.round2.pseudo",
    "kl_nomask_from_a.round2.records",
    "kl_nomask_from_a.round2.model_c",
    "kl_nomask_from_a.round2.model_d",
    "self_training.round1.model_d",
    "self_training.round2.pseudo",
    "self_training.round2.model_d",
    "export",
    "export_check",
  ]
  flags = {name: set(command[3:]) for name, command in jobs.items()}
  module = {name: command[2] for name, command in jobs.items()}
  assert module["baseline_6layers"] == "bert_pl.run_classifier"
  assert {"--init_checkpoint=/ckpt", "--num_hidden_layers=6"} <= flags["baseline_6layers"]
  assert {
    "--init_checkpoint=/ckpt",
    "--num_hidden_layers=3",
    "--task_loss=none",
    "--input_file=/w/data/pool.tfrecord*",
    "--max_predictions_per_seq=10",
  } <= flags["model_a"]
  # Teacher logits are written once a kl variant needs them: round 1 (shared)
  # and the kl variant's own later rounds, not hard_mlm's.
  assert {
    "--model_dir=/w/model_b",
    "--write_logits",
    "--logits_top_k=3",
    "--input_file=/d/pool.txt",
  } <= flags["round1.pseudo"]
  assert "--write_logits" not in flags["hard_mlm.round2.pseudo"]
  assert {"--write_logits", "--model_dir=/w/kl_nomask_from_a/round1/model_d"} <= flags[
    "kl_nomask_from_a.round2.pseudo"
  ]
  assert {
    "--input_file=/w/round1/pseudo/pool.txt",
    "--task=classification",
    "--label_file=/d/labels.txt",
  } <= flags["round1.records_mlm"]
  assert "--masked_lm_prob=0" not in flags["round1.records_mlm"]
  assert "--masked_lm_prob=0" in flags["round1.records_nomask"]
  assert "--input_file=/w/hard_mlm/round2/pseudo/pool.txt" in flags["hard_mlm.round2.records"]
  # hard_mlm is today's step 4 (no new flag); kl_nomask_from_a: KL, no MLM, from Model-A.
  hard = flags["hard_mlm.round1.model_c"]
  assert {
    "--init_checkpoint=/ckpt",
    "--num_hidden_layers=3",
    "--task_loss=classification",
    "--input_file=/w/round1/records_mlm/pool.tfrecord*",
  } <= hard
  assert not [f for f in hard if f.startswith(("--pseudo_label_loss", "--masked_lm_loss"))]
  assert (
    "--input_file=/w/hard_mlm/round2/records/pool.tfrecord*" in flags["hard_mlm.round2.model_c"]
  )
  kl = flags["kl_nomask_from_a.round1.model_c"]
  assert {
    "--init_checkpoint=/w/model_a",
    "--pseudo_label_loss=kl",
    "--kl_temperature=2.0",
    "--masked_lm_loss_weight=0",
    "--input_file=/w/round1/records_nomask/pool.tfrecord*",
  } <= kl
  assert not [f for f in kl if f.startswith("--num_hidden_layers")]
  assert (
    "--init_checkpoint=/w/kl_nomask_from_a/round2/model_c"
    in flags["kl_nomask_from_a.round2.model_d"]
  )
  assert {
    "--init_checkpoint=/w/model_a",
    "--pseudo_label_file=/w/round1/pseudo/pool.txt",
    "--pseudo_per_class=5",
    "--pseudo_min_confidence=0.0",
    "--train_file=/d/train.tsv",
  } <= flags["self_training.round1.model_d"]
  assert (
    "--pseudo_label_file=/w/self_training/round2/pseudo/pool.txt"
    in flags["self_training.round2.model_d"]
  )
  assert "--model_dir=/w/self_training/round1/model_d" in flags["self_training.round2.pseudo"]
  assert {"--model_dir=/w/kl_nomask_from_a/round2/model_d", "--export_dir=/w/export"} <= flags[
    "export"
  ]
  assert plan.export == ("export", "kl_nomask_from_a/round2/model_d")
  assert plan.logits_dirs == ["round1/pseudo", "kl_nomask_from_a/round2/pseudo"]
  assert [d for d, _ in plan.models if d.endswith("model_d")] == [
    "hard_mlm/round1/model_d",
    "hard_mlm/round2/model_d",
    "kl_nomask_from_a/round1/model_d",
    "kl_nomask_from_a/round2/model_d",
    "self_training/round1/model_d",
    "self_training/round2/model_d",
  ]


def test_keep_checkpoints_false_removes_a_model_once_no_job_to_run_reads_it(tmp_path, capsys):
  """Jobs marked done one by one, in the plan's order: a model's checkpoints
  go when its last reader is done (a Model-C's after its Model-D), a
  Model-D's at once; Model-A's, Model-B's and every eval result stay."""
  config = pipeline.PipelineConfig(
    **{**BASE, "work_dir": str(tmp_path)},
    variants=("hard_mlm", "kl_nomask_from_a", "self_training"),
    pseudo_per_class=1,
    baseline=True,
    keep_checkpoints=False,
  )
  plan = pipeline.make_plan(config, "/vocab.txt", ["/d/pool.txt"])
  for output, _ in plan.models:
    manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(w=tf.Variable([1.0] * 1000)), str(tmp_path / output), 3
    )
    manager.save(1)
    manager.save(2)
    (tmp_path / output / "eval_results.txt").write_text("accuracy = 0.5\n")
  logs = tmp_path / "logs"
  logs.mkdir()
  kept = lambda: {o for o, _ in plan.models if (tmp_path / o / "checkpoint").exists()}  # noqa: E731
  everything = {o for o, _ in plan.models}
  seen = {}
  for job in plan.jobs:
    (logs / f"{job.name}.done").write_text("1.0\n")
    pipeline.prune_checkpoints(plan, str(tmp_path), str(logs))
    seen[job.name] = kept()
  assert seen["baseline"] == everything - {"baseline"}
  assert seen["round1.pseudo"] == everything - {"baseline"}  # Model-B stays
  assert "hard_mlm/round1/model_c" in seen["hard_mlm.round1.model_c"]
  assert "hard_mlm/round1/model_c" not in seen["hard_mlm.round1.model_d"]
  assert seen[plan.jobs[-1].name] == {"model_a", "model_b"}
  for output, _ in plan.models:
    remaining = sorted(p.name for p in (tmp_path / output).iterdir())
    if output not in ("model_a", "model_b"):
      assert remaining == ["eval_results.txt"], (output, remaining)
  out = capsys.readouterr().out
  assert out.count("checkpoints removed") == len(everything) - 2
  # Re-run over the same state: nothing left to remove, nothing printed.
  pipeline.prune_checkpoints(plan, str(tmp_path), str(logs))
  assert capsys.readouterr().out == ""


def test_data_jobs_are_given_flags_of_their_configs():
  """The driver writes the data jobs' commands by hand, as a user would: each
  flag must be a field of the job's config (`job_config`: fields = flags)."""
  jobs, _ = _commands(
    variants=list(pipeline.VARIANTS), rounds=2, pseudo_per_class=5, logits_top_k=3, baseline=True
  )
  configs = {
    "bert_pl.create_pretraining_data": CreatePretrainingDataConfig,
    "bert_pl.predict_pseudo_labels": PredictPseudoLabelsConfig,
  }
  checked = collections.Counter()
  for name, command in jobs.items():
    if command[2] in configs:
      fields = {field.name for field in dataclasses.fields(configs[command[2]])}
      given = {arg[2:].split("=")[0] for arg in command[3:]}
      assert given <= fields, (name, given - fields)
      checked[command[2]] += 1
  assert checked == {
    "bert_pl.create_pretraining_data": 3 + len(pipeline.STEP4_VARIANTS),
    "bert_pl.predict_pseudo_labels": 1 + len(pipeline.VARIANTS),
  }


def test_whole_word_masking_reaches_steps_1_and_4_only():
  """The experiment's whole-word row (reproduce_paper.whole_word_config): the
  masking flags reach create_pretraining_data of steps 1 and 4, and are fields
  of its config; by default the commands are as before."""
  from experiments import reproduce_paper

  config = reproduce_paper.whole_word_config(
    pipeline.PipelineConfig(**BASE, variants=["hard_mlm", "hard_mlm_from_a"], baseline=True)
  )
  assert (config.work_dir, config.variants, config.baseline) == (
    "/w/whole_word",
    ("hard_mlm",),
    False,
  )
  plan = pipeline.make_plan(config, "/vocab.txt", ["/d/pool.txt"])
  whole_word = ["--do_whole_word_mask", "--segmenter=rjieba"]
  fields = {field.name for field in dataclasses.fields(CreatePretrainingDataConfig)}
  data_jobs = []
  for job in plan.jobs:
    given = [arg for arg in job.command[3:] if arg in whole_word]
    if job.command[2] == "bert_pl.create_pretraining_data":
      data_jobs.append(job.name)
      assert given == whole_word and {"do_whole_word_mask", "segmenter"} <= fields
    else:
      assert not given, job
  assert data_jobs == ["data", "round1.records_mlm"]
  jobs, _ = _commands(ngram_mask_max=3)
  assert "--ngram_mask_max=3" in jobs["data"] and "--do_whole_word_mask" not in jobs["data"]
  assert not [arg for arg in _commands()[0]["data"] if "mask" in arg]


def test_given_model_a_skips_step_1_and_serves_every_use_of_model_a():
  jobs, plan = _commands(
    variants=["kl_nomask_from_a", "self_training"], pseudo_per_class=5, model_a="/shared/model_a"
  )
  assert list(jobs) == [
    "model_b",
    "round1.pseudo",
    "round1.records_nomask",
    "kl_nomask_from_a.round1.model_c",
    "kl_nomask_from_a.round1.model_d",
    "self_training.round1.model_d",
  ]
  for name in ("model_b", "kl_nomask_from_a.round1.model_c", "self_training.round1.model_d"):
    assert "--init_checkpoint=/shared/model_a" in jobs[name], name
  assert "model_a" not in [directory for directory, _ in plan.models]


@pytest.mark.parametrize(
  "values, message",
  [
    (dict(variants=["hard_mlm", "kl_soft"]), "--variants: unknown variant 'kl_soft'"),
    (
      dict(variants=["kl_nomask", "kl_nomask"]),
      "--variants=kl_nomask,kl_nomask: a variant is repeated",
    ),
    (dict(variants=[]), "--variants: give at least one variant"),
    (dict(variants=["self_training"]), "--variants=self_training needs --pseudo_per_class >= 1"),
    (
      dict(pseudo_per_class=5),
      "--pseudo_per_class and --pseudo_min_confidence are for the self_training variant",
    ),
    (dict(logits_top_k=5), "--logits_top_k and --kl_temperature are for the kl_* variants"),
    (dict(variants=["kl_mlm"], kl_temperature=0.0), "--kl_temperature=0.0: must be > 0"),
    (dict(task="ner", variants=["kl_mlm"], logits_top_k=3), "--logits_top_k is for classification"),
    (dict(export_variant="kl_mlm"), "--export_variant=kl_mlm is not one of --variants=hard_mlm"),
    (dict(baseline_layers=6), "--baseline_layers needs --baseline"),
    (dict(rounds=0), "--rounds=0: must be >= 1"),
    (dict(task="pos"), "--task=pos: choose from classification, ner"),
  ],
)
def test_bad_settings_are_refused(values, message):
  with pytest.raises(ValueError) as error:
    pipeline.PipelineConfig(**{**BASE, **values})
  assert str(error.value).startswith(message), str(error.value)


def test_bad_flags_one_error_line_exit_2(corpus, tmp_path):
  common = [
    f"--work_dir={tmp_path / 'work'}",
    f"--pool={corpus}/unlabeled.txt",
    f"--train_file={corpus}/train.tsv",
    f"--eval_file={corpus}/test.tsv",
    f"--label_file={corpus}/labels.txt",
    f"--init_checkpoint={tmp_path}",
  ]
  for flags, message in (
    (["--task=ner", "--variants=hard_mlm,kl_fancy"], "--variants: unknown variant 'kl_fancy'"),
    (["--task=classification"], f"{tmp_path}: no checkpoint found in this directory"),
  ):
    result = run_job("pipeline", *common, *flags, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "work").exists()


@pytest.fixture(scope="module")
def init_checkpoint(corpus, tmp_path_factory):
  """A tiny randomly initialised model directory, the initial checkpoint."""
  directory = tmp_path_factory.mktemp("init")
  run_job(
    "run_pretraining",
    f"--bert_config_file={_tiny_config(corpus, directory / 'c.json')}",
    f"--vocab_file={corpus / 'vocab.txt'}",
    f"--output_dir={directory / 'model'}",
    "--do_train",
    "--num_train_steps=0",
  )
  return directory / "model"


def test_job_lines_name_their_work_directory(tmp_path, capsys):
  """Runs side by side (the experiments' seeds) print into one stream: each
  job's start, end and skip lines say whose job it is."""
  for seed in ("seed1", "seed2"):
    assert pipeline.run_job(
      "baseline", (sys.executable, "-c", "pass"), str(tmp_path / seed / "logs")
    )
  assert not pipeline.run_job("baseline", (sys.executable, "-c", "pass"), f"{tmp_path}/seed1/logs")
  lines = capsys.readouterr().out.splitlines()
  assert [line.split(": ")[0] if ": " in line else line for line in lines] == [
    f"=== baseline  [{tmp_path}/seed1]",
    "    baseline",
    f"=== baseline  [{tmp_path}/seed2]",
    "    baseline",
    "--- baseline",
  ]
  assert all(
    line.endswith(f"  [{tmp_path}/seed{1 if i in (0, 1, 4) else 2}]")
    for i, line in enumerate(lines)
  )


def test_failed_job_stops_the_run_with_its_error(corpus, init_checkpoint, tmp_path):
  bad = tmp_path / "train.tsv"
  bad.write_text("奶茶\t珍珠奶茶\n未知\t拿铁\n", encoding="utf-8")
  result = run_job(
    "pipeline",
    "--task=classification",
    f"--work_dir={tmp_path / 'work'}",
    f"--pool={corpus}/unlabeled.txt",
    f"--train_file={bad}",
    f"--eval_file={corpus}/test.tsv",
    f"--label_file={corpus}/labels.txt",
    f"--init_checkpoint={init_checkpoint}",
    "--baseline",
    check=False,
  )
  assert result.returncode == 1 and "=== baseline" in result.stdout
  log = tmp_path / "work" / "logs" / "baseline.log"
  assert result.stderr.strip().splitlines()[-1] == (
    f"error: baseline failed (exit 2): {bad}:2: label '未知' is not in the label file (log: {log})"
  )
  assert log.read_text(encoding="utf-8").startswith("$ ")
  assert not list((tmp_path / "work" / "logs").glob("*.done"))


def test_kl_variant_refuses_pseudo_labels_written_without_logits(corpus, init_checkpoint, tmp_path):
  """A work directory whose step 3 ran for hard variants only, re-run with kl."""
  logs = tmp_path / "logs"
  logs.mkdir()
  (logs / "round1.pseudo.done").write_text("12.0\n")
  (tmp_path / "round1" / "pseudo").mkdir(parents=True)
  config = pipeline.PipelineConfig(
    **{
      **BASE,
      "work_dir": str(tmp_path),
      "pool": f"{corpus}/unlabeled.txt",
      "train_file": f"{corpus}/train.tsv",
      "eval_file": f"{corpus}/test.tsv",
      "label_file": f"{corpus}/labels.txt",
      "init_checkpoint": str(init_checkpoint),
      "variants": ("hard_mlm", "kl_nomask"),
    }
  )
  with pytest.raises(
    ValueError,
    match=(
      f"{tmp_path}/round1/pseudo/unlabeled.txt.logits: not found: step 3 ran without --write_logits"
    ),
  ):
    pipeline.run(config)


def test_report_only_runs_nothing_and_reports_the_finished_jobs(corpus, init_checkpoint, tmp_path):
  """--report_only on a run cut short: no job starts; finished models are
  reported, unfinished ones (here model_b, with results but no marker) not."""
  logs = tmp_path / "logs"
  logs.mkdir()
  (logs / "baseline.done").write_text("3.0\n")
  for directory, accuracy in (("baseline", 0.5), ("model_b", 0.75)):
    (tmp_path / directory).mkdir()
    (tmp_path / directory / "eval_results.txt").write_text(f"accuracy = {accuracy}\n")
  config = pipeline.PipelineConfig(
    **{
      **BASE,
      "work_dir": str(tmp_path),
      "pool": f"{corpus}/unlabeled.txt",
      "train_file": f"{corpus}/train.tsv",
      "eval_file": f"{corpus}/test.tsv",
      "label_file": f"{corpus}/labels.txt",
      "init_checkpoint": str(init_checkpoint),
      "baseline": True,
      "report_only": True,
    }
  )
  report = pipeline.run(config)
  assert {d: m["results"] for d, m in report["models"].items()} == {"baseline": {"accuracy": 0.5}}
  assert report["pseudo_labels"] == {} and report["timings"]["baseline"] == 3.0
  assert sorted(p.name for p in logs.iterdir()) == ["baseline.done"]


def _records(pattern):
  """Every record of TFRecord files as {feature: numpy array}."""
  rows = []
  for path in input_files.expand_input_files(pattern):  # the shards, not their manifest
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      feature = tf.train.Example.FromString(raw).features.feature
      rows.append(
        {k: np.array(v.float_list.value or v.int64_list.value) for k, v in feature.items()}
      )
  return rows


# Loads a SavedModel as a serving client does: TensorFlow and tensorflow-text only.
_CLIENT = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
outputs = model.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"labels": [v.decode() for v in outputs["labels"].numpy()],
                  "modules": sorted(m for m in sys.modules if m.startswith("bert_pl"))}))
"""


def test_end_to_end_three_variants_export_and_rerun(corpus, init_checkpoint, tmp_path, capsys):
  """Steps 1-5 with hard_mlm, kl_nomask and self_training on the generated
  corpus (a pool of 60 test items whose labels are held back), export, then a
  re-run. The kl variant needs the jobs' flags of issue 15 items 1-5."""
  data = tmp_path / "data"
  data.mkdir()
  train = (corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:100]
  (data / "train.tsv").write_text("".join(train), encoding="utf-8")
  test = (corpus / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
  (data / "test.tsv").write_text("".join(test[:50]), encoding="utf-8")
  held_back = test[100:160]
  (data / "pool_labels.tsv").write_text("".join(held_back), encoding="utf-8")
  (data / "pool.txt").write_text(
    "".join(line.split("\t", 1)[1] for line in held_back), encoding="utf-8"
  )
  init = init_checkpoint
  work = tmp_path / "work"
  config = pipeline.PipelineConfig(
    task="classification",
    work_dir=str(work),
    pool=str(data / "pool.txt"),
    train_file=str(data / "train.tsv"),
    eval_file=str(data / "test.tsv"),
    label_file=str(corpus / "labels.txt"),
    init_checkpoint=str(init),
    pool_labels=str(data / "pool_labels.tsv"),
    max_seq_length=32,
    pretrain_steps=3,
    pretrain_warmup_steps=1,
    pretrain_learning_rate=5e-3,
    pretrain_batch_size=16,
    finetune_learning_rate=5e-3,
    finetune_epochs=1,
    finetune_batch_size=32,
    num_shards=1,
    variants=("hard_mlm", "kl_nomask", "self_training"),
    pseudo_per_class=2,
    export=True,
  )
  report = pipeline.run(config)
  first = capsys.readouterr().out
  names = [
    job.name
    for job in pipeline.make_plan(config, str(init / "vocab.txt"), [str(data / "pool.txt")]).jobs
  ]
  assert [line[4:] for line in first.splitlines() if line.startswith("=== ")] == [
    f"{name}  [{work}]" for name in names
  ]
  timings = {name: float((work / "logs" / f"{name}.done").read_text()) for name in names}
  assert report["timings"] == timings and all(s > 0 for s in timings.values())

  for name, entry in report["models"].items():
    results = dict(
      line.split(" = ") for line in (work / name / "eval_results.txt").read_text().splitlines()
    )
    assert entry["results"] == {k: float(v) for k, v in results.items()}, name
  models = report["models"]
  # Fine-tuning: ceil(examples / 32) steps of 1 epoch; self-training adds,
  # per predicted class, its 2 pseudo-labels (or fewer when it has fewer).
  pseudo = (work / "round1" / "pseudo" / "pool.txt").read_text(encoding="utf-8").splitlines()
  predicted = [line.split("\t", 1)[0] for line in pseudo]
  added = sum(min(2, n) for n in collections.Counter(predicted).values())
  assert models["model_b"]["results"]["global_step"] == math.ceil(100 / 32)
  assert models["kl_nomask/round1/model_d"]["results"]["global_step"] == math.ceil(100 / 32)
  assert models["self_training/round1/model_d"]["results"]["global_step"] == math.ceil(
    (100 + added) / 32
  )
  assert models["kl_nomask/round1/model_c"]["results"]["global_step"] == 3
  for name in (
    "model_b",
    "hard_mlm/round1/model_d",
    "kl_nomask/round1/model_d",
    "self_training/round1/model_d",
  ):
    assert 0.0 <= models[name]["results"]["accuracy"] <= 1.0
  # Step 3's pseudo-labels scored against the held-back labels.
  gold = [line.split("\t", 1)[0] for line in held_back]
  quality = report["pseudo_labels"]["round1/pseudo"]
  assert quality["examples"] == 60 and quality["teacher"] == "model_b"
  assert quality["quality"] == {
    "accuracy": float(np.mean(np.array(predicted) == gold)),
    "num_examples": 60,
  }
  # The two kinds of step-4 records: masked (MLM), and unmasked with the
  # teacher's logits; the kl variant trained with the KL loss and no MLM.
  masked = _records(f"{work}/round1/records_mlm/pool.tfrecord*")
  unmasked = _records(f"{work}/round1/records_nomask/pool.tfrecord*")
  assert len(masked) == len(unmasked) == 60
  assert sum(r["masked_lm_weights"].sum() for r in masked) >= 60
  assert all(
    r["masked_lm_weights"].sum() == 0 and r["label_logits"].shape == (20,) for r in unmasked
  )
  info = json.loads((work / "kl_nomask" / "round1" / "model_c" / "task.json").read_text())
  assert (info["pseudo_label_loss"], info["masked_lm_loss_weight"]) == ("kl", 0.0)
  assert (work / "self_training" / "round1" / "model_d" / "self_training.json").exists()
  # The export answers in a process with TensorFlow and tensorflow-text only.
  export = report["export"]
  assert export["dir"] == str(work / "export") and export["model"] == "hard_mlm/round1/model_d"
  texts = [e["text"] for e in export["examples"]]
  assert texts == [line.rstrip("\n").split("\t", 1)[1] for line in held_back[:2]]
  client = subprocess.run(
    [sys.executable, "-c", _CLIENT, export["dir"], json.dumps(texts)],
    capture_output=True,
    text=True,
    cwd=REPO,
    check=True,
  )
  answer = json.loads(client.stdout.splitlines()[-1])
  assert answer["modules"] == [] and answer["labels"] == export["outputs"]["labels"]
  assert [e["prediction"].split(" ")[0] for e in export["examples"]] == answer["labels"]
  assert "SavedModel" in first and (work / "report.md").read_text().count("→") == 2

  # A re-run runs no job and writes the same report.
  before = (work / "report.json").read_bytes()
  again = pipeline.run(config)
  second = capsys.readouterr().out
  assert "===" not in second
  assert [
    line.split(":")[0][4:] for line in second.splitlines() if line.startswith("--- ")
  ] == names
  assert again == report and (work / "report.json").read_bytes() == before
