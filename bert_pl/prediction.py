"""Prediction with a fine-tuned model, and the pseudo-labeled output files.

Classification: the predicted label and its probability (the confidence).
NER: the CRF's Viterbi tags, and the probability of that tag sequence under
the CRF (its normalised Viterbi score) as the sentence's confidence.

Batches are cut to their longest row before the model runs: rows are
padded to `max_seq_length` by the encoder, but compute grows with the padded
length, and short texts are the norm (callers sort rows by length first, so
that a batch's rows are of similar length). With `use_xla`, the prediction
function is compiled by XLA; XLA compiles once per input shape, so widths
are rounded up to a multiple of 8 to bound the number of compilations.

Output formats (DESIGN §2): classification `label<TAB>field1[<TAB>...]`; NER
CoNLL, one unit per line: a text without whitespace (Chinese) is written
one character per line, so tags stay exact per character; a text with
whitespace (English) one word per line, as CoNLL-2003 is, every CJK
character a word of its own, with the tag of the word's first character.
Step 4 reads such a block back as the same words joined by spaces (features.
join_conll_tokens); a block of single characters was one character per line,
as before (whitespace cannot be held in CoNLL either way); both with
`<file>.confidence`, one float per example. Files are written under a
temporary name and renamed when complete.

With `write_logits`, `<file>.logits` holds the teacher's pre-softmax logits
(DESIGN §9), one line per example, values with 4 significant digits (float16
precision, which step 4 needs no more than): classification `v1 ... vK`, or
the `id:value` pairs of the `logits_top_k` largest, largest first (for
hundreds of classes); NER the emission logits (the CRF's unary potentials)
of the CoNLL block's characters, `num_chars * num_tags` values row-major. A
character takes the row of the model token covering it (in WordPiece mode
all characters of a token share its row; step 4 reads a token's first
character only); a character no token covers (truncated away) gets zeros.
"""

import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from bert_pl import atomic_files, errors, task_models
from bert_pl.features import char_tags, join_conll_tokens
from bert_pl.input_files import CONFIDENCE_SUFFIX, FINETUNE_TASKS, LOGITS_SUFFIX, Example

_MODEL_INPUTS = ("input_ids", "input_mask", "segment_ids")


