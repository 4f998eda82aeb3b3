"""bert_pl.pipeline: the jobs each variant runs, a tiny end-to-end run with
three variants that ends with a servable model, its re-run (no job runs,
same report), and bad flags."""

import collections
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_training import _tiny_config

from bert_pl import input_files, masking, pipeline
from bert_pl import plan as method
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

# Tiny training of the runs below (floats as the flags parse them: the
# commands of a run through the flags then equal a run's through the config).
TINY = dict(
  max_seq_length=32,
  pretrain_steps=3,
  pretrain_warmup_steps=1,
  pretrain_learning_rate=5e-3,
  pretrain_batch_size=16,
  finetune_learning_rate=5e-3,
  finetune_epochs=1.0,
  finetune_batch_size=32,
  num_shards=1,
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
    ner.pretrain_epochs,
    ner.pretrain_steps,
    ner.pretrain_warmup_proportion,
    ner.pretrain_warmup_steps,
    ner.finetune_epochs,
  ) == (128, 20, 1e-5, 1.0, None, 0.05, None, 3.0)


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
  assert plan.logits_dirs == ("round1/pseudo", "kl_nomask_from_a/round2/pseudo")
  assert [d for d, _ in plan.models if d.endswith("model_d")] == [
    "hard_mlm/round1/model_d",
    "hard_mlm/round2/model_d",
    "kl_nomask_from_a/round1/model_d",
    "kl_nomask_from_a/round2/model_d",
    "self_training/round1/model_d",
    "self_training/round2/model_d",
  ]


def _models_with_checkpoints(plan, work):
  """Two checkpoints and eval results in every model directory of the plan;
  returns a function listing the directories that still have checkpoints."""
  for output, _ in plan.models:
    manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(w=tf.Variable([1.0] * 1000)), str(work / output), 3
    )
    manager.save(1)
    manager.save(2)
    (work / output / "eval_results.txt").write_text("accuracy = 0.5\n")
  (work / "logs").mkdir()
  return lambda: {o for o, _ in plan.models if (work / o / "checkpoint").exists()}


def test_keep_checkpoints_false_keeps_every_seeds_teacher(tmp_path):
  """With --seeds, each seed's Model-B stays too (it is that seed's teacher)."""
  config = pipeline.PipelineConfig(
    **{**BASE, "work_dir": str(tmp_path)},
    variants=("hard_nomask",),
    seeds=("1", "2"),
    keep_checkpoints=False,
  )
  plan = pipeline.make_plan(config, "/vocab.txt", ["/d/pool.txt"])
  kept = _models_with_checkpoints(plan, tmp_path)
  for job in plan.jobs:
    (tmp_path / "logs" / f"{job.name}.done").write_text("1.0\n")
  pipeline.prune_checkpoints(plan, str(tmp_path), str(tmp_path / "logs"))
  assert kept() == {"model_a", "seed1/model_b", "seed2/model_b"}


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
  kept = _models_with_checkpoints(plan, tmp_path)
  logs = tmp_path / "logs"
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
    variants=list(method.VARIANTS), rounds=2, pseudo_per_class=5, logits_top_k=3, baseline=True
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
    "bert_pl.create_pretraining_data": 3 + len(method.STEP4_VARIANTS),
    "bert_pl.predict_pseudo_labels": 1 + len(method.VARIANTS),
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
    variants=["kl_nomask_from_a", "self_training"],
    pseudo_per_class=5,
    model_a="/shared/model_a",
    baseline=False,
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
    (
      dict(variants=["hard_mlm"], logits_top_k=5),
      "--logits_top_k and --kl_temperature are for the kl_* variants",
    ),
    (dict(variants=["kl_mlm"], kl_temperature=0.0), "--kl_temperature=0.0: must be > 0"),
    (dict(task="ner", variants=["kl_mlm"], logits_top_k=3), "--logits_top_k is for classification"),
    (
      dict(export_variant="kl_mlm"),
      "--export_variant=kl_mlm is not one of --variants=kl_nomask,hard_mlm",
    ),
    (dict(baseline=False, baseline_layers=6), "--baseline_layers needs --baseline"),
    (dict(rounds=0), "--rounds=0: must be >= 1"),
    (dict(task="pos"), "--task=pos: choose from classification, ner"),
    (dict(dev_fraction=0.2, dev_file="/d/dev.tsv"), "--dev_fraction and --dev_file: give one"),
    (dict(dev_fraction=1.0), "--dev_fraction=1.0: must be in (0, 1)"),
    (
      dict(finetune_learning_rates=["1e-4"]),
      "--finetune_learning_rates needs a dev set to choose on: --dev_fraction or --dev_file",
    ),
    (
      dict(dev_fraction=0.2, finetune_learning_rates=["1e-4"], finetune_learning_rate=1e-5),
      "--finetune_learning_rate and --finetune_learning_rates: give one",
    ),
    (dict(dev_fraction=0.2, finetune_learning_rates=["0"]), "--finetune_learning_rates=0.0: must"),
    (
      dict(dev_fraction=0.2, finetune_learning_rates=["fast"]),
      "--finetune_learning_rates=fast: not",
    ),
    (dict(seeds=["1", "1"]), "--seeds=1,1: a value is repeated"),
    (dict(seeds=["one"]), "--seeds=one: not ints"),
    (dict(seeds=["-1"]), "--seeds=-1: must be >= 0"),
  ],
)
def test_bad_settings_are_refused(values, message):
  with pytest.raises(ValueError) as error:
    pipeline.PipelineConfig(**{**BASE, **values})
  assert str(error.value).startswith(message), str(error.value)


