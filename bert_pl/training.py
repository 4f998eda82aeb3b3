"""The custom training loop shared by run_pretraining, run_classifier, run_ner.

Correct under tf.distribute: each loss is a numerator over a denominator
summed across replicas, gradients are all-reduced before the global-norm
clipping (tf-models' AdamWeightDecay clips per replica, before aggregation,
which makes 2 replicas differ from 1), then applied once by
`optimization.AdamW`. So a 2-replica
MirroredStrategy step equals a 1-replica step on the same global batch.

Resumable: checkpoints (`tf.train.CheckpointManager`, object keys `bert`,
`head`, `optimizer`) go to the model directory; re-running the same command
restores the latest and continues to exactly `num_train_steps`. The step is
the optimizer's iteration count, saved with it. A `checkpoint` file that
lists checkpoints outside the directory is refused before the manager can
delete them (`checkpoints.check_checkpoint_file`).

Resume is exact: the position in the training input is saved too, under
`input_state/worker-N` just before each model checkpoint of the same step, so
a run killed after step k goes on with batch k + 1 of an uninterrupted run:
the same batches, batch for batch (with length bucketing and across
replicas; dropout masks are not replayed). The tf.data iterator itself is
checkpointed (its shuffle buffers, prefetched batches, seeds); the
alternative, skipping the k batches already taken on a deterministic order,
was measured against it (bench/bench_resume.py, records of max_seq_length
128, on this busy 2-core CPU):
- a saved position is small and quick: 6.3 MB for pre-training (7.5 MB
  bucketed), nearly all of it the 10,000 serialized records of the shuffle
  buffer, saved in about 0.5 s; fine-tuning shuffles example indices, not
  examples, so 8 bytes per training example;
- skipping re-reads every batch taken: 48,000 records per CPU second padded,
  16,000 with length bucketing (grouped one example at a time). Resuming at
  step 100,000 with the paper's global batch of 256 would cost 27 CPU
  minutes before the first step, 13 CPU hours at step 3M: a cost that grows
  with the run against a constant one.
TensorFlow 2.15 cannot checkpoint the iterators of distributed datasets
(`tf.train.Checkpoint` refuses those of `distribute_datasets_from_function`
and of `experimental_distribute_dataset`), so `input_pipeline.TrainingInput`
keeps one plain iterator per worker and hands the replicas their batches in
the order a distributed dataset does.

Multi-worker (`MultiWorkerMirroredStrategy` from TF_CONFIG): every worker
runs the same steps and takes part in each save, as TensorFlow requires, but
only the chief writes the model's checkpoints, summaries and config; the
other workers save the model to a scratch directory they delete, and each
worker its own input position (it reads its own files). All restore the
chief's latest checkpoint and their own positions at its step, so
restarting the whole cluster after a worker died resumes from it.
"""

import json
import math
import os
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import tensorflow as tf
from absl import logging

from bert_pl import checkpoints, errors, input_pipeline, precision, task_models
from bert_pl.checkpoints import check_checkpoint_file
from bert_pl.model_dir import write_eval_results

STRATEGIES = ("mirrored", "multi_worker_mirrored", "one_device")
INPUT_STATE_DIR = "input_state"  # in the model directory: one directory per worker
DEV_BEST_DIR = "dev_best"  # in the model directory: the best epoch on dev's weights


