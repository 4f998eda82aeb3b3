r"""Per-token activations of chosen layers, as the original `extract_features.py`.

    python -m bert_pl.extract_features --input_file=in.txt --output_file=out.jsonl \
        --init_checkpoint=chinese_L-12_H-768_A-12/bert_model.ckpt --layers=-1,-2

Input: one text per line, or `text_a ||| text_b`. Output: one JSON object per
line, `{"linex_index": i, "features": [{"token": ..., "layers": [{"index": -1,
"values": [...]}, ...]}, ...]}` exactly as the original writes (values rounded
to 6 decimals), plus `"input_ids"` and `"mean_pooled"` (mean of the last layer
over real tokens, [CLS] and [SEP] included).
"""

import dataclasses
import json
import re
import time
from typing import Iterator, List, Optional, Sequence, Tuple

import tensorflow as tf
from absl import flags, logging

from bert_pl import (
  atomic_files,
  checkpoints,
  cli,
  errors,
  input_files,
  job_config,
  modeling,
  tokenization,
)

_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExtractFeaturesConfig(job_config.ModelConfig):
  """The job's settings: its flags (see `define_flags`), the original's
  defaults."""

  init_checkpoint: str
  input_file: str
  output_file: str
  layers: str = "-1,-2,-3,-4"  # comma list of layer indexes
  max_seq_length: int = 128
  batch_size: int = 32


def read_examples(path: str) -> Iterator[Tuple[int, str, Optional[str]]]:
  """(line_index, text_a, text_b) per line; `text_a ||| text_b` gives a pair.
  A file without a line is an error, as for every job's input."""
  number = 0
  for number, line in input_files.numbered_lines(path):
    match = _PAIR.match(line)
    yield (number - 1, match.group(1), match.group(2)) if match else (number - 1, line, None)
  if not number:
    raise errors.InputError(f"{path}: empty file (no examples)")


def _batches(examples, size):
  """Consecutive examples, up to `size`, all pairs or all single texts.

  Packing works per batch, and a single text must not get the empty second
  segment (and extra [SEP]) of a pair.
  """
  batch = []
  for example in examples:
    if batch and (len(batch) == size or (batch[-1][2] is None) != (example[2] is None)):
      yield batch
      batch = []
    batch.append(example)
  if batch:
    yield batch


class FeatureExtractor:
  """Tokenizes, packs and runs the encoder; returns per-example features."""

  def __init__(
    self,
    model: modeling.BertModel,
    tokenizer: tokenization.BertTokenizer,
    max_seq_length: int,
    layers: Sequence[int],
  ):
    n_layers = model.config.num_hidden_layers
    for layer in layers:
      if not -n_layers <= layer < n_layers:
        raise errors.InputError(
          f"--layers: {layer} is out of range for a model of {n_layers} layers"
        )
    if max_seq_length > model.config.max_position_embeddings:
      raise errors.InputError(
        f"--max_seq_length={max_seq_length} exceeds the model's "
        f"max_position_embeddings={model.config.max_position_embeddings}"
      )
    self.model = model
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self.layers = list(layers)

  @tf.function
  def _encode(self, inputs):
    outputs = self.model.encoder(inputs, training=False)
    encoder_outputs = outputs["encoder_outputs"]
    selected = [encoder_outputs[i] for i in self.layers]
    return selected, modeling.mean_pool(encoder_outputs[-1], inputs["input_mask"])

  def extract(self, texts_a: List[str], texts_b: Optional[List[str]]):
    """Returns, per example, (input_ids, [layer arrays [len, hidden]], mean_pooled)."""
    tok = self.tokenizer
    segments = [
      tok.tokenize_with_offsets(tf.constant(texts)).ids
      for texts in ([texts_a] if texts_b is None else [texts_a, texts_b])
    ]
    inputs = tokenization.pack_inputs(segments, self.max_seq_length, tok.cls_id, tok.sep_id)
    # Pad only to the longest example of the batch, not to max_seq_length.
    width = int(tf.reduce_max(tf.reduce_sum(inputs["input_mask"], 1)))
    inputs = {k: v[:, :width] for k, v in inputs.items()}
    selected, pooled = self._encode(inputs)
    lengths = tf.reduce_sum(inputs["input_mask"], 1).numpy()
    word_ids = inputs["input_word_ids"].numpy()
    selected = [s.numpy() for s in selected]
    pooled = pooled.numpy()
    for row, length in enumerate(lengths):
      yield (word_ids[row, :length].tolist(), [s[row, :length] for s in selected], pooled[row])


