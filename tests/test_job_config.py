"""Each job's config dataclass against its flags: the same names, the same
defaults, and `config_from_flags` builds the config from parsed flags."""

import json
import subprocess
import sys

from conftest import REPO

# (module, config class, define_flags arguments, fields the job has no flag for)
JOBS = [
    ("bert_pl.create_pretraining_data", "CreatePretrainingDataConfig", {}, []),
    ("bert_pl.create_pretraining_data", "CreatePretrainingDataConfig", {"local_workers": False},
     ["num_workers"]),  # the Beam job's flags
    ("bert_pl.predict_pseudo_labels", "PredictPseudoLabelsConfig", {}, []),
    ("bert_pl.predict_pseudo_labels", "PredictPseudoLabelsConfig", {"sharded_by_hand": False},
     ["num_shards", "shard_index"]),  # the Beam job's flags
    ("bert_pl.pipeline", "PipelineConfig", {}, []),
]

# Defines each job's flags in turn (removing the previous job's), and prints
# its flags' defaults and its config's fields' defaults as JSON; then builds
# a config from parsed flags.
SCRIPT = r"""
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


def test_flags_are_the_config_fields_with_the_same_defaults():
  result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(JOBS)], cwd=REPO,
                          capture_output=True, text=True, check=True)
  reports = json.loads(result.stdout.splitlines()[-1])
  for (module, _, arguments, no_flag), report in zip(JOBS, reports):
    fields = {k: v for k, v in report["fields"].items() if k not in no_flag}
    assert report["flags"] == fields, (module, arguments)
  assert reports[2]["config"] == dict(
      reports[2]["fields"], model_dir="m", input_file="a,b", output_dir="o", use_xla=True,
      min_confidence=0.5)
