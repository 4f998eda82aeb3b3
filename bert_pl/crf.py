"""A linear-chain CRF layer on tensorflow-addons, safe under tf.distribute.

The only module that imports tensorflow_addons (DESIGN §6). It uses tfa's
functions, `crf_log_likelihood` and `crf_decode`, not `CRFModelWrapper`: the
wrapper averages the loss over the replica's batch, so a 2-replica
MirroredStrategy run takes a different step from a 1-replica run on the same
global batch. Here the layer returns per-example log-likelihoods and the
caller scales their sum for the global batch (bert_pl's training loop divides
by the weights summed over all replicas).

Padding: positions at and after `sequence_lengths[i]` are excluded from the
score, the normaliser and the gradients; their tag ids may hold anything (e.g.
-100) and they decode to tag 0. A sequence of length 0 has log-likelihood 0
(probability 1), so it adds nothing to the loss; all its tags decode to 0.

XLA: tfa's `crf_log_likelihood` wraps its forward algorithm (a `tf.scan`) in a
`tf.cond` on `max_seq_len == 1`. It compiles under `jit_compile=True`, but its
gradient does not: XLA rejects the variant-typed `FakeParam` that the cond's
gradient needs for the loop's accumulators. `CRF(..., use_scan=True)` computes
the same log-likelihood with a cond-free `tf.scan`, which compiles with its
gradient. `crf_decode` has no such cond on a static length and compiles as is.
"""

import tensorflow as tf
import tensorflow_addons as tfa


@tf.keras.utils.register_keras_serializable(package="bert_pl")
class CRF(tf.keras.layers.Layer):
  """Transition scores between tags, Viterbi decoding and log-likelihoods.

  The layer takes unary potentials [batch, seq, num_tags] (e.g. the logits of
  a token classifier) and owns the [num_tags, num_tags] `transitions` weight,
  where `transitions[i, j]` scores tag i followed by tag j.

  It always computes in float32, whatever the global mixed-precision policy:
  the logsumexp over tags loses too much in bfloat16/float16, and the
  transitions are few. Potentials are cast to float32 on the way in.
  """

  def __init__(self, num_tags: int, use_scan: bool = False, name: str = "crf", **kwargs):
    """Creates the transitions at once.

    Args:
      num_tags: the number of tags.
      use_scan: compute log-likelihoods with this module's cond-free forward
        algorithm instead of tfa's, so that they and their gradients compile
        under XLA (see the module docstring). Same numbers either way.
      name: the layer name (and the variable scope of `transitions`).
      **kwargs: other `tf.keras.layers.Layer` arguments; a `dtype` is
        replaced by float32.
    """
    kwargs["dtype"] = "float32"
    super().__init__(name=name, **kwargs)
    self.num_tags = num_tags
    self.use_scan = use_scan
    # Created here rather than in build(): `log_likelihood` is a plain method
    # that may run before the layer is ever called. Zeros, not tfa's glorot:
    # an untrained CRF then prefers no transition and decodes to the per-token
    # argmax of the potentials, so adding it to a trained tagger starts from
    # that tagger's own predictions.
    self.transitions = self.add_weight(
      name="transitions", shape=[num_tags, num_tags], initializer="zeros", trainable=True
    )
    self.built = True  # build() would have nothing left to create.

  def call(self, potentials, sequence_lengths):
    """Viterbi decoding: the best tag ids, int32 [batch, seq]."""
    potentials = tf.cast(potentials, tf.float32)
    sequence_lengths = tf.cast(sequence_lengths, tf.int32)
    tags, _ = tfa.text.crf_decode(potentials, self.transitions, sequence_lengths)
    # tfa leaves position 0 of a length-0 sequence decoded; zero all padding.
    return tf.where(_mask(sequence_lengths, potentials), tags, 0)

  def log_likelihood(self, potentials, tag_ids, sequence_lengths):
    """log p(tag_ids | potentials) per example, float32 [batch]."""
    potentials = tf.cast(potentials, tf.float32)
    sequence_lengths = tf.cast(sequence_lengths, tf.int32)
    # Padding tag ids are gathered before they are masked out, so they must be
    # valid indices.
    tag_ids = tf.where(_mask(sequence_lengths, potentials), tf.cast(tag_ids, tf.int32), 0)
    if not self.use_scan:
      return tfa.text.crf_log_likelihood(potentials, tag_ids, sequence_lengths, self.transitions)[0]
    score = tfa.text.crf_unary_score(
      tag_ids, sequence_lengths, potentials
    ) + tfa.text.crf_binary_score(tag_ids, sequence_lengths, self.transitions)
    return score - _log_norm(potentials, sequence_lengths, self.transitions)

  def sequence_probability(self, potentials, tag_ids, sequence_lengths):
    """p(tag_ids | potentials) per example, float32 [batch].

    Of the Viterbi tags, this is the confidence of a pseudo-labelled sentence.
    """
    return tf.exp(self.log_likelihood(potentials, tag_ids, sequence_lengths))

  def get_config(self):
    config = super().get_config()
    config.update(num_tags=self.num_tags, use_scan=self.use_scan)
    return config


def _mask(sequence_lengths, potentials):
  """True at the real (non-padding) positions, [batch, seq]."""
  return tf.sequence_mask(sequence_lengths, maxlen=tf.shape(potentials)[1])


def _log_norm(potentials, sequence_lengths, transitions):
  """log Z per example by the forward algorithm, with no tf.cond around it.

  The scan runs over every position, the first included, so it is never empty
  (XLA cannot compile a scan of no steps, nor can TF stack the outputs of one
  of unknown shape). A step past a sequence's end keeps its alphas, so the
  last step's alphas are those at the sequence's end.
  """
  positions = tf.range(tf.shape(potentials)[1])
  elems = (
    tf.transpose(potentials, [1, 0, 2]),
    positions == 0,
    tf.transpose(_mask(sequence_lengths, potentials)),
  )

  def step(alphas, inputs):
    unary, first, keep = inputs
    incoming = tf.reduce_logsumexp(alphas[:, :, None] + transitions, axis=1)
    new = unary + tf.where(first, tf.zeros_like(incoming), incoming)
    return tf.where(keep[:, None], new, alphas)

  alphas = tf.scan(step, elems, initializer=tf.zeros_like(potentials[:, 0]))[-1]
  return tf.where(sequence_lengths > 0, tf.reduce_logsumexp(alphas, axis=1), 0.0)