def test_bad_flags_one_error_line_exit_2(corpus, init_checkpoint, tmp_path):
  (tmp_path / "file").write_text("a file\n")
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
    (["--task=ner", "--seeds=1,x"], "--seeds=1,x: not ints"),
    (  # before: a traceback from the first job's log directory
      ["--task=ner", f"--init_checkpoint={init_checkpoint}", f"--work_dir={tmp_path / 'file'}"],
      f"--work_dir={tmp_path / 'file'}: not a directory",
    ),
  ):
    result = run_job("pipeline", *common, *flags, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "work").exists()
    assert (tmp_path / "file").read_text() == "a file\n"


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


def _real_config(corpus, init_checkpoint, work_dir, **values):
  """A config over the corpus' real files (the plan's inputs exist)."""
  return pipeline.PipelineConfig(
    **{
      **BASE,
      "work_dir": str(work_dir),
      "pool": f"{corpus}/unlabeled.txt",
      "train_file": f"{corpus}/train.tsv",
      "eval_file": f"{corpus}/test.tsv",
      "label_file": f"{corpus}/labels.txt",
      "init_checkpoint": str(init_checkpoint),
      **values,
    }
  )


def _mark_done(config, seconds, *names):
  """Markers of these jobs of the config's plan, as if they had run (seconds
  None: as if they had started)."""
  inputs = pipeline.resolve_inputs(config)
  made = pipeline.make_plan(config, inputs.vocab_file, inputs.pool_files)
  logs = os.path.join(config.work_dir, "logs")
  records = pipeline.identities(made, inputs.files, pipeline.Digests(logs))
  for job in made.jobs:
    if job.name in names:
      pipeline.write_marker(logs, job.name, seconds, job.command, records[job.name])


def test_kl_variant_refuses_pseudo_labels_written_without_logits(corpus, init_checkpoint, tmp_path):
  """A work directory whose step 3 ran for hard variants only, re-run with kl."""
  hard = _real_config(corpus, init_checkpoint, tmp_path, variants=("hard_mlm",))
  _mark_done(hard, 12.0, "round1.pseudo")
  with pytest.raises(ValueError) as error:
    pipeline.run(dataclasses.replace(hard, variants=("hard_mlm", "kl_nomask")))
  assert str(error.value) == (
    f"{tmp_path}/logs/round1.pseudo.done: ran without --write_logits, now --write_logits "
    "(use --redo=round1.pseudo or a new --work_dir)"
  )


def test_a_job_started_with_other_settings_is_not_resumed(corpus, init_checkpoint, tmp_path):
  """A run cut short in step 3, re-run with a kl variant: step 3 would resume
  on the pseudo-labels it left without logits."""
  hard = _real_config(corpus, init_checkpoint, tmp_path, variants=("hard_mlm",))
  _mark_done(hard, None, "round1.pseudo")
  with pytest.raises(ValueError) as error:
    pipeline.run(dataclasses.replace(hard, variants=("hard_mlm", "kl_nomask")))
  assert str(error.value) == (
    f"{tmp_path}/logs/round1.pseudo.started: ran without --write_logits, now --write_logits "
    "(use --redo=round1.pseudo or a new --work_dir)"
  )


def test_a_changed_input_file_is_named(corpus, init_checkpoint, tmp_path):
  train = tmp_path / "train.tsv"
  train.write_text((corpus / "train.tsv").read_text(encoding="utf-8"), encoding="utf-8")
  config = _real_config(corpus, init_checkpoint, tmp_path / "work", train_file=str(train))
  _mark_done(config, 1.0, "baseline")
  with open(train, "a", encoding="utf-8") as f:
    f.write("奶茶\t珍珠奶茶\n")
  with pytest.raises(ValueError) as error:
    pipeline.run(config)
  assert str(error.value) == (
    f"{tmp_path}/work/logs/baseline.done: {train} changed since it ran "
    "(use --redo=baseline or a new --work_dir)"
  )


def test_markers_of_an_older_bert_pl_are_refused(corpus, init_checkpoint, tmp_path):
  (tmp_path / "logs").mkdir()
  (tmp_path / "logs" / "baseline.done").write_text("12.0\n")
  with pytest.raises(ValueError) as error:
    pipeline.run(_real_config(corpus, init_checkpoint, tmp_path))
  assert str(error.value) == (
    f"{tmp_path}/logs/baseline.done: written by an older bert_pl, without its settings "
    "(use --redo=baseline or a new --work_dir)"
  )
  assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["baseline.done"]


