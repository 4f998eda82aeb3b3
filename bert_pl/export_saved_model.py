r"""Exports a fine-tuned model directory as a SavedModel that takes raw text.

    python -m bert_pl.export_saved_model --model_dir=output/model_d \
        --export_dir=serving/model_d/1

The SavedModel tokenizes in its graph with the very `BertTokenizer` and
`tokenization.pack_inputs` that training used (DESIGN §4), so a client sends
strings and never ids; vocab.txt travels in its assets/ (DESIGN §7). Loading
it needs TensorFlow and tensorflow-text (for the tokenizer's ops), not bert_pl;
so does `saved_model_cli show --all`, which loads it to list its functions
(`python -c "import tensorflow_text; from tensorflow.python.tools.saved_model_cli
import main; main()" show --dir DIR --all`; without `--all` the plain
`saved_model_cli` shows the signatures).

Signatures, all taking `text`: tf.string [batch]:

* `serving_default` (the name is `--signature`), classification: one string
  per example, its fields TAB-separated and packed as the model was trained
  (task.json's `field_join`). Returns `label_ids` int32 [batch], `labels`
  string [batch], `probabilities` float32 [batch, num_labels] and
  `confidence` float32 [batch] (the highest probability, as step 3 writes).
* `serving_default`, NER: the raw sentence. Returns per model token of the
  text ([CLS]/[SEP] excluded, tokens past max_seq_length dropped) `tags`
  string [batch, tokens] and their character offsets `token_starts`,
  `token_ends` int32; the BIO entities `entity_types`, `entity_texts` string
  [batch, entities] and `entity_starts`, `entity_ends` int32 (character
  offsets into the input, end exclusive), decoded as
  `features.decode_entities`; and `confidence` float32 [batch], the CRF
  probability of the Viterbi tags. Padding is "" and -1.
* `encoder`: `sequence_output` float32 [batch, seq, hidden], `pooled_output`
  float32 [batch, hidden] and `input_mask` int32 [batch, seq] of the same
  packed input.

Each batch is padded to its own longest packed sequence, not to
max_seq_length (attention cost grows with the padded length); longer texts
are truncated as in training.

Classification with `field_join=sep` packs a text of k fields with k
segments, as `features.FeatureEncoder` does. A graph needs the segment count
when it is built, so the SavedModel holds one `pack_inputs` per count up to
`--max_fields`, and a text with more fields fails with InvalidArgumentError.
The graph grows with the square of `--max_fields` (1 + 2 + ... segments): at
the default 4, a SavedModel loads and answers its first call in seconds; at
8 it takes several times longer.
"""

import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import tensorflow as tf
from absl import flags

from bert_pl import (
  atomic_files,
  cli,
  errors,
  input_files,
  job_config,
  model_dir,
  task_models,
  tokenization,
)

SERVING_SIGNATURE = "serving_default"
ENCODER_SIGNATURE = "encoder"
DEFAULT_MAX_FIELDS = 4
_TEXT = tf.TensorSpec([None], tf.string, name="text")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportSavedModelConfig:
  """The job's settings: its flags (see `define_flags`) and defaults."""

  model_dir: str  # a fine-tuned model directory
  export_dir: str
  max_seq_length: Optional[int] = None  # the model's; given, it must be the same
  signature: str = SERVING_SIGNATURE  # the prediction signature's name
  max_fields: int = DEFAULT_MAX_FIELDS


def _tag_table(labels: Sequence[str]) -> Tuple[List[str], List[int], List[bool]]:
  """Entity types, and per label its type index (-1: not in an entity) and
  whether it is an `I-` tag. Like `tag_schemes.entities`, only B- and I-
  tags belong to entities."""
  kinds, kind_of_label, inside = [], [], []
  for label in labels:
    prefix, _, kind = label.partition("-")
    if prefix in ("B", "I") and kind:
      if kind not in kinds:
        kinds.append(kind)
      kind_of_label.append(kinds.index(kind))
    else:
      kind_of_label.append(-1)
    inside.append(prefix == "I")
  return kinds, kind_of_label, inside


