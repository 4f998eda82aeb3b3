"""The method as data: every job of a pipeline run, built before any runs.

A job is a value (`Job`): its command, the paths it reads and writes, the
jobs it needs and the step it belongs to. Small builders make one kind of job
each (pool records, pre-training, fine-tuning, step 3, one variant's round,
export); `make_plan` composes them in the method's order. Nothing here touches
the file system, so a plan can be printed (`--dry_run`), compared with what a
work directory ran before, and tested without TensorFlow running.

The commands are what a user types (`python -m bert_pl.<job> --flags`), with
the flags whose defaults equal the jobs' own left out, so that a plan's
commands do not change when an unrelated option is added.
"""

import dataclasses
import os
import sys
from typing import Any, Optional, Sequence, Tuple

from bert_pl import errors, pipeline_report

FINETUNE_JOBS = {"classification": "run_classifier", "ner": "run_ner"}
SELF_TRAINING = "self_training"
STEP4_VARIANTS = tuple(
  f"{loss}_{data}{init}"
  for loss in ("hard", "kl")
  for data in ("mlm", "nomask")
  for init in ("", "_from_a")
)
VARIANTS = STEP4_VARIANTS + (SELF_TRAINING,)
# The steps a job can belong to (--only), in the method's order.
STEPS = ("step1", "step2", "step3", "step4", "step5", "export")

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
class Job:
  """One job: `inputs` are the paths it reads (files given by the user, or
  outputs of the jobs it `needs`), `outputs` the paths under WORK it writes."""

  name: str  # job_name() of its first output
  command: Tuple[str, ...]
  inputs: Tuple[str, ...]
  outputs: Tuple[str, ...]
  needs: Tuple[str, ...]
  step: str  # one of STEPS


@dataclasses.dataclass(frozen=True)
class Plan:
  """Jobs in order, and what the report reads from their outputs."""

  jobs: Tuple[Job, ...] = ()
  models: Tuple[Tuple[str, str], ...] = ()  # (directory under WORK, what it is)
  pseudo_labels: Tuple[Tuple[str, str], ...] = ()  # (directory under WORK, the teacher)
  logits_dirs: Tuple[str, ...] = ()  # pseudo-label directories with the teacher's logits
  export: Optional[Tuple[str, str]] = None  # (SavedModel directory, model directory)

  def __add__(self, other: "Plan") -> "Plan":
    return Plan(
      self.jobs + other.jobs,
      self.models + other.models,
      self.pseudo_labels + other.pseudo_labels,
      self.logits_dirs + other.logits_dirs,
      self.export or other.export,
    )


@dataclasses.dataclass(frozen=True)
class Start:
  """Where a model starts: its flags, the path they read, the job making it
  (None: a checkpoint given by the user)."""

  args: Tuple[str, ...]
  path: str
  need: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Setting:
  """A run's settings and the input files resolved from them."""

  config: Any  # a pipeline.PipelineConfig (not imported: pipeline imports this module)
  vocab_file: str
  pool_files: Tuple[str, ...]

  def path(self, *parts: str) -> str:
    return os.path.join(self.config.work_dir, *parts)

  def tokenizer(self) -> Tuple[str, ...]:
    c = self.config
    return (
      f"--vocab_file={self.vocab_file}",
      f"--do_lower_case={c.do_lower_case}",
      f"--tokenization={c.tokenization}",
      f"--max_seq_length={c.max_seq_length}",
    )

  def masking(self) -> Tuple[str, ...]:
    """Steps 1 and 4's masking flags, left out at their defaults."""
    c = self.config
    return (
      (("--do_whole_word_mask",) if c.do_whole_word_mask else ())
      + ((f"--segmenter={c.segmenter}",) if c.segmenter != "none" else ())
      + ((f"--ngram_mask_max={c.ngram_mask_max}",) if c.ngram_mask_max != 1 else ())
    )

  def training(self) -> Tuple[str, ...]:
    c = self.config
    return (
      f"--random_seed={c.random_seed}",
      f"--bucket_width={c.bucket_width}",
      f"--dtype={c.dtype}",
    )

  def pseudo_files(self, directory: str) -> str:
    """Step 3's output files of the pool, one per pool file name."""
    return ",".join(self.path(directory, os.path.basename(f)) for f in self.pool_files)


