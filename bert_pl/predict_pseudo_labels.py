r"""Step 3: pseudo-labels for the unlabeled pool, with a fine-tuned model.

    python -m bert_pl.predict_pseudo_labels --model_dir=models/model_b \
      --input_file='pool/part-*.txt' --output_dir=pseudo/ --predict_batch_size=256 \
      --num_shards=4 --shard_index=0 --min_confidence=0.0

Each input file (an input shard, unlabeled format) gives one output file of
the same name in `--output_dir`, in the labeled format of the model's task
(classification TSV, or NER CoNLL with one character per line) plus
`<name>.confidence` and, with `--write_logits`, `<name>.logits` (the
teacher's pre-softmax logits, `--logits_top_k` largest for classification;
format in `prediction`); all are written under temporary names and renamed
when the file is complete (side files first), so re-running skips finished
files and a killed job resumes without losing or duplicating a line. `--num_shards`/`--shard_index`
split the input files between processes or machines (file i goes to shard
i mod num_shards): cut a large corpus into many files first.

Speed: lines are encoded in windows of `--sort_window` batches and sorted by
length, and each batch is cut to its longest row, so short texts are not
padded to `--max_seq_length`. `--dtype=bfloat16` (float16) predicts in
mixed precision and `--use_xla` compiles the model with XLA: each is faster
on some hardware only (see bench/). `--fast_model` predicts with the ONNX
Runtime model of `export_fast_model` instead (int8: about twice as fast
on CPU, README "Speed"), after its accuracy gate (`fast_inference`). Lines below
`--min_confidence` are counted as filtered and not written.
"""

import dataclasses
import json
import os
import re
import time
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import flags, logging

from bert_pl import (
  atomic_files,
  cli,
  errors,
  fast_inference,
  features,
  input_files,
  job_config,
  manifest,
  model_dir,
  prediction,
)


@dataclasses.dataclass(frozen=True)
class PredictPseudoLabelsConfig:
  """The job's settings; the flags have the same names and defaults."""

  model_dir: str  # a fine-tuned model directory (step 2)
  input_file: str  # comma list of files or globs
  output_dir: str
  predict_batch_size: int = 256
  max_seq_length: Optional[int] = None  # the model's; given, it must be the same
  num_shards: int = 1  # the Beam job has none: it spreads the files itself
  shard_index: int = 0
  min_confidence: float = 0.0
  sort_window: int = 64
  skip_bad_lines: bool = False
  dtype: str = "float32"
  use_xla: bool = False
  write_logits: bool = False
  logits_top_k: int = 0
  fast_model: Optional[str] = None  # export_fast_model's model (fast_inference)
  calibration_file: Optional[str] = None  # labeled: the fast model's accuracy gate
  min_agreement: float = 0.995
  force_quantized: bool = False


class Labeled(NamedTuple):
  """A window's output: `kept` are the positions of the examples kept
  (confidence >= min_confidence), the other fields theirs."""

  kept: List[int]
  lines: List[str]  # output lines (classification) or CoNLL blocks (NER)
  confidences: List[str]
  logits: Optional[List[str]]  # None without --write_logits
  truncated: int  # examples truncated to max_seq_length


class PseudoLabeler:
  """Encodes, predicts and formats windows of unlabeled examples."""

  def __init__(self, config: PredictPseudoLabelsConfig):
    # The model's max_seq_length; one given must be the same.
    given = {"max_seq_length": config.max_seq_length}
    if config.fast_model:
      _, tokenizer, info, _ = model_dir.read_finetuned(config.model_dir, given)
      self.predictor = fast_inference.FastPredictor(
        config.fast_model, config.model_dir, info, config.predict_batch_size
      )
    else:
      model, tokenizer, info = model_dir.load_finetuned(config.model_dir, config.dtype, given)
      self.predictor = prediction.Predictor(
        model, config.predict_batch_size, use_xla=config.use_xla
      )
    self.task = info["task"]
    self.format = prediction.OutputFormat(
      self.task, info["labels"], config.write_logits, config.logits_top_k
    )
    self.encoder = features.prediction_encoder(
      tokenizer, info["max_seq_length"], self.task, info.get("field_join", "sep")
    )
    self.window = config.sort_window * config.predict_batch_size
    self.min_confidence = config.min_confidence

  def label_file(self, path: str, output_path: str, counts: input_files.Counts, progress) -> None:
    with prediction.AtomicOutput(output_path, self.format.write_logits) as output:
      window: List[input_files.Example] = []
      for example in input_files.read_unlabeled(path, counts):
        window.append(example)
        if len(window) == self.window:
          self._label_window(window, output, counts)
          progress(counts)
          window = []
      if window:
        self._label_window(window, output, counts)
    progress(counts)

  def _label_window(self, examples, output, counts) -> None:
    labeled = self.label(examples)
    output.write(labeled.lines, labeled.confidences, labeled.logits)
    counts.written += len(labeled.lines)
    counts.skipped += len(examples) - len(labeled.lines)  # filtered by --min_confidence
    counts.truncated += labeled.truncated

  def label(self, examples: List[input_files.Example]) -> Labeled:
    """Predicts a window of examples (sorted by length inside)."""
    encoded, truncated = self.encoder.encode(examples)
    outputs = prediction.predict_sorted(self.predictor, encoded)
    keep = outputs["confidence"] >= self.min_confidence
    kept = [e for e, k in zip(examples, keep) if k]
    lines, confidences, logits = self.format.lines(
      kept,
      {k: encoded[k][keep] for k in ("starts", "ends") if k in encoded},
      {k: v[keep] for k, v in outputs.items()},
    )
    return Labeled(np.flatnonzero(keep).tolist(), lines, confidences, logits, int(truncated.sum()))