class Predictor:
  """Runs a classification or NER `BertTaskModel` over feature arrays."""

  def __init__(
    self,
    model: task_models.BertTaskModel,
    batch_size: int = 64,
    use_xla: bool = False,
  ):
    if model.task not in FINETUNE_TASKS:
      raise errors.InputError(f"prediction needs a fine-tuned model, not task={model.task!r}")
    self.model = model
    self.task = model.task
    self.batch_size = batch_size
    self.width_multiple = 8 if use_xla else 1
    self._run = tf.function(
      self._outputs, jit_compile=use_xla, reduce_retracing=not use_xla, autograph=False
    )

  def _outputs(self, features):
    logits = self.model(features, training=False)["task_logits"]
    crf = self.model.head.crf if self.task == "ner" else None
    return task_outputs(self.task, logits, features["input_mask"], crf)

  def predict(self, features: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    n = len(features["input_ids"])
    parts = []
    for start in range(0, n, self.batch_size):
      mask = features["input_mask"][start : start + self.batch_size]
      longest = max(int(mask.sum(1).max()), 1)
      width = min(-(-longest // self.width_multiple) * self.width_multiple, mask.shape[1])
      batch = {
        k: tf.constant(features[k][start : start + self.batch_size, :width], tf.int32)
        for k in _MODEL_INPUTS
      }
      parts.append({k: v.numpy() for k, v in self._run(batch).items()})
    if self.task == "ner":  # pad tags and logits back to a common width
      seq = features["input_ids"].shape[1]
      for part in parts:
        for key in ("tag_ids", "logits"):
          padding = [(0, 0), (0, seq - part[key].shape[1])] + [(0, 0)] * (part[key].ndim - 2)
          part[key] = np.pad(part[key], padding)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def task_outputs(task: str, logits, input_mask, crf=None) -> Dict[str, tf.Tensor]:
  """The predictions of a batch from the head's logits (classification
  [batch, labels], NER emissions [batch, seq, tags]; NER decoded by the `crf`
  layer on the rows' lengths in `input_mask`)."""
  logits = tf.cast(logits, tf.float32)
  if task == "classification":
    probabilities = tf.nn.softmax(logits, -1)
    return {
      "label_ids": tf.argmax(probabilities, -1, output_type=tf.int32),
      "confidence": tf.reduce_max(probabilities, -1),
      "probabilities": probabilities,
      "logits": logits,
    }
  lengths = tf.reduce_sum(input_mask, 1)
  tags = crf(logits, lengths)
  return {
    "tag_ids": tags,
    "confidence": crf.sequence_probability(logits, tags, lengths),
    "logits": logits,
  }


def predict_sorted(predictor: Predictor, encoded: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """`predictor.predict` on the rows sorted by length (so that each batch
  holds rows of similar length and is cut to little more than them), with
  the outputs put back in the input order."""
  order = np.argsort(encoded["input_mask"].sum(1), kind="stable")
  outputs = predictor.predict({k: encoded[k][order] for k in _MODEL_INPUTS})
  inverse = np.empty_like(order)
  inverse[order] = np.arange(len(order))
  return {k: v[inverse] for k, v in outputs.items()}


def classification_lines(
  examples: Sequence[Example], labels: Sequence[str], label_ids: Sequence[int]
) -> List[str]:
  """`label<TAB>fields` lines (the labeled classification format)."""
  return [labels[i] + "\t" + "\t".join(e.fields) + "\n" for e, i in zip(examples, label_ids)]


def _kept_tokens(starts: np.ndarray, row: int, max_seq_length: int) -> int:
  """How many tokens of a row are in the model's input: those past
  max_seq_length - 2 were truncated away."""
  return min(int(np.sum(starts[row] >= 0)), max_seq_length - 2)


# A CoNLL unit of a text with whitespace: one CJK character, or a run of
# other non-whitespace characters.
_UNIT = re.compile(
  "[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002a6df]"
  "|[^\\s\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002a6df]+"
)


def _written_units(text: str) -> List[Tuple[int, int]]:
  """The (start, end) spans of the units a CoNLL block holds, one per line:
  every non-whitespace character when the text has no whitespace, else its
  words (see the module doc)."""
  if not any(c.isspace() for c in text):
    return [(i, i + 1) for i in range(len(text))]
  return [m.span() for m in _UNIT.finditer(text)]


def _predicted_char_tags(
  text: str,
  row: int,
  starts: np.ndarray,
  ends: np.ndarray,
  tag_ids: np.ndarray,
  labels: Sequence[str],
) -> List[str]:
  """Per-character tags of row `row` (`tag_ids` per token at positions 1..,
  after [CLS]); the characters of truncated tokens get O."""
  n = _kept_tokens(starts, row, tag_ids.shape[1])
  token_tags = [labels[i] for i in tag_ids[row, 1 : 1 + n]]
  return char_tags(token_tags, zip(starts[row, :n], ends[row, :n]), len(text))


def ner_blocks(
  texts: Sequence[str],
  starts: np.ndarray,
  ends: np.ndarray,
  tag_ids: np.ndarray,
  labels: Sequence[str],
) -> List[str]:
  """CoNLL sentences, one unit per line (see _written_units), each ending
  with a blank line; `tag_ids` are per token at positions 1.. (after [CLS])."""
  blocks = []
  for row, text in enumerate(texts):
    per_char = _predicted_char_tags(text, row, starts, ends, tag_ids, labels)
    blocks.append(
      "".join(f"{text[start:end]} {per_char[start]}\n" for start, end in _written_units(text))
      + "\n"
    )
  return blocks


def conll_tags(
  examples: Sequence[Example],
  starts: np.ndarray,
  ends: np.ndarray,
  tag_ids: np.ndarray,
  labels: Sequence[str],
) -> List[List[str]]:
  """The predicted tag of every CoNLL token of labeled NER examples (encoded
  by `features.FeatureEncoder`): that of its first character, as `ner_blocks`
  writes it; the tokens of a truncated tail get O."""
  tags = []
  for row, example in enumerate(examples):
    text, spans = join_conll_tokens(example.fields)
    per_char = _predicted_char_tags(text, row, starts, ends, tag_ids, labels)
    tags.append([per_char[start] for start, _ in spans])
  return tags


def confidence_lines(confidence: Sequence[float]) -> List[str]:
  return [f"{c:.6f}\n" for c in confidence]


def _values(values: np.ndarray) -> str:
  return " ".join(f"{v:.4g}" for v in values.ravel().tolist())


def label_logits_lines(logits: np.ndarray, top_k: int = 0) -> List[str]:
  """Classification `.logits` lines from [n, labels]: all values, or the
  `id:value` pairs of the `top_k` largest, largest first."""
  if not top_k:
    return [_values(row) + "\n" for row in logits]
  order = np.argsort(-logits, axis=1, kind="stable")[:, :top_k]
  return [
    " ".join(f"{i}:{v:.4g}" for i, v in zip(ids.tolist(), row[ids].tolist())) + "\n"
    for ids, row in zip(order, logits)
  ]


def tag_logits_lines(
  texts: Sequence[str], starts: np.ndarray, ends: np.ndarray, logits: np.ndarray
) -> List[str]:
  """NER `.logits` lines from the emission logits [n, seq, tags]: for each
  unit `ner_blocks` writes, the row of the token covering its first
  character (zeros where none does)."""
  lines = []
  for row, text in enumerate(texts):
    n = _kept_tokens(starts, row, logits.shape[1])
    token_of_char = np.full([len(text)], -1)
    for token in range(n):
      token_of_char[starts[row, token] : ends[row, token]] = token
    tokens = token_of_char[[start for start, _ in _written_units(text)]]
    rows = np.where(tokens[:, None] >= 0, logits[row, 1 + tokens], 0.0)
    lines.append(_values(rows) + "\n")
  return lines


class OutputFormat:
  """The step-3 output of a task: pseudo-labeled lines, confidence lines and,
  with `write_logits`, logits lines, for examples and their predictions."""

  def __init__(
    self, task: str, labels: Sequence[str], write_logits: bool = False, logits_top_k: int = 0
  ):
    if logits_top_k and not write_logits:
      raise errors.InputError("--logits_top_k needs --write_logits")
    if logits_top_k and task != "classification":
      raise errors.InputError("--logits_top_k is for classification (NER writes every tag's logit)")
    if not 0 <= logits_top_k <= len(labels):
      raise errors.InputError(
        f"--logits_top_k={logits_top_k} is not in [0, {len(labels)}] (the number of labels)"
      )
    self.task, self.labels = task, list(labels)
    self.write_logits, self.logits_top_k = write_logits, logits_top_k

  def lines(
    self,
    examples: Sequence[Example],
    encoded: Dict[str, np.ndarray],
    outputs: Dict[str, np.ndarray],
  ) -> Tuple[List[str], List[str], Optional[List[str]]]:
    """(output lines or CoNLL blocks, confidence lines, logits lines or None)."""
    if self.task == "classification":
      lines = classification_lines(examples, self.labels, outputs["label_ids"])
    else:
      texts = [" ".join(e.fields) for e in examples]
      lines = ner_blocks(texts, encoded["starts"], encoded["ends"], outputs["tag_ids"], self.labels)
    logits = None
    if self.write_logits and self.task == "classification":
      logits = label_logits_lines(outputs["logits"], self.logits_top_k)
    elif self.write_logits:
      logits = tag_logits_lines(texts, encoded["starts"], encoded["ends"], outputs["logits"])
    return lines, confidence_lines(outputs["confidence"]), logits


class AtomicOutput(atomic_files.AtomicFiles):
  """A pseudo-labeled file and its side files (`.confidence`, and `.logits`
  with `with_logits`), written under temporary names; `commit()` renames the
  side files, then the main file, so the main file's existence means all are
  complete (see `atomic_files`: a context manager; a file that cannot be written
  raises `errors.OutputError`, no temporary file left)."""

  def __init__(self, path: str, with_logits: bool = False):
    self.path = path
    suffixes = [CONFIDENCE_SUFFIX] + ([LOGITS_SUFFIX] if with_logits else []) + [""]
    finals = [path + s for s in suffixes]  # the main file last
    super().__init__(
      finals, [atomic_files.temporary_path(p) for p in finals], atomic_files.open_text
    )

  def write(
    self, lines: Sequence[str], confidences: Sequence[str], logits: Optional[Sequence[str]] = None
  ) -> None:
    parts = [confidences] + ([logits] if len(self.writers) == 3 else []) + [lines]
    for f, final, part in zip(self.writers, self.final_paths, parts):
      with errors.writing(final):
        f.write("".join(part))

  def commit(self) -> None:
    if len(self.writers) == 2 and tf.io.gfile.exists(self.path + LOGITS_SUFFIX):
      # Left by an earlier run with logits: it would not match the new file.
      with errors.writing(self.path + LOGITS_SUFFIX, "cannot remove"):
        tf.io.gfile.remove(self.path + LOGITS_SUFFIX)
    super().commit()
