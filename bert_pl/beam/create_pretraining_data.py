r"""Beam job: TFRecords for masked-LM pre-training, with pseudo-labels (steps 1, 4).

    python -m bert_pl.beam.create_pretraining_data --input_file='pool/part-*.txt' \
      --output_file=data/pretrain.tfrecord --num_output_shards=64 \
      --vocab_file=vocab.txt --max_seq_length=64 --max_predictions_per_seq=10 \
      --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=8

Same flags and same examples as `python -m bert_pl.create_pretraining_data`
(for the same `--random_seed`): each input file is read by one worker and
cut into chunks of `CHUNK_SIZE` examples, chunk k of file f is masked with the
generator seeded (seed, f, k, d) by the single-process job's `ChunkProcessor`
on whichever worker gets it, and Beam writes the records to
`--num_output_shards` shards (in another order than the single-process job:
training shuffles anyway). A large corpus must be cut into many files first,
since a file is read by one worker. Shards appear under their final names
only when the pipeline completes (Beam writes temporary files, then renames;
a re-run removes the `beam-temp-*` directory of a killed one), and their
manifest (`bert_pl.manifest`, the single-process job's) after them.
"""

import time
from typing import List, Tuple

import apache_beam as beam
from absl import flags
from apache_beam.options.pipeline_options import PipelineOptions

from bert_pl import create_pretraining_data, errors, input_files, job_config, manifest, tfrecords
from bert_pl.beam import common
from bert_pl.create_pretraining_data import CreatePretrainingDataConfig, Labels


class ReadChunksFn(beam.DoFn):
  """(file index, path) -> ((file index, chunk index), examples) chunks."""

  def __init__(self, config: CreatePretrainingDataConfig, labels: Labels, with_logits: bool):
    self.config, self.labels, self.with_logits = config, labels, with_logits
    self.read, self.empty, self.skipped = (common.counter(n) for n in ("read", "empty", "skipped"))

  def process(self, element):
    file_index, path = element
    counts = input_files.Counts(skip_bad_lines=self.config.skip_bad_lines)
    yield from create_pretraining_data.read_file_chunks(
      path, file_index, self.config, self.labels, counts, self.with_logits
    )
    self.read.inc(counts.read)
    self.empty.inc(counts.empty)
    self.skipped.inc(counts.skipped)


class MaskChunkFn(beam.DoFn):
  """A chunk -> its serialized, masked `tf.train.Example`s (the single-process
  job's `ChunkProcessor`, built once per worker)."""

  def __init__(self, config: CreatePretrainingDataConfig, labels: Labels):
    self.config, self.labels = config, labels
    self.written, self.truncated, self.logits = (
      common.counter(n) for n in ("written", "truncated", "logits")
    )
    self.processor = None

  def setup(self):
    common.import_tensorflow_text()
    self.processor = create_pretraining_data.ChunkProcessor(self.config, self.labels)

  def process(self, chunk):
    records, truncated, with_logits = self.processor(chunk)
    self.written.inc(len(records))
    self.truncated.inc(truncated)
    self.logits.inc(with_logits)
    yield from records


def build(
  pipeline: beam.Pipeline,
  config: CreatePretrainingDataConfig,
  labels: Labels,
  paths: List[str],
  with_logits: bool = False,
) -> None:
  """Adds the job's transforms to `pipeline`: the shards, then (each shard
  read once, by one worker) their manifest."""
  settings = create_pretraining_data.manifest_settings(config, labels)
  output_file, num_output_shards = config.output_file, config.num_output_shards
  _ = (
    pipeline
    | "Files" >> beam.Create(list(enumerate(paths)))
    | "SpreadFiles" >> beam.Reshuffle()
    | "ReadChunks" >> beam.ParDo(ReadChunksFn(config, labels, with_logits))
    | "SpreadChunks" >> beam.Reshuffle()
    | "MaskChunks" >> beam.ParDo(MaskChunkFn(config, labels))
    | "Write"
    >> beam.io.WriteToTFRecord(
      output_file,
      num_shards=num_output_shards,
      shard_name_template="" if num_output_shards == 1 else "-SSSSS-of-NNNNN",
    )
    | "ShardStats" >> beam.Map(manifest.shard_stats)
    | "AllShards" >> beam.combiners.ToList()
    | "WriteManifest" >> beam.Map(lambda shards: manifest.write(output_file, settings, shards))
  )


def run(
  config: CreatePretrainingDataConfig, options: PipelineOptions
) -> Tuple[input_files.Counts, int]:
  """Runs the job on the runner of `options` (its `num_workers` is unused:
  the runner has workers); returns the counts and the number of input files."""
  labels, paths, with_logits = create_pretraining_data.job_inputs(config)
  tfrecords.remove_stale_temporaries(config.output_file)
  manifest.remove(config.output_file)  # the earlier run's, whose shards are being replaced
  pipeline = beam.Pipeline(options=options)
  build(pipeline, config, labels, paths, with_logits)
  try:
    totals = common.run_pipeline(pipeline, config.output_file)
  except errors.OutputError:
    tfrecords.remove_stale_temporaries(config.output_file)  # Beam's beam-temp-* directory
    raise
  counts = input_files.Counts(
    **{k: totals.get(k, 0) for k in ("read", "written", "skipped", "empty", "truncated", "logits")}
  )
  return counts, len(paths)


def main(argv):
  config = job_config.config_from_flags(CreatePretrainingDataConfig)
  options = common.pipeline_options(flags.FLAGS.runner, argv[1:])
  start = time.time()
  counts, num_files = run(config, options)
  elapsed = time.time() - start
  print(
    f"beam.create_pretraining_data: {counts.summary()} "
    f"({config.masking_note()}{config.logits_note(counts)}) "
    f"in {elapsed:.1f}s, {counts.read / max(elapsed, 1e-9):.0f} lines/s, "
    f"{num_files} input files -> {config.output_file} ({config.num_output_shards} shards, "
    f"+ {manifest.path_of(config.output_file)})"
  )


def run_main():
  create_pretraining_data.define_flags(local_workers=False)
  common.run(main)


if __name__ == "__main__":
  run_main()