def entity_spans(tag_ids: tf.RaggedTensor, labels: Sequence[str]):
  """In-graph `tag_schemes.entities` for a batch: BIO, and an I-X after O or
  another type starts an entity.

  Args:
    tag_ids: int [batch, (tokens)].
    labels: the tag names, index = tag id.

  Returns:
    (types, firsts, ends): ragged [batch, (entities)], the entity type names
    and the flat positions in `tag_ids.flat_values` of each entity's first
    token and one past its last token.
  """
  kinds, kind_of_label, inside = _tag_table(labels)
  flat = tag_ids.flat_values
  kind = tf.gather(tf.constant(kind_of_label, tf.int64), flat)
  is_inside = tf.gather(tf.constant(inside), flat)
  positions = tf.range(tf.size(flat, out_type=tf.int64))
  rows = tag_ids.value_rowids()
  first_in_row = tf.equal(positions, tf.gather(tag_ids.row_starts(), rows))
  previous_kind = tf.where(first_in_row, tf.constant(-1, tf.int64), tf.concat([[-1], kind[:-1]], 0))
  in_entity = kind >= 0
  begins = in_entity & tf.logical_not(is_inside & tf.equal(kind, previous_kind))
  firsts = tf.boolean_mask(positions, begins)
  # Members of an entity are contiguous: its first token and the I- tokens
  # right after it, so its end is one past its last member.
  entity_of_token = tf.cumsum(tf.cast(begins, tf.int64)) - 1
  ends = tf.math.unsorted_segment_max(
    tf.boolean_mask(positions + 1, in_entity),
    tf.boolean_mask(entity_of_token, in_entity),
    tf.size(firsts, out_type=tf.int64),
  )
  types = tf.gather(tf.constant(kinds, tf.string), tf.gather(kind, firsts))
  return tuple(
    tf.RaggedTensor.from_value_rowids(values, tf.gather(rows, firsts), tag_ids.nrows())
    for values in (types, firsts, ends)
  )


