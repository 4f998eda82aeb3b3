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

import apache_beam as beam
from absl import flags

from bert_pl import create_pretraining_data, input_files, manifest, tfrecords
from bert_pl.beam import common


class ReadChunksFn(beam.DoFn):
  """(file index, path) -> ((file index, chunk index), examples) chunks."""

  def __init__(self, task: str, labels, tag_scheme: str, skip_bad_lines: bool,
               with_logits: bool):
    self.task, self.labels, self.tag_scheme = task, labels, tag_scheme
    self.skip_bad_lines, self.with_logits = skip_bad_lines, with_logits
    self.read, self.empty, self.skipped = (common.counter(n) for n in ("read", "empty", "skipped"))

  def process(self, element):
    file_index, path = element
    counts = input_files.Counts(skip_bad_lines=self.skip_bad_lines)
    yield from create_pretraining_data.read_file_chunks(path, file_index, self.task, counts,
                                                        self.labels, self.tag_scheme,
                                                        self.with_logits)
    self.read.inc(counts.read)
    self.empty.inc(counts.empty)
    self.skipped.inc(counts.skipped)


class MaskChunkFn(beam.DoFn):
  """A chunk -> its serialized, masked `tf.train.Example`s (the single-process
  job's `ChunkProcessor`, built once per worker)."""

  def __init__(self, options: create_pretraining_data.Options):
    self.options = options
    self.written, self.truncated, self.logits = (
        common.counter(n) for n in ("written", "truncated", "logits"))
    self.processor = None

  def setup(self):
    common.import_tensorflow_text()
    self.processor = create_pretraining_data.ChunkProcessor(self.options)

  def process(self, chunk):
    records, truncated, with_logits = self.processor(chunk)
    self.written.inc(len(records))
    self.truncated.inc(truncated)
    self.logits.inc(with_logits)
    yield from records


def build(pipeline: beam.Pipeline, options: create_pretraining_data.Options, paths,
          output_file: str, num_output_shards: int, skip_bad_lines: bool = False,
          tag_scheme: str = "bio", with_logits: bool = False) -> None:
  """Adds the job's transforms to `pipeline`: the shards, then (each shard
  read once, by one worker) their manifest."""
  settings = options.manifest_settings()
  _ = (pipeline
       | "Files" >> beam.Create(list(enumerate(paths)))
       | "SpreadFiles" >> beam.Reshuffle()
       | "ReadChunks" >> beam.ParDo(ReadChunksFn(options.task, options.labels, tag_scheme,
                                                 skip_bad_lines, with_logits))
       | "SpreadChunks" >> beam.Reshuffle()
       | "MaskChunks" >> beam.ParDo(MaskChunkFn(options))
       | "Write" >> beam.io.WriteToTFRecord(
           output_file, num_shards=num_output_shards,
           shard_name_template="" if num_output_shards == 1 else "-SSSSS-of-NNNNN")
       | "ShardStats" >> beam.Map(manifest.shard_stats)
       | "AllShards" >> beam.combiners.ToList()
       | "WriteManifest" >> beam.Map(lambda shards: manifest.write(output_file, settings,
                                                                   shards)))


def main(argv):
  f = flags.FLAGS
  options = create_pretraining_data.options_from_flags(f)
  create_pretraining_data.check_counts(f.num_output_shards)
  paths, with_logits = create_pretraining_data.input_paths(options, f.input_file)
  tfrecords.remove_stale_temporaries(f.output_file)
  manifest.remove(f.output_file)  # the earlier run's, whose shards are being replaced
  pipeline = beam.Pipeline(options=common.pipeline_options(f.runner, argv[1:]))
  build(pipeline, options, paths, f.output_file, f.num_output_shards, f.skip_bad_lines,
        f.tag_scheme, with_logits)
  start = time.time()
  totals = common.run_pipeline(pipeline)
  elapsed = time.time() - start
  counts = input_files.Counts(**{k: totals.get(k, 0) for k in
                                 ("read", "written", "skipped", "empty", "truncated", "logits")})
  print(f"beam.create_pretraining_data: {counts.summary()} "
        f"({create_pretraining_data.masking_note(f.masked_lm_prob, f.dupe_factor)}"
        f"{create_pretraining_data.logits_note(f.task, counts)}) "
        f"in {elapsed:.1f}s, {counts.read / max(elapsed, 1e-9):.0f} lines/s, "
        f"{len(paths)} input files -> {f.output_file} ({f.num_output_shards} shards, "
        f"+ {manifest.path_of(f.output_file)})")


def run_main():
  create_pretraining_data.define_flags(local_workers=False)
  common.run(main)


if __name__ == "__main__":
  run_main()
