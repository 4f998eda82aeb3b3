r"""Beam job, step 3: pseudo-labels for the unlabeled pool with a fine-tuned model.

    python -m bert_pl.beam.predict_pseudo_labels --model_dir=models/model_b \
      --input_file='pool/part-*.txt' --output_dir=pseudo/ --predict_batch_size=256 \
      --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=8

Writes what `python -m bert_pl.predict_pseudo_labels` writes: for each input
file, a file of the same name in `--output_dir` (labeled format) and its
`.confidence` (and, with `--write_logits`, `.logits`) side files, in input
order, each written under a temporary name and renamed when complete; files
whose output exists are skipped, so a failed pipeline is resumed by running
it again. Lines are read per file, spread over the workers, grouped by
`beam.BatchElements` (between one and `--sort_window` batches) and predicted
by the single-process job's `PseudoLabeler`, which each worker loads once
(`DoFn.setup`), with its `--fast_model` if given (whose accuracy gate runs
here, before the pipeline). The files are then reassembled per input file, in line
order. Batches differ from the single-process job's, so confidences and
logits may differ in the last digits (float32 rounding); labels and tags
are the same but for exact ties (with an int8 `--fast_model`, near ties:
see `fast_inference`).
"""

import os
import time
from typing import Dict, List, Tuple

import apache_beam as beam
from absl import flags
from apache_beam.options.pipeline_options import PipelineOptions

from bert_pl import atomic_files, fast_inference, input_files, job_config, model_dir, prediction
from bert_pl.beam import common
from bert_pl.predict_pseudo_labels import (
  MadeWith,
  PredictPseudoLabelsConfig,
  PseudoLabeler,
  define_flags,
  pending_files,
)


class ReadLinesFn(beam.DoFn):
  """path -> (path, (position, example)) for each non-empty line."""

  def __init__(self):
    self.read, self.empty = common.counter("read"), common.counter("empty")

  def process(self, path):
    counts = input_files.Counts()
    for position, example in enumerate(input_files.read_unlabeled(path, counts)):
      yield path, (position, example)
    self.read.inc(counts.read)
    self.empty.inc(counts.empty)


class PredictFn(beam.DoFn):
  """A batch of (path, (position, example)) -> (path, (position, output
  text, confidence line, logits line or None)) for the examples kept by
  --min_confidence."""

  loads = 0  # models loaded in this process: one per worker (the tests count the prints)

  def __init__(self, config: PredictPseudoLabelsConfig):
    self.config = config
    self.written, self.filtered, self.truncated = (
      common.counter(n) for n in ("written", "skipped", "truncated")
    )
    self.labeler = None

  def setup(self):
    common.import_tensorflow_text()
    self.labeler = PseudoLabeler(self.config)
    PredictFn.loads += 1
    print(
      f"beam.predict_pseudo_labels: process {os.getpid()} loaded "
      f"{self.config.fast_model or self.config.model_dir} (load {PredictFn.loads} in it)",
      flush=True,
    )

  def process(self, batch):
    labeled = self.labeler.label([e for _, (_, e) in batch])
    logits = labeled.logits or [None] * len(labeled.kept)
    for i, text, confidence, logit in zip(labeled.kept, labeled.lines, labeled.confidences, logits):
      path, (position, _) = batch[i]
      yield path, (position, text, confidence, logit)
    self.written.inc(len(labeled.kept))
    self.filtered.inc(len(batch) - len(labeled.kept))
    self.truncated.inc(labeled.truncated)


class WriteFileFn(beam.DoFn):
  """(path, {"file": [path], "lines": [(position, text, confidence, logits)...]})
  -> the output file and its side files, in input order, written atomically."""

  def __init__(self, output_dir: str, write_logits: bool):
    self.output_dir, self.write_logits = output_dir, write_logits
    self.files = common.counter("files_written")

  def process(self, element):
    path, grouped = element
    lines = sorted(grouped["lines"])
    with prediction.AtomicOutput(
      os.path.join(self.output_dir, os.path.basename(path)), self.write_logits
    ) as output:
      output.write(
        [line[1] for line in lines],
        [line[2] for line in lines],
        [line[3] for line in lines] if self.write_logits else None,
      )
    self.files.inc()
    yield path


def build(pipeline: beam.Pipeline, config: PredictPseudoLabelsConfig, todo: List[str]) -> None:
  """Adds the job's transforms for the input files `todo` to `pipeline`."""
  batch_size = config.predict_batch_size
  files = pipeline | "Files" >> beam.Create(todo)
  labeled = (
    files
    | "SpreadFiles" >> beam.Reshuffle()
    | "ReadLines" >> beam.ParDo(ReadLinesFn())
    | "SpreadLines" >> beam.Reshuffle()
    | "Batch"
    >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size * config.sort_window)
    | "Predict" >> beam.ParDo(PredictFn(config))
  )
  # Every file gets an output, also one whose lines were all filtered or empty.
  _ = (
    {"file": files | "KeyFiles" >> beam.Map(lambda path: (path, path)), "lines": labeled}
    | "GroupByFile" >> beam.CoGroupByKey()
    | "WriteFiles" >> beam.ParDo(WriteFileFn(config.output_dir, config.write_logits))
  )


def run(
  config: PredictPseudoLabelsConfig, options: PipelineOptions
) -> Tuple[Dict[str, int], int, int]:
  """Runs the job on the runner of `options` (its `num_shards` and
  `shard_index` are unused: the runner spreads the files); returns the
  counters, the number of files labeled and of files done earlier."""
  fast_inference.check_flags(config)
  atomic_files.makedirs(config.output_dir)
  info = model_dir.read_task_info(config.model_dir)
  # Checks the settings here, not in the workers.
  model_dir.check_settings(config.model_dir, info, {"max_seq_length": config.max_seq_length})
  prediction.OutputFormat(info["task"], info["labels"], config.write_logits, config.logits_top_k)
  if config.fast_model:  # the accuracy gate, once, before any worker starts
    fast_inference.gate(
      config,
      fast_inference.FastPredictor(
        config.fast_model, config.model_dir, info, config.predict_batch_size
      ),
    )
  made_with = MadeWith(config, "beam")
  made_with.check()
  todo, done = pending_files(config.input_file, config.output_dir, write_logits=config.write_logits)
  if not todo:
    return {}, 0, done
  pipeline = beam.Pipeline(options=options)
  build(pipeline, config, todo)
  counters = common.run_pipeline(pipeline)
  made_with.record()
  return counters, len(todo), done


def main(argv):
  config = job_config.config_from_flags(PredictPseudoLabelsConfig)
  options = common.pipeline_options(flags.FLAGS.runner, argv[1:])
  start = time.time()
  totals, labeled, done = run(config, options)
  elapsed = time.time() - start
  read = totals.get("read", 0)
  print(
    f"beam.predict_pseudo_labels: {labeled} files labeled ({done} already done), read "
    f"{read}, written {totals.get('written', 0)}, filtered {totals.get('skipped', 0)} "
    f"(confidence < {config.min_confidence}), empty {totals.get('empty', 0)}, truncated "
    f"{totals.get('truncated', 0)} in {elapsed:.1f}s ({read / max(elapsed, 1e-9):.0f} "
    "lines/s)"
  )


def run_main():
  define_flags(sharded_by_hand=False)
  common.run(main)


if __name__ == "__main__":
  run_main()