def shard_files(files: List[str], num_shards: int, shard_index: int) -> List[str]:
  if not 0 <= shard_index < num_shards:
    raise errors.InputError(f"--shard_index={shard_index} is not in [0, {num_shards})")
  return [f for i, f in enumerate(sorted(files)) if i % num_shards == shard_index]


# What a run's outputs were written with, by content (`MadeWith`):
# `--output_dir/.made_with-<shard>.json`, one per shard of the files.
MADE_WITH_PATTERN = ".made_with-{}.json"


class MadeWith:
  """What a pseudo-label file depends on besides its input: the model (its
  weights, labels and vocabulary: `model_dir.fingerprint`), the fast model
  (its sha256) and the settings that change what is written. A run skips
  the files already in --output_dir by name, so it first refuses a
  directory whose files were written with anything else (they would be
  kept, mixed with this run's); it records its own once a file is written."""

  def __init__(self, config: PredictPseudoLabelsConfig, shard: str):
    self.output_dir = config.output_dir
    self.path = os.path.join(config.output_dir, MADE_WITH_PATTERN.format(shard))
    fast_model = None
    if config.fast_model:
      with errors.reading(config.fast_model):
        fast_model = manifest.sha256_of(config.fast_model)
    self.values = {
      "model_fingerprint": model_dir.fingerprint(config.model_dir),
      "fast_model_sha256": fast_model,
      "min_confidence": config.min_confidence,
      "logits_top_k": config.logits_top_k,
    }

  def check(self) -> None:
    """Refuses the output directory when a record there differs from ours."""
    pattern = os.path.join(self.output_dir, MADE_WITH_PATTERN.format("*"))
    for path in sorted(tf.io.gfile.glob(pattern)):
      with errors.reading(path, "not JSON", damaged=(json.JSONDecodeError,)):
        with tf.io.gfile.GFile(path) as f:
          there = json.load(f)
      other = [
        k for k, v in self.values.items() if not isinstance(there, dict) or there.get(k) != v
      ]
      if other:
        raise errors.InputError(
          f"{path}: the outputs in {self.output_dir} were written with another "
          f"{', '.join(other)} than this run's; give another --output_dir"
        )

  def record(self) -> None:
    if not tf.io.gfile.exists(self.path):
      model_dir.write_json(self.path, self.values)


def pending_files(
  input_patterns: str,
  output_dir: str,
  num_shards: int = 1,
  shard_index: int = 0,
  write_logits: bool = False,
) -> Tuple[List[str], int]:
  """This shard's input files whose output (with its `.logits` when
  `write_logits`) is not yet in `output_dir`, and the number of this
  shard's files already done; removes the temporaries a killed run left."""
  files = shard_files(input_files.expand_input_files(input_patterns), num_shards, shard_index)
  names = [os.path.basename(f) for f in files]
  input_files.check_not_inputs(
    [
      os.path.join(output_dir, n + s)
      for n in names
      for s in ("", input_files.CONFIDENCE_SUFFIX, input_files.LOGITS_SUFFIX)
    ],
    f"--output_dir={output_dir} (outputs take their input's name)",
    {"--input_file": files},
  )
  if len(set(names)) != len(names):
    raise errors.InputError(
      "input files of one shard must have distinct names (outputs are named after them)"
    )
  # A killed run's temporaries of these outputs (with their side files).
  atomic_files.remove_stale_temporaries(
    output_dir, "(?:" + "|".join(map(re.escape, names)) + r")(\.confidence|\.logits)?"
  )
  suffixes = ["", input_files.LOGITS_SUFFIX] if write_logits else [""]
  todo = [
    f
    for f in files
    if not all(
      tf.io.gfile.exists(os.path.join(output_dir, os.path.basename(f) + s)) for s in suffixes
    )
  ]
  return todo, len(files) - len(todo)


