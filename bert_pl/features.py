"""Examples -> model input features: the one conversion every job shares.

Pre-training data (steps 1, 4), fine-tuning (steps 2, 5) and prediction
(step 3) all turn `input_files.Example`s into ids here, through the tokenizer
and packer that the SavedModel also runs, so that no two jobs can disagree on
what the model sees.

Classification / unlabeled text: the TAB-separated fields are segments,
`[CLS] f1 [SEP] f2 [SEP] ...` (`field_join="sep"`; first field type 0, the
rest type 1), or one segment of the fields joined by a space
(`field_join="concat"`).

NER: the CoNLL tokens are joined into one text, without separator when every
token is a single character (Chinese CoNLL files have one character per line,
so the text equals the raw sentence and WordPiece sees what it will see at
serving time), else with a space. Tags are spread over characters (`B-X` on a
token's first character, `I-X` on the rest) and each model token takes the tag
of its first character, so a WordPiece continuation `##xx` gets `I-X`.
[CLS], [SEP] get tag "O"; padding gets id 0 and lies outside `input_mask`,
which is also the sequence length the CRF uses.

Teacher logits (DESIGN §9), when every example has them: `label_logits`
[n, num_labels]; NER `tag_logits` [n, max_seq_length, num_tags], where a
model token takes the row of the CoNLL token holding its first character,
as it takes its tag, and [CLS], [SEP] and padding (the positions whose tag
is not a token's) get zeros.
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from bert_pl import errors, input_files, tag_schemes, tokenization
from bert_pl.input_files import Example

FIELD_JOINS = ("sep", "concat")
OUTSIDE = "O"


def join_conll_tokens(tokens: Sequence[str]) -> Tuple[str, List[Tuple[int, int]]]:
  """The sentence text and each token's character span in it."""
  separator = "" if all(len(t) == 1 for t in tokens) else " "
  spans, position = [], 0
  for token in tokens:
    spans.append((position, position + len(token)))
    position += len(token) + len(separator)
  return separator.join(tokens), spans


def char_tags(tags: Sequence[str], spans, length: int) -> List[str]:
  """Per-character BIO tags of a text `length` characters long from the tags
  of its tokens, at their (start, end) `spans`: a token's first character
  takes its tag, its other characters I-X (O stays O); characters no token
  covers (separators, truncated or deleted text) and tokens without a span
  (empty, or -1 padding) give "O"."""
  out = [OUTSIDE] * length
  for tag, (start, end) in zip(tags, spans):
    if tag == OUTSIDE or not 0 <= start < end:
      continue
    out[start] = tag
    for i in range(start + 1, end):
      out[i] = "I-" + tag[2:]
  return out


