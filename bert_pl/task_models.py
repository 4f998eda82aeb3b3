"""BERT with the paper's task heads, and the losses of steps 1, 2, 4 and 5.

`BertTaskModel` = `BertModel` (encoder + pooler + MLM head) + an optional
head: a classifier on the pooled [CLS] output, or per-token tag potentials
and a CRF for NER. Step 1 trains the MLM loss alone, steps 2 and 5 the task
loss alone, step 4 their sum (MLM + weight x task loss, on the masked input).

Losses are returned as (numerator, denominator) pairs so that the training
loop can divide by the denominator summed over all replicas: then a
2-replica MirroredStrategy computes exactly the update of one replica on the
same global batch. The masked-LM loss is the original's,
sum(w * -log p(id)) / (sum(w) + 1e-5) over masked positions with weights w.
"""

from typing import Dict, Optional, Tuple

import tensorflow as tf

from bert_pl import crf, modeling

TASKS = ("none", "classification", "ner")
Terms = Dict[str, Tuple[tf.Tensor, tf.Tensor]]


class ClassificationHead(tf.keras.layers.Layer):
  """Dropout + dense on the pooled [CLS] output, as run_classifier.py."""

  def __init__(self, num_labels: int, config: modeling.BertConfig, **kwargs):
    super().__init__(**kwargs)
    self.dropout = tf.keras.layers.Dropout(config.hidden_dropout_prob)
    self.dense = tf.keras.layers.Dense(
        num_labels, kernel_initializer=tf.keras.initializers.TruncatedNormal(
            stddev=config.initializer_range), name="output")

  def call(self, pooled_output, training=None):
    return self.dense(self.dropout(pooled_output, training=training))


class NerHead(tf.keras.layers.Layer):
  """Dropout + dense per token -> tag potentials; CRF on top."""

  def __init__(self, num_tags: int, config: modeling.BertConfig, **kwargs):
    super().__init__(**kwargs)
    self.dropout = tf.keras.layers.Dropout(config.hidden_dropout_prob)
    self.dense = tf.keras.layers.Dense(
        num_tags, kernel_initializer=tf.keras.initializers.TruncatedNormal(
            stddev=config.initializer_range), name="output")
    self.crf = crf.CRF(num_tags)

  def call(self, sequence_output, training=None):
    return self.dense(self.dropout(sequence_output, training=training))


class BertTaskModel(tf.keras.Model):
  """`bert` (encoder, pooler, MLM head) and `head` (task head or None)."""

  def __init__(self, config: modeling.BertConfig, task: str = "none",
               num_labels: int = 0, bert: Optional[modeling.BertModel] = None, **kwargs):
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
    self({"input_ids": ones, "input_mask": ones, "segment_ids": tf.zeros_like(ones),
          "masked_lm_positions": tf.zeros([1, 1], tf.int32)})

  def call(self, features, training=None):
    """`features` in the TFRecord names (input_ids, input_mask, segment_ids,
    optional masked_lm_positions). Adds `task_logits`: [batch, labels] or
    NER potentials [batch, seq, tags]."""
    inputs = {"input_word_ids": features["input_ids"], "input_mask": features["input_mask"],
              "input_type_ids": features["segment_ids"]}
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


def loss_terms(model: BertTaskModel, features, outputs, use_mlm: bool,
               use_task: bool) -> Tuple[Terms, Terms]:
  """(losses, metrics), each name -> (numerator, denominator) on this replica.

  losses: "mlm" (masked-LM cross-entropy), "task" (classification
  cross-entropy, or CRF negative log-likelihood over the real tokens),
  weighted by `label_weights` (pseudo-label confidence) when present.
  metrics: "mlm_accuracy", "task_accuracy" (per token for NER).
  """
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
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    losses["task"] = (tf.reduce_sum(weights * per_example), tf.reduce_sum(weights))
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    metrics["task_accuracy"] = (tf.reduce_sum(correct), tf.cast(tf.size(labels), tf.float32))
  elif use_task and model.task == "ner":
    potentials = outputs["task_logits"]
    tags = tf.cast(features["tag_ids"], tf.int32)
    mask = tf.cast(features["input_mask"], tf.int32)
    lengths = tf.reduce_sum(mask, 1)
    weights = _weights(features, tf.shape(tags)[0])
    log_likelihood = model.head.crf.log_likelihood(potentials, tags, lengths)
    losses["task"] = (-tf.reduce_sum(weights * log_likelihood), tf.reduce_sum(weights))
    decoded = model.head.crf(potentials, lengths)
    correct = tf.cast(tf.equal(tf.cast(decoded, tf.int32), tags), tf.float32) * tf.cast(mask, tf.float32)
    metrics["task_accuracy"] = (tf.reduce_sum(correct), tf.cast(tf.reduce_sum(mask), tf.float32))
  return losses, metrics
