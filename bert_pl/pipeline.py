r"""One driver for the whole method: the five steps, their variants and rounds.

    python -m bert_pl.pipeline --task=classification --work_dir=output/cls \
      --pool='pool/part-*.txt' --train_file=train.tsv --eval_file=test.tsv \
      --label_file=labels.txt --init_checkpoint=chinese_L-12_H-768_A-12 \
      --num_hidden_layers=3 --export

Why one driver: the method is a sequence of jobs (DESIGN §1) with options
at every step (DESIGN §1b: the step-4 loss, masking, classic self-training,
rounds, the initial checkpoint). Written once (the plan, `bert_pl.plan`), the
sequence serves the main job (run_scripts/run_pipeline.sh), the step scripts
(run_scripts/step*.sh: `--only=stepN`), the paper's experiments and users.
The paper's settings are one table, `DEFAULTS`, which the flags' help, README
and DESIGN show.

Every step runs as a separate job, `python -m bert_pl.<job> --flags`, exactly
as a user would run it, with its output in WORK/logs/<job>.log (the command
first). A finished job leaves WORK/logs/<job>.done: its wall time, its command
and the identity of its inputs (a hash over the identities of the jobs whose
outputs it reads, and the sha256 of the user's files it reads, cached by
size and mtime in WORK/logs/input_digests.json); WORK/logs/<job>.started
holds the same while it runs. A re-run skips finished jobs and resumes the
others (checkpoints, finished shards and files), but only when every finished
or started job would run the same command on the same inputs: otherwise
it stops before any job, naming the first job and flag (or file) that
differ, because a report of jobs run with other settings would be wrong under
the new command line. `--redo=JOB,...` runs those jobs again and every job
downstream of them (their outputs, logs and markers are removed first).
`--only=STEP` runs one step's jobs, `--dry_run` prints the commands.

Layout of WORK:

    data/                 step 1's TFRecords of the pool (MLM)
    baseline/             fine-tuned from the initial checkpoint (--baseline)
    baseline_<N>layers/   the same from its first N layers (--baseline_layers)
    model_a/  model_b/    steps 1 and 2 (no data/ and model_a/ with --model_a: a
                          Model-A from elsewhere, e.g. shared by several labeled sets)
    round1/pseudo/        step 3 by Model-B, shared by the variants' round 1
    round1/records_mlm/   step 4's TFRecords, 15%-masked (..._mlm variants)
    round1/records_nomask/  unmasked, MLM weights 0 (..._nomask variants)
    <variant>/round<r>/   model_c/, model_d/; from round 2 on also pseudo/
                          (by the variant's Model-D of round r-1) and records/
    self_training/round<r>/model_d/   Model-A fine-tuned on labeled + pseudo
    export/               the SavedModel (--export); export_check.json: its answers
    logs/                 <job>.log, <job>.done (.started), input_digests.json
    report.json, report.md, report.png   (bert_pl.pipeline_report)

The decision mode (`bert_pl.plan`'s doc): `--dev_fraction` adds dev_split/
(train and dev parts of --train_file), `--finetune_learning_rates` adds
lr_search/lr<a>/ (the baseline at each rate), and with `--seeds` everything
from baseline/ to the variants is per seed under seed<k>/ (each with its own
report; job names seed<k>.<job>), while dev_split/, data/, model_a/, export/
and logs/ stay in WORK, whose report compares the seeds
(`pipeline_report.over_seeds`) and ends with the recommendation line, which
the run prints last.

Variants (--variants, a comma list; see README for which the paper used):
`{hard,kl}_{mlm,nomask}` with an optional `_from_a` suffix: step 4's loss on
the pseudo-labels (one-hot cross-entropy / CRF, or KL on the teacher's
logits, --kl_temperature), its input (15%-masked with the MLM loss, or
unmasked without it) and its initialisation (the initial checkpoint, as the
paper, or Model-A). `self_training`: classic self-training, Model-A
fine-tuned on the labeled set plus the --pseudo_per_class most confident
pseudo-labels of each class. With --rounds=R, steps 3-5 repeat R times per
variant: round r's teacher is the variant's Model-D of round r-1 (round 1:
Model-B), and step 4 starts again from the variant's initialisation.
"""

import dataclasses
import glob
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from absl import flags