def run(config: PredictPseudoLabelsConfig) -> input_files.Counts:
  """Labels this shard's input files not done yet; returns the counts."""
  fast_inference.check_flags(config)
  output_dir = config.output_dir
  atomic_files.makedirs(output_dir)
  todo, done = pending_files(
    config.input_file, output_dir, config.num_shards, config.shard_index, config.write_logits
  )
  logging.info("%d input files in this shard, %d already done", len(todo) + done, done)
  labeler = PseudoLabeler(config)
  if config.fast_model:
    fast_inference.gate(config, labeler.predictor)
  made_with = MadeWith(config, f"{config.shard_index}-of-{config.num_shards}")
  made_with.check()
  total_bytes = sum(tf.io.gfile.stat(f).length for f in todo) or 1
  counts = input_files.Counts(skip_bad_lines=config.skip_bad_lines)
  start, done_bytes = time.time(), 0

  def progress(c):
    elapsed = max(time.time() - start, 1e-9)
    fraction = min(done_bytes / total_bytes, 1.0)
    eta = elapsed * (1 - fraction) / fraction if fraction else float("nan")
    logging.info(
      "%d lines read, %.0f lines/s, %d written, %d filtered; ETA %.0fs",
      c.read,
      c.read / elapsed,
      c.written,
      c.skipped,
      eta,
    )

  for path in todo:
    labeler.label_file(path, os.path.join(output_dir, os.path.basename(path)), counts, progress)
    made_with.record()
    done_bytes += tf.io.gfile.stat(path).length
    progress(counts)
  return counts


def main(argv):
  del argv
  config = job_config.config_from_flags(PredictPseudoLabelsConfig)
  start = time.time()
  counts = run(config)
  elapsed = time.time() - start
  print(
    f"predict_pseudo_labels: read {counts.read}, written {counts.written}, filtered "
    f"{counts.skipped} (confidence < {config.min_confidence}), empty {counts.empty}, "
    f"truncated {counts.truncated} in {elapsed:.1f}s "
    f"({counts.read / max(elapsed, 1e-9):.0f} lines/s)"
  )


def define_flags(sharded_by_hand: bool = True):
  """The job's flags; the Beam job, which spreads the files itself, has no
  --num_shards/--shard_index."""
  d = job_config.field_defaults(PredictPseudoLabelsConfig)
  flags.DEFINE_string("model_dir", None, "A fine-tuned model directory (step 2).")
  flags.DEFINE_string("input_file", None, "Unlabeled input files (comma list of globs).")
  flags.DEFINE_string("output_dir", None, "Where the pseudo-labeled files go.")
  flags.DEFINE_integer("predict_batch_size", d["predict_batch_size"], "Batch size.")
  flags.DEFINE_integer(
    "max_seq_length", d["max_seq_length"], "The model's (task.json); given, it must be the same."
  )
  if sharded_by_hand:
    flags.DEFINE_integer(
      "num_shards", d["num_shards"], "Processes/machines sharing the input files."
    )
    flags.DEFINE_integer(
      "shard_index", d["shard_index"], "This process's shard, in [0, num_shards)."
    )
  flags.DEFINE_float(
    "min_confidence", d["min_confidence"], "Drop (and count) lines below this confidence."
  )
  flags.DEFINE_integer("sort_window", d["sort_window"], "Batches sorted by length together.")
  cli.define_skip_bad_lines_flag()
  cli.define_dtype_flag()
  flags.DEFINE_bool("use_xla", d["use_xla"], "Compile the model with XLA.")
  cli.define_logits_flags()
  flags.DEFINE_string(
    "fast_model",
    d["fast_model"],
    "Predict with this export_fast_model file (ONNX Runtime) instead of the TensorFlow "
    "model; --model_dir still gives the tokenizer, labels and NER's CRF transitions.",
  )
  flags.DEFINE_string(
    "calibration_file",
    d["calibration_file"],
    "A labeled file of the model's task (e.g. the step-2 dev set): the fast model is "
    "compared with float32 TensorFlow on it first (OUTPUT_DIR/quantization_check.json).",
  )
  flags.DEFINE_float(
    "min_agreement",
    d["min_agreement"],
    "Refuse a fast model whose labels (tags) agree with float32 on less of --calibration_file.",
  )
  flags.DEFINE_bool(
    "force_quantized",
    d["force_quantized"],
    "Use a quantized --fast_model unchecked, or below --min_agreement.",
  )
  flags.mark_flags_as_required(["model_dir", "input_file", "output_dir"])
  cli.require_max_seq_length(optional=True)
  cli.require(lambda v: v >= 1, ">= 1", "predict_batch_size", "sort_window")
  cli.require(lambda v: 0 <= v <= 1, "in [0, 1]", "min_confidence", "min_agreement")


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