def test_report_only_runs_nothing_and_reports_the_finished_jobs(corpus, init_checkpoint, tmp_path):
  """--report_only on a run cut short: no job starts; finished models are
  reported, unfinished ones (here model_b, with results but no marker) not."""
  config = _real_config(corpus, init_checkpoint, tmp_path, report_only=True)
  _mark_done(config, 3.0, "baseline")
  for directory, accuracy in (("baseline", 0.5), ("model_b", 0.75)):
    (tmp_path / directory).mkdir()
    (tmp_path / directory / "eval_results.txt").write_text(f"accuracy = {accuracy}\n")
  report = pipeline.run(config)
  assert {d: m["results"] for d, m in report["models"].items()} == {"baseline": {"accuracy": 0.5}}
  assert report["pseudo_labels"] == {} and report["timings"]["baseline"] == 3.0
  assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["baseline.done"]


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
    **TINY,
    variants=("hard_mlm", "kl_nomask", "self_training"),
    pseudo_per_class=2,
    baseline=False,
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
  timings = {name: pipeline.done_seconds(str(work / "logs"), name) for name in names}
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


def test_each_builder_alone():
  """The plan's builders, one kind of job each: command, paths, needs, step."""
  s = method.Setting(pipeline.PipelineConfig(**BASE), "/vocab.txt", ("/d/pool.txt",))
  data = method.records_job(s, "data", "/d/pool.txt", "step1", "--task=none")
  assert (data.name, data.inputs, data.outputs, data.needs, data.step) == (
    "data",
    ("/d/pool.txt", "/vocab.txt"),
    ("/w/data",),
    (),
    "step1",
  )
  assert data.command[2:4] == ("bert_pl.create_pretraining_data", "--input_file=/d/pool.txt")
  step1 = method.pretrain_plan(s, "model_a", method.initial(s), "data", "A", "--task_loss=none")
  (job,) = step1.jobs
  assert (job.needs, job.step, step1.models) == (("data",), "step1", (("model_a", "A"),))
  assert job.inputs == ("/w/data", "/ckpt", "/vocab.txt")
  # Sized in passes over the pool by default, warm-up the paper's share.
  assert {"--num_train_epochs=1.0", "--warmup_proportion=0.1"} <= set(job.command)
  assert not [arg for arg in job.command if arg.startswith(("--num_train_steps", "--num_warmup"))]
  (step2,) = method.finetune_plan(s, "model_b", method.model_a(s), "B", "step2").jobs
  assert (step2.needs, step2.step) == (("model_a",), "step2")
  assert step2.inputs == (
    "/d/train.tsv",
    "/d/test.tsv",
    "/d/labels.txt",
    "/w/model_a",
    "/vocab.txt",
  )
  step3 = method.predict_plan(s, "round1/pseudo", "model_b", True)
  assert (step3.jobs[0].needs, step3.jobs[0].step) == (("model_b",), "step3")
  assert (step3.pseudo_labels, step3.logits_dirs) == (
    (("round1/pseudo", "model_b"),),
    ("round1/pseudo",),
  )
  later = method.round_plan(s, method.parse_variant("kl_nomask"), 2)
  assert [(j.name, j.needs, j.step) for j in later.jobs] == [
    ("kl_nomask.round2.pseudo", ("kl_nomask.round1.model_d",), "step3"),
    ("kl_nomask.round2.records", ("kl_nomask.round2.pseudo",), "step4"),
    ("kl_nomask.round2.model_c", ("kl_nomask.round2.records",), "step4"),
    ("kl_nomask.round2.model_d", ("kl_nomask.round2.model_c",), "step5"),
  ]
  (classic,) = method.round_plan(
    method.Setting(
      pipeline.PipelineConfig(**BASE, variants=["self_training"], pseudo_per_class=2),
      "/vocab.txt",
      ("/d/pool.txt",),
    ),
    method.parse_variant("self_training"),
    1,
  ).jobs
  assert classic.needs == ("model_a", "round1.pseudo") and classic.step == "step5"
  export = method.export_plan(s, s.config.export_variant)
  assert [(j.name, j.needs, j.step) for j in export.jobs] == [
    ("export", ("kl_nomask.round1.model_d",), "export"),
    ("export_check", ("export",), "export"),
  ]
  assert export.export == ("export", "kl_nomask/round1/model_d")


def test_plan_needs_come_first_and_explicit_steps_keep_the_commands():
  """Every job's needs run before it and make every path under WORK it reads;
  explicit --pretrain_steps/--pretrain_warmup_steps are passed as steps."""
  made = pipeline.make_plan(
    pipeline.PipelineConfig(
      **BASE, variants=list(method.VARIANTS), rounds=2, pseudo_per_class=1, export=True
    ),
    "/vocab.txt",
    ["/d/pool.txt"],
  )
  made_by = {}
  for job in made.jobs:
    assert set(job.needs) <= set(made_by), job.name
    under_work = {path for path in job.inputs if path.startswith("/w/")}
    assert under_work == {made_by[need] for need in job.needs}, job.name
    made_by[job.name] = job.outputs[0]
  jobs, _ = _commands(task="ner", pretrain_steps=30, pretrain_warmup_steps=3)
  assert {"--num_train_steps=30", "--num_warmup_steps=3"} <= set(jobs["model_a"])
  jobs, _ = _commands(task="ner", pretrain_epochs=2.5)
  assert {"--num_train_epochs=2.5", "--warmup_proportion=0.05"} <= set(jobs["model_a"])