def job_command(module: str, *args: str) -> Tuple[str, ...]:
  """`python -m bert_pl.<module> ARGS`, as a user runs a job."""
  return (sys.executable, "-m", f"bert_pl.{module}", *args)


def job_name(output: str) -> str:
  """A job's name: its output's path under the work directory, "/" as "."."""
  return output.replace("/", ".")


def initial(s: Setting, layers: Optional[int] = None) -> Start:
  """The initial checkpoint (its first `layers`, default --num_hidden_layers)."""
  c = s.config
  layers = layers or c.num_hidden_layers
  return Start(
    (f"--init_checkpoint={c.init_checkpoint}",)
    + ((f"--bert_config_file={c.bert_config_file}",) if c.bert_config_file else ())
    + ((f"--num_hidden_layers={layers}",) if layers else ()),
    c.init_checkpoint,
  )


def trained(s: Setting, directory: str) -> Start:
  """A model directory an earlier job of the plan writes."""
  return Start((f"--init_checkpoint={s.path(directory)}",), s.path(directory), job_name(directory))


def model_a(s: Setting) -> Start:
  """Model-A: step 1's, or the one given with --model_a (step 1 done elsewhere)."""
  given = s.config.model_a
  return Start((f"--init_checkpoint={given}",), given) if given else trained(s, "model_a")


def _config_files(s: Setting, start: Start) -> Tuple[str, ...]:
  """The user's files a job starting from `start` reads besides the model."""
  extra = (s.config.bert_config_file,) if s.config.bert_config_file and not start.need else ()
  return (start.path, *extra, s.vocab_file)


def records_job(s: Setting, output: str, inputs: str, step: str, *extra: str, need=None) -> Job:
  """create_pretraining_data: the pool (step 1) or its pseudo-labels (step 4)
  as TFRecords; `need` is the step-3 directory that `inputs` lists."""
  c = s.config
  command = job_command(
    "create_pretraining_data",
    f"--input_file={inputs}",
    f"--output_file={s.path(output, 'pool.tfrecord')}",
    f"--num_output_shards={c.num_shards}",
    f"--num_workers={c.num_workers}",
    *s.tokenizer(),
    f"--max_predictions_per_seq={c.max_predictions_per_seq}",
    *s.masking(),
    f"--random_seed={c.random_seed}",
    *extra,
  )
  read = (s.path(need),) if need else (c.pool,)
  labels = (c.label_file,) if need else ()
  needs = (job_name(need),) if need else ()
  return Job(
    job_name(output), command, (*read, s.vocab_file, *labels), (s.path(output),), needs, step
  )


def _size(c) -> Tuple[str, str]:
  """Steps 1 and 4's length and warm-up: in steps, or in passes over the pool."""
  steps = (
    f"--num_train_steps={c.pretrain_steps}"
    if c.pretrain_steps is not None
    else f"--num_train_epochs={c.pretrain_epochs}"
  )
  warmup = (
    f"--num_warmup_steps={c.pretrain_warmup_steps}"
    if c.pretrain_warmup_steps is not None
    else f"--warmup_proportion={c.pretrain_warmup_proportion}"
  )
  return steps, warmup


def pretrain_plan(s: Setting, output: str, start: Start, records: str, what: str, *extra) -> Plan:
  """run_pretraining (steps 1 and 4) on the TFRecords of job `records`."""
  c = s.config
  command = job_command(
    "run_pretraining",
    "--do_train",
    "--do_eval",
    f"--input_file={s.path(records, 'pool.tfrecord')}*",
    f"--output_dir={s.path(output)}",
    *start.args,
    *s.tokenizer(),
    f"--max_predictions_per_seq={c.max_predictions_per_seq}",
    f"--train_batch_size={c.pretrain_batch_size}",
    f"--learning_rate={c.pretrain_learning_rate}",
    *_size(c),
    f"--save_checkpoints_steps={c.save_checkpoints_steps}",
    *s.training(),
    *extra,
  )
  labels = (c.label_file,) if "--task_loss=none" not in extra else ()
  needs = tuple(filter(None, (job_name(records), start.need)))
  step = "step4" if labels else "step1"
  inputs = (s.path(records), *_config_files(s, start), *labels)
  job = Job(job_name(output), command, inputs, (s.path(output),), needs, step)
  return Plan((job,), models=((output, what),))


