"""BERT with the paper's task heads, and the losses of steps 1, 2, 4 and 5.

`BertTaskModel` = `BertModel` (encoder + pooler + MLM head) + an optional
head: a classifier on the pooled [CLS] output, or per-token tag potentials
and a CRF for NER. Step 1 trains the MLM loss alone, steps 2 and 5 the task
loss alone, step 4 their weighted sum (on the masked input; or the task loss
alone on unmasked input, the later paper's best, where the MLM head is not
even computed).

Losses are returned as (numerator, denominator) pairs so that the training
loop can divide by the denominator summed over all replicas: then a
2-replica MirroredStrategy computes exactly the update of one replica on the
same global batch. The masked-LM loss is the original's,
sum(w * -log p(id)) / (sum(w) + 1e-5) over masked positions with weights w.

The pseudo-label loss of step 4 comes in the two forms of the method's two
versions (DESIGN §1b): "hard", cross-entropy on the one-hot pseudo-label (the
CRF negative log-likelihood of the pseudo-tags for NER), as in the first
paper; "kl", the distillation loss KL(softmax(t/T) || softmax(s/T)) * T^2
between the teacher's pre-softmax logits t (stored in the records) and the
student's s, which the later paper found better: it keeps what the teacher
knows about the other classes. The T^2 keeps the gradient's scale
independent of T (Hinton et al. 2015). For NER the KL is taken per token on
the emission logits; the CRF's transitions get no gradient from it.
"""

from typing import Dict, Optional, Tuple

import tensorflow as tf

from bert_pl import crf, modeling
from bert_pl.input_files import TASKS

PSEUDO_LABEL_LOSSES = ("hard", "kl")
Terms = Dict[str, Tuple[tf.Tensor, tf.Tensor]]


class ClassificationHead(tf.keras.layers.Layer):
  """Dropout + dense on the pooled [CLS] output, as run_classifier.py."""

  def __init__(self, num_labels: int, config: modeling.BertConfig, **kwargs):
    super().__init__(**kwargs)
    self.dropout = tf.keras.layers.Dropout(config.hidden_dropout_prob)
    self.dense = tf.keras.layers.Dense(
      num_labels,
      kernel_initializer=tf.keras.initializers.TruncatedNormal(stddev=config.initializer_range),
      name="output",
    )

  def call(self, pooled_output, training=None):
    return self.dense(self.dropout(pooled_output, training=training))


class NerHead(tf.keras.layers.Layer):
  """Dropout + dense per token -> tag potentials; CRF on top."""

  def __init__(self, num_tags: int, config: modeling.BertConfig, **kwargs):
    super().__init__(**kwargs)
    self.dropout = tf.keras.layers.Dropout(config.hidden_dropout_prob)
    self.dense = tf.keras.layers.Dense(
      num_tags,
      kernel_initializer=tf.keras.initializers.TruncatedNormal(stddev=config.initializer_range),
      name="output",
    )
    self.crf = crf.CRF(num_tags)

  def call(self, sequence_output, training=None):
    return self.dense(self.dropout(sequence_output, training=training))


class BertTaskModel(tf.keras.Model):
  """`bert` (encoder, pooler, MLM head) and `head` (task head or None)."""

  def __init__(
    self,
    config: modeling.BertConfig,
    task: str = "none",
    num_labels: int = 0,
    bert: Optional[modeling.BertModel] = None,
    **kwargs,
  ):
    super().__init__(**kwargs)
    if task not in TASKS:
      raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task != "none" and num_labels < 1:
      raise ValueError(f"task={task} needs num_labels >= 1")
    self.config = config
    self.task = task
    self.num_labels = num_labels
    self.bert = bert or modeling.create_model(config)
    self.head = None
    if task == "classification":
      self.head = ClassificationHead(num_labels, config, name="classifier")
    elif task == "ner":
      self.head = NerHead(num_labels, config, name="ner")
    ones = tf.ones([1, 4], tf.int32)
    self(
      {
        "input_ids": ones,
        "input_mask": ones,
        "segment_ids": tf.zeros_like(ones),
        "masked_lm_positions": tf.zeros([1, 1], tf.int32),
      }
    )

  def call(self, features, training=None):
    """`features` in the TFRecord names (input_ids, input_mask, segment_ids,
    optional masked_lm_positions). Adds `task_logits`: [batch, labels] or
    NER potentials [batch, seq, tags]."""
    inputs = {
      "input_word_ids": features["input_ids"],
      "input_mask": features["input_mask"],
      "input_type_ids": features["segment_ids"],
    }
    if "masked_lm_positions" in features:
      inputs["masked_lm_positions"] = features["masked_lm_positions"]
    outputs = self.bert(inputs, training=training)
    if self.task == "classification":
      outputs["task_logits"] = self.head(outputs["pooled_output"], training=training)
    elif self.task == "ner":
      outputs["task_logits"] = self.head(outputs["sequence_output"], training=training)
    return outputs


def _weights(features, batch_size):
  if "label_weights" in features:
    return tf.reshape(tf.cast(features["label_weights"], tf.float32), [-1])
  return tf.ones([batch_size], tf.float32)