from bert_pl import (
  atomic_files,
  checkpoints,
  cli,
  errors,
  input_files,
  job_config,
  masking,
  pipeline_report,
  precision,
  training,
)
from bert_pl.plan import (
  STEPS,
  VARIANTS,
  Choices,
  Job,
  Plan,
  Variant,
  comparison_rows,
  final_model_d,
  job_name,
  make_plan,
  parse_variant,
  search_dir,
  units,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Default:
  """One of the paper's settings: a flag's value per task, and what it is."""

  flag: str
  classification: object
  ner: object
  what: str


# The defaults of the flags left unset: the paper's settings per task (DESIGN
# §1), and the variants that won in bert_pl's measurements (README).
DEFAULTS = (
  Default(
    "variants",
    ("kl_nomask", "hard_mlm"),
    ("kl_nomask", "hard_mlm"),
    "steps 4-5: the later version's best and the paper's own; each won somewhere",
  ),
  Default("baseline", True, True, "also fine-tune the initial checkpoint directly"),
  Default("max_seq_length", 64, 128, "tokens per example, in every job"),
  Default(
    "pretrain_epochs", 1.0, 1.0, "passes over the pool in steps 1 and 4, unless --pretrain_steps"
  ),
  Default(
    "pretrain_warmup_proportion",
    0.1,
    0.05,
    "warm-up share of steps 1 and 4 (the paper: 10000 / 5000 of 100000 steps), "
    "unless --pretrain_warmup_steps",
  ),
  Default("pretrain_learning_rate", 5e-5, 1e-5, "steps 1 and 4"),
  Default("pretrain_batch_size", 64, 64, "global batch of steps 1 and 4"),
  Default("save_checkpoints_steps", 1000, 1000, "checkpoint interval of steps 1 and 4"),
  Default("finetune_learning_rate", 1e-5, 1e-5, "steps 2 and 5"),
  Default("finetune_epochs", 7.0, 3.0, "steps 2 and 5"),
  Default("finetune_batch_size", 64, 64, "global batch of steps 2 and 5"),
  Default("random_seed", 12345, 12345, "every job"),
)
DEFAULT = {row.flag: row for row in DEFAULTS}
# A default that applies only when its alternative (in steps) is not given.
ALTERNATIVES = {
  "pretrain_epochs": "pretrain_steps",
  "pretrain_warmup_proportion": "pretrain_warmup_steps",
}


def _shown(value) -> str:
  if isinstance(value, tuple):
    return ",".join(value)
  if isinstance(value, bool):
    return str(value).lower()
  return f"{value:g}" if isinstance(value, float) else str(value)


def default_help(flag: str) -> str:
  """The default of a flag as its help text says it."""
  row = DEFAULT[flag]
  if row.classification == row.ner:
    return f"Default: {_shown(row.ner)}."
  return f"Default: {_shown(row.classification)} (classification) / {_shown(row.ner)} (NER)."


def defaults_markdown() -> str:
  """DEFAULTS as the markdown table that README.md and docs/DESIGN.md hold."""
  lines = ["| flag | classification | NER | what |", "|---|---|---|---|"]
  for row in DEFAULTS:
    values = f"{_shown(row.classification)} | {_shown(row.ner)}"
    lines.append(f"| `--{row.flag}` | {values} | {row.what} |")
  return "\n".join(lines) + "\n"


class JobError(RuntimeError):
  """A job failed; the message names it, its last error line and its log."""


# Checked by PipelineConfig: (fields, the rule, its test).
RULES = (
  (
    ("pretrain_epochs", "pretrain_learning_rate", "finetune_epochs", "finetune_learning_rate"),
    "> 0",
    lambda value: value > 0,
  ),
  (("kl_temperature",), "> 0", lambda value: value > 0),
  (
    ("pretrain_steps", "pretrain_warmup_steps", "logits_top_k", "pseudo_per_class"),
    ">= 0",
    lambda value: value >= 0,
  ),
  (("pretrain_warmup_proportion",), "in [0, 1)", lambda value: 0 <= value < 1),
  (("pseudo_min_confidence",), "in [0, 1]", lambda value: 0 <= value <= 1),
  (
    (
      "rounds",
      "pretrain_batch_size",
      "finetune_batch_size",
      "num_shards",
      "num_workers",
      "max_seq_length",
      "max_predictions_per_seq",
      "save_checkpoints_steps",
      "baseline_layers",
      "num_hidden_layers",
    ),
    ">= 1",
    lambda value: value >= 1,
  ),
)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything a run needs; the flags of `python -m bert_pl.pipeline` have
  the same names. Fields left None take their DEFAULTS row for the task."""

  task: str
  work_dir: str
  pool: str
  train_file: str
  eval_file: str
  label_file: str
  init_checkpoint: str
  vocab_file: Optional[str] = None
  bert_config_file: Optional[str] = None
  num_hidden_layers: Optional[int] = None
  tokenization: str = "wordpiece"
  do_lower_case: bool = True
  max_seq_length: Optional[int] = None
  max_predictions_per_seq: Optional[int] = None
  do_whole_word_mask: bool = False
  segmenter: str = "none"
  ngram_mask_max: int = 1
  pretrain_steps: Optional[int] = None
  pretrain_epochs: Optional[float] = None
  pretrain_warmup_steps: Optional[int] = None
  pretrain_warmup_proportion: Optional[float] = None
  pretrain_learning_rate: Optional[float] = None
  pretrain_batch_size: Optional[int] = None
  save_checkpoints_steps: Optional[int] = None
  finetune_learning_rate: Optional[float] = None
  finetune_epochs: Optional[float] = None
  finetune_batch_size: Optional[int] = None
  random_seed: Optional[int] = None
  num_shards: int = 4
  num_workers: int = 1
  bucket_width: int = 8
  dtype: str = "float32"
  baseline: Optional[bool] = None
  baseline_layers: Optional[int] = None
  model_a: Optional[str] = None
  pool_labels: Optional[str] = None
  variants: Optional[Tuple[str, ...]] = None
  pseudo_per_class: int = 0
  pseudo_min_confidence: float = 0.0
  kl_temperature: float = 1.0
  logits_top_k: int = 0
  rounds: int = 1
  export: bool = False
  export_variant: Optional[str] = None
  dev_fraction: Optional[float] = None
  dev_file: Optional[str] = None
  seeds: Tuple[int, ...] = ()
  finetune_learning_rates: Tuple[float, ...] = ()
  report_only: bool = False
  keep_checkpoints: bool = True
  dry_run: bool = False
  only: Optional[str] = None
  redo: Tuple[str, ...] = ()

  def __post_init__(self):
    if self.task not in input_files.FINETUNE_TASKS:
      raise errors.InputError(
        f"--task={self.task}: choose from {', '.join(input_files.FINETUNE_TASKS)}"
      )
    self._check_decision_mode()
    self._take_defaults()
    self._check_variants()
    self._check_variant_options()
    self._check_numbers()
    self._check_run_options()

  def _set(self, name: str, value) -> None:
    object.__setattr__(self, name, value)

  def _numbers(self, name: str, kind) -> Tuple:
    """A comma-list flag's values as numbers of `kind`, distinct."""
    values = getattr(self, name)
    try:
      parsed = tuple(kind(v) for v in values)
    except ValueError:
      shown = ",".join(map(str, values))
      raise errors.InputError(f"--{name}={shown}: not {kind.__name__}s") from None
    if len(set(parsed)) < len(parsed):
      raise errors.InputError(f"--{name}={','.join(map(str, values))}: a value is repeated")
    return parsed

  def _check_decision_mode(self) -> None:
    """--dev_fraction/--dev_file, --seeds and --finetune_learning_rates."""
    self._set("seeds", self._numbers("seeds", int))
    self._set("finetune_learning_rates", self._numbers("finetune_learning_rates", float))
    if self.dev_fraction is not None and self.dev_file:
      raise errors.InputError("--dev_fraction and --dev_file: give one of them")
    if self.dev_fraction is not None and not 0 < self.dev_fraction < 1:
      raise errors.InputError(f"--dev_fraction={self.dev_fraction}: must be in (0, 1)")
    if any(seed < 0 for seed in self.seeds):
      raise errors.InputError(f"--seeds={','.join(map(str, self.seeds))}: must be >= 0")
    rates = self.finetune_learning_rates
    if rates and not self.chooses_on_dev:
      raise errors.InputError(
        "--finetune_learning_rates needs a dev set to choose on: --dev_fraction or --dev_file"
      )
    if rates and self.finetune_learning_rate is not None:
      raise errors.InputError("--finetune_learning_rate and --finetune_learning_rates: give one")
    if any(rate <= 0 for rate in rates):
      raise errors.InputError(f"--finetune_learning_rates={','.join(map(str, rates))}: must be > 0")

  @property
  def chooses_on_dev(self) -> bool:
    return bool(self.dev_fraction or self.dev_file)

  def _take_defaults(self) -> None:
    for name, alternative in ALTERNATIVES.items():
      if getattr(self, name) is not None and getattr(self, alternative) is not None:
        raise errors.InputError(f"--{name} and --{alternative}: give one of them")
    for row in DEFAULTS:
      given = ALTERNATIVES.get(row.flag)
      if getattr(self, row.flag) is None and (given is None or getattr(self, given) is None):
        self._set(row.flag, getattr(row, self.task))
    self._set("variants", tuple(self.variants))
    self._set("redo", tuple(self.redo))
    if self.max_predictions_per_seq is None:
      self._set("max_predictions_per_seq", masking.default_max_predictions(self.max_seq_length))
    if self.finetune_learning_rates:  # each unit's rate is chosen on dev
      self._set("finetune_learning_rate", None)

  def _check_variants(self) -> None:
    if not self.parsed_variants:
      raise errors.InputError("--variants: give at least one variant")
    if len(set(self.variants)) < len(self.variants):
      raise errors.InputError(f"--variants={','.join(self.variants)}: a variant is repeated")
    if self.export_variant is None and not self.chooses_on_dev:
      self._set("export_variant", self.variants[0])
    elif self.export_variant not in (None, *self.variants):
      raise errors.InputError(
        f"--export_variant={self.export_variant} is not one of --variants={','.join(self.variants)}"
      )

  def _check_variant_options(self) -> None:
    parsed = self.parsed_variants
    self_training = any(v.self_training for v in parsed)
    if self_training and self.pseudo_per_class < 1:
      raise errors.InputError(
        "--variants=self_training needs --pseudo_per_class >= 1 (the "
        "pseudo-labeled examples added per class)"
      )
    if not self_training and (self.pseudo_per_class or self.pseudo_min_confidence):
      raise errors.InputError(
        "--pseudo_per_class and --pseudo_min_confidence are for the "
        "self_training variant, which --variants does not list"
      )
    if not any(v.pseudo_label_loss == "kl" for v in parsed) and (
      self.logits_top_k or self.kl_temperature != 1.0
    ):
      raise errors.InputError(
        "--logits_top_k and --kl_temperature are for the kl_* variants, "
        "which --variants does not list"
      )
    if self.logits_top_k and self.task != "classification":
      raise errors.InputError("--logits_top_k is for classification (NER keeps every tag's logit)")
    if self.baseline_layers is not None and not self.baseline:
      raise errors.InputError("--baseline_layers needs --baseline")

  def _check_numbers(self) -> None:
    for names, rule, holds in RULES:
      for name in names:
        value = getattr(self, name)
        if value is not None and not holds(value):
          raise errors.InputError(f"--{name}={value}: must be {rule}")
    if self.dtype not in precision.DTYPES:
      raise errors.InputError(f"--dtype={self.dtype}: choose from {', '.join(precision.DTYPES)}")

  def _check_run_options(self) -> None:
    if os.path.exists(self.work_dir) and not os.path.isdir(self.work_dir):
      raise errors.InputError(f"--work_dir={self.work_dir}: not a directory")
    if self.only is not None and self.only not in STEPS:
      raise errors.InputError(f"--only={self.only}: choose from {', '.join(STEPS)}")

  @property
  def parsed_variants(self) -> List[Variant]:
    return [parse_variant(name) for name in self.variants]


DONE, STARTED = ".done", ".started"


def _marker(logs: str, name: str, suffix: str = DONE) -> str:
  return os.path.join(logs, name + suffix)


def read_marker(logs: str, name: str, suffix: str = DONE) -> Optional[Dict]:
  """A finished job's record ({"seconds", "command", ...}), None when it has
  not finished; a marker of an older bert_pl holds only the seconds. With
  suffix STARTED: the record of a job started and not finished."""
  marker = _marker(logs, name, suffix)
  if not os.path.exists(marker):
    return None
  with open(marker, encoding="utf-8") as f:
    text = f.read()
  return json.loads(text) if text.startswith("{") else {"seconds": float(text)}


def done_seconds(logs: str, name: str) -> Optional[float]:
  """The wall time a finished job took, None when it has not finished."""
  marker = read_marker(logs, name)
  return None if marker is None else marker["seconds"]


def _last_error(log_file: str) -> str:
  with open(log_file, encoding="utf-8", errors="replace") as f:
    lines = [line.strip() for line in f if line.strip()]
  errors = [line[len("error:") :].strip() for line in lines if line.startswith("error:")]
  return (errors or lines or ["(empty log)"])[-1]


def write_marker(
  logs: str, name: str, seconds: Optional[float], command: Sequence[str], record: Optional[Dict]
) -> None:
  """LOGS/<name>.done: the job's wall time, its command (without the
  interpreter, which is no setting) and `record` (its identity); seconds
  None: LOGS/<name>.started, the same for a job starting (so that a re-run
  with other settings does not resume it on the outputs it left)."""
  done = {"seconds": seconds and round(seconds, 1), "command": list(command[1:]), **(record or {})}
  os.makedirs(logs, exist_ok=True)
  path = _marker(logs, name, STARTED if seconds is None else DONE)
  atomic_files.write_file(path, json.dumps(done, indent=1) + "\n")


def run_job(name: str, command: Sequence[str], logs: str, record: Optional[Dict] = None) -> bool:
  """Runs one job unless its done-marker exists; returns whether it ran.
  Its output goes to LOGS/<name>.log; LOGS/<name>.done then holds its wall
  time in seconds (reports add these up, across resumed runs too), its
  command and `record` (`write_marker`). Its
  lines name the work directory (LOGS' parent): runs side by side, as the
  experiments' seeds are, print into one stream."""
  where = os.path.dirname(logs.rstrip("/")) or "."
  seconds = done_seconds(logs, name)
  if seconds is not None:
    print(f"--- {name}: done earlier ({seconds:.0f} s)  [{where}]", flush=True)
    return False
  os.makedirs(logs, exist_ok=True)
  log_file = os.path.join(logs, name + ".log")
  print(f"=== {name}  [{where}]", flush=True)
  start = time.time()
  with open(log_file, "a", encoding="utf-8") as log:
    log.write(f"$ {shlex.join(command)}\n")
    log.flush()
    python_path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
      command,
      stdout=log,
      stderr=subprocess.STDOUT,
      env={"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ, "PYTHONPATH": python_path},
    )
  if result.returncode:
    raise JobError(
      f"{name} failed (exit {result.returncode}): {_last_error(log_file)} (log: {log_file})"
    )
  seconds = time.time() - start
  write_marker(logs, name, seconds, command, record)
  print(f"    {name}: {seconds:.0f} s  [{where}]", flush=True)
  return True


KEPT_MODELS = ("model_a", "model_b")  # by --keep_checkpoints=false too


def prune_checkpoints(plan: Plan, work_dir: str, logs: str) -> None:
  """--keep_checkpoints=false: removes the checkpoints of every finished
  model that no job still to run reads (as --init_checkpoint or
  --model_dir), so that a run holds a few models on disk, not all of them.
  Model-A and Model-B stay: step 1 is the expensive model, which other
  runs reuse (--model_a), and Model-B is the teacher, which step 3 may be
  run again with (e.g. on the fast path, or a larger pool). Evaluation
  results and settings stay for the report."""
  for output, _ in plan.models:
    directory = os.path.join(work_dir, output)
    kept = os.path.basename(output) in KEPT_MODELS  # with --seeds: seed<k>/model_b too
    if kept or done_seconds(logs, job_name(output)) is None:
      continue
    readers = [job.name for job in plan.jobs if directory in job.inputs]
    if all(done_seconds(logs, reader) is not None for reader in readers):
      freed = training.remove_checkpoints(directory)
      if freed:
        print(f"    {output}: checkpoints removed ({freed / 1e6:.0f} MB)", flush=True)


class Inputs(NamedTuple):
  """The user's files, checked and expanded before any job runs."""

  vocab_file: str
  pool_files: List[str]
  pool_labels: Optional[List[str]]
  files: Dict[str, List[str]]  # a path as the plan's jobs name it -> its files


def _checkpoint_files(path: str) -> List[str]:
  """The files of a checkpoint (TF1 or model-directory prefix, or safetensors)."""
  source = checkpoints.resolve_init_checkpoint(path)
  files = [source.path]
  if source.kind != "safetensors":
    files = sorted(glob.glob(glob.escape(source.path) + ".*"))
  return files + ([source.config_file] if source.config_file else [])


def _pool_files(config: PipelineConfig) -> Tuple[List[str], Optional[List[str]]]:
  """The pool's files, and their held-back labels file by file (--pool_labels)."""
  pool_files = input_files.expand_input_files(config.pool)
  names = [os.path.basename(f) for f in pool_files]
  for name in names:
    if names.count(name) > 1:
      raise errors.InputError(
        f"--pool: two files are named {name} (step 3 writes one output file per input file name)"
      )
  pool_labels = None
  if config.pool_labels:
    pool_labels = input_files.expand_input_files(config.pool_labels)
    if len(pool_labels) != len(pool_files):
      raise errors.InputError(
        f"--pool_labels: {len(pool_labels)} files for {len(pool_files)} "
        "--pool files (one labeled file per pool file, in the same order)"
      )
  return pool_files, pool_labels


def resolve_inputs(config: PipelineConfig) -> Inputs:
  """Checks the input files before any job runs: the labeled files, the
  checkpoints, the vocabulary, the pool (and its held-back labels)."""
  files = {}
  for name in ("train_file", "eval_file", "label_file", "bert_config_file", "dev_file"):
    if getattr(config, name):
      files[getattr(config, name)] = input_files.expand_input_files(getattr(config, name))
  for path in filter(None, (config.init_checkpoint, config.model_a)):
    files[path] = _checkpoint_files(path)
  source = checkpoints.resolve_init_checkpoint(config.init_checkpoint)
  vocab_file = config.vocab_file or source.vocab_file
  if not vocab_file:
    raise errors.InputError(
      f"{config.init_checkpoint}: no vocab.txt beside the initial checkpoint; give --vocab_file"
    )
  files[vocab_file] = input_files.expand_input_files(vocab_file)
  pool_files, pool_labels = _pool_files(config)
  files[config.pool] = pool_files
  return Inputs(vocab_file, pool_files, pool_labels, files)


class Digests:
  """sha256 of the user's files, cached in LOGS/input_digests.json by path,
  size and mtime, so that a re-run does not read a large pool again."""

  def __init__(self, logs: str):
    self.path = os.path.join(logs, "input_digests.json")
    self.cache = {}
    if os.path.exists(self.path):
      with open(self.path, encoding="utf-8") as f:
        self.cache = json.load(f)
    self.changed = False

  def __call__(self, path: str) -> str:
    stat = os.stat(path)
    key = [stat.st_size, stat.st_mtime_ns]
    cached = self.cache.get(path)
    if cached and cached[:2] == key:
      return cached[2]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    self.cache[path] = key + [digest.hexdigest()]
    self.changed = True
    return digest.hexdigest()

  def save(self) -> None:
    if self.changed:
      os.makedirs(os.path.dirname(self.path), exist_ok=True)
      atomic_files.write_file(self.path, json.dumps(self.cache, indent=1) + "\n")


def identities(plan: Plan, files: Dict[str, List[str]], digest) -> Dict[str, Dict]:
  """Each job's record: the identity of what it computes (a hash of its
  command, the identities of the jobs it needs and the digests of the
  user's files it reads) and those digests."""
  found = {}
  for job in plan.jobs:
    digests = {f: digest(f) for path in job.inputs if path in files for f in files[path]}
    what = [
      job.command[1:],
      [found[need]["identity"] for need in job.needs],
      sorted(digests.items()),
    ]
    identity = hashlib.sha256(json.dumps(what).encode("utf-8")).hexdigest()
    found[job.name] = {"identity": identity, "inputs": digests}
  return found


def _by_flag(command: Sequence[str]) -> Dict[str, str]:
  return {arg.split("=")[0]: arg for arg in command}


def _difference(marker: Dict, job: Job, record: Dict) -> str:
  """What differs between a finished job's marker and the job now: the
  first flag, else the first of the user's files."""
  old, new = _by_flag(marker["command"]), _by_flag(job.command[1:])
  for key, arg in new.items():
    if old.get(key) != arg:
      return f"ran with {old[key]}, now {arg}" if key in old else f"ran without {key}, now {arg}"
  for key, arg in old.items():
    if key not in new:
      return f"ran with {arg}, now without it"
  for path, digest in record["inputs"].items():
    if marker["inputs"].get(path) != digest:
      return f"{path} changed since it ran"
  return "a job whose output it read changed"


def check_work_dir(plan: Plan, logs: str, records: Dict[str, Dict], redo: Set[str]) -> None:
  """Refuses a work directory whose finished or started jobs (other than
  those to redo) ran another command or on other inputs than the plan's, or
  where a job finished while one it reads has not (never: --redo removes
  markers downstream first)."""
  finished = set()
  for job in plan.jobs:
    done = read_marker(logs, job.name)
    marker = done or read_marker(logs, job.name, STARTED)
    if marker is None or job.name in redo:
      continue
    where = _marker(logs, job.name, DONE if done else STARTED)
    advice = f"(use --redo={job.name} or a new --work_dir)"
    if "identity" not in marker:
      raise errors.InputError(
        f"{where}: written by an older bert_pl, without its settings {advice}"
      )
    if marker["identity"] != records[job.name]["identity"]:
      raise errors.InputError(f"{where}: {_difference(marker, job, records[job.name])} {advice}")
    if not done:
      continue
    unfinished = [need for need in job.needs if need not in finished]
    if unfinished:
      raise errors.InputError(f"{where}: {unfinished[0]}, which it reads, is not done {advice}")
    finished.add(job.name)


def downstream(plan: Plan, names: Sequence[str]) -> Set[str]:
  """--redo: the named jobs and every job that reads their outputs, directly or not."""
  known = [job.name for job in plan.jobs]
  for name in names:
    if name not in known:
      raise errors.InputError(f"--redo={name}: no such job in the plan ({', '.join(known)})")
  chosen = set(names)
  for job in plan.jobs:  # in order: a job's needs come before it
    if chosen & set(job.needs):
      chosen.add(job.name)
  return chosen


def set_aside(plan: Plan, logs: str, redo: Set[str]) -> None:
  """Removes the markers, logs and outputs of the jobs to redo, downstream
  jobs first, so that a run cut short here leaves no finished job reading an
  unfinished one (and the same --redo again finishes the removal)."""
  trash = os.path.join(logs, "redo.trash")
  for job in reversed(plan.jobs):
    if job.name not in redo:
      continue
    for marker in (_marker(logs, job.name), _marker(logs, job.name, STARTED)):
      if os.path.exists(marker):
        os.remove(marker)
    for path in (*job.outputs, os.path.join(logs, job.name + ".log")):
      if os.path.lexists(path):
        os.makedirs(trash, exist_ok=True)
        os.rename(path, os.path.join(trash, f"{job.name}.{len(os.listdir(trash))}"))
  shutil.rmtree(trash, ignore_errors=True)


def select(plan: Plan, only: Optional[str], logs: str, redo: Set[str]) -> List[Job]:
  """The jobs to run: all, or --only's step's, whose jobs from other steps
  must be done (and not about to be redone)."""
  if only is None:
    return list(plan.jobs)
  chosen = [job for job in plan.jobs if job.step == only]
  if not chosen:
    raise errors.InputError(f"--only={only}: the plan has no job of this step")
  step = {job.name: job.step for job in plan.jobs}
  names = {job.name for job in chosen}
  for job in chosen:
    for need in job.needs:
      if need not in names and (need in redo or done_seconds(logs, need) is None):
        raise errors.InputError(
          f"--only={only}: {job.name} needs {need}, which is not done (--only={step[need]})"
        )
  return chosen


def _prepare(config: PipelineConfig, plan: Plan, inputs: Inputs, logs: str, redo) -> Tuple:
  """Everything checked before the first job: the work directory's finished
  jobs against the plan, --redo and --only; then the jobs to redo set aside."""
  digests = Digests(logs)
  records = identities(plan, inputs.files, digests)
  redo = downstream(plan, redo)
  check_work_dir(plan, logs, records, redo)
  jobs = select(plan, config.only, logs, redo)
  if not config.report_only:
    set_aside(plan, logs, redo)
    digests.save()
  return jobs, records


def _finished(logs: str, directory: str) -> bool:
  return done_seconds(logs, job_name(directory)) is not None


def _dev_best(config: PipelineConfig, logs: str, directory: str) -> Optional[float]:
  """A finished fine-tuning's best dev metric, None before it finished."""
  if not _finished(logs, directory):
    return None
  return pipeline_report.dev_best(os.path.join(config.work_dir, directory))


def read_choices(config: PipelineConfig, logs: str) -> Choices:
  """What the finished jobs chose on dev: each unit's learning rate once its
  search is done, the variants' mean dev metric once every final Model-D is."""
  rates, variants = {}, {}
  for unit, _ in units(config):
    found = {
      rate: _dev_best(config, logs, os.path.join(unit, search_dir(rate)))
      for rate in config.finetune_learning_rates
    }
    if found and None not in found.values():
      rates[unit] = found
  for variant in config.variants if config.chooses_on_dev else ():
    values = [
      _dev_best(config, logs, os.path.join(unit, final_model_d(config, variant)))
      for unit, _ in units(config)
    ]
    variants[variant] = None if None in values else sum(values) / len(values)
  complete = variants and None not in variants.values()
  return Choices(rates, variants if complete else {})


def _unit_report(config: PipelineConfig, plan: Plan, inputs: Inputs, logs: str, unit: str) -> Dict:
  """The report of one unit's finished jobs (with --seeds: WORK/seed<k>/'s;
  the export is the whole run's)."""
  prefix = f"{unit}/" if unit else ""
  mine = lambda d: d.startswith(prefix) and _finished(logs, d)  # noqa: E731
  job_prefix = job_name(prefix)
  return pipeline_report.collect(
    os.path.join(config.work_dir, unit),
    config.task,
    [(d[len(prefix) :], what) for d, what in plan.models if mine(d)],
    [(d[len(prefix) :], t[len(prefix) :]) for d, t in plan.pseudo_labels if mine(d)],
    inputs.pool_files,
    inputs.pool_labels,
    {
      job.name[len(job_prefix) :]: done_seconds(logs, job.name)
      for job in plan.jobs
      if job.name.startswith(job_prefix)
    },
    plan.export if not unit and plan.export and _finished(logs, "export_check") else None,
    train_file=config.train_file,
  )


def choices_report(config: PipelineConfig, choices: Choices) -> Dict:
  """The choices on dev for the report: each unit's rates and the chosen
  one, the variants' mean dev metric and why the exported model is it."""
  report = {
    "learning_rates": {
      unit: {
        "dev": {f"{rate:g}": v for rate, v in found.items()},
        "chosen": choices.learning_rate(unit),
      }
      for unit, found in choices.rates.items()
    },
    "variants_dev": dict(choices.variants),
  }
  if config.export:
    report["export_why"] = (
      f"--export_variant={config.export_variant}"
      if config.export_variant
      else f"{choices.export_variant()}: the best mean dev {pipeline_report.HEADLINE[config.task]}"
      f" of the variants' final Model-D over {len(units(config))} unit(s)"
    )
  return report


def _report(config: PipelineConfig, plan: Plan, inputs: Inputs, logs: str) -> Dict:
  """WORK/report.{json,md,png} of the finished jobs' outputs; with --seeds
  also each seed's own in WORK/seed<k>/, and WORK's compares the seeds."""
  choices = read_choices(config, logs)
  reports = {}
  for unit, _ in units(config):
    reports[unit] = _unit_report(config, plan, inputs, logs, unit)
    reports[unit]["config"] = dataclasses.asdict(config)
    if config.chooses_on_dev:
      reports[unit]["choices"] = choices_report(config, choices)
    pipeline_report.write_report(os.path.join(config.work_dir, unit), reports[unit])
  report = reports[units(config)[0][0]]
  if config.seeds:
    report = _seeds_report(config, plan, logs, reports, choices)
  export = report.get("export")
  if export:
    print(
      f"SavedModel {export['dir']} ({export['model']}), answering in a process that "
      "imports only tensorflow and tensorflow_text:"
    )
    for example in export["examples"]:
      print(f"  {example['text']!r} -> {example['prediction']}")
  print(f"report: {os.path.join(config.work_dir, 'report.md')}")
  if "comparison" in report:
    print(f"recommendation: {report['comparison']['recommendation']['line']}")
  return report


def _seeds_report(config: PipelineConfig, plan: Plan, logs: str, reports: Dict, choices) -> Dict:
  """WORK/report.*: every row compared over the seeds (bert_pl.comparison),
  the seeds' teacher checks and pseudo-label quality, the choices on dev."""
  seeds = {str(seed): reports[unit] for unit, seed in units(config)}
  timings = {job.name: done_seconds(logs, job.name) for job in plan.jobs}
  export = plan.export if plan.export and _finished(logs, "export_check") else None
  report = pipeline_report.over_seeds(
    config.task, seeds, comparison_rows(config), timings, config.work_dir, export
  )
  report["choices"] = choices_report(config, choices)
  report["config"] = dataclasses.asdict(config)
  pipeline_report.write_report(
    config.work_dir, report, pipeline_report.seeds_markdown, pipeline_report.seeds_plot
  )
  return report


def _run_jobs(config: PipelineConfig, plan: Plan, jobs: Sequence[Job], records, logs) -> None:
  done = sum(done_seconds(logs, job.name) is not None for job in jobs)
  print(
    f"pipeline ({config.task}): {len(jobs)} jobs, {done} done earlier, in {config.work_dir}",
    flush=True,
  )
  if config.report_only:
    return
  for job in jobs:
    if done_seconds(logs, job.name) is None:
      write_marker(logs, job.name, None, job.command, records[job.name])
    if run_job(job.name, job.command, logs, records[job.name]):
      os.remove(_marker(logs, job.name, STARTED))
    if not config.keep_checkpoints:
      prune_checkpoints(plan, config.work_dir, logs)


def _plan(config: PipelineConfig, inputs: Inputs, logs: str, dry_run: bool = False) -> Plan:
  choices = read_choices(config, logs)
  return make_plan(config, inputs.vocab_file, inputs.pool_files, choices, dry_run)


def run(config: PipelineConfig) -> Optional[Dict]:
  """Runs the jobs not done yet, writes WORK/report.{json,md,png} and
  returns the report (--dry_run: prints the commands, runs nothing and
  returns None). Raises JobError when a job fails.

  The plan is made again after its jobs ran, until it stays the same: jobs
  that depend on a choice on dev (the learning rate, the exported variant)
  join it once the jobs choosing are done (`bert_pl.plan`)."""
  inputs = resolve_inputs(config)
  logs = os.path.join(config.work_dir, "logs")
  if config.dry_run:
    for job in _plan(config, inputs, logs, dry_run=True).jobs:
      if config.only in (None, job.step):
        print(f"{job.name}: {shlex.join(job.command)}", flush=True)
    return None
  plan, redo = None, config.redo
  while True:
    planned = _plan(config, inputs, logs)
    if planned == plan:
      break
    plan = planned
    jobs, records = _prepare(config, plan, inputs, logs, redo)
    if redo:  # the choices the redone jobs made are gone: plan again
      plan, redo = None, ()
      continue
    _run_jobs(config, plan, jobs, records, logs)
  # Only finished jobs' outputs are read (all of them, unless --report_only).
  return _report(config, plan, inputs, logs)


def define_flags() -> None:
  """The driver's flags: PipelineConfig's fields, one flag each, same defaults."""
  d = job_config.field_defaults(PipelineConfig)
  flags.DEFINE_enum("task", None, list(input_files.FINETUNE_TASKS), "The task of the labeled data.")
  flags.DEFINE_string("work_dir", None, "Where every job writes (layout: see the module doc).")
  flags.DEFINE_string("pool", None, "The unlabeled pool: comma list of files or globs.")
  flags.DEFINE_string("train_file", None, "Labeled training set (steps 2 and 5).")
  flags.DEFINE_string("eval_file", None, "Labeled test set: every model's evaluation.")
  flags.DEFINE_string("label_file", None, "Labels, or BIO tags with O, one per line.")
  flags.DEFINE_string(
    "init_checkpoint",
    None,
    "The initial BERT: Google TF1 checkpoint, Hugging Face model.safetensors "
    "or a bert_pl model directory.",
  )
  flags.DEFINE_string("vocab_file", None, "Default: vocab.txt beside --init_checkpoint.")
  flags.DEFINE_string("bert_config_file", None, "Default: the config beside --init_checkpoint.")
  flags.DEFINE_integer(
    "num_hidden_layers",
    None,
    "Take the first N layers of --init_checkpoint (the paper: 3 of 12) in "
    "steps 1 and 4 and the baseline; default all.",
  )
  cli.define_tokenizer_flags()
  flags.DEFINE_integer("max_seq_length", None, default_help("max_seq_length"))
  flags.DEFINE_integer(
    "max_predictions_per_seq", None, "Default: 15% of --max_seq_length, rounded up."
  )
  flags.DEFINE_bool("do_whole_word_mask", d["do_whole_word_mask"], "Steps 1, 4: mask whole words.")
  flags.DEFINE_string(
    "segmenter", d["segmenter"], "Steps 1, 4: the words' segmenter (create_pretraining_data's)."
  )
  flags.DEFINE_integer(
    "ngram_mask_max", d["ngram_mask_max"], "Steps 1, 4: mask spans of up to N whole words."
  )
  flags.DEFINE_integer(
    "pretrain_steps", None, "Training steps of steps 1, 4 (instead of --pretrain_epochs)."
  )
  flags.DEFINE_float(
    "pretrain_epochs",
    None,
    "Passes over the pool of steps 1, 4. " + default_help("pretrain_epochs"),
  )
  flags.DEFINE_integer(
    "pretrain_warmup_steps", None, "Warm-up steps of steps 1, 4 (instead of the proportion)."
  )
  flags.DEFINE_float(
    "pretrain_warmup_proportion",
    None,
    "Warm-up share of steps 1, 4. " + default_help("pretrain_warmup_proportion"),
  )
  for name, what in (
    ("pretrain_learning_rate", "Learning rate of steps 1 and 4."),
    ("finetune_learning_rate", "Learning rate of steps 2 and 5."),
    ("finetune_epochs", "Epochs of steps 2 and 5."),
  ):
    flags.DEFINE_float(name, None, f"{what} {default_help(name)}")
  for name, what in (
    ("pretrain_batch_size", "GLOBAL batch of steps 1 and 4."),
    ("save_checkpoints_steps", "Checkpoint interval of steps 1 and 4."),
    ("finetune_batch_size", "GLOBAL batch of steps 2 and 5."),
    ("random_seed", "Seed of every job."),
  ):
    flags.DEFINE_integer(name, None, f"{what} {default_help(name)}")
  flags.DEFINE_integer("num_shards", d["num_shards"], "TFRecord shards of the pool's records.")
  flags.DEFINE_integer("num_workers", d["num_workers"], "Processes of create_pretraining_data.")
  flags.DEFINE_integer(
    "bucket_width", d["bucket_width"], "Length bucketing of training batches (0: off)."
  )
  cli.define_dtype_flag()
  flags.DEFINE_bool(
    "baseline", None, "Also fine-tune the initial checkpoint directly. " + default_help("baseline")
  )
  flags.DEFINE_integer(
    "baseline_layers", None, "And a second baseline from its first N layers (e.g. 6)."
  )
  flags.DEFINE_string(
    "model_a",
    None,
    "An existing Model-A (a model directory from step 1, e.g. shared by "
    "several labeled sets or seeds): step 1 is skipped.",
  )
  flags.DEFINE_string(
    "pool_labels",
    None,
    "Held-back labels of the pool, one file per pool file, as "
    "data_prep/split_dataset.py writes them (a label per line, or CoNLL): "
    "scores each round's pseudo-labels (accuracy or entity F1).",
  )
  flags.DEFINE_list(
    "variants", None, f"Comma list of: {', '.join(VARIANTS)}. {default_help('variants')}"
  )
  flags.DEFINE_integer(
    "pseudo_per_class",
    d["pseudo_per_class"],
    "self_training: pseudo-labeled examples added per class.",
  )
  flags.DEFINE_float(
    "pseudo_min_confidence",
    d["pseudo_min_confidence"],
    "self_training: only pseudo-labels at least this confident.",
  )
  flags.DEFINE_float(
    "kl_temperature", d["kl_temperature"], "kl variants: temperature of the KL loss."
  )
  flags.DEFINE_integer(
    "logits_top_k", d["logits_top_k"], "kl variants: keep the teacher's K largest logits (0: all)."
  )
  flags.DEFINE_integer("rounds", d["rounds"], "Repeat steps 3-5 this many times per variant.")
  flags.DEFINE_bool(
    "export",
    d["export"],
    "Export the final Model-D of --export_variant as a "
    "SavedModel (raw text in) and query it in a fresh process.",
  )
  flags.DEFINE_string(
    "export_variant",
    None,
    "Default: the variant best on dev (mean over --seeds) with --dev_fraction/--dev_file, "
    "else the first of --variants.",
  )
  flags.DEFINE_float(
    "dev_fraction",
    None,
    "Decision mode: split this share of --train_file off as a dev set (stratified per class, "
    "seeded by --random_seed, one split for every seed); every fine-tuning trains on the rest "
    "and keeps its best epoch on dev (--finetune_epochs: the maximum).",
  )
  flags.DEFINE_string(
    "dev_file", None, "Decision mode: a dev set of your own instead of --dev_fraction's."
  )
  flags.DEFINE_list(
    "seeds",
    list(d["seeds"]),
    "Decision mode: run steps 2-5 once per seed, each under WORK/seed<k>/ (step 1 and the dev "
    "split shared, at --random_seed), and compare every row over the seeds in WORK/report.md.",
  )
  flags.DEFINE_list(
    "finetune_learning_rates",
    list(d["finetune_learning_rates"]),
    "Decision mode: fine-tune the baseline once per rate (per seed) and use the one best on "
    "dev (a tie: the earlier) for every fine-tuning of that seed; needs a dev set.",
  )
  flags.DEFINE_bool(
    "report_only",
    d["report_only"],
    "Run no job: report the jobs done so far (of a run still going, or cut "
    "short; rows of jobs not done are left out).",
  )
  flags.DEFINE_bool(
    "keep_checkpoints",
    d["keep_checkpoints"],
    "false: remove a model's checkpoints once no job still to run reads them "
    "(Model-A's and Model-B's stay); its results and settings stay (experiments: ~200 MB "
    "per 3-layer hidden-384 model). A later run with more variants then needs "
    "a new --work_dir.",
  )
  flags.DEFINE_bool(
    "dry_run", d["dry_run"], "Print every job's command (NAME: COMMAND) and run nothing."
  )
  flags.DEFINE_enum(
    "only", None, list(STEPS), "Run only this step's jobs (those it needs must be done)."
  )
  flags.DEFINE_list(
    "redo",
    list(d["redo"]),
    "Run these jobs again, and every job downstream of them, e.g. after "
    "changing their flags (their outputs are removed first).",
  )
  flags.mark_flags_as_required(
    ["task", "work_dir", "pool", "train_file", "eval_file", "label_file", "init_checkpoint"]
  )


def main(argv):
  del argv
  try:
    run(job_config.config_from_flags(PipelineConfig))
  except JobError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
