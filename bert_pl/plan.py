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

The decision mode (README, "The method on your own data") adds
three things to the same builders:
- a dev set (`--dev_fraction`: a `dev_split` job, seeded with --random_seed,
  whose train part every fine-tuning trains on; or `--dev_file`): every
  fine-tuning then keeps its best epoch on dev (`--keep_best_on_dev`), so
  `--finetune_epochs` is a maximum. --eval_file stays the test set.
- units (`--seeds`): each seed's jobs under WORK/seed<k>/, built by the same
  builders in that directory (`unit_plan`) and then named `seed<k>.<job>`
  (`in_unit`). The dev split and step 1 (Model-A) are shared by the seeds and
  run at --random_seed, so that the seeds differ only in the fine-tunings' and
  steps 3-5's training randomness, which is the noise the comparison measures.
- choices on dev (`Choices`): the learning rate of each unit
  (`--finetune_learning_rates`: the baseline fine-tuned once per rate under
  lr_search/lr<a>/) and the exported variant are read by the driver from
  finished jobs' dev results. Until they exist the jobs that depend on them
  are left out of the plan (the driver plans again once they are done), or,
  for `--dry_run`, shown with ON_DEV in place of the value.
"""

import dataclasses
import os
import sys
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

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
# --dry_run's value of a choice that finished jobs' dev results will make.
ON_DEV = "<chosen on dev>"
SHARED_JOBS = ("dev_split", "data", "model_a")  # with --seeds: run once, read by every seed

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
class Labeled:
  """What the fine-tunings train on and choose their epoch on: the training
  file, the dev file (None: no choice on dev), the paths they read for it
  (the user's files, or the dev split's directory) and the jobs writing them."""

  train_file: str
  dev_file: Optional[str] = None
  inputs: Tuple[str, ...] = ()
  needs: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Choices:
  """What finished jobs chose on dev, as the driver read it: per unit, the
  best dev metric of each searched rate (complete searches only); per
  variant, the mean over the units of its final Model-D's best dev metric
  (when every unit has one)."""

  rates: Mapping[str, Mapping[float, float]] = dataclasses.field(default_factory=dict)
  variants: Mapping[str, float] = dataclasses.field(default_factory=dict)

  def learning_rate(self, unit: str) -> Optional[float]:
    """The rate best on dev (a tie: the earlier in the list), None before the search is done."""
    rates = self.rates.get(unit)
    return max(rates, key=rates.__getitem__) if rates else None

  def export_variant(self) -> Optional[str]:
    """The variant best on dev on average over the units (a tie: the earlier)."""
    return max(self.variants, key=self.variants.__getitem__) if self.variants else None


@dataclasses.dataclass(frozen=True)
class Setting:
  """A run's settings and the input files resolved from them; for a unit of
  the decision mode also its directory, seed, labeled data, learning rate
  (a float, ON_DEV, or None: --finetune_learning_rate), the search
  directories that rate comes from and the shared Model-A."""

  config: Any  # a pipeline.PipelineConfig (not imported: pipeline imports this module)
  vocab_file: str
  pool_files: Tuple[str, ...]
  unit: str = ""
  seed: Optional[int] = None
  labeled: Optional[Labeled] = None
  learning_rate: Any = None
  searched: Tuple[str, ...] = ()
  shared_a: Optional[Start] = None

  def path(self, *parts: str) -> str:
    return os.path.join(self.config.work_dir, self.unit, *parts)

  @property
  def random_seed(self) -> int:
    return self.config.random_seed if self.seed is None else self.seed

  @property
  def data(self) -> Labeled:
    c = self.config
    return self.labeled or Labeled(c.train_file, inputs=(c.train_file,))

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
      f"--random_seed={self.random_seed}",
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
  """Model-A: step 1's (shared by the units), or the one given with
  --model_a (step 1 done elsewhere)."""
  if s.shared_a:
    return s.shared_a
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
    f"--random_seed={s.random_seed}",
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
  `pseudo`: the step-3 directory whose pseudo-labels `extra` adds (self-training).
  With a dev set it keeps its best epoch on dev; its learning rate is the
  unit's (chosen on dev after the searched directories, or given)."""
  c, data = s.config, s.data
  rate = c.finetune_learning_rate if s.learning_rate is None else s.learning_rate
  dev = (f"--dev_file={data.dev_file}", "--keep_best_on_dev") if data.dev_file else ()
  command = job_command(
    FINETUNE_JOBS[c.task],
    "--do_train",
    "--do_eval",
    f"--train_file={data.train_file}",
    f"--eval_file={c.eval_file}",
    f"--label_file={c.label_file}",
    f"--output_dir={s.path(output)}",
    *start.args,
    *s.tokenizer(),
    f"--train_batch_size={c.finetune_batch_size}",
    f"--learning_rate={rate}",
    f"--num_train_epochs={c.finetune_epochs}",
    *s.training(),
    *dev,
    *extra,
  )
  inputs = (*data.inputs, c.eval_file, c.label_file, *_config_files(s, start))
  inputs += tuple(s.path(d) for d in s.searched) + ((s.path(pseudo),) if pseudo else ())
  needs = data.needs + tuple(map(job_name, s.searched))
  needs += tuple(filter(None, (start.need, pseudo and job_name(pseudo))))
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