@pytest.mark.parametrize(
  "values, message",
  [
    (dict(finetune_epochs=0.0), "--finetune_epochs=0.0: must be > 0"),
    (dict(finetune_epochs=-1.0), "--finetune_epochs=-1.0: must be > 0"),
    (dict(pretrain_epochs=0.0), "--pretrain_epochs=0.0: must be > 0"),
    (dict(pretrain_learning_rate=-1e-5), "--pretrain_learning_rate=-1e-05: must be > 0"),
    (dict(finetune_learning_rate=0.0), "--finetune_learning_rate=0.0: must be > 0"),
    (dict(pretrain_steps=-1), "--pretrain_steps=-1: must be >= 0"),
    (dict(pretrain_warmup_steps=-5), "--pretrain_warmup_steps=-5: must be >= 0"),
    (dict(pretrain_warmup_proportion=1.0), "--pretrain_warmup_proportion=1.0: must be in [0, 1)"),
    (dict(pretrain_steps=10, pretrain_epochs=2.0), "--pretrain_epochs and --pretrain_steps: give"),
    (dict(rounds=0), "--rounds=0: must be >= 1"),
    (dict(variants=["kl_fancy"]), "--variants: unknown variant 'kl_fancy'"),
    (dict(only="step6"), "--only=step6: choose from step1, step2, step3, step4, step5, export"),
    (dict(redo=["model_e"]), "--redo=model_e: no such job in the plan (baseline, data, model_a"),
    (dict(train_file="{tmp}/none.tsv"), "{tmp}/none.tsv"),
    (dict(pool="{tmp}/pool-*.txt"), "{tmp}/pool-*.txt"),
    (dict(model_a="{tmp}/no_model_a"), "{tmp}/no_model_a"),
    (dict(bert_config_file="{tmp}/none.json"), "{tmp}/none.json"),
    (dict(dev_file="{tmp}/dev.tsv"), "{tmp}/dev.tsv"),
    (dict(work_dir="{tmp}/file"), "--work_dir={tmp}/file: not a directory"),
  ],
)
def test_bad_driver_flags_stop_before_any_job(corpus, init_checkpoint, tmp_path, values, message):
  """Each flag checked before the first job: one message (cli: `error: ...`,
  exit 2, tested below), and the work directory is not even created."""
  (tmp_path / "file").write_text("")
  values = {
    k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in values.items()
  }
  with pytest.raises(ValueError) as error:
    work = values.pop("work_dir", tmp_path / "work")
    pipeline.run(_real_config(corpus, init_checkpoint, work, **values))
  assert str(error.value).startswith(message.replace("{tmp}", str(tmp_path))), str(error.value)
  assert "\n" not in str(error.value) and not (tmp_path / "work").exists()


def test_only_runs_one_step_once_the_steps_before_are_done(corpus, init_checkpoint, tmp_path):
  config = _real_config(corpus, init_checkpoint, tmp_path, variants=("hard_nomask",))
  inputs = pipeline.resolve_inputs(config)
  made = pipeline.make_plan(config, inputs.vocab_file, inputs.pool_files)
  logs = str(tmp_path / "logs")
  assert [job.name for job in pipeline.select(made, "step1", logs, set())] == ["data", "model_a"]
  with pytest.raises(
    ValueError,
    match=r"^--only=step3: round1.pseudo needs model_b, which is not done \(--only=step2\)$",
  ):
    pipeline.select(made, "step3", logs, set())
  _mark_done(config, 1.0, "data", "model_a", "baseline", "model_b")
  assert [job.name for job in pipeline.select(made, "step3", logs, set())] == ["round1.pseudo"]
  with pytest.raises(ValueError, match="round1.pseudo needs model_b, which is not done"):
    pipeline.select(made, "step3", logs, pipeline.downstream(made, ["model_a"]))
  with pytest.raises(ValueError, match="^--only=export: the plan has no job of this step$"):
    pipeline.select(made, "export", logs, set())


def test_defaults_are_one_table_shown_in_the_docs_and_help():
  table = pipeline.defaults_markdown()
  for doc in ("README.md", "docs/DESIGN.md"):
    assert table in (REPO / doc).read_text(encoding="utf-8"), doc
  assert "| `--finetune_epochs` | 7 | 3 |" in table
  assert pipeline.default_help("pretrain_warmup_proportion") == (
    "Default: 0.1 (classification) / 0.05 (NER)."
  )
  config = pipeline.PipelineConfig(**BASE)
  assert (config.variants, config.baseline, config.export_variant) == (
    ("kl_nomask", "hard_mlm"),
    True,
    "kl_nomask",
  )