class FeatureEncoder:
  """Encodes batches of examples into padded numpy features."""

  def __init__(
    self,
    tokenizer: tokenization.BertTokenizer,
    max_seq_length: int,
    task: str = "none",
    labels: Optional[Sequence[str]] = None,
    field_join: str = "sep",
    segmenter=None,
  ):
    if task not in input_files.TASKS:
      raise ValueError(f"task must be one of {input_files.TASKS}, got {task!r}")
    if field_join not in FIELD_JOINS:
      raise ValueError(f"field_join must be one of {FIELD_JOINS}, got {field_join!r}")
    if task != "none" and not labels:
      raise errors.InputError(f"task={task} needs its labels (--label_file)")
    if task == "ner" and OUTSIDE not in labels:
      raise errors.InputError(f"the NER tag list must contain {OUTSIDE!r}")
    if max_seq_length < 3:
      raise errors.InputError(
        f"--max_seq_length={max_seq_length}: must be >= 3 ([CLS], a token, [SEP])"
      )
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self.task = task
    self.labels = list(labels or [])
    self.label_to_id = {label: i for i, label in enumerate(self.labels)}
    self.field_join = field_join
    self.segmenter = segmenter  # a segmentation.Segmenter: its words decide word_continues
    is_punctuation = np.zeros([tokenizer.vocab_size], bool)
    is_punctuation[tokenizer.punctuation_ids] = True
    self._is_punctuation = tf.constant(is_punctuation)
    self._graphs = {}

  def encode(self, examples: Sequence[Example]) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """Returns (features, truncated[bool per example]).

    Features: `input_ids`, `input_mask`, `segment_ids` int64 [n, max_seq_length];
    `word_continues` bool [n, max_seq_length] (for whole-word masking, not written;
    from the segmenter's words when the encoder has one, else from the text's
    spaces and punctuation);
    for single-segment text and NER (the joined CoNLL tokens), `starts`/`ends`
    [n, tokens] character offsets of the tokens (-1 padded; for mapping
    predictions back to characters, not written);
    `label_ids` int64 [n] (classification); `tag_ids` int64 [n, max_seq_length]
    (ner); `label_weights` float32 [n] when every example has a confidence;
    `label_logits` float32 [n, labels] (classification) or `tag_logits` float32
    [n, max_seq_length, tags] (ner) when every example has logits.
    """
    if self.task == "ner":
      features, truncated = self._encode_ner(examples)
    else:
      features, truncated = self._encode_fields(examples)
    token_starts = features.pop("token_starts")
    if self.segmenter is not None:
      features["word_continues"] = self.segmenter.word_continues(
        [self.segment_texts(e) for e in examples], token_starts, features["input_mask"]
      )
    if self.task == "classification":
      features["label_ids"] = np.array([self.label_to_id[e.label] for e in examples], np.int64)
    if examples and all(e.confidence is not None for e in examples):
      features["label_weights"] = np.array([e.confidence for e in examples], np.float32)
    if self.task == "classification" and _all_have_logits(examples):
      features["label_logits"] = np.stack([e.logits for e in examples]).astype(np.float32)
    return features, truncated

  def segment_texts(self, example: Example) -> List[str]:
    """The texts of an example's segments, as the tokenizer gets them."""
    if self.task == "ner":
      return [join_conll_tokens(example.fields)[0]]
    if self.field_join == "concat":
      return [" ".join(example.fields)]
    return list(example.fields)

  def _tokenize_and_pack(self, texts: List[str], count: int) -> Dict[str, np.ndarray]:
    """Runs `_graph` for `count` segments, traced once per count."""
    if count not in self._graphs:
      self._graphs[count] = tf.function(
        lambda t: self._graph(t, count),
        input_signature=[tf.TensorSpec([None], tf.string)],
        autograph=False,
      )
    return {k: v.numpy() for k, v in self._graphs[count](tf.constant(texts)).items()}

  def _graph(self, texts: tf.Tensor, count: int):
    """Tokenizes `texts` (example-major, `count` segments each) and packs
    them, in one graph. Also packs the word-continuation flags (for whole-word
    masking), each token's first character in its segment (-1 elsewhere: for a
    segmenter's words) and returns each first segment's token starts (for NER
    tags)."""
    tokens = self.tokenizer.tokenize_with_offsets(texts)
    n = tf.shape(texts)[0] // count
    segments = [
      tokenization.Tokens(*(tf.gather(t, tf.range(k, n * count, count)) for t in tokens))
      for k in range(count)
    ]
    packed = tokenization.pack_inputs(
      [s.ids for s in segments], self.max_seq_length, self.tokenizer.cls_id, self.tokenizer.sep_id
    )
    flags = tokenization.pack_inputs(
      [self._word_continues(s) for s in segments], self.max_seq_length, 0, 0
    )["input_word_ids"]
    token_starts = tokenization.pack_inputs(
      [s.starts + 1 for s in segments], self.max_seq_length, 0, 0
    )["input_word_ids"]
    total = tf.add_n([s.ids.row_lengths() for s in segments])
    return {
      "input_ids": tf.cast(packed["input_word_ids"], tf.int64),
      "input_mask": tf.cast(packed["input_mask"], tf.int64),
      "segment_ids": tf.cast(packed["input_type_ids"], tf.int64),
      "word_continues": tf.cast(flags, tf.bool),
      "token_starts": tf.cast(token_starts, tf.int64) - 1,
      "truncated": total > self.max_seq_length - 1 - count,
      "starts": segments[0].starts.to_tensor(-1),
      "ends": segments[0].ends.to_tensor(-1),
    }

  def _word_continues(self, tokens: tokenization.Tokens) -> tf.RaggedTensor:
    """1 where a token continues the previous token's word (for whole-word
    masking): it touches it in the raw text and neither is punctuation."""
    starts, ends = tokens.starts.flat_values, tokens.ends.flat_values
    not_punct = tf.logical_not(tf.gather(self._is_punctuation, tokens.ids.flat_values))
    touching = tf.concat([[False], tf.equal(starts[1:], ends[:-1])], 0)
    previous_not_punct = tf.concat([[False], not_punct[:-1]], 0)
    # A token is first in its row when its index is its row's start.
    first_in_row = tf.equal(
      tf.range(tf.size(starts, out_type=tf.int64)),
      tf.gather(tokens.ids.row_starts(), tokens.ids.value_rowids()),
    )
    flags = touching & not_punct & previous_not_punct & tf.logical_not(first_in_row)
    return tokens.ids.with_flat_values(tf.cast(flags, tf.int64))

  def _encode_fields(self, examples):
    segment_texts = [self.segment_texts(e) for e in examples]
    # Packing needs the same number of segments in a call: group by count.
    n = len(examples)
    out = {
      k: np.zeros([n, self.max_seq_length], np.int64)
      for k in ("input_ids", "input_mask", "segment_ids")
    }
    out["word_continues"] = np.zeros([n, self.max_seq_length], bool)
    out["token_starts"] = np.zeros([n, self.max_seq_length], np.int64)
    truncated = np.zeros([n], bool)
    offsets = {}
    for count in sorted({len(t) for t in segment_texts}):
      rows = [i for i, t in enumerate(segment_texts) if len(t) == count]
      if self.max_seq_length < count + 2:
        raise errors.InputError(
          f"{examples[rows[0]].source}: {count} fields need --max_seq_length >= {count + 2} "
          f"([CLS], a [SEP] after each field, a token), got {self.max_seq_length}"
        )
      flat = [segment_texts[i][k] for i in rows for k in range(count)]
      packed = self._tokenize_and_pack(flat, count)
      for key in out:
        out[key][rows] = packed[key]
      truncated[rows] = packed["truncated"]
      if count == 1 and len(rows) == n:
        offsets = {"starts": packed["starts"], "ends": packed["ends"]}
    out.update(offsets)
    return out, truncated

  def _encode_ner(self, examples):
    joined = [join_conll_tokens(e.fields) for e in examples]
    packed = self._tokenize_and_pack([text for text, _ in joined], 1)
    features = {
      k: packed[k]
      for k in (
        "input_ids",
        "input_mask",
        "segment_ids",
        "word_continues",
        "token_starts",
        "starts",
        "ends",
      )
    }
    starts = packed["starts"]
    tag_ids = np.zeros([len(examples), self.max_seq_length], np.int64)
    with_logits = _all_have_logits(examples)
    if with_logits:
      tag_logits = np.zeros([len(examples), self.max_seq_length, len(self.labels)], np.float32)
    outside = self.label_to_id[OUTSIDE]
    for row, (example, (text, spans)) in enumerate(zip(examples, joined)):
      per_char = char_tags(example.tags, spans, len(text))
      kept = [s for s in starts[row, : self.max_seq_length - 2] if s >= 0]
      tag_ids[row, 0] = outside  # [CLS]
      tag_ids[row, 1 : 1 + len(kept)] = [self.label_to_id[per_char[s]] for s in kept]
      tag_ids[row, 1 + len(kept)] = outside  # [SEP]
      if with_logits:
        token_of_char = np.full([len(text)], -1)
        for index, (start, end) in enumerate(spans):
          token_of_char[start:end] = index
        tokens = token_of_char[kept]
        covered = tokens >= 0  # a model token never starts on a separator; -1 must not wrap
        tag_logits[row, 1 + np.flatnonzero(covered)] = example.logits[tokens[covered]]
    features["tag_ids"] = tag_ids
    if with_logits:
      features["tag_logits"] = tag_logits
    return features, packed["truncated"]