def final_model_d(config, variant: str) -> str:
  """A variant's last Model-D, under its unit's directory."""
  return f"{variant}/round{config.rounds}/model_d"


def export_plan(s: Setting, variant: str, unit: str = "") -> Plan:
  """The final Model-D of `variant` (of the unit `unit`: with --seeds, the
  first seed's) as a SavedModel, and its answers in a fresh process that
  imports only TensorFlow and tensorflow-text."""
  c = s.config
  final = os.path.join(unit, final_model_d(c, variant))
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


def dev_split_job(s: Setting) -> Job:
  """--dev_fraction: the labeled set split once (stratified per class for
  classification) into the fine-tunings' train part and the dev set."""
  c = s.config
  command = (
    sys.executable,
    "-m",
    "data_prep.dev_split",
    f"--input_file={c.train_file}",
    f"--output_dir={s.path('dev_split')}",
    f"--format={'tsv' if c.task == 'classification' else 'conll'}",
    f"--dev_fraction={c.dev_fraction}",
    f"--seed={c.random_seed}",
  )
  return Job("dev_split", command, (c.train_file,), (s.path("dev_split"),), (), "step2")


def labeled(s: Setting) -> Labeled:
  """The fine-tunings' train and dev files: the dev split's, --dev_file, or
  --train_file alone (no choice on dev)."""
  c = s.config
  if c.dev_fraction:
    suffix = ".tsv" if c.task == "classification" else ".txt"
    split = s.path("dev_split")
    return Labeled(
      os.path.join(split, "train" + suffix),
      os.path.join(split, "dev" + suffix),
      (split,),
      ("dev_split",),
    )
  if c.dev_file:
    return Labeled(c.train_file, c.dev_file, (c.train_file, c.dev_file))
  return Labeled(c.train_file, inputs=(c.train_file,))


def search_dir(rate: float) -> str:
  return f"lr_search/lr{rate:g}"


def search_plan(s: Setting) -> Plan:
  """--finetune_learning_rates: the initial checkpoint fine-tuned once per
  rate, each keeping its best epoch on dev."""
  plan = Plan()
  for rate in s.config.finetune_learning_rates:
    what = f"learning-rate search: the initial checkpoint at {rate:g}"
    at_rate = dataclasses.replace(s, learning_rate=rate)
    plan += finetune_plan(at_rate, search_dir(rate), initial(s), what, "step2")
  return plan


