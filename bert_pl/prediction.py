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
CoNLL with one character per line (whitespace characters are not written:
CoNLL has no way to hold them); both with `<file>.confidence`, one float per
example. Files are written under a temporary name and renamed when complete.
"""

from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

from bert_pl import task_models
from bert_pl.input_files import CONFIDENCE_SUFFIX, Example

_MODEL_INPUTS = ("input_ids", "input_mask", "segment_ids")


class Predictor:
  """Runs a classification or NER `BertTaskModel` over feature arrays."""

  def __init__(self, model: task_models.BertTaskModel, batch_size: int = 64,
               trim_padding: bool = True, use_xla: bool = False):
    if model.task not in ("classification", "ner"):
      raise ValueError(f"prediction needs a fine-tuned model, not task={model.task!r}")
    self.model = model
    self.batch_size = batch_size
    self.trim_padding = trim_padding  # False: the max_seq_length baseline of bench/
    self.width_multiple = 8 if use_xla else 1
    self._run = tf.function(self._outputs, jit_compile=use_xla, reduce_retracing=not use_xla)

  def _outputs(self, features):
    outputs = self.model(features, training=False)
    logits = tf.cast(outputs["task_logits"], tf.float32)
    if self.model.task == "classification":
      probabilities = tf.nn.softmax(logits, -1)
      return {"label_ids": tf.argmax(probabilities, -1, output_type=tf.int32),
              "confidence": tf.reduce_max(probabilities, -1),
              "probabilities": probabilities}
    lengths = tf.reduce_sum(features["input_mask"], 1)
    crf = self.model.head.crf
    tags = crf(logits, lengths)
    return {"tag_ids": tags, "confidence": crf.sequence_probability(logits, tags, lengths)}

  def predict(self, features: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    n = len(features["input_ids"])
    parts = []
    for start in range(0, n, self.batch_size):
      mask = features["input_mask"][start:start + self.batch_size]
      width = mask.shape[1]
      if self.trim_padding:
        longest = max(int(mask.sum(1).max()), 1)
        width = min(-(-longest // self.width_multiple) * self.width_multiple, width)
      batch = {k: tf.constant(features[k][start:start + self.batch_size, :width], tf.int32)
               for k in _MODEL_INPUTS}
      parts.append({k: v.numpy() for k, v in self._run(batch).items()})
    if self.model.task == "ner":  # pad tags back to a common width
      seq = features["input_ids"].shape[1]
      for part in parts:
        part["tag_ids"] = np.pad(part["tag_ids"], [(0, 0), (0, seq - part["tag_ids"].shape[1])])
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def predict_sorted(predictor: Predictor, encoded: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """`predictor.predict` on the rows sorted by length (so that each batch
  holds rows of similar length and is cut to little more than them), with
  the outputs put back in the input order."""
  order = np.argsort(encoded["input_mask"].sum(1), kind="stable")
  outputs = predictor.predict({k: encoded[k][order] for k in _MODEL_INPUTS})
  inverse = np.empty_like(order)
  inverse[order] = np.arange(len(order))
  return {k: v[inverse] for k, v in outputs.items()}


def char_tags_from_tokens(text: str, starts: Sequence[int], ends: Sequence[int],
                          token_tags: Sequence[str]) -> List[str]:
  """Per-character BIO tags from per-token tags: a token's first character
  takes its tag, its other characters I-X (O stays O); characters no token
  covers (truncated, deleted) are O."""
  tags = ["O"] * len(text)
  for start, end, tag in zip(starts, ends, token_tags):
    if start < 0 or tag == "O":
      continue
    tags[start] = tag
    for i in range(start + 1, end):
      tags[i] = "I-" + tag[2:]
  return tags


def classification_lines(examples: Sequence[Example], labels: Sequence[str],
                         label_ids: Sequence[int]) -> List[str]:
  """`label<TAB>fields` lines (the labeled classification format)."""
  return [labels[i] + "\t" + "\t".join(e.fields) + "\n" for e, i in zip(examples, label_ids)]


def ner_blocks(texts: Sequence[str], starts: np.ndarray, ends: np.ndarray,
               tag_ids: np.ndarray, labels: Sequence[str]) -> List[str]:
  """CoNLL sentences, one character per line, each ending with a blank line;
  `tag_ids` are per token at positions 1.. (after [CLS])."""
  blocks = []
  for row, text in enumerate(texts):
    # Tokens past max_seq_length - 2 were truncated away: their characters get O.
    n = min(int(np.sum(starts[row] >= 0)), tag_ids.shape[1] - 2)
    token_tags = [labels[i] for i in tag_ids[row, 1:1 + n]]
    per_char = char_tags_from_tokens(text, starts[row, :n], ends[row, :n], token_tags)
    blocks.append("".join(f"{c} {t}\n" for c, t in zip(text, per_char) if not c.isspace())
                  + "\n")
  return blocks


def confidence_lines(confidence: Sequence[float]) -> List[str]:
  return [f"{c:.6f}\n" for c in confidence]


class AtomicOutput:
  """A pseudo-labeled file and its `.confidence` side file, written under
  temporary names; `commit()` renames the side file, then the main file, so
  the main file's existence means both are complete."""

  def __init__(self, path: str):
    self.path = path
    self._tmp = [f"{path}.tmp", f"{path}{CONFIDENCE_SUFFIX}.tmp"]
    self._files = [tf.io.gfile.GFile(t, "w") for t in self._tmp]

  def write(self, lines: Sequence[str], confidences: Sequence[str]) -> None:
    self._files[0].write("".join(lines))
    self._files[1].write("".join(confidences))

  def commit(self) -> None:
    for f in self._files:
      f.close()
    tf.io.gfile.rename(self._tmp[1], self.path + CONFIDENCE_SUFFIX, overwrite=True)
    tf.io.gfile.rename(self._tmp[0], self.path, overwrite=True)
