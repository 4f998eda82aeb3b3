"""The skeleton every training job shares: run_pretraining, run_classifier, run_ner.

A training job decides what its `--output_dir` is (`choose_model`: the model
to resume or evaluate when it holds a checkpoint, else a new model from
`--init_checkpoint`, else a refusal), seeds itself under its strategy
(`start`), builds the model and optimizer, restores or initialises them and
trains them with checkpoints, and records its evaluation (`Session`). Each
job keeps only what is its own: its data, its loss, its checks of an
existing model's settings, and its evaluation.
"""

import dataclasses
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf
from absl import logging

from bert_pl import (
  checkpoints,
  input_pipeline,
  model_dir,
  modeling,
  optimization,
  precision,
  task_models,
  training,
)


def start(config) -> tf.distribute.Strategy:
  """The job's strategy, then its seeds: first of all (a multi-worker
  strategy must exist before TensorFlow initialises its runtime, and the
  seed before any variable)."""
  strategy = training.make_strategy(config.distribution_strategy, config.num_gpus)
  training.set_seed(config.random_seed)
  return strategy


@dataclasses.dataclass
class ModelChoice:
  """The model a job trains, evaluates or predicts with."""

  bert_config: modeling.BertConfig
  vocab_file: str
  checkpoint: Optional[str]  # --output_dir's latest checkpoint: an existing model
  info: Dict[str, Any]  # the existing model's task.json; {} for a new model
  advice: str  # appended to an error about an existing model --do_train would resume
  source: Optional[checkpoints.Source] = None  # what a new model starts from; None: random
  layer_map: Optional[List[int]] = None
  # How the model's MLM head began (`checkpoints.mlm_head_state`); recorded
  # in a new model's task.json. A model written before the record: "loaded".
  mlm_head: str = "loaded"


def choose_model(
  config,
  init: Optional[str],
  check_existing: Callable[[Dict[str, Any], str], None],
  check_new: Callable[[], None],
) -> ModelChoice:
  """The model of `config.output_dir` when it holds a checkpoint (resume or
  evaluate it: `check_existing(task_info, advice)` refuses one that is not
  the job's, then the model flags must restate it), else a new one from
  `init` (`check_new()` refuses first when the job cannot start one)."""
  out = config.output_dir
  latest = checkpoints.latest_checkpoint(out) if tf.io.gfile.isdir(out) else None
  if latest:
    advice = model_dir.resume_advice(out, latest, config.do_train)
    info = model_dir.read_task_info(out)
    check_existing(info, advice)
    bert_config, vocab_file = model_dir.check_model(out, config, init, advice)
    return ModelChoice(
      bert_config, vocab_file, latest, info, advice, mlm_head=info.get("mlm_head", "loaded")
    )
  check_new()
  layer_map = checkpoints.parse_layer_map(config.layer_map)
  bert_config, source = checkpoints.resolve_config(
    init, config.bert_config_file, config.num_hidden_layers, layer_map
  )
  vocab_file = checkpoints.resolve_vocab_file(config.vocab_file, source, bert_config)
  mlm_head = checkpoints.mlm_head_state(source)
  logging.info(
    "MLM head (cls/predictions): %s",
    {
      "loaded": f"loaded from {source and source.path}",
      "initialised": f"initialised (not in {source and source.path})",
      "random": "initialised with the whole model (no --init_checkpoint)",
    }[mlm_head],
  )
  return ModelChoice(bert_config, vocab_file, None, {}, "", source, layer_map, mlm_head)


class Session:
  """The model and its optimizer under the strategy, restored from the
  model directory's latest checkpoint or initialised from the chosen
  source; trains them with checkpoints and records their evaluation."""

  def __init__(
    self,
    strategy: tf.distribute.Strategy,
    config,
    choice: ModelChoice,
    task: str,
    num_labels: int,
    num_train_steps: int,
    num_warmup_steps: int,
    head_warmup: tuple = (0, 0.0),
  ):
    """`head_warmup`: (steps, learning rate) of an MLM head warm-up before
    the `num_train_steps` (`optimization.create_optimizer`)."""
    self.strategy, self.config, self.choice = strategy, config, choice
    with strategy.scope(), precision.policy(config.dtype):
      self.model = task_models.BertTaskModel(choice.bert_config, task, num_labels)
      self.optimizer = precision.wrap_optimizer(
        optimization.create_optimizer(
          config.learning_rate,
          num_train_steps,
          num_warmup_steps,
          config.weight_decay,
          head_warmup,
        ),
        config.dtype,
      )
    self.chief = training.is_chief(strategy)
    self.run_state = training.CheckpointedRun(
      self.model, self.optimizer, config.output_dir, is_chief=self.chief
    )
    self.start_step = self.run_state.restore_or_initialize(self._initialize)

  def _initialize(self) -> None:  # a new model
    if self.choice.source is not None:
      checkpoints.init_from_checkpoint(self.model.bert, self.choice.source, self.choice.layer_map)

  @property
  def step(self) -> int:
    return int(self.optimizer.iterations.numpy())

  def write_new_model(self, task_info: Dict[str, Any]) -> None:
    """A new model's settings (config, vocabulary, task.json with how its
    MLM head began); an existing model's are never rewritten."""
    if self.chief and not self.choice.checkpoint:
      model_dir.write(
        self.config.output_dir,
        self.choice.bert_config,
        self.choice.vocab_file,
        {**task_info, "mlm_head": self.choice.mlm_head},
      )

  def trainer(self, **losses) -> training.Trainer:
    return training.Trainer(self.strategy, self.model, self.optimizer, **losses)

  def train(
    self,
    trainer: training.Trainer,
    training_input: input_pipeline.TrainingInput,
    num_train_steps: int,
    **epochs,
  ) -> Dict[str, float]:
    """`training.train` to `num_train_steps` in the model directory
    (`epochs`: its `boundaries` and `at_boundary`)."""
    config = self.config
    return training.train(
      trainer,
      self.run_state,
      training_input,
      num_train_steps,
      config.save_checkpoints_steps,
      config.train_batch_size,
      training.summary_dir(config.output_dir, "train"),
      **epochs,
    )

  def record_eval(self, results: Dict[str, Any], summaries: bool) -> Dict[str, Any]:
    """`results` at the current step, written by the chief to
    eval_results.txt, with eval summaries when `summaries` (a run that
    only evaluates a fine-tuned model leaves its directory as it is)."""
    results["global_step"] = self.step
    if self.chief:
      if summaries:
        training.record_eval(self.config.output_dir, results, results["global_step"])
      else:
        model_dir.write_eval_results(self.config.output_dir, results)
    return results
