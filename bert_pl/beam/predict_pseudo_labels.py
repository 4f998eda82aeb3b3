r"""Beam job, step 3: pseudo-labels for the unlabeled pool with a fine-tuned model.

    python -m bert_pl.beam.predict_pseudo_labels --model_dir=models/model_b \
      --input_file='pool/part-*.txt' --output_dir=pseudo/ --predict_batch_size=256 \
      --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=8

Writes what `python -m bert_pl.predict_pseudo_labels` writes: for each input
file, a file of the same name in `--output_dir` (labeled format) and its
`.confidence` side file, in input order, each written under a temporary name
and renamed when complete; files whose output exists are skipped, so a
failed pipeline is resumed by running it again. Lines are read per file,
spread over the workers, grouped by `beam.BatchElements` (between one and
`--sort_window` batches) and predicted by the single-process job's
`PseudoLabeler`, which each worker loads once (`DoFn.setup`). The files are
then reassembled per input file, in line order. Batches differ from the
single-process job's, so confidences may differ in the last digits
(float32 rounding); labels and tags are the same but for exact ties.
"""

import os
import time

import apache_beam as beam
import tensorflow as tf
from absl import flags

from bert_pl import input_files, prediction, predict_pseudo_labels
from bert_pl.beam import common


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
  text, confidence line)) for the examples kept by --min_confidence."""

  def __init__(self, model_dir: str, batch_size: int, max_seq_length: int, sort_window: int,
               min_confidence: float, dtype: str, use_xla: bool):
    self.args = (model_dir, batch_size, max_seq_length, sort_window, min_confidence, dtype,
                 use_xla)
    self.written, self.filtered, self.truncated = (
        common.counter(n) for n in ("written", "skipped", "truncated"))
    self.labeler = None

  def setup(self):
    common.import_tensorflow_text()
    self.labeler = predict_pseudo_labels.PseudoLabeler(*self.args)

  def process(self, batch):
    kept, texts, confidences, truncated = self.labeler.label([e for _, (_, e) in batch])
    for i, text, confidence in zip(kept, texts, confidences):
      path, (position, _) = batch[i]
      yield path, (position, text, confidence)
    self.written.inc(len(kept))
    self.filtered.inc(len(batch) - len(kept))
    self.truncated.inc(truncated)


class WriteFileFn(beam.DoFn):
  """(path, {"file": [path], "lines": [(position, text, confidence)...]}) ->
  the output file and its side file, in input order, written atomically."""

  def __init__(self, output_dir: str):
    self.output_dir = output_dir
    self.files = common.counter("files_written")

  def process(self, element):
    path, grouped = element
    lines = sorted(grouped["lines"])
    output = prediction.AtomicOutput(os.path.join(self.output_dir, os.path.basename(path)))
    output.write([text for _, text, _ in lines], [confidence for _, _, confidence in lines])
    output.commit()
    self.files.inc()
    yield path


def build(pipeline: beam.Pipeline, todo, output_dir: str, batch_size: int, predict_args):
  """Adds the job's transforms to `pipeline`; `predict_args` are `PredictFn`'s."""
  files = pipeline | "Files" >> beam.Create(todo)
  labeled = (files
             | "SpreadFiles" >> beam.Reshuffle()
             | "ReadLines" >> beam.ParDo(ReadLinesFn())
             | "SpreadLines" >> beam.Reshuffle()
             | "Batch" >> beam.BatchElements(min_batch_size=batch_size,
                                              max_batch_size=batch_size * predict_args[3])
             | "Predict" >> beam.ParDo(PredictFn(*predict_args)))
  # Every file gets an output, also one whose lines were all filtered or empty.
  _ = ({"file": files | "KeyFiles" >> beam.Map(lambda path: (path, path)), "lines": labeled}
       | "GroupByFile" >> beam.CoGroupByKey()
       | "WriteFiles" >> beam.ParDo(WriteFileFn(output_dir)))


def main(argv):
  f = flags.FLAGS
  tf.io.gfile.makedirs(f.output_dir)
  todo, done = predict_pseudo_labels.pending_files(f.input_file, f.output_dir)
  pipeline = beam.Pipeline(options=common.pipeline_options(f.runner, argv[1:]))
  build(pipeline, todo, f.output_dir, f.predict_batch_size,
        (f.model_dir, f.predict_batch_size, f.max_seq_length, f.sort_window, f.min_confidence,
         f.dtype, f.use_xla))
  start = time.time()
  totals = common.run_pipeline(pipeline) if todo else {}
  elapsed = time.time() - start
  read = totals.get("read", 0)
  print(f"beam.predict_pseudo_labels: {len(todo)} files labeled ({done} already done), read "
        f"{read}, written {totals.get('written', 0)}, filtered {totals.get('skipped', 0)} "
        f"(confidence < {f.min_confidence}), empty {totals.get('empty', 0)}, truncated "
        f"{totals.get('truncated', 0)} in {elapsed:.1f}s ({read / max(elapsed, 1e-9):.0f} "
        "lines/s)")


def run_main():
  predict_pseudo_labels.define_flags(sharded_by_hand=False)
  common.run(main)


if __name__ == "__main__":
  run_main()