class TextModel(tf.Module):
  """A fine-tuned model with its tokenizer: the object the SavedModel holds.

  Attributes `tokenizer` and `model` are tracked, so the SavedModel has the
  vocabulary asset and the model's variables.
  """

  def __init__(
    self,
    model: task_models.BertTaskModel,
    tokenizer: tokenization.BertTokenizer,
    labels: Sequence[str],
    max_seq_length: int,
    field_join: str = "sep",
    max_fields: int = DEFAULT_MAX_FIELDS,
  ):
    super().__init__(name="bert_pl_text_model")
    if not 3 <= max_seq_length <= model.config.max_position_embeddings:
      raise errors.InputError(
        f"max_seq_length={max_seq_length} must be in 3.."
        f"{model.config.max_position_embeddings} (max_position_embeddings)"
      )
    if max_fields < 1:
      raise errors.InputError(f"max_fields={max_fields} must be at least 1")
    self.model = model
    self.tokenizer = tokenizer
    self.labels = list(labels)
    self.max_seq_length = max_seq_length
    self.task = model.task
    # Fields are segments only for classification with `sep`; the NER input
    # is the raw sentence. More than max_seq_length - 2 segments leave no
    # room for a token (pack_inputs refuses them).
    self.field_segments = model.task == "classification" and field_join == "sep"
    self.max_fields = min(max_fields, max_seq_length - 2)
    self.concat_fields = model.task == "classification" and field_join == "concat"

  def serve(self, text):
    """The prediction signature's function."""
    features, tokens = self._features(text)
    logits = tf.cast(self.model(features, training=False)["task_logits"], tf.float32)
    if self.task == "classification":
      return self._classification_outputs(logits)
    return self._ner_outputs(text, tokens, features, logits)

  def encode(self, text):
    """The encoder signature's function."""
    features, _ = self._features(text)
    outputs = self.model.bert(
      {
        "input_word_ids": features["input_ids"],
        "input_mask": features["input_mask"],
        "input_type_ids": features["segment_ids"],
      },
      training=False,
    )
    return {
      "sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
      "pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
      "input_mask": features["input_mask"],
    }

  def _features(self, text):
    """Model inputs cut to the batch's longest row, and (single segment) the
    tokens kept after truncation, for their offsets."""
    if self.field_segments:
      packed, tokens = self._pack_fields(text), None
    else:
      if self.concat_fields:  # as FeatureEncoder: fields joined by a space
        text = tf.strings.regex_replace(text, "\t", " ")
      tokens = self.tokenizer.tokenize_with_offsets(text)
      packed = tokenization.pack_inputs(
        [tokens.ids], self.max_seq_length, self.tokenizer.cls_id, self.tokenizer.sep_id
      )
      tokens = tokenization.Tokens(*(t[:, : self.max_seq_length - 2] for t in tokens))
    width = tf.maximum(tf.reduce_max(tf.reduce_sum(packed["input_mask"], 1)), 2)
    features = {
      "input_ids": packed["input_word_ids"][:, :width],
      "input_mask": packed["input_mask"][:, :width],
      "segment_ids": packed["input_type_ids"][:, :width],
    }
    return features, tokens

  def _pack_fields(self, text):
    """TAB-separated fields as segments: each field count is packed apart,
    as FeatureEncoder groups examples by count."""
    fields = tf.strings.split(text, "\t")
    counts = fields.row_lengths()
    check = tf.debugging.assert_less_equal(
      counts,
      tf.constant(self.max_fields, tf.int64),
      message=f"a text has more TAB-separated fields than the {self.max_fields} "
      "this SavedModel packs (export --max_fields)",
    )
    with tf.control_dependencies([check]):
      tokens = self.tokenizer.tokenize_with_offsets(fields.flat_values)
    shape = tf.stack([tf.shape(text, out_type=tf.int64)[0], self.max_seq_length])
    packed = {
      k: tf.zeros(shape, tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")
    }
    for count in range(1, self.max_fields + 1):
      rows = tf.where(tf.equal(counts, count))
      first_field = tf.gather(fields.row_starts(), rows[:, 0])
      group = tokenization.pack_inputs(
        [tf.gather(tokens.ids, first_field + k) for k in range(count)],
        self.max_seq_length,
        self.tokenizer.cls_id,
        self.tokenizer.sep_id,
      )
      packed = {k: tf.tensor_scatter_nd_update(v, rows, group[k]) for k, v in packed.items()}
    return packed

  def _classification_outputs(self, logits):
    probabilities = tf.nn.softmax(logits, -1)
    label_ids = tf.argmax(probabilities, -1, output_type=tf.int32)
    return {
      "label_ids": label_ids,
      "labels": tf.gather(tf.constant(self.labels), label_ids),
      "probabilities": probabilities,
      "confidence": tf.reduce_max(probabilities, -1),
    }

  def _ner_outputs(self, text, tokens, features, logits):
    lengths = tf.reduce_sum(features["input_mask"], 1)
    crf = self.model.head.crf
    tag_ids = crf(logits, lengths)
    # Position 0 is [CLS]; the kept tokens follow it.
    token_tags = tf.RaggedTensor.from_tensor(tag_ids[:, 1:], lengths=tokens.ids.row_lengths())
    types, firsts, ends = entity_spans(token_tags, self.labels)
    char_starts = tf.gather(tokens.starts.flat_values, firsts)
    char_ends = tf.gather(tokens.ends.flat_values, ends - 1)
    entity_texts = tf.strings.substr(
      tf.gather(text, firsts.value_rowids()),
      char_starts.flat_values,
      char_ends.flat_values - char_starts.flat_values,
      unit="UTF8_CHAR",
    )
    return {
      "tags": tf.gather(tf.constant(self.labels), token_tags).to_tensor(""),
      "token_starts": _int32(tokens.starts.to_tensor(-1)),
      "token_ends": _int32(tokens.ends.to_tensor(-1)),
      "entity_types": types.to_tensor(""),
      "entity_texts": types.with_flat_values(entity_texts).to_tensor(""),
      "entity_starts": _int32(char_starts.to_tensor(-1)),
      "entity_ends": _int32(char_ends.to_tensor(-1)),
      "confidence": crf.sequence_probability(logits, tag_ids, lengths),
    }


def _int32(tensor: tf.Tensor) -> tf.Tensor:
  return tf.cast(tensor, tf.int32)


def run(config: ExportSavedModelConfig) -> List[str]:
  """Writes the SavedModel of the model directory `config.model_dir` to
  `config.export_dir`; returns the names of the signatures written."""
  if config.signature == ENCODER_SIGNATURE:
    raise errors.InputError(f"--signature={config.signature} is taken by the encoder signature")
  # The export replaces --export_dir whole.
  input_files.check_not_inputs(
    [config.export_dir], f"--export_dir={config.export_dir}", {"--model_dir": [config.model_dir]}
  )
  model, tokenizer, info = model_dir.load_finetuned(
    config.model_dir, given={"max_seq_length": config.max_seq_length}
  )
  module = TextModel(
    model,
    tokenizer,
    info["labels"],
    info["max_seq_length"],
    info.get("field_join", "sep"),
    config.max_fields,
  )
  # Signatures only, not tf.function attributes: saving would trace those
  # again, and the packing graphs are slow to build.
  signatures = {
    name: tf.function(function, input_signature=[_TEXT]).get_concrete_function()
    for name, function in ((config.signature, module.serve), (ENCODER_SIGNATURE, module.encode))
  }
  _save(module, config.export_dir, signatures)
  return list(signatures)


def _save(module: tf.Module, export_dir: str, signatures) -> None:
  """The SavedModel under a temporary name beside `export_dir`, renamed
  when complete: an unwritable directory or a full disk leaves nothing that
  TF Serving would load as a version. An earlier export there is put aside
  (`.NAME.replaced-PID`) until the new one is in place, and put back if that
  rename fails: a version directory is never lost to a failed export (a
  kill between the two renames leaves it under the aside name)."""
  final = export_dir.rstrip("/")
  tmp = atomic_files.temporary_path(final)
  directory, name = os.path.split(final)
  aside = os.path.join(directory, f".{name}.replaced-{os.getpid()}")
  atomic_files.makedirs(directory or ".")
  try:
    with errors.writing(final):
      tf.saved_model.save(module, tmp, signatures=signatures)
      replacing = tf.io.gfile.exists(final)
      if replacing:
        tf.io.gfile.rename(final, aside)
      try:
        tf.io.gfile.rename(tmp, final)
      except errors.IO_ERRORS:
        if replacing:
          tf.io.gfile.rename(aside, final)
        raise
      if replacing:
        errors.remove_quietly(aside)
  finally:
    errors.remove_quietly(tmp)


def main(argv):
  del argv
  config = job_config.config_from_flags(ExportSavedModelConfig)
  signatures = run(config)
  print(f"wrote SavedModel {config.export_dir} (signatures: {', '.join(signatures)})")


def define_flags():
  """The flags of `ExportSavedModelConfig`'s fields, with its defaults."""
  d = ExportSavedModelConfig
  flags.DEFINE_string("model_dir", None, "Fine-tuned model directory (run_classifier, run_ner).")
  flags.DEFINE_string(
    "export_dir", None, "SavedModel directory to write (for TF Serving: <base>/<version>)."
  )
  flags.DEFINE_integer(
    "max_seq_length",
    d.max_seq_length,
    "Longer texts are truncated. The model's (task.json); given, it must be the same.",
  )
  flags.DEFINE_string("signature", d.signature, "Name of the prediction signature.")
  flags.DEFINE_integer(
    "max_fields",
    d.max_fields,
    "Most TAB-separated fields per text (classification, field_join=sep).",
  )
  flags.mark_flags_as_required(["model_dir", "export_dir"])


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