def make_strategy(name: str = "mirrored", num_gpus: Optional[int] = None) -> tf.distribute.Strategy:
  """MirroredStrategy over the local GPUs (or the CPU), MultiWorkerMirrored
  from TF_CONFIG, or OneDevice for debugging. Call it first: a multi-worker
  strategy must be created before TensorFlow initialises its runtime."""
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_logical_devices("GPU")
  if num_gpus is not None:
    gpus = gpus[:num_gpus]
  devices = [d.name for d in gpus] or ["/cpu:0"]
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(devices)
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(devices[0])
  raise ValueError(f"--distribution_strategy must be one of {STRATEGIES}, got {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the model directory: always, but on the
  non-chief workers of a multi-worker strategy."""
  return strategy.extended.should_checkpoint


def set_seed(seed: Optional[int]) -> None:
  """Seeds Python, NumPy and TensorFlow (initialisation, dropout, shuffling)
  so that a job run twice with the same seed gives the same model on CPU."""
  if seed is not None:
    tf.keras.utils.set_random_seed(seed)


class Trainer:
  """Runs training and evaluation steps of a `BertTaskModel` under a strategy.

  Total loss = `masked_lm_loss_weight` x MLM + `task_loss_weight` x task
  loss (`pseudo_label_loss`, `kl_temperature`: see `task_models.loss_terms`).
  Without `use_mlm` the model is called without `masked_lm_positions`, so the
  MLM head (its gather and vocabulary projection) is not computed at all and
  its variables get no gradient and keep their values.

  `train_only`: the variables to train (default: all the model's trainable
  ones); the others keep their values, optimizer slots and weight decay
  included (e.g. the MLM head's warm-up: `checkpoints.mlm_head_variables`).

  Create the model and optimizer inside `strategy.scope()`.
  """

  def __init__(
    self,
    strategy: tf.distribute.Strategy,
    model: task_models.BertTaskModel,
    optimizer,
    use_mlm: bool,
    use_task: bool,
    task_loss_weight: float = 1.0,
    clip_norm: float = 1.0,
    masked_lm_loss_weight: float = 1.0,
    pseudo_label_loss: str = "hard",
    kl_temperature: float = 1.0,
    train_only: Optional[List[tf.Variable]] = None,
  ):
    self.strategy = strategy
    self.train_only = train_only
    self.model = model
    self.optimizer = optimizer
    self.use_mlm = use_mlm
    self.use_task = use_task
    self.task_loss_weight = task_loss_weight
    self.masked_lm_loss_weight = masked_lm_loss_weight
    self.pseudo_label_loss = pseudo_label_loss
    self.kl_temperature = kl_temperature
    self.clip_norm = clip_norm
    self._train_loop = None
    self._eval_step = None

  def _global_losses(self, features, training: bool):
    """Per-replica losses whose sum over replicas is the global loss."""
    context = tf.distribute.get_replica_context()
    inputs = (
      features
      if self.use_mlm
      else {k: v for k, v in features.items() if k != "masked_lm_positions"}
    )
    outputs = self.model(inputs, training=training)
    losses, metrics = task_models.loss_terms(
      self.model,
      features,
      outputs,
      self.use_mlm,
      self.use_task,
      self.pseudo_label_loss,
      self.kl_temperature,
    )
    names = sorted(losses)
    denominators = context.all_reduce(
      tf.distribute.ReduceOp.SUM, [tf.stop_gradient(losses[n][1]) for n in names]
    )
    scaled = {n: losses[n][0] / (d + 1e-5) for n, d in zip(names, denominators)}
    total = self.masked_lm_loss_weight * scaled.get(
      "mlm", 0.0
    ) + self.task_loss_weight * scaled.get("task", 0.0)
    return total, scaled, metrics

  def _replica_train_step(self, features):
    context = tf.distribute.get_replica_context()
    variables = self.train_only or self.model.trainable_variables
    loss_scaling = precision.uses_loss_scaling(self.optimizer)
    with tf.GradientTape() as tape:
      total, scaled, metrics = self._global_losses(features, training=True)
      loss = self.optimizer.get_scaled_loss(total) if loss_scaling else total
    # Variables the loss does not reach (the pooler under an MLM-only loss)
    # are left alone: a zero gradient would still apply weight decay to them.
    pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables) if g is not None]
    variables = [v for _, v in pairs]
    grads = context.all_reduce(
      tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(g) for g, _ in pairs]
    )
    if loss_scaling:
      grads = self.optimizer.get_unscaled_gradients(grads)
    if self.clip_norm:
      grads, _ = tf.clip_by_global_norm(grads, self.clip_norm)
    self.optimizer.apply_gradients(zip(grads, variables), experimental_aggregate_gradients=False)
    return dict(scaled, total_loss=total, **_flatten(metrics), **_token_counts(features))

  def _reduce(self, per_replica) -> Dict[str, tf.Tensor]:
    return {
      k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
      for k, v in per_replica.items()
    }

  def train_steps(self, iterator: Iterator, num_steps: int) -> Dict[str, float]:
    """Runs `num_steps` steps; returns the last step's global losses, the
    metrics summed over those steps (as accuracies) and the token counts
    summed over them (`real_tokens`, `padded_tokens`)."""
    if self._train_loop is None:

      def step(iterator):
        return self._reduce(self.strategy.run(self._replica_train_step, args=(next(iterator),)))

      @tf.function
      def loop(iterator, num_steps):
        last = step(iterator)
        totals = {k: v for k, v in last.items() if k.endswith(_SUMMED)}
        for _ in tf.range(num_steps - 1):
          last = step(iterator)
          totals = {k: totals[k] + last[k] for k in totals}
        return last, totals

      self._train_loop = loop
    last, totals = self._train_loop(iterator, tf.constant(num_steps))
    out = {k: float(v) for k, v in last.items() if not k.endswith(_SUMMED)}
    out.update(_accuracies(totals))
    out.update({k[: -len(_COUNT)]: float(v) for k, v in totals.items() if k.endswith(_COUNT)})
    return out

  def evaluate(self, iterator: Iterator, num_steps: int) -> Dict[str, float]:
    """Global losses and accuracies over `num_steps` batches."""
    if self._eval_step is None:

      def replica_step(features):
        total, scaled, metrics = self._global_losses(features, training=False)
        return dict(scaled, total_loss=total, **_flatten(metrics))

      @tf.function
      def step(iterator):
        return self._reduce(self.strategy.run(replica_step, args=(next(iterator),)))

      self._eval_step = step
    sums, steps = {}, 0
    for _ in range(num_steps):
      try:
        result = self._eval_step(iterator)
      except (StopIteration, tf.errors.OutOfRangeError):
        break
      steps += 1
      for k, v in result.items():
        sums[k] = sums.get(k, 0.0) + float(v)
    out = {k: v / max(steps, 1) for k, v in sums.items() if not k.endswith(("_num", "_den"))}
    out.update(_accuracies(sums))
    out["eval_steps"] = steps
    return out


_COUNT = "_count"
_SUMMED = ("_num", "_den", _COUNT)  # step outputs summed over the steps of a loop


def _token_counts(features) -> Dict[str, tf.Tensor]:
  """This replica's real tokens (input_mask) and computed tokens (batch x
  width, padding included): their ratio is what padding costs."""
  return {
    "real_tokens" + _COUNT: tf.reduce_sum(tf.cast(features["input_mask"], tf.float32)),
    "padded_tokens" + _COUNT: tf.cast(tf.size(features["input_ids"]), tf.float32),
  }


def _flatten(metrics):
  out = {}
  for name, (numerator, denominator) in metrics.items():
    out[name + "_num"] = numerator
    out[name + "_den"] = denominator
  return out


def _accuracies(sums) -> Dict[str, float]:
  if not sums:
    return {}
  return {
    k[:-4]: float(sums[k]) / max(float(sums[k[:-4] + "_den"]), 1e-9)
    for k in sums
    if k.endswith("_num")
  }


def remove_checkpoints(model_dir: str) -> int:
  """Deletes a finished model directory's checkpoints, input state and
  best weights on dev, and returns the bytes freed; its settings, vocab,
  eval results and summaries stay, so reports still read it. For drivers
  that train many models only to evaluate them (the experiments): a
  3-layer, hidden-384 checkpoint with its Adam slots is ~200 MB, and a run
  writes hundreds. The `checkpoint` file
  goes first, so that no reader is ever told of a file already deleted."""
  paths = [os.path.join(model_dir, "checkpoint")]
  paths += sorted(tf.io.gfile.glob(os.path.join(model_dir, "ckpt-*")))
  paths += [os.path.join(model_dir, INPUT_STATE_DIR), os.path.join(model_dir, DEV_BEST_DIR)]
  freed = 0
  for path in paths:
    if not tf.io.gfile.exists(path):
      continue
    if tf.io.gfile.isdir(path):
      for root, _, files in tf.io.gfile.walk(path):
        freed += sum(tf.io.gfile.stat(os.path.join(root, f)).length for f in files)
      tf.io.gfile.rmtree(path)
    else:
      freed += tf.io.gfile.stat(path).length
      tf.io.gfile.remove(path)
  return freed


class CheckpointedRun:
  """The model directory's checkpoints: restore-or-initialise, periodic saves.

  A non-chief worker (`is_chief=False`) saves to a scratch directory under
  the model directory and deletes it after each save (TensorFlow's
  multi-worker checkpointing recipe), and restores the chief's checkpoints.
  """

  def __init__(
    self,
    model: task_models.BertTaskModel,
    optimizer,
    model_dir: str,
    max_to_keep: int = 5,
    is_chief: bool = True,
  ):
    self._model_items = {checkpoints.CHECKPOINT_KEY: model.bert}
    if model.head is not None:
      self._model_items["head"] = model.head
    self.checkpoint = tf.train.Checkpoint(
      **self._model_items, optimizer=precision.inner_optimizer(optimizer)
    )
    self.model_dir = model_dir
    self.is_chief = is_chief
    self.max_to_keep = max_to_keep
    self._write_dir = (
      model_dir
      if is_chief
      else os.path.join(model_dir, f"worker_scratch-{os.uname().nodename}-{os.getpid()}")
    )
    check_checkpoint_file(model_dir)
    with errors.writing(self._write_dir):
      self.manager = tf.train.CheckpointManager(self.checkpoint, self._write_dir, max_to_keep)
    self.optimizer = optimizer
    self._resumed = False
    self._saved_step = None
    self._input_manager = None
    self._tracked_input = None

  @property
  def latest_checkpoint(self) -> Optional[str]:
    return tf.train.latest_checkpoint(self.model_dir)

  def restore_or_initialize(self, initialize: Callable[[], None]) -> int:
    """Restores the latest checkpoint, or calls `initialize()` (e.g. load
    --init_checkpoint) when there is none. Returns the current step."""
    latest = self.latest_checkpoint
    if latest:
      # Every model variable must come from the checkpoint. The optimizer's
      # state may lack the loss scale that float16 adds (a run resumed with
      # another --dtype), so it alone is restored without that check.
      try:
        self.checkpoint.restore(latest).expect_partial()
        tf.train.Checkpoint(**self._model_items).restore(
          latest
        ).expect_partial().assert_existing_objects_matched()
      except (AssertionError, ValueError, tf.errors.OpError) as e:  # messages of many lines
        raise errors.CheckpointError(
          f"{latest}: the output directory's checkpoint does not fit the model as configured "
          f"({str(e).splitlines()[0][:200]}); run with the settings that wrote it, or give "
          "another --output_dir"
        ) from None
      self._saved_step = int(self.optimizer.iterations.numpy())
      self._resumed = True
      logging.info("Resumed from %s at step %d", latest, self._saved_step)
    else:
      initialize()
    return int(self.optimizer.iterations.numpy())

  def track_input(self, training_input: input_pipeline.TrainingInput) -> None:
    """Saves the position of this worker's `training_input` with every
    checkpoint from now on (under `input_state/worker-N`), and, when the run
    resumed, restores the position saved with the restored checkpoint, so
    that training goes on with the batches an uninterrupted run takes next.
    Tracking the input already tracked does nothing: training in phases
    (`train` once per phase) takes one input through them all.

    A position saved for other input (other files, batch size, seed,
    bucketing, replicas: `training_input.description`) or none at all (a
    checkpoint written before positions were saved) is not restored: the data
    start from the beginning, with a warning."""
    if self._tracked_input is training_input:
      return
    self._tracked_input = training_input
    directory = os.path.join(self.model_dir, INPUT_STATE_DIR, f"worker-{training_input.worker}")
    check_checkpoint_file(directory)
    description = tf.Variable(training_input.description, trainable=False)
    checkpoint = tf.train.Checkpoint(iterator=training_input.iterator, description=description)
    self._input_manager = tf.train.CheckpointManager(checkpoint, directory, self.max_to_keep)
    step = int(self.optimizer.iterations.numpy())
    if not self._resumed or step == 0:
      return
    saved = os.path.join(directory, f"ckpt-{step}")
    if not tf.io.gfile.exists(saved + ".index"):
      logging.warning(
        "%s: no input position saved at step %d (the checkpoint was written "
        "without one): the training data start from the beginning",
        saved,
        step,
      )
      return
    was = json.loads(
      tf.train.load_checkpoint(saved).get_tensor("description/.ATTRIBUTES/VARIABLE_VALUE")
    )
    now = json.loads(training_input.description)
    if was != now:
      changed = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
      logging.warning(
        "The training input differs from the one saved at step %d (%s): the "
        "training data start from the beginning",
        step,
        ", ".join(changed),
      )
      return
    checkpoint.restore(saved).assert_consumed()
    logging.info("Resumed the training input at step %d from %s", step, saved)

  def model_checkpoint(self) -> tf.train.Checkpoint:
    """The model's variables alone (`bert`, `head`: what `model_dir.load_finetuned` reads)."""
    return tf.train.Checkpoint(**self._model_items)

  def save_over_latest(self) -> Optional[str]:
    """Saves the model as it is now as the current step's checkpoint, over
    the one already saved (the epoch kept on dev replaces the last epoch's)."""
    self._saved_step = None
    return self.save()

  def save(self) -> Optional[str]:
    """Saves the current step (once); returns the model directory's latest
    checkpoint. Every worker must call it at the same steps."""
    step = int(self.optimizer.iterations.numpy())
    if step != self._saved_step:
      prefix = os.path.join(self._write_dir, f"ckpt-{step}")
      try:
        with errors.writing(prefix, "cannot write the checkpoint"):
          if self._input_manager:  # first: a model checkpoint always has its input position
            self._input_manager.save(checkpoint_number=step)
          self.manager.save(checkpoint_number=step)
      except errors.OutputError:
        # The `checkpoint` file still names the last complete checkpoint;
        # what this save wrote would only fill the disk.
        leftovers = (
          tf.io.gfile.glob(f"{prefix}.*")
          + tf.io.gfile.glob(f"{prefix}_temp*")
          + tf.io.gfile.glob(os.path.join(self._write_dir, "checkpoint.tmp*"))
        )
        for path in leftovers:
          errors.remove_quietly(path)
        raise
      self._saved_step = step
      if not self.is_chief:
        tf.io.gfile.rmtree(self._write_dir)
    return self.latest_checkpoint


def train(
  trainer: Trainer,
  run: CheckpointedRun,
  training_input: input_pipeline.TrainingInput,
  num_train_steps: int,
  steps_per_save: int,
  global_batch_size: int,
  summary_dir: str,
  boundaries: Sequence[int] = (),
  at_boundary: Callable[[int], None] = lambda step: None,
) -> Dict[str, float]:
  """Trains to `num_train_steps` on `training_input` (resumed where the run
  stopped, `CheckpointedRun.track_input`), saving every `steps_per_save`
  steps and at each of the `boundaries` (the ends of epochs), where
  `at_boundary(step)` follows the save (and runs first when the run starts
  at one: a run killed between the save and it does it then); logs and
  writes TensorBoard summaries (losses, accuracies, learning rate,
  examples/s, real tokens/s, the share of computed tokens that is padding)
  after each save. Returns the last save interval's results."""
  run.track_input(training_input)
  writer = (
    tf.summary.create_file_writer(summary_dir)
    if is_chief(trainer.strategy)
    else tf.summary.create_noop_writer()
  )
  step = int(trainer.optimizer.iterations.numpy())
  if step in boundaries:
    at_boundary(step)
  result = {}
  start_step, start_time = step, time.time()
  while step < num_train_steps:
    n = min(
      steps_per_save - step % steps_per_save,
      num_train_steps - step,
      *(b - step for b in boundaries if b > step),
    )
    loop_start = time.time()
    result = trainer.train_steps(training_input, n)
    step = int(trainer.optimizer.iterations.numpy())
    _check_finite(result["total_loss"], step, run, precision.uses_loss_scaling(trainer.optimizer))
    elapsed = max(time.time() - loop_start, 1e-9)
    result["examples_per_second"] = n * global_batch_size / elapsed
    real, padded = result.pop("real_tokens"), result.pop("padded_tokens")
    result["real_tokens_per_second"] = real / elapsed
    result["padding_share"] = 1.0 - real / max(padded, 1.0)
    result["learning_rate"] = float(_learning_rate(trainer.optimizer, step))
    run.save()
    remaining = (num_train_steps - step) * (time.time() - start_time) / max(step - start_step, 1)
    logging.info(
      "step %d/%d %s | ETA %.0fs",
      step,
      num_train_steps,
      " ".join(f"{k}={v:.4g}" for k, v in sorted(result.items())),
      remaining,
    )
    with writer.as_default(step=step):
      for name, value in result.items():
        tf.summary.scalar(name, value)
    writer.flush()
    if step in boundaries:
      at_boundary(step)
  run.save()
  return result


class DivergedError(errors.InputError):
  """The loss became NaN or infinite: training stopped before saving it."""


def _check_finite(loss: float, step: int, run: CheckpointedRun, loss_scaling: bool) -> None:
  """Stops training when the loss is NaN or infinite, before the diverged
  weights are saved: the last good checkpoint stays the latest. Under float16
  loss scaling an overflowing step is skipped, not applied, so it is left to
  the loss scale."""
  if math.isfinite(loss) or loss_scaling:
    return
  raise DivergedError(
    f"the loss became {loss} by step {step}: training stopped without saving; the last "
    f"good checkpoint is {run.latest_checkpoint or 'none (none was written yet)'} "
    "(lower --learning_rate, or check the input data)"
  )


def _learning_rate(optimizer, step: int) -> float:
  schedule = optimizer.learning_rate
  if isinstance(schedule, tf.keras.optimizers.schedules.LearningRateSchedule):
    return float(schedule(step))
  return float(schedule)


def record_eval(model_dir: str, results: Dict[str, float], step: int) -> None:
  """Writes eval_results.txt (`key = value` lines, as the original, under a
  temporary name renamed when complete) and the eval TensorBoard summaries."""
  write_eval_results(model_dir, results)
  writer = tf.summary.create_file_writer(summary_dir(model_dir, "eval"))
  with writer.as_default(step=step):
    for name, value in results.items():
      tf.summary.scalar(name, value)
  writer.flush()


def steps_for_epochs(num_examples: int, epochs: float, global_batch_size: int) -> int:
  return max(1, math.ceil(num_examples * epochs / global_batch_size))


def epoch_ends(num_examples: int, epochs: float, global_batch_size: int) -> list:
  """The step at which each epoch ends (a last partial epoch at the last step)."""
  total = steps_for_epochs(num_examples, epochs, global_batch_size)
  ends = [steps_for_epochs(num_examples, e, global_batch_size) for e in range(1, math.ceil(epochs))]
  return sorted({end for end in ends if end < total} | {total})


def summary_dir(model_dir: str, kind: str) -> str:
  return os.path.join(model_dir, "summaries", kind)