def method_plan(s: Setting) -> Plan:
  """Steps 2-5 of one unit: baselines, Model-B, step 3, the variants' rounds."""
  variants = s.config.parsed_variants
  teacher_logits = any(v.pseudo_label_loss == "kl" for v in variants)
  plan = baselines_plan(s)
  if not s.shared_a and not s.config.model_a:
    plan += domain_plan(s)
  plan += finetune_plan(s, "model_b", model_a(s), "step 2: Model-A fine-tuned", "step2")
  plan += predict_plan(s, "round1/pseudo", "model_b", teacher_logits)
  plan += shared_records_plan(s, variants)
  for v in variants:
    for r in range(1, s.config.rounds + 1):
      plan += round_plan(s, v, r)
  return plan


def unit_plan(s: Setting, choices: Choices, dry_run: bool) -> Plan:
  """A unit's jobs: the learning-rate search, then (once it chose, or with
  ON_DEV for --dry_run) the method at the chosen rate."""
  if not s.config.finetune_learning_rates:
    return method_plan(s)
  rate = choices.learning_rate(s.unit) or (ON_DEV if dry_run else None)
  searched = tuple(map(search_dir, s.config.finetune_learning_rates))
  chosen = dataclasses.replace(s, learning_rate=rate, searched=searched)
  return search_plan(s) + (method_plan(chosen) if rate is not None else Plan())


def in_unit(plan: Plan, unit: str) -> Plan:
  """A unit's plan as part of the whole: its jobs named `unit.<job>` and its
  directories `unit/<dir>` (the shared jobs it needs keep their names)."""

  def name(job: str) -> str:
    return job if job in SHARED_JOBS else f"{unit}.{job}"

  jobs = tuple(
    dataclasses.replace(j, name=name(j.name), needs=tuple(map(name, j.needs))) for j in plan.jobs
  )
  here = lambda d: f"{unit}/{d}"  # noqa: E731
  return Plan(
    jobs,
    tuple((here(d), what) for d, what in plan.models),
    tuple((here(d), here(teacher)) for d, teacher in plan.pseudo_labels),
    tuple(map(here, plan.logits_dirs)),
  )


def comparison_rows(config) -> Dict[str, str]:
  """The fine-tuned models the decision report compares (directories under a
  unit), in display order, and their names in its table and recommendation."""
  rows = {"baseline": "baseline"} if config.baseline else {}
  if config.baseline_layers:
    rows[f"baseline_{config.baseline_layers}layers"] = f"baseline ({config.baseline_layers} layers)"
  rows["model_b"] = "Model-B"
  for v in config.variants:
    for r in range(1, config.rounds + 1):
      rows[f"{v}/round{r}/model_d"] = v if config.rounds == 1 else f"{v} round {r}"
  return rows


def units(config) -> Tuple[Tuple[str, int], ...]:
  """(directory under WORK, seed) of each unit: seed<k> per --seeds, or the
  work directory itself."""
  if config.seeds:
    return tuple((f"seed{k}", k) for k in config.seeds)
  return (("", config.random_seed),)


def make_plan(
  config,
  vocab_file: str,
  pool_files: Sequence[str],
  choices: Choices = Choices(),
  dry_run: bool = False,
) -> Plan:
  """Every job of the run, in the method's order (nothing runs here); the
  jobs that depend on choices not made yet are left out (`dry_run`: shown
  with ON_DEV)."""
  s = Setting(config, vocab_file, tuple(pool_files))
  s = dataclasses.replace(s, labeled=labeled(s))
  plan = Plan((dev_split_job(s),)) if config.dev_fraction else Plan()
  if not config.seeds:
    plan += unit_plan(s, choices, dry_run)
  else:
    if not config.model_a:
      plan += domain_plan(s)
    for unit, seed in units(config):
      seeded = dataclasses.replace(s, unit=unit, seed=seed, shared_a=model_a(s))
      plan += in_unit(unit_plan(seeded, choices, dry_run), unit)
  variant = config.export_variant or choices.export_variant() or (ON_DEV if dry_run else None)
  if not (config.export and variant):
    return plan
  export = export_plan(s, variant, units(config)[0][0])
  # The exported model's job joins the plan after the learning-rate search.
  planned = dry_run or set(export.jobs[0].needs) <= {job.name for job in plan.jobs}
  return plan + export if planned else plan
