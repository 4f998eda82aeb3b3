r"""One driver for the whole method: the five steps, their variants and rounds.

    python -m bert_pl.pipeline --task=classification --work_dir=output/cls \
      --pool='pool/part-*.txt' --train_file=train.tsv --eval_file=test.tsv \
      --label_file=labels.txt --init_checkpoint=chinese_L-12_H-768_A-12 \
      --num_hidden_layers=3 --variants=hard_mlm,kl_nomask --baseline --export

Why one driver: the method is a sequence of jobs (DESIGN §1) with options
at every step (DESIGN §1b: the step-4 loss, masking, classic self-training,
rounds, the initial checkpoint). Written once here, the sequence serves the
main job (run_scripts/run_pipeline.sh), the paper's experiment
(experiments/reproduce_paper.py) and users; the run_scripts/step*.sh stay
wrappers of single jobs.

Every step runs as a separate job, `python -m bert_pl.<job> --flags`, exactly
as a user would run it, with its output in WORK/logs/<job>.log (the command
first). A finished job leaves WORK/logs/<job>.done holding its wall time in
seconds, and a re-run skips it; an interrupted job is run again and resumes
by itself (checkpoints, finished shards and files). A job's name is its
output's path under WORK with "/" as ".". The work directory belongs to one
setting: change a step's flags and its finished jobs would still be skipped,
so use a new --work_dir (or delete those jobs' outputs and markers).

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
    logs/                 <job>.log, <job>.done
    report.json, report.md, report.png   (bert_pl.pipeline_report)

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
import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import flags

from bert_pl import (
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

FINETUNE_JOBS = {"classification": "run_classifier", "ner": "run_ner"}
SELF_TRAINING = "self_training"
STEP4_VARIANTS = tuple(
  f"{loss}_{data}{init}"
  for loss in ("hard", "kl")
  for data in ("mlm", "nomask")
  for init in ("", "_from_a")
)
VARIANTS = STEP4_VARIANTS + (SELF_TRAINING,)
# The paper's settings per task (DESIGN §1), for the flags left unset.
TASK_DEFAULTS = {
  "classification": dict(
    max_seq_length=64, pretrain_learning_rate=5e-5, pretrain_warmup_steps=10000, finetune_epochs=7.0
  ),
  "ner": dict(
    max_seq_length=128, pretrain_learning_rate=1e-5, pretrain_warmup_steps=5000, finetune_epochs=3.0
  ),
}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Loads the SavedModel in a fresh process that has TensorFlow and
# tensorflow-text only, as a serving client does, and answers the first two
# lines of the pool: argv = export dir, pool file, output JSON.
SERVE_CHECK = r"""
import json, os, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401 (registers the tokenizer's ops)

export_dir, pool_file, output = sys.argv[1:]
texts = []
with open(pool_file, encoding="utf-8") as f:
  for line in f:
    if line.strip() and len(texts) < 2:
      texts.append(line.rstrip("\r\n"))
model = tf.saved_model.load(export_dir)
outputs = model.signatures["serving_default"](text=tf.constant(texts))

def plain(value):
  if isinstance(value, list):
    return [plain(v) for v in value]
  return value.decode("utf-8") if isinstance(value, bytes) else value

imported = sorted({m.split(".")[0] for m in sys.modules} & {"bert_pl", "official",
                                                           "tensorflow_addons"})
if imported:
  sys.exit("error: loading the SavedModel imported " + ", ".join(imported))
answer = {"texts": texts, "outputs": {k: plain(v.numpy().tolist()) for k, v in outputs.items()}}
print(json.dumps(answer, ensure_ascii=False))
with open(output + ".tmp", "w", encoding="utf-8") as f:
  json.dump(answer, f, ensure_ascii=False)
os.replace(output + ".tmp", output)
"""


class JobError(RuntimeError):
  """A job failed; the message names it, its last error line and its log."""


@dataclasses.dataclass(frozen=True)
class Variant:
  """A parsed --variants entry."""

  name: str
  pseudo_label_loss: str = "hard"  # hard | kl (step 4)
  mlm: bool = True  # 15%-masked input and MLM loss in step 4, or neither
  from_a: bool = False  # step 4 starts from Model-A, not the initial checkpoint

  @property
  def self_training(self) -> bool:
    return self.name == SELF_TRAINING

  def describe(self, task: str) -> str:
    if self.self_training:
      return "classic self-training: Model-A fine-tuned on labeled + pseudo-labeled"
    hard = "one-hot CRF" if task == "ner" else "one-hot cross-entropy"
    loss = hard if self.pseudo_label_loss == "hard" else "KL on the teacher's logits"
    data = " + MLM on 15%-masked input" if self.mlm else ", unmasked input, no MLM"
    init = "Model-A" if self.from_a else "the initial checkpoint"
    return f"{loss}{data}, from {init}"


def parse_variant(name: str) -> Variant:
  if name not in VARIANTS:
    raise errors.InputError(
      f"--variants: unknown variant {name!r} (choose from {', '.join(VARIANTS)})"
    )
  if name == SELF_TRAINING:
    return Variant(name)
  loss, data = name.split("_")[:2]
  return Variant(name, loss, data == "mlm", name.endswith("_from_a"))


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything a run needs; the flags of `python -m bert_pl.pipeline` have
  the same names. Fields left None take the task's paper setting."""

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
  pretrain_steps: int = 100000
  pretrain_warmup_steps: Optional[int] = None
  pretrain_learning_rate: Optional[float] = None
  pretrain_batch_size: int = 64
  save_checkpoints_steps: int = 1000
  finetune_learning_rate: float = 1e-5
  finetune_epochs: Optional[float] = None
  finetune_batch_size: int = 64
  random_seed: int = 12345
  num_shards: int = 4
  num_workers: int = 1
  bucket_width: int = 8
  dtype: str = "float32"
  baseline: bool = False
  baseline_layers: Optional[int] = None
  model_a: Optional[str] = None
  pool_labels: Optional[str] = None
  variants: Tuple[str, ...] = ("hard_mlm",)
  pseudo_per_class: int = 0
  pseudo_min_confidence: float = 0.0
  kl_temperature: float = 1.0
  logits_top_k: int = 0
  rounds: int = 1
  export: bool = False
  export_variant: Optional[str] = None
  report_only: bool = False
  keep_checkpoints: bool = True

  def __post_init__(self):
    if self.task not in input_files.FINETUNE_TASKS:
      raise errors.InputError(
        f"--task={self.task}: choose from {', '.join(input_files.FINETUNE_TASKS)}"
      )
    for name, value in TASK_DEFAULTS[self.task].items():
      if getattr(self, name) is None:
        object.__setattr__(self, name, value)
    if self.max_predictions_per_seq is None:
      object.__setattr__(
        self, "max_predictions_per_seq", masking.default_max_predictions(self.max_seq_length)
      )
    object.__setattr__(self, "variants", tuple(self.variants))
    parsed = self.parsed_variants
    if not parsed:
      raise errors.InputError("--variants: give at least one variant")
    if len(set(self.variants)) < len(self.variants):
      raise errors.InputError(f"--variants={','.join(self.variants)}: a variant is repeated")
    if self.export_variant is None:
      object.__setattr__(self, "export_variant", self.variants[0])
    elif self.export_variant not in self.variants:
      raise errors.InputError(
        f"--export_variant={self.export_variant} is not one of --variants={','.join(self.variants)}"
      )
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
    for name in (
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
    ):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise errors.InputError(f"--{name}={value}: must be >= 1")
    for name in ("pretrain_steps", "pretrain_warmup_steps", "logits_top_k"):
      if getattr(self, name) < 0:
        raise errors.InputError(f"--{name}={getattr(self, name)}: must be >= 0")
    if self.kl_temperature <= 0:
      raise errors.InputError(f"--kl_temperature={self.kl_temperature}: must be > 0")
    if self.dtype not in precision.DTYPES:
      raise errors.InputError(f"--dtype={self.dtype}: choose from {', '.join(precision.DTYPES)}")

  @property
  def parsed_variants(self) -> List[Variant]:
    return [parse_variant(name) for name in self.variants]


@dataclasses.dataclass(frozen=True)
class Job:
  name: str  # job_name() of its output
  command: Tuple[str, ...]


@dataclasses.dataclass
class Plan:
  """The jobs in order, and what the report reads from their outputs."""

  jobs: List[Job]
  models: List[Tuple[str, str]]  # (directory under WORK, what it is)
  pseudo_labels: List[Tuple[str, str]]  # (directory under WORK, the teacher)
  logits_dirs: List[str]  # pseudo-label directories that need the teacher's logits
  export: Optional[Tuple[str, str]]  # (SavedModel directory, model directory) under WORK


def job_command(module: str, *args: str) -> Tuple[str, ...]:
  """`python -m bert_pl.<module> ARGS`, as a user runs a job."""
  return (sys.executable, "-m", f"bert_pl.{module}", *args)


def job_name(output: str) -> str:
  """A job's name: its output's path under the work directory, "/" as "."."""
  return output.replace("/", ".")


def make_plan(config: PipelineConfig, vocab_file: str, pool_files: Sequence[str]) -> Plan:
  """Every job of the run, as commands (nothing runs here)."""
  c = config
  plan = Plan([], [], [], [], None)
  path = lambda *parts: os.path.join(c.work_dir, *parts)  # noqa: E731

  def add(output: str, module: str, *args: str) -> None:
    plan.jobs.append(Job(job_name(output), job_command(module, *args)))

  tokenizer = [
    f"--vocab_file={vocab_file}",
    f"--do_lower_case={c.do_lower_case}",
    f"--tokenization={c.tokenization}",
    f"--max_seq_length={c.max_seq_length}",
  ]
  seeded = [f"--random_seed={c.random_seed}"]
  # Steps 1 and 4's masking; the defaults are left out (the commands as before).
  masking = (
    (["--do_whole_word_mask"] if c.do_whole_word_mask else [])
    + ([f"--segmenter={c.segmenter}"] if c.segmenter != "none" else [])
    + ([f"--ngram_mask_max={c.ngram_mask_max}"] if c.ngram_mask_max != 1 else [])
  )
  training = [*seeded, f"--bucket_width={c.bucket_width}", f"--dtype={c.dtype}"]
  labels = [f"--label_file={c.label_file}"]

  def initial(layers: Optional[int] = c.num_hidden_layers) -> List[str]:
    return (
      [f"--init_checkpoint={c.init_checkpoint}"]
      + ([f"--bert_config_file={c.bert_config_file}"] if c.bert_config_file else [])
      + ([f"--num_hidden_layers={layers}"] if layers else [])
    )

  def model(directory: str) -> List[str]:
    return [f"--init_checkpoint={path(directory)}"]

  # Model-A: step 1's output, or a given one (step 1 already done elsewhere).
  model_a = [f"--init_checkpoint={c.model_a}"] if c.model_a else model("model_a")

  def pseudo_files(directory: str) -> str:
    return ",".join(path(directory, os.path.basename(f)) for f in pool_files)

  def records(output: str, inputs: str, *extra: str) -> None:
    add(
      output,
      "create_pretraining_data",
      f"--input_file={inputs}",
      f"--output_file={path(output, 'pool.tfrecord')}",
      f"--num_output_shards={c.num_shards}",
      f"--num_workers={c.num_workers}",
      *tokenizer,
      f"--max_predictions_per_seq={c.max_predictions_per_seq}",
      *masking,
      *seeded,
      *extra,
    )

  def pretrain(output: str, init: List[str], inputs: str, what: str, *extra: str) -> None:
    add(
      output,
      "run_pretraining",
      "--do_train",
      "--do_eval",
      f"--input_file={path(inputs, 'pool.tfrecord')}*",
      f"--output_dir={path(output)}",
      *init,
      *tokenizer,
      f"--max_predictions_per_seq={c.max_predictions_per_seq}",
      f"--train_batch_size={c.pretrain_batch_size}",
      f"--learning_rate={c.pretrain_learning_rate}",
      f"--num_train_steps={c.pretrain_steps}",
      f"--num_warmup_steps={c.pretrain_warmup_steps}",
      f"--save_checkpoints_steps={c.save_checkpoints_steps}",
      *training,
      *extra,
    )
    plan.models.append((output, what))

  def finetune(output: str, init: List[str], what: str, *extra: str) -> None:
    add(
      output,
      FINETUNE_JOBS[c.task],
      "--do_train",
      "--do_eval",
      f"--train_file={c.train_file}",
      f"--eval_file={c.eval_file}",
      *labels,
      f"--output_dir={path(output)}",
      *init,
      *tokenizer,
      f"--train_batch_size={c.finetune_batch_size}",
      f"--learning_rate={c.finetune_learning_rate}",
      f"--num_train_epochs={c.finetune_epochs}",
      *training,
      *extra,
    )
    plan.models.append((output, what))

  def predict(output: str, teacher: str, logits: bool) -> None:
    add(
      output,
      "predict_pseudo_labels",
      f"--model_dir={path(teacher)}",
      f"--input_file={c.pool}",
      f"--output_dir={path(output)}",
      f"--dtype={c.dtype}",
      *(["--write_logits", f"--logits_top_k={c.logits_top_k}"] if logits else []),
    )
    plan.pseudo_labels.append((output, teacher))
    if logits:
      plan.logits_dirs.append(output)

  if c.baseline:
    finetune("baseline", initial(), "fine-tuned from the initial checkpoint")
  if c.baseline_layers:
    finetune(
      f"baseline_{c.baseline_layers}layers",
      initial(c.baseline_layers),
      f"fine-tuned from the initial checkpoint's first {c.baseline_layers} layers",
    )
  if not c.model_a:
    records("data", c.pool, "--task=none")
    pretrain("model_a", initial(), "data", "step 1: domain pre-training (MLM)", "--task_loss=none")
  finetune("model_b", model_a, "step 2: Model-A fine-tuned")

  variants = c.parsed_variants
  step4 = [v for v in variants if not v.self_training]
  predict("round1/pseudo", "model_b", any(v.pseudo_label_loss == "kl" for v in variants))
  masked = ["--masked_lm_prob=0"]
  for mlm in (True, False):
    if any(v.mlm == mlm for v in step4):
      records(
        "round1/records_" + ("mlm" if mlm else "nomask"),
        pseudo_files("round1/pseudo"),
        f"--task={c.task}",
        *labels,
        *([] if mlm else masked),
      )
  for v in variants:
    for r in range(1, c.rounds + 1):
      work = f"{v.name}/round{r}"
      pseudo, inputs = "round1/pseudo", "round1/records_" + ("mlm" if v.mlm else "nomask")
      if r > 1:
        pseudo, inputs = f"{work}/pseudo", f"{work}/records"
        predict(pseudo, f"{v.name}/round{r - 1}/model_d", v.pseudo_label_loss == "kl")
      what = f"{v.name} round {r}: {v.describe(c.task)}"
      if v.self_training:
        finetune(
          f"{work}/model_d",
          model_a,
          what,
          f"--pseudo_label_file={pseudo_files(pseudo)}",
          f"--pseudo_per_class={c.pseudo_per_class}",
          f"--pseudo_min_confidence={c.pseudo_min_confidence}",
        )
        continue
      if r > 1:
        records(
          inputs, pseudo_files(pseudo), f"--task={c.task}", *labels, *([] if v.mlm else masked)
        )
      loss = (
        []
        if v.pseudo_label_loss == "hard"
        else ["--pseudo_label_loss=kl", f"--kl_temperature={c.kl_temperature}"]
      )
      pretrain(
        f"{work}/model_c",
        model_a if v.from_a else initial(),
        inputs,
        f"step 4, {what}",
        f"--task_loss={c.task}",
        *labels,
        *loss,
        *([] if v.mlm else ["--masked_lm_loss_weight=0"]),
      )
      finetune(
        f"{work}/model_d",
        model(f"{work}/model_c"),
        f"step 5, {v.name} round {r}: Model-C fine-tuned",
      )
  if c.export:
    final = f"{c.export_variant}/round{c.rounds}/model_d"
    add(
      "export", "export_saved_model", f"--model_dir={path(final)}", f"--export_dir={path('export')}"
    )
    plan.jobs.append(
      Job(
        "export_check",
        (
          sys.executable,
          "-c",
          SERVE_CHECK,
          path("export"),
          pool_files[0],
          path(pipeline_report.EXPORT_CHECK_FILE),
        ),
      )
    )
    plan.export = ("export", final)
  return plan


def _marker(logs: str, name: str) -> str:
  return os.path.join(logs, name + ".done")


def done_seconds(logs: str, name: str) -> Optional[float]:
  """The wall time a finished job took, None when it has not finished."""
  marker = _marker(logs, name)
  if not os.path.exists(marker):
    return None
  with open(marker, encoding="utf-8") as f:
    return float(f.read())


def _last_error(log_file: str) -> str:
  with open(log_file, encoding="utf-8", errors="replace") as f:
    lines = [line.strip() for line in f if line.strip()]
  errors = [line[len("error:") :].strip() for line in lines if line.startswith("error:")]
  return (errors or lines or ["(empty log)"])[-1]


def run_job(name: str, command: Sequence[str], logs: str) -> bool:
  """Runs one job unless its done-marker exists; returns whether it ran.
  Its output goes to LOGS/<name>.log; LOGS/<name>.done then holds its wall
  time in seconds (reports add these up, across resumed runs too). Its
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
  marker = _marker(logs, name)
  with open(marker + ".tmp", "w", encoding="utf-8") as f:
    f.write(f"{seconds:.1f}\n")
  os.replace(marker + ".tmp", marker)
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
    if output in KEPT_MODELS or done_seconds(logs, job_name(output)) is None:
      continue
    readers = [
      job.name for job in plan.jobs if any(arg.endswith("=" + directory) for arg in job.command)
    ]
    if all(done_seconds(logs, reader) is not None for reader in readers):
      freed = training.remove_checkpoints(directory)
      if freed:
        print(f"    {output}: checkpoints removed ({freed / 1e6:.0f} MB)", flush=True)


def _inputs(config: PipelineConfig) -> Tuple[str, List[str], Optional[List[str]]]:
  """Checks the input files before any job runs: the vocabulary, the pool
  files (and their held-back labels, file by file), the labeled files."""
  for name in ("train_file", "eval_file", "label_file"):
    input_files.expand_input_files(getattr(config, name))
  source = checkpoints.resolve_init_checkpoint(config.init_checkpoint)
  vocab_file = config.vocab_file or source.vocab_file
  if not vocab_file:
    raise errors.InputError(
      f"{config.init_checkpoint}: no vocab.txt beside the initial checkpoint; give --vocab_file"
    )
  input_files.expand_input_files(vocab_file)
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
  return vocab_file, pool_files, pool_labels


def run(config: PipelineConfig) -> Dict:
  """Runs the jobs not done yet, writes WORK/report.{json,md,png} and
  returns the report. Raises JobError when a job fails."""
  vocab_file, pool_files, pool_labels = _inputs(config)
  plan = make_plan(config, vocab_file, pool_files)
  logs = os.path.join(config.work_dir, "logs")
  for directory in plan.logits_dirs:  # done before a kl variant was asked for?
    if done_seconds(logs, job_name(directory)) is None:
      continue
    for pool_file in pool_files:
      side = os.path.join(
        config.work_dir, directory, os.path.basename(pool_file) + input_files.LOGITS_SUFFIX
      )
      if not os.path.exists(side):
        raise errors.InputError(
          f"{side}: not found: step 3 ran without --write_logits (no kl "
          "variant then); a kl variant needs them: use a new --work_dir"
        )
  done = sum(done_seconds(logs, job.name) is not None for job in plan.jobs)
  print(
    f"pipeline ({config.task}): {len(plan.jobs)} jobs, {done} done earlier, in {config.work_dir}",
    flush=True,
  )
  if not config.report_only:
    for job in plan.jobs:
      run_job(job.name, job.command, logs)
      if not config.keep_checkpoints:
        prune_checkpoints(plan, config.work_dir, logs)
  # Only finished jobs' outputs are read (all of them, unless --report_only).
  finished = lambda output: done_seconds(logs, job_name(output)) is not None  # noqa: E731
  report = pipeline_report.collect(
    config.work_dir,
    config.task,
    [m for m in plan.models if finished(m[0])],
    [p for p in plan.pseudo_labels if finished(p[0])],
    pool_files,
    pool_labels,
    {job.name: done_seconds(logs, job.name) for job in plan.jobs},
    plan.export if plan.export and finished("export_check") else None,
  )
  report["config"] = dataclasses.asdict(config)
  pipeline_report.write_report(config.work_dir, report)
  export = report.get("export")
  if export:
    print(
      f"SavedModel {export['dir']} ({export['model']}), answering in a process that "
      "imports only tensorflow and tensorflow_text:"
    )
    for example in export["examples"]:
      print(f"  {example['text']!r} -> {example['prediction']}")
  print(f"report: {os.path.join(config.work_dir, 'report.md')}")
  return report


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
  flags.DEFINE_integer("max_seq_length", None, "Default: 64 (classification) / 128 (NER).")
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
  flags.DEFINE_integer("pretrain_steps", d["pretrain_steps"], "Training steps of steps 1, 4.")
  flags.DEFINE_integer(
    "pretrain_warmup_steps", None, "Default: 10000 (classification) / 5000 (NER)."
  )
  flags.DEFINE_float("pretrain_learning_rate", None, "Default: 5e-5 (classification) / 1e-5 (NER).")
  flags.DEFINE_integer(
    "pretrain_batch_size", d["pretrain_batch_size"], "GLOBAL batch of steps 1 and 4."
  )
  flags.DEFINE_integer(
    "save_checkpoints_steps", d["save_checkpoints_steps"], "Checkpoint interval of steps 1 and 4."
  )
  flags.DEFINE_float(
    "finetune_learning_rate", d["finetune_learning_rate"], "Learning rate of steps 2 and 5."
  )
  flags.DEFINE_float("finetune_epochs", None, "Default: 7 (classification) / 3 (NER).")
  flags.DEFINE_integer(
    "finetune_batch_size", d["finetune_batch_size"], "GLOBAL batch of steps 2 and 5."
  )
  flags.DEFINE_integer("random_seed", d["random_seed"], "Seed of every job.")
  flags.DEFINE_integer("num_shards", d["num_shards"], "TFRecord shards of the pool's records.")
  flags.DEFINE_integer("num_workers", d["num_workers"], "Processes of create_pretraining_data.")
  flags.DEFINE_integer(
    "bucket_width", d["bucket_width"], "Length bucketing of training batches (0: off)."
  )
  cli.define_dtype_flag()
  flags.DEFINE_bool("baseline", d["baseline"], "Also fine-tune the initial checkpoint directly.")
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
  flags.DEFINE_list("variants", list(d["variants"]), f"Comma list of: {', '.join(VARIANTS)}.")
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
  flags.DEFINE_string("export_variant", None, "Default: the first of --variants.")
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