def kl_divergence(teacher_logits, student_logits, temperature: float = 1.0):
  """KL(softmax(teacher/T) || softmax(student/T)) * T^2 over the last axis."""
  teacher = tf.nn.log_softmax(teacher_logits / temperature)
  student = tf.nn.log_softmax(student_logits / temperature)
  return tf.reduce_sum(tf.exp(teacher) * (teacher - student), -1) * temperature**2


def teacher_tag_logits(features, emissions):
  """The records' `tag_logits` [batch, max_seq_length * tags] as
  [batch, seq, tags], cut to the width of `emissions` (length bucketing cuts
  the batch's token features to its longest row)."""
  shape = tf.shape(emissions)
  teacher = tf.reshape(tf.cast(features["tag_logits"], tf.float32), [shape[0], -1, shape[2]])
  return teacher[:, : shape[1]]


def loss_terms(
  model: BertTaskModel,
  features,
  outputs,
  use_mlm: bool,
  use_task: bool,
  pseudo_label_loss: str = "hard",
  kl_temperature: float = 1.0,
) -> Tuple[Terms, Terms]:
  """(losses, metrics), each name -> (numerator, denominator) on this replica.

  losses: "mlm" (masked-LM cross-entropy) and "task", weighted per example by
  `label_weights` (pseudo-label confidence) when present. "task" with
  `pseudo_label_loss="hard"`: classification cross-entropy over
  sum(weights), or CRF negative log-likelihood over the real tokens, over
  sum(weights). With "kl": `kl_divergence` against `label_logits`, over
  sum(weights); NER: per tagged token against `tag_logits`, summed, over the
  number of tagged tokens. A tagged token is a real token (input_mask) whose
  teacher row is not all zeros: the records hold zero rows exactly on
  [CLS], [SEP] and padding (word-piece continuations carry a tag, the I- tag
  of their word, and their own teacher row, as in the CRF loss), and
  `tag_ids` itself cannot tell ([CLS] and [SEP] carry "O").
  metrics: "mlm_accuracy", "task_accuracy" (per token for NER: CRF-decoded
  tags over the real tokens; with "kl", the emissions' argmax over the tagged
  tokens, which is what that loss trains).
  """
  if pseudo_label_loss not in PSEUDO_LABEL_LOSSES:
    raise ValueError(
      f"pseudo_label_loss must be one of {PSEUDO_LABEL_LOSSES}, got {pseudo_label_loss!r}"
    )
  kl = pseudo_label_loss == "kl"
  losses, metrics = {}, {}
  if use_mlm:
    logits = tf.cast(outputs["mlm_logits"], tf.float32)
    ids = tf.cast(features["masked_lm_ids"], tf.int32)
    weights = tf.cast(features["masked_lm_weights"], tf.float32)
    per_position = tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits)
    losses["mlm"] = (tf.reduce_sum(weights * per_position), tf.reduce_sum(weights))
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), ids), tf.float32)
    metrics["mlm_accuracy"] = (tf.reduce_sum(weights * correct), tf.reduce_sum(weights))
  if use_task and model.task == "classification":
    logits = tf.cast(outputs["task_logits"], tf.float32)
    labels = tf.reshape(tf.cast(features["label_ids"], tf.int32), [-1])
    weights = _weights(features, tf.shape(labels)[0])
    if kl:
      per_example = kl_divergence(
        tf.cast(features["label_logits"], tf.float32), logits, kl_temperature
      )
    else:
      per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    losses["task"] = (tf.reduce_sum(weights * per_example), tf.reduce_sum(weights))
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    metrics["task_accuracy"] = (tf.reduce_sum(correct), tf.cast(tf.size(labels), tf.float32))
  elif use_task and model.task == "ner":
    potentials = outputs["task_logits"]
    tags = tf.cast(features["tag_ids"], tf.int32)
    mask = tf.cast(features["input_mask"], tf.int32)
    weights = _weights(features, tf.shape(tags)[0])
    if kl:
      emissions = tf.cast(potentials, tf.float32)
      teacher = teacher_tag_logits(features, emissions)
      tagged = tf.cast(tf.reduce_any(tf.not_equal(teacher, 0.0), -1) & (mask > 0), tf.float32)
      per_token = kl_divergence(teacher, emissions, kl_temperature) * tagged
      losses["task"] = (tf.reduce_sum(weights[:, None] * per_token), tf.reduce_sum(tagged))
      predicted = tf.argmax(emissions, -1, output_type=tf.int32)
      correct = tf.cast(tf.equal(predicted, tags), tf.float32) * tagged
      metrics["task_accuracy"] = (tf.reduce_sum(correct), tf.reduce_sum(tagged))
    else:
      lengths = tf.reduce_sum(mask, 1)
      log_likelihood = model.head.crf.log_likelihood(potentials, tags, lengths)
      losses["task"] = (-tf.reduce_sum(weights * log_likelihood), tf.reduce_sum(weights))
      decoded = model.head.crf(potentials, lengths)
      correct = tf.cast(tf.equal(tf.cast(decoded, tf.int32), tags), tf.float32) * tf.cast(
        mask, tf.float32
      )
      metrics["task_accuracy"] = (tf.reduce_sum(correct), tf.cast(tf.reduce_sum(mask), tf.float32))
  return losses, metrics