def finetune_plan(
  s: Setting, output: str, start: Start, what: str, step: str, *extra: str, pseudo=None
) -> Plan:
  """run_classifier / run_ner on the labeled set (steps 2 and 5, baselines);
  `pseudo`: the step-3 directory whose pseudo-labels `extra` adds (self-training)."""
  c = s.config
  command = job_command(
    FINETUNE_JOBS[c.task],
    "--do_train",
    "--do_eval",
    f"--train_file={c.train_file}",
    f"--eval_file={c.eval_file}",
    f"--label_file={c.label_file}",
    f"--output_dir={s.path(output)}",
    *start.args,
    *s.tokenizer(),
    f"--train_batch_size={c.finetune_batch_size}",
    f"--learning_rate={c.finetune_learning_rate}",
    f"--num_train_epochs={c.finetune_epochs}",
    *s.training(),
    *extra,
  )
  inputs = (c.train_file, c.eval_file, c.label_file, *_config_files(s, start))
  inputs += (s.path(pseudo),) if pseudo else ()
  needs = tuple(filter(None, (start.need, pseudo and job_name(pseudo))))
  job = Job(job_name(output), command, inputs, (s.path(output),), needs, step)
  return Plan((job,), models=((output, what),))


def predict_plan(s: Setting, output: str, teacher: str, logits: bool) -> Plan:
  """Step 3: the pool's pseudo-labels (and the teacher's logits) by `teacher`."""
  c = s.config
  command = job_command(
    "predict_pseudo_labels",
    f"--model_dir={s.path(teacher)}",
    f"--input_file={c.pool}",
    f"--output_dir={s.path(output)}",
    f"--dtype={c.dtype}",
    *(("--write_logits", f"--logits_top_k={c.logits_top_k}") if logits else ()),
  )
  inputs = (s.path(teacher), c.pool)
  job = Job(job_name(output), command, inputs, (s.path(output),), (job_name(teacher),), "step3")
  return Plan((job,), pseudo_labels=((output, teacher),), logits_dirs=(output,) if logits else ())


def step4_records(s: Setting, output: str, pseudo: str, mlm: bool) -> Job:
  """Step 4's TFRecords of pseudo-labels: masked for MLM, or not at all."""
  c = s.config
  unmasked = () if mlm else ("--masked_lm_prob=0",)
  labels = (f"--task={c.task}", f"--label_file={c.label_file}", *unmasked)
  return records_job(s, output, s.pseudo_files(pseudo), "step4", *labels, need=pseudo)


def round_plan(s: Setting, v: Variant, r: int) -> Plan:
  """Steps 3-5 of variant `v`'s round r: round 1 reads the shared step 3 and
  step-4 records; later rounds label the pool with the round before's Model-D."""
  c, work = s.config, f"{v.name}/round{r}"
  plan, pseudo = Plan(), "round1/pseudo"
  records = "round1/records_" + ("mlm" if v.mlm else "nomask")
  if r > 1:
    pseudo, records = f"{work}/pseudo", f"{work}/records"
    teacher = f"{v.name}/round{r - 1}/model_d"
    plan += predict_plan(s, pseudo, teacher, v.pseudo_label_loss == "kl")
  what = f"{v.name} round {r}: {v.describe(c.task)}"
  if v.self_training:
    pseudo_args = (
      f"--pseudo_label_file={s.pseudo_files(pseudo)}",
      f"--pseudo_per_class={c.pseudo_per_class}",
      f"--pseudo_min_confidence={c.pseudo_min_confidence}",
    )
    return plan + finetune_plan(
      s, f"{work}/model_d", model_a(s), what, "step5", *pseudo_args, pseudo=pseudo
    )
  if r > 1:
    plan += Plan((step4_records(s, records, pseudo, v.mlm),))
  kl = ("--pseudo_label_loss=kl", f"--kl_temperature={c.kl_temperature}")
  plan += pretrain_plan(
    s,
    f"{work}/model_c",
    model_a(s) if v.from_a else initial(s),
    records,
    f"step 4, {what}",
    f"--task_loss={c.task}",
    f"--label_file={c.label_file}",
    *(kl if v.pseudo_label_loss == "kl" else ()),
    *(() if v.mlm else ("--masked_lm_loss_weight=0",)),
  )
  step5 = f"step 5, {v.name} round {r}: Model-C fine-tuned"
  return plan + finetune_plan(s, f"{work}/model_d", trained(s, f"{work}/model_c"), step5, "step5")