def to_json(
  line_index: int,
  tokens: List[str],
  input_ids: List[int],
  layer_values,
  layer_indexes: Sequence[int],
  mean_pooled,
) -> str:
  features = []
  for position, token in enumerate(tokens):
    features.append(
      {
        "token": token,
        "layers": [
          {"index": index, "values": [round(float(x), 6) for x in values[position]]}
          for index, values in zip(layer_indexes, layer_values)
        ],
      }
    )
  return json.dumps(
    {
      "linex_index": line_index,
      "features": features,
      "input_ids": input_ids,
      "mean_pooled": [round(float(x), 6) for x in mean_pooled],
    },
    ensure_ascii=False,
  )


def run_extraction(
  input_file: str, output_file: str, extractor: FeatureExtractor, batch_size: int
) -> int:
  """Streams `input_file` to `output_file` (written atomically); returns count."""
  count, start = 0, time.time()
  with atomic_files.AtomicFiles(
    [output_file], [atomic_files.temporary_path(output_file)], atomic_files.open_text
  ) as output:
    for batch in _batches(read_examples(input_file), batch_size):
      texts_b = None if batch[0][2] is None else [b for _, _, b in batch]
      results = extractor.extract([a for _, a, _ in batch], texts_b)
      lines = []
      for (index, _, _), (ids, values, pooled) in zip(batch, results):
        tokens = extractor.tokenizer.convert_ids_to_tokens(ids)
        lines.append(to_json(index, tokens, ids, values, extractor.layers, pooled) + "\n")
      with errors.writing(output_file):
        output.writers[0].write("".join(lines))
      count += len(lines)
      elapsed = time.time() - start
      logging.info("%d examples, %.1f examples/s", count, count / max(elapsed, 1e-9))
  return count


def run(config: ExtractFeaturesConfig) -> int:
  """The job: writes the features of every line; returns their number."""
  model, source = checkpoints.load_bert(
    config.init_checkpoint,
    config.bert_config_file,
    config.num_hidden_layers,
    checkpoints.parse_layer_map(config.layer_map),
  )
  vocab_file = checkpoints.resolve_vocab_file(config.vocab_file, source, model.config)
  input_files.check_not_inputs(
    [config.output_file],
    f"--output_file={config.output_file}",
    {
      "--input_file": [config.input_file],
      "--init_checkpoint": [config.init_checkpoint, source.path if source else None],
      "--bert_config_file": [config.bert_config_file],
      "--vocab_file": [vocab_file],
    },
  )
  tokenizer = tokenization.BertTokenizer(vocab_file, config.do_lower_case, config.tokenization)
  layers = [int(x) for x in config.layers.split(",")]
  extractor = FeatureExtractor(model, tokenizer, config.max_seq_length, layers)
  return run_extraction(config.input_file, config.output_file, extractor, config.batch_size)


def main(argv):
  del argv
  config = job_config.config_from_flags(ExtractFeaturesConfig)
  count = run(config)
  print(f"read {count} lines, wrote {count} examples to {config.output_file}")


def define_flags():
  """The flags of `ExtractFeaturesConfig`'s fields, with its defaults."""
  d = ExtractFeaturesConfig
  job_config.define_model_flags()
  flags.DEFINE_string("input_file", None, "Text file: one text, or `a ||| b`, per line.")
  flags.DEFINE_string("output_file", None, "JSON lines output.")
  flags.DEFINE_string("layers", d.layers, "Comma list of layer indexes.")
  flags.DEFINE_integer("max_seq_length", d.max_seq_length, "Longer inputs are truncated.")
  flags.DEFINE_integer("batch_size", d.batch_size, "Examples per batch.")
  flags.mark_flags_as_required(["input_file", "output_file", "init_checkpoint"])
  cli.require(
    lambda v: all(re.fullmatch(r"-?\d+", x.strip()) for x in v.split(",")),
    "a comma list of integers",
    "layers",
  )
  cli.require_max_seq_length()
  cli.require(lambda v: v >= 1, ">= 1", "batch_size")


def run_main():
  define_flags()
  flags.adopt_module_key_flags(cli)  # --help lists the shared flags too
  cli.run(main)


if __name__ == "__main__":
  run_main()