def prediction_encoder(
  tokenizer: tokenization.BertTokenizer, max_seq_length: int, task: str, field_join: str = "sep"
) -> FeatureEncoder:
  """The encoder of the unlabeled text a fine-tuned model of `task` predicts
  on: classification joins the fields as the model was trained
  (`field_join`); NER reads raw sentences, the fields joined into one text."""
  return FeatureEncoder(
    tokenizer,
    max_seq_length,
    "none",
    field_join=field_join if task == "classification" else "concat",
  )


def _all_have_logits(examples: Sequence[Example]) -> bool:
  return bool(examples) and all(e.logits is not None for e in examples)


def decode_entities(
  tag_ids: Sequence[int], starts: Sequence[int], ends: Sequence[int], labels: Sequence[str]
) -> List[Tuple[str, int, int]]:
  """Entities (type, char start, char end) from the tag ids of one sequence.

  `tag_ids` are those of the tokens only (no [CLS]/[SEP]/padding), aligned
  with the tokens' character `starts`/`ends`.
  """
  tags = [labels[i] for i in tag_ids]
  return [(kind, starts[first], ends[last - 1]) for kind, first, last in tag_schemes.entities(tags)]


def collect_labels(path: str, task: str, tag_scheme: str = "bio") -> List[str]:
  """The label set of a training file, when no `--label_file` is given:
  classification labels in order of first appearance; NER tags with "O"
  first, then B-X, I-X per type in order of first appearance."""
  counts = input_files.Counts(skip_bad_lines=True)
  seen = {}
  for example in input_files.read_examples(path, task, counts, None, tag_scheme):
    for label in example.tags if task == "ner" else [example.label]:
      seen.setdefault(label if task != "ner" else label[2:], None)
  if task != "ner":
    return list(seen)
  kinds = [k for k in seen if k]
  return [OUTSIDE] + [f"{p}-{k}" for k in kinds for p in "BI"]


