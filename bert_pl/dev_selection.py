"""Choosing the epoch on dev inside one fine-tuning (`--dev_file`, `--keep_best_on_dev`).

The dev set is evaluated at the end of every epoch, on the model as saved at
that step. Each epoch's results go to the model directory's dev_results.json
as soon as they are known, and with `--keep_best_on_dev` the weights of the
best epoch so far (by the task's headline metric, `pipeline_report.HEADLINE`:
accuracy, NER entity F1; a tie keeps the earlier epoch) to dev_best/: both
are what a resumed run needs to make the choice an uninterrupted run makes,
without evaluating the epochs it did not train again. When training ends,
the kept weights are saved over the last step's checkpoint, so every later
job (evaluation, prediction, step 3, export) reads the chosen model as the
model directory's.

    {"metric": "accuracy", "epochs": [{"epoch": 1, "step": 63, "accuracy": 0.71, ...}, ...],
     "best_epoch": 2, "best_step": 125, "keep_best": true, "kept": "dev_best/epoch-2"}
"""

import os
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf
from absl import logging

from bert_pl import errors, model_dir, modeling, pipeline_report, training

DEV_RESULTS_FILE = pipeline_report.DEV_RESULTS_FILE  # the driver reads the choices from it
BEST_DIR = training.DEV_BEST_DIR


class EpochSelection:
  """The per-epoch dev results of one fine-tuning and the epoch they choose."""

  def __init__(
    self,
    run: training.CheckpointedRun,
    task: str,
    epoch_ends: List[int],
    evaluate: Callable[[], Dict[str, float]],
    keep_best: bool,
    start_step: int,
  ):
    """`start_step`: the step the run starts (resumes) at; the recorded
    epochs it has not reached are an earlier run's, in the same directory."""
    self.run, self.epoch_ends, self.evaluate, self.keep_best = run, epoch_ends, evaluate, keep_best
    self.metric = pipeline_report.HEADLINE[task]
    self.path = os.path.join(run.model_dir, DEV_RESULTS_FILE)
    self.record: Dict[str, Any] = {"metric": self.metric, "epochs": [], "keep_best": keep_best}
    if tf.io.gfile.exists(self.path):
      epochs = modeling.read_json(self.path)["epochs"]
      self.record["epochs"] = [e for e in epochs if e["step"] <= start_step]

  def at_epoch_end(self, step: int) -> None:
    """Evaluates dev on the model of `step` (an epoch's end) unless its
    results are already recorded; keeps its weights when they are the best."""
    epoch = self.epoch_ends.index(step) + 1
    if any(e["epoch"] == epoch for e in self.record["epochs"]):
      return
    results = dict(self.evaluate(), epoch=epoch, step=step)
    best = self.best()
    logging.info("dev after epoch %d (step %d): %s", epoch, step, results)
    if self.keep_best and (best is None or results[self.metric] > best[self.metric]):
      prefix = os.path.join(self.run.model_dir, BEST_DIR, f"epoch-{epoch}")
      if self.run.is_chief:
        with errors.writing(prefix, "cannot write the best model on dev"):
          self.run.model_checkpoint().write(prefix)
    self.record["epochs"].append(results)
    self._write()

  def best(self) -> Optional[Dict[str, float]]:
    """The recorded epoch with the highest metric, the earliest of a tie."""
    epochs = sorted(self.record["epochs"], key=lambda e: e["epoch"])
    return max(epochs, key=lambda e: e[self.metric]) if epochs else None  # the first of equals

  def _write(self) -> None:
    best = self.best()
    self.record.update(best_epoch=best["epoch"], best_step=best["step"])
    if self.keep_best:
      self.record["kept"] = f"{BEST_DIR}/epoch-{best['epoch']}"
    if self.run.is_chief:
      model_dir.write_json(self.path, self.record)

  def keep(self) -> Optional[str]:
    """With `keep_best`, the best epoch's weights become the model and the
    model directory's latest checkpoint (returned); without, nothing changes."""
    best = self.best()
    if not self.keep_best or best is None:
      return None
    if best["step"] != self.epoch_ends[-1]:
      prefix = os.path.join(self.run.model_dir, self.record["kept"])
      self.run.model_checkpoint().read(prefix).assert_existing_objects_matched()
      self.run.save_over_latest()
    logging.info("kept epoch %d of %d, best on dev", best["epoch"], len(self.epoch_ends))
    return self.run.latest_checkpoint

  def eval_results(self) -> Dict[str, float]:
    """eval_results.txt's dev keys: each epoch's metric and the chosen epoch."""
    results = {
      f"dev_{self.metric}_epoch_{e['epoch']}": e[self.metric] for e in self.record["epochs"]
    }
    best = self.best()
    if best is not None:
      results["dev_best_epoch"] = best["epoch"]
    return results