def test_driver_structure():
  """No function of the driver or its plan but the flags' definitions is
  longer than 60 lines; the step scripts are one-line calls of the driver."""
  import ast

  for module in ("bert_pl/pipeline.py", "bert_pl/plan.py"):
    tree = ast.parse((REPO / module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
      if isinstance(node, ast.FunctionDef) and node.name != "define_flags":
        assert node.end_lineno - node.lineno < 60, (module, node.name)
  assert not (REPO / "run_scripts" / "common.sh").exists()
  for step in method.STEPS:
    (script,) = (REPO / "run_scripts").glob(f"{step}*.sh")
    lines = [line for line in script.read_text().splitlines() if line and not line.startswith("#")]
    calls = [line for line in lines if "python" in line]  # the rest: .venv on first use
    assert len(calls) == 1 and f"-m bert_pl.pipeline --only={step} " in calls[0], script
    assert any("ensure_venv" in line for line in lines), script


@pytest.fixture(scope="module")
def small_run(corpus, init_checkpoint, tmp_path_factory):
  """A finished run of 5 jobs (kl_nomask from a given Model-A, the initial
  checkpoint) and a maker of configs like its own in other work dirs."""
  root = tmp_path_factory.mktemp("small")
  lines = (corpus / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
  (root / "train.tsv").write_text("".join(lines[:100]), encoding="utf-8")
  (root / "test.tsv").write_text("".join(lines[100:150]), encoding="utf-8")
  (root / "pool.txt").write_text(
    "".join(line.split("\t", 1)[1] for line in lines[150:190]), encoding="utf-8"
  )
  values = dict(
    task="classification",
    pool=str(root / "pool.txt"),
    train_file=str(root / "train.tsv"),
    eval_file=str(root / "test.tsv"),
    label_file=str(corpus / "labels.txt"),
    init_checkpoint=str(init_checkpoint),
    model_a=str(init_checkpoint),
    variants=("kl_nomask",),
    baseline=False,
    **TINY,
  )

  def config(work: str, **changed):
    return pipeline.PipelineConfig(work_dir=str(root / work), **{**values, **changed})

  report = pipeline.run(config("first"))
  return config, values, report


def _state(work):
  return {p: p.stat().st_mtime_ns for p in sorted(work.rglob("*"))}


def _started(out):
  return [line[4:].split("  [")[0] for line in out.splitlines() if line.startswith("=== ")]


def test_dry_run_prints_the_commands_the_run_ran(small_run, capsys):
  config, _, report = small_run
  work = pathlib.Path(config("first").work_dir)
  before = _state(work)
  capsys.readouterr()
  assert pipeline.run(config("first", dry_run=True)) is None
  printed = capsys.readouterr().out.splitlines()
  ran = [
    f"{name}: " + (work / "logs" / f"{name}.log").read_text().splitlines()[0][2:]
    for name in report["timings"]
  ]
  assert printed == ran and len(ran) == 5
  assert _state(work) == before
  # A single run's report has the teacher check of its step 3 too.
  check = report["pseudo_labels"]["round1/pseudo"]["teacher_check"]
  assert check["labeled"]["examples"] == 100 and check["pseudo_labels"]["examples"] == 40


def test_rerun_with_a_changed_flag_stops_before_any_job(small_run):
  config, values, _ = small_run
  work = pathlib.Path(config("first").work_dir)
  before = _state(work)
  flags = [f"--{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in values.items()]
  result = run_job("pipeline", *flags, f"--work_dir={work}", "--kl_temperature=2", check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  marker = work / "logs" / "kl_nomask.round1.model_c.done"
  assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
    f"error: {marker}: ran with --kl_temperature=1.0, now --kl_temperature=2.0 "
    "(use --redo=kl_nomask.round1.model_c or a new --work_dir)"
  ]
  assert "Traceback" not in result.stderr and "===" not in result.stdout
  assert _state(work) == before


def test_redo_runs_a_job_and_its_downstream_as_a_fresh_run_would(small_run, capsys):
  """--redo of the mid-plan Model-C with a new --kl_temperature: it and its
  Model-D run again, nothing else; then back to the old temperature, whose
  fresh run is the fixture's: the same results."""
  config, _, fresh = small_run
  work = pathlib.Path(config("first").work_dir)
  upstream = {
    name: (work / "logs" / f"{name}.done").read_text()
    for name in ("model_b", "round1.pseudo", "round1.records_nomask")
  }
  results = lambda report: {k: m["results"] for k, m in report["models"].items()}  # noqa: E731
  reports = []
  for temperature in (2.0, 1.0):
    capsys.readouterr()
    reports.append(
      pipeline.run(config("first", kl_temperature=temperature, redo=("kl_nomask.round1.model_c",)))
    )
    assert _started(capsys.readouterr().out) == [
      "kl_nomask.round1.model_c",
      "kl_nomask.round1.model_d",
    ]
    assert {name: (work / "logs" / f"{name}.done").read_text() for name in upstream} == upstream
    log = (work / "logs" / "kl_nomask.round1.model_c.log").read_text()
    assert log.count("$ ") == 1 and f"--kl_temperature={temperature}" in log.splitlines()[0]
  changed, back = reports
  model_c = "kl_nomask/round1/model_c"
  assert results(changed)[model_c] != results(fresh)[model_c]
  assert results(back) == results(fresh) and back["pseudo_labels"] == fresh["pseudo_labels"]
  # The same command again: every job done earlier, none runs.
  pipeline.run(config("first"))
  assert _started(capsys.readouterr().out) == []


def _decision_data(corpus, root):
  """80 labeled lines (train + dev), a 50-line test set, a 40-line pool
  whose labels are held back."""
  lines = (corpus / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
  (root / "train.tsv").write_text("".join(lines[:80]), encoding="utf-8")
  (root / "test.tsv").write_text("".join(lines[100:150]), encoding="utf-8")
  (root / "pool_labels.tsv").write_text("".join(lines[150:190]), encoding="utf-8")
  (root / "pool.txt").write_text(
    "".join(line.split("\t", 1)[1] for line in lines[150:190]), encoding="utf-8"
  )
  return lines


def _eval(work, directory):
  text = (work / directory / "eval_results.txt").read_text().splitlines()
  return {k: float(v) for k, v in (line.split(" = ") for line in text)}


def _dev(work, directory):
  record = json.loads((work / directory / "dev_results.json").read_text())
  return {e["epoch"]: e["accuracy"] for e in record["epochs"]}, record["best_epoch"]


def test_decision_mode_end_to_end_seeds_dev_split_learning_rates_and_rerun(
  corpus, init_checkpoint, tmp_path, capsys
):
  """--seeds=1,2 --dev_fraction=0.2 --finetune_learning_rates=5e-3,1e-3 with
  kl_nomask and --export: the shared split and Model-A, each seed's rate
  chosen on dev, every fine-tuning choosing its epoch on dev, the report over
  the seeds (rows, paired t intervals, the recommendation), the export chosen
  on dev; then a re-run runs nothing, and the teacher check read from crafted
  step-3 outputs fires on one class only."""
  from scipy import stats

  from bert_pl import comparison

  root = tmp_path
  lines = _decision_data(corpus, root)
  work = root / "work"
  config = pipeline.PipelineConfig(
    **{
      **BASE,
      "work_dir": str(work),
      "pool": str(root / "pool.txt"),
      "train_file": str(root / "train.tsv"),
      "eval_file": str(root / "test.tsv"),
      "label_file": str(corpus / "labels.txt"),
      "init_checkpoint": str(init_checkpoint),
    },
    pool_labels=str(root / "pool_labels.tsv"),
    **{**TINY, "finetune_learning_rate": None, "finetune_epochs": 2.0},
    seeds=("1", "2"),
    dev_fraction=0.2,
    finetune_learning_rates=("5e-3", "1e-3"),
    variants=("kl_nomask",),
    export=True,
  )
  report = pipeline.run(config)
  out = capsys.readouterr().out
  ran = _started(out)
  assert ran[:3] == ["dev_split", "data", "model_a"] and len(ran) == 21 == len(set(ran))
  # One split for both seeds: disjoint, together the labeled set; dev is never tested.
  train = (work / "dev_split" / "train.tsv").read_text(encoding="utf-8").splitlines(True)
  dev = (work / "dev_split" / "dev.tsv").read_text(encoding="utf-8").splitlines(True)
  assert sorted(train + dev) == sorted(lines[:80]) and not set(train) & set(dev)
  rows = {"baseline": "baseline", "model_b": "Model-B", "kl_nomask/round1/model_d": "kl_nomask"}
  metric = {}
  for seed in ("1", "2"):
    unit = work / f"seed{seed}"
    # The seed's rate: the best of its search on dev (a tie: the first listed).
    best = {rate: max(_dev(unit, f"lr_search/lr{rate}")[0].values()) for rate in ("0.005", "0.001")}
    chosen = max(best, key=best.__getitem__)
    for row in rows:
      command = (work / "logs" / f"seed{seed}.{row.replace('/', '.')}.log").read_text()
      first = command.splitlines()[0]
      assert f"--learning_rate={float(chosen)}" in first and f"--random_seed={seed}" in first
      assert f"--dev_file={work}/dev_split/dev.tsv --keep_best_on_dev" in first
      assert f"--train_file={work}/dev_split/train.tsv --eval_file={root}/test.tsv" in first
      per_epoch, best_epoch = _dev(unit, row)
      assert sorted(per_epoch) == [1, 2] and per_epoch[best_epoch] == max(per_epoch.values())
    assert (
      "--init_checkpoint=" + str(work / "model_a")
      in ((work / "logs" / f"seed{seed}.model_b.log").read_text().splitlines()[0])
    )
    metric[seed] = {row: _eval(unit, row)["accuracy"] for row in rows}
    own = json.loads((unit / "report.json").read_text())
    assert own["choices"]["learning_rates"][f"seed{seed}"]["chosen"] == float(chosen)
  # The comparison over the seeds: every row, its paired intervals, the recommendation.
  summary = report["comparison"]
  assert list(summary["rows"]) == list(rows) and summary["seeds"] == ["1", "2"]
  for row in rows:
    assert summary["rows"][row]["per_seed"] == {s: metric[s][row] for s in metric}
  for reference, others in (
    ("baseline", ("model_b", "kl_nomask/round1/model_d")),
    ("model_b", ("kl_nomask/round1/model_d",)),
  ):
    for row in others:
      d = np.array([metric[s][row] - metric[s][reference] for s in ("1", "2")])
      entry = summary["differences"][reference][row]
      half = stats.t.ppf(0.975, 1) * d.std(ddof=1) / np.sqrt(2)
      assert entry["mean"] == pytest.approx(d.mean()) and entry["wins"] == int((d > 0).sum())
      if half:
        assert (entry["low"], entry["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
  line = summary["recommendation"]["line"]
  assert line == comparison.compare(metric, list(rows), names=rows)["recommendation"]["line"]
  assert f"**Recommendation:** {line}." in (work / "report.md").read_text()
  assert out.rstrip().splitlines()[-1] == f"recommendation: {line}"
  assert (work / "report.png").stat().st_size > 0
  assert set(report["pseudo_label_quality"]["round1/pseudo"]) == {"1", "2"}
  # The export: the only variant, chosen on dev, the first seed's model.
  assert report["export"]["model"] == "seed1/kl_nomask/round1/model_d"
  assert report["choices"]["export_why"].startswith("kl_nomask: the best mean dev accuracy")

  # A re-run runs no job and writes the same report.
  before = (work / "report.json").read_bytes()
  assert pipeline.run(config) == report
  assert _started(capsys.readouterr().out) == [] and (work / "report.json").read_bytes() == before

  # The teacher check on crafted step-3 outputs: seed 1's teacher predicts one
  # class, seed 2's the held-back labels (a healthy distribution).
  held_back = (root / "pool_labels.tsv").read_text(encoding="utf-8").splitlines(True)
  one_class = "".join(
    "\t".join([held_back[0].split("\t")[0], line.split("\t", 1)[1]]) for line in held_back
  )
  (work / "seed1" / "round1" / "pseudo" / "pool.txt").write_text(one_class, encoding="utf-8")
  (work / "seed2" / "round1" / "pseudo" / "pool.txt").write_text(
    "".join(held_back), encoding="utf-8"
  )
  checks = pipeline.run(dataclasses.replace(config, report_only=True))["teacher_checks"]
  assert checks["1"]["round1/pseudo"]["warnings"] and not checks["2"]["round1/pseudo"]["warnings"]
  text = (work / "report.md").read_text()
  assert "- seed 1, round1/pseudo: WARNING: " in text
  assert "- seed 2, round1/pseudo: no sign of a degenerate teacher" in text


DECISION = dict(
  seeds=["1", "2"],
  dev_fraction=0.2,
  finetune_learning_rates=["1e-4", "3e-5"],
  variants=["kl_nomask", "hard_mlm"],
  export=True,
)


def _decision_plan(choices=method.Choices(), dry_run=False, **values):
  config = pipeline.PipelineConfig(**{**BASE, **DECISION, **values})
  return method.make_plan(config, "/vocab.txt", ["/d/pool.txt"], choices, dry_run)


def _flag(job, name):
  (value,) = [arg.split("=", 1)[1] for arg in job.command if arg.startswith(f"--{name}=")]
  return value


def test_decision_plan_in_phases_the_search_first():
  """Before the searches are done the plan holds the shared jobs and the
  searches only; --dry_run shows the rest with the rate to be chosen; each
  seed's jobs then take its own rate, and the export the variant best on dev."""
  searches = [f"seed{k}.lr_search.lr{r}" for k in (1, 2) for r in ("0.0001", "3e-05")]
  first = _decision_plan()
  assert [j.name for j in first.jobs] == ["dev_split", "data", "model_a", *searches]
  explicit = _decision_plan(export_variant="kl_nomask")  # its Model-D is not planned yet
  assert [j.name for j in explicit.jobs] == [j.name for j in first.jobs] and not explicit.export
  dry = {j.name: j for j in _decision_plan(dry_run=True).jobs}
  assert _flag(dry["seed2.model_b"], "learning_rate") == method.ON_DEV
  assert _flag(dry["export"], "model_dir") == f"/w/seed1/{method.ON_DEV}/round1/model_d"
  # seed 1: a tie, the earlier rate; seed 2: the higher dev metric.
  choices = method.Choices(
    {"seed1": {1e-4: 0.5, 3e-5: 0.5}, "seed2": {1e-4: 0.4, 3e-5: 0.6}},
    {"kl_nomask": 0.5, "hard_mlm": 0.55},
  )
  made = _decision_plan(choices)
  jobs = {j.name: j for j in made.jobs}
  assert list(jobs)[:3] == ["dev_split", "data", "model_a"] and len(jobs) == 3 + 2 * 11 + 2
  for seed, rate in (("1", "0.0001"), ("2", "3e-05")):
    tuned = [
      j for j in made.jobs if j.name.startswith(f"seed{seed}.") and "run_classifier" in j.command[2]
    ]
    assert len(tuned) == 2 + 4  # the searches, baseline, Model-B, two Model-Ds
    for job in tuned:
      assert _flag(job, "random_seed") == seed
      assert _flag(job, "train_file") == "/w/dev_split/train.tsv"
      assert (
        _flag(job, "dev_file") == "/w/dev_split/dev.tsv" and "--keep_best_on_dev" in job.command
      )
      assert _flag(job, "eval_file") == "/d/test.tsv"
      if "lr_search" not in job.name:
        assert _flag(job, "learning_rate") == str(float(rate))
        assert {f"seed{seed}.lr_search.lr0.0001", f"seed{seed}.lr_search.lr3e-05"} <= set(job.needs)
    assert _flag(jobs[f"seed{seed}.model_b"], "init_checkpoint") == "/w/model_a"
    assert "model_a" in jobs[f"seed{seed}.model_b"].needs
    assert _flag(jobs[f"seed{seed}.round1.records_mlm"], "random_seed") == seed
  # Shared by the seeds, at --random_seed: the split and step 1.
  assert _flag(jobs["dev_split"], "seed") == _flag(jobs["model_a"], "random_seed") == "12345"
  assert _flag(jobs["dev_split"], "format") == "tsv"
  assert _flag(jobs["export"], "model_dir") == "/w/seed1/hard_mlm/round1/model_d"
  explicit = _decision_plan(choices, export_variant="kl_nomask")
  assert explicit.export == ("export", "seed1/kl_nomask/round1/model_d")
  # Every path under WORK a job reads is made by a job it needs, before it.
  made_by = {}
  for job in made.jobs:
    under_work = {path for path in job.inputs if path.startswith("/w/")}
    assert under_work == {made_by[need] for need in job.needs}, job.name
    made_by[job.name] = job.outputs[0]
  # --redo of a seed's search: that seed's jobs downstream, not the other seed's.
  again = pipeline.downstream(made, ["seed1.lr_search.lr3e-05"])
  assert {"seed1.model_b", "seed1.hard_mlm.round1.model_d", "export"} <= again
  assert not {name for name in again if name.startswith(("seed2.", "model_a"))}


def test_decision_plan_single_seed_ner_and_a_dev_file():
  """Without --seeds the layout is a single run's; NER splits CoNLL; a
  --dev_file is used as given, with the labeled set whole."""
  made = _decision_plan(task="ner", seeds=[], export=False)
  assert [j.name for j in made.jobs] == ["dev_split", "lr_search.lr0.0001", "lr_search.lr3e-05"]
  assert _flag(made.jobs[0], "format") == "conll"
  assert _flag(made.jobs[1], "train_file") == "/w/dev_split/train.txt"
  given = _decision_plan(
    dev_fraction=None, dev_file="/d/dev.tsv", seeds=[], finetune_learning_rates=[]
  )
  jobs = {j.name: j for j in given.jobs}
  assert "dev_split" not in jobs and "lr_search.lr0.0001" not in jobs
  assert _flag(jobs["model_b"], "train_file") == "/d/train.tsv"
  assert _flag(jobs["model_b"], "dev_file") == "/d/dev.tsv"
  assert _flag(jobs["model_b"], "learning_rate") == "1e-05"
  assert "/d/dev.tsv" in jobs["model_b"].inputs
  # The export waits for the variants' dev results (no --export_variant).
  assert given.export is None and "export" not in jobs
  assert method.Choices(variants={"a": 0.5, "b": 0.5}).export_variant() == "a"


def test_decision_mode_dry_run_through_the_flags(corpus, init_checkpoint, tmp_path):
  """--seeds, --dev_fraction and --finetune_learning_rates as a user types
  them: --dry_run prints the shared jobs, the searches and the jobs after
  them with the rate still to be chosen on dev, and creates nothing."""
  result = run_job(
    "pipeline",
    "--task=classification",
    f"--work_dir={tmp_path / 'work'}",
    f"--pool={corpus}/unlabeled.txt",
    f"--train_file={corpus}/train.tsv",
    f"--eval_file={corpus}/test.tsv",
    f"--label_file={corpus}/labels.txt",
    f"--init_checkpoint={init_checkpoint}",
    "--variants=hard_nomask",
    "--seeds=3,4",
    "--dev_fraction=0.25",
    "--finetune_learning_rates=1e-4,3e-5",
    "--dry_run",
  )
  printed = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
  assert list(printed)[:5] == [
    "dev_split",
    "data",
    "model_a",
    "seed3.lr_search.lr0.0001",
    "seed3.lr_search.lr3e-05",
  ]
  assert "--dev_fraction=0.25" in printed["dev_split"]
  assert (
    "--learning_rate=3e-05 --num_train_epochs=7.0 --random_seed=4"
    in (printed["seed4.lr_search.lr3e-05"])
  )
  assert "'--learning_rate=<chosen on dev>'" in printed["seed4.hard_nomask.round1.model_d"]
  assert not (tmp_path / "work").exists()