def export_plan(s: Setting) -> Plan:
  """The final Model-D of --export_variant as a SavedModel, and its answers
  in a fresh process that imports only TensorFlow and tensorflow-text."""
  c = s.config
  final = f"{c.export_variant}/round{c.rounds}/model_d"
  export = job_command(
    "export_saved_model", f"--model_dir={s.path(final)}", f"--export_dir={s.path('export')}"
  )
  answers = s.path(pipeline_report.EXPORT_CHECK_FILE)
  check = (sys.executable, "-c", SERVE_CHECK, s.path("export"), s.pool_files[0], answers)
  return Plan(
    (
      Job("export", export, (s.path(final),), (s.path("export"),), (job_name(final),), "export"),
      Job("export_check", check, (s.path("export"), c.pool), (answers,), ("export",), "export"),
    ),
    export=("export", final),
  )


def baselines_plan(s: Setting) -> Plan:
  """--baseline: the initial checkpoint fine-tuned directly (and its first N layers)."""
  c, plan = s.config, Plan()
  if c.baseline:
    plan += finetune_plan(
      s, "baseline", initial(s), "fine-tuned from the initial checkpoint", "step2"
    )
  if c.baseline_layers:
    what = f"fine-tuned from the initial checkpoint's first {c.baseline_layers} layers"
    start = initial(s, c.baseline_layers)
    plan += finetune_plan(s, f"baseline_{c.baseline_layers}layers", start, what, "step2")
  return plan


def domain_plan(s: Setting) -> Plan:
  """Step 1: the pool as MLM records, and pre-training on them -> Model-A."""
  data = records_job(s, "data", s.config.pool, "step1", "--task=none")
  what = "step 1: domain pre-training (MLM)"
  return Plan((data,)) + pretrain_plan(s, "model_a", initial(s), "data", what, "--task_loss=none")


def shared_records_plan(s: Setting, variants: Sequence[Variant]) -> Plan:
  """Step 4's records of round 1's pseudo-labels, one kind per kind of input
  the variants need (masked, unmasked), shared by them."""
  kinds = {v.mlm for v in variants if not v.self_training}
  return Plan(
    tuple(
      step4_records(s, "round1/records_" + ("mlm" if mlm else "nomask"), "round1/pseudo", mlm)
      for mlm in (True, False)
      if mlm in kinds
    )
  )


def make_plan(config, vocab_file: str, pool_files: Sequence[str]) -> Plan:
  """Every job of the run, in the method's order (nothing runs here)."""
  s = Setting(config, vocab_file, tuple(pool_files))
  variants = config.parsed_variants
  teacher_logits = any(v.pseudo_label_loss == "kl" for v in variants)
  plan = baselines_plan(s)
  if not config.model_a:
    plan += domain_plan(s)
  plan += finetune_plan(s, "model_b", model_a(s), "step 2: Model-A fine-tuned", "step2")
  plan += predict_plan(s, "round1/pseudo", "model_b", teacher_logits)
  plan += shared_records_plan(s, variants)
  for v in variants:
    for r in range(1, config.rounds + 1):
      plan += round_plan(s, v, r)
  return plan + export_plan(s) if config.export else plan
