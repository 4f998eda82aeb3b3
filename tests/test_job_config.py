"""Every job's config has one field per flag, with the flag's default.

A config's defaults are what `main` gives a flag left out (`job_config`), and
the flags' defaults are what `--help` shows: they must be the same. Each job
defines its flags in a process of its own (jobs share flag names with
other defaults), which prints them.
"""

import dataclasses
import json
import subprocess
import sys

import pytest

from bert_pl import (
  export_saved_model,
  export_tf1_checkpoint,
  extract_features,
  finetuning,
  run_pretraining,
)

from conftest import REPO

# Per job (a module and define_flags' arguments), the flags it defines with
# their defaults: its own, cli's and job_config's shared ones, removed again before the
# next job defines its own.
_FLAG_DEFAULTS = """
import importlib, json, sys
from absl import flags
defaults = []
for job in json.loads(sys.argv[1]):
  module = importlib.import_module("bert_pl." + job[0])
  module.define_flags(*job[1:])
  defined = [flag.name for name in ("bert_pl.cli", "bert_pl.job_config", module.__name__)
             for flag in flags.FLAGS.flags_by_module_dict().get(name, [])
             if flag.name != "verbose"]
  defaults.append({name: flags.FLAGS[name].default for name in defined})
  for name in defined:
    delattr(flags.FLAGS, name)
print(json.dumps(defaults))
"""

# job, define_flags' arguments, its config, the defaults of the settings
# that are None when not given.
JOBS = [
  (
    "run_pretraining",
    [],
    run_pretraining.RunPretrainingConfig,
    {**run_pretraining.DATA_DEFAULTS, **run_pretraining.SCHEDULE_DEFAULTS},
  ),
  ("finetuning", ["classification"], finetuning.FinetuningConfig, finetuning.NEW_MODEL_SETTINGS),
  ("finetuning", ["ner"], finetuning.FinetuningConfig, finetuning.NEW_MODEL_SETTINGS),
  ("extract_features", [], extract_features.ExtractFeaturesConfig, {}),
  ("export_saved_model", [], export_saved_model.ExportSavedModelConfig, {}),
  ("export_tf1_checkpoint", [], export_tf1_checkpoint.ExportTf1CheckpointConfig, {}),
]


@pytest.fixture(scope="module")
def flag_defaults():
  jobs = json.dumps([[job] + args for job, args, _, _ in JOBS])
  result = subprocess.run(
    [sys.executable, "-c", _FLAG_DEFAULTS, jobs], cwd=REPO, capture_output=True, text=True
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
  "index", range(len(JOBS)), ids=[" ".join([job] + args) for job, args, _, _ in JOBS]
)
def test_config_fields_are_the_flags_with_their_defaults(index, flag_defaults):
  _, _, config_class, not_given = JOBS[index]
  defaults = flag_defaults[index]
  fields = {f.name: f for f in dataclasses.fields(config_class) if f.name != "task"}
  assert sorted(fields) == sorted(defaults)
  for name, field in fields.items():
    if field.default is dataclasses.MISSING:  # a required flag
      assert defaults[name] is None, name
    elif field.default is None and name in not_given:
      assert defaults[name] == not_given[name], name
    else:
      assert defaults[name] == field.default, name


def test_a_config_takes_the_flags_given_and_else_its_defaults(tmp_path):
  """`config_from_flags` in a job's `main`: run_pretraining's data settings
  stay None (the manifest's) unless given, even at the flag's default."""
  program = (
    "import sys\n"
    "from absl import flags\n"
    "from bert_pl import job_config, run_pretraining as job\n"
    "job.define_flags()\n"
    "flags.FLAGS(sys.argv)\n"
    "config = job_config.config_from_flags(job.RunPretrainingConfig)\n"
    "print(config.output_dir, config.max_seq_length, config.max_predictions_per_seq,"
    " config.tokenization, config.learning_rate, config.do_train)\n"
  )
  result = subprocess.run(
    [
      sys.executable,
      "-c",
      program,
      f"--output_dir={tmp_path}",
      "--max_predictions_per_seq=20",
      "--do_train",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=True,
  )
  assert result.stdout.split() == [str(tmp_path), "None", "20", "None", "5e-05", "True"]


# The data jobs, in one process (their flags do not clash):
# (module, config class, define_flags arguments, fields the job has no flag for)
DATA_JOBS = [
  ("bert_pl.create_pretraining_data", "CreatePretrainingDataConfig", {}, []),
  (
    "bert_pl.create_pretraining_data",
    "CreatePretrainingDataConfig",
    {"local_workers": False},
    ["num_workers"],
  ),  # the Beam job's flags
  ("bert_pl.predict_pseudo_labels", "PredictPseudoLabelsConfig", {}, []),
  (
    "bert_pl.predict_pseudo_labels",
    "PredictPseudoLabelsConfig",
    {"sharded_by_hand": False},
    ["num_shards", "shard_index"],
  ),  # the Beam job's flags
  ("bert_pl.pipeline", "PipelineConfig", {}, []),
]

# Defines each job's flags in turn (removing the previous job's), and prints
# its flags' defaults and its config's fields' defaults as JSON; then builds
# a config from parsed flags.
_DATA_SCRIPT = r"""
import dataclasses, importlib, json, sys
from absl import flags
from bert_pl import cli, job_config  # cli defines --verbose

jobs = json.loads(sys.argv[1])
base = set(flags.FLAGS)
out = []
for module_name, class_name, arguments, _ in jobs:
  module = importlib.import_module(module_name)
  module.define_flags(**arguments)
  names = set(flags.FLAGS) - base
  config_class = getattr(module, class_name)
  plain = lambda v: list(v) if isinstance(v, tuple) else v
  out.append({
      "flags": {name: plain(flags.FLAGS[name].default) for name in names},
      "fields": {f.name: None if f.default is dataclasses.MISSING else plain(f.default)
                 for f in dataclasses.fields(config_class)}})
  if module_name.endswith("predict_pseudo_labels") and not arguments:
    flags.FLAGS(["job", "--model_dir=m", "--input_file=a,b", "--output_dir=o", "--use_xla",
                 "--min_confidence=0.5"])
    config = job_config.config_from_flags(config_class)
    out[-1]["config"] = dataclasses.asdict(config)
    flags.FLAGS.unparse_flags()
  for name in names:
    delattr(flags.FLAGS, name)
print(json.dumps(out))
"""


def test_data_jobs_flags_are_the_config_fields_with_the_same_defaults():
  result = subprocess.run(
    [sys.executable, "-c", _DATA_SCRIPT, json.dumps(DATA_JOBS)],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=True,
  )
  reports = json.loads(result.stdout.splitlines()[-1])
  for (module, _, arguments, no_flag), report in zip(DATA_JOBS, reports):
    fields = {k: v for k, v in report["fields"].items() if k not in no_flag}
    assert report["flags"] == fields, (module, arguments)
  assert reports[2]["config"] == dict(
    reports[2]["fields"],
    model_dir="m",
    input_file="a,b",
    output_dir="o",
    use_xla=True,
    min_confidence=0.5,
  )