def encode_examples(
  examples: Iterable[Example],
  encoder: FeatureEncoder,
  counts: input_files.Counts,
  batch_size: int = 1024,
) -> Optional[Dict[str, np.ndarray]]:
  """Examples as feature arrays, encoded `batch_size` at a time (for sets that
  fit in memory: fine-tuning, evaluation); None when there are none."""
  parts = []
  batch = []
  for example in examples:
    batch.append(example)
    if len(batch) == batch_size:
      parts.append(encoder.encode(batch))
      batch = []
  if batch:
    parts.append(encoder.encode(batch))
  if not parts:
    return None
  counts.written += sum(len(p[1]) for p in parts)
  counts.truncated += int(sum(p[1].sum() for p in parts))
  return concatenate([p[0] for p in parts])


def concatenate(parts: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
  """Several encodings' features as one: the features all of them have, but
  those not written to the model (`word_continues`; `starts`/`ends`, whose
  width varies)."""
  keys = set.intersection(*(set(p) for p in parts)) - {"word_continues", "starts", "ends"}
  return {k: np.concatenate([p[k] for p in parts]) for k in sorted(keys)}


def encode_file(
  path: str,
  encoder: FeatureEncoder,
  counts: input_files.Counts,
  tag_scheme: str = "bio",
  batch_size: int = 1024,
) -> Dict[str, np.ndarray]:
  """All examples of a labeled (or unlabeled) file as feature arrays."""
  examples = input_files.read_examples(path, encoder.task, counts, encoder.labels, tag_scheme)
  encoded = encode_examples(examples, encoder, counts, batch_size)
  if encoded is None:
    raise input_files.InputError(f"{path}: empty file (no examples)")
  return encoded
