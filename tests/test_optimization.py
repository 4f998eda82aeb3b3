"""bert_pl's AdamW against a NumPy AdamW (the AdamW paper, torch.optim.AdamW)."""

import numpy as np
import pytest
import tensorflow as tf
from official.nlp import optimization as tfm_optimization

from bert_pl import optimization

LR, WD, B1, B2, EPS = 1e-3, 0.01, 0.9, 0.999, 1e-6


def numpy_adamw(w, grads, lr, decay: bool):
  """Decoupled AdamW with bias correction, step by step (torch.optim.AdamW)."""
  m, v = np.zeros_like(w), np.zeros_like(w)
  for t, g in enumerate(grads, start=1):
    if decay:
      w = w - lr * WD * w
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    m_hat, v_hat = m / (1 - B1**t), v / (1 - B2**t)
    w = w - lr * m_hat / (np.sqrt(v_hat) + EPS)
  return w


def _gradients(steps=6):
  """Small gradients of a pretrained model (|g| ~ 1e-6) and larger ones
  (~1e-3), with signs that change from step to step."""
  rng = np.random.default_rng(0)
  scale = np.array([1e-6, 3e-6, 1e-3, 2e-3], np.float64)
  return [scale * rng.choice([-1.0, 1.0], 4) * rng.uniform(0.5, 1.5, 4) for _ in range(steps)]


def test_update_equals_reference_adamw_for_small_and_large_gradients():
  grads = _gradients()
  start = np.array([0.5, -0.25, 1.0, -2.0], np.float32)
  kernel = tf.Variable(start, name="layer/kernel")
  bias = tf.Variable(start, name="layer/bias")
  norm = tf.Variable(start, name="layer/LayerNorm/gamma")
  optimizer = optimization.AdamW(LR, weight_decay_rate=WD, epsilon=EPS)
  for g in grads:
    optimizer.apply_gradients([(tf.constant(g, tf.float32), v) for v in (kernel, bias, norm)])
  expected_decayed = numpy_adamw(start, grads, LR, decay=True)
  expected_plain = numpy_adamw(start, grads, LR, decay=False)
  np.testing.assert_allclose(kernel.numpy(), expected_decayed, rtol=1e-6)
  np.testing.assert_allclose(bias.numpy(), expected_plain, rtol=1e-6)  # no decay of biases
  np.testing.assert_allclose(norm.numpy(), expected_plain, rtol=1e-6)  # nor of LayerNorm


def test_float32_sparse_updates_equal_reference_adamw():
  """Embedding gradients arrive as IndexedSlices (the sparse kernel)."""
  grads = _gradients(4)
  start = np.array([[0.5, -0.25], [1.0, -2.0]], np.float32)
  table = tf.Variable(start, name="word_embeddings/embeddings")
  optimizer = optimization.AdamW(LR, weight_decay_rate=WD, epsilon=EPS)
  for g in grads:
    rows = tf.constant(g.reshape(2, 2)[:1], tf.float32)  # only row 0 has a gradient
    optimizer.apply_gradients(
      [(tf.IndexedSlices(rows, tf.constant([0]), tf.constant([2, 2])), table)]
    )
  expected = numpy_adamw(
    start[0].astype(np.float64), [g.reshape(2, 2)[0] for g in grads], LR, decay=True
  )
  np.testing.assert_allclose(table.numpy()[0], expected, rtol=1e-5)


def test_tf_models_optimizer_differs_where_gradients_are_small():
  """Why bert_pl does not use tf-models' AdamWeightDecay as it is: with
  |g| ~ 1e-6 its first step is several times smaller than AdamW's."""
  g = np.array([1e-6], np.float64)
  reference = tf.Variable([0.0], name="w/kernel")
  old = tf.Variable([0.0], name="w/kernel")
  optimization.AdamW(LR, weight_decay_rate=0.0).apply_gradients(
    [(tf.constant(g, tf.float32), reference)]
  )
  tfm_optimization.AdamWeightDecay(LR, epsilon=EPS, gradient_clip_norm=0.0).apply_gradients(
    [(tf.constant(g, tf.float32), old)]
  )
  assert reference.numpy()[0] == pytest.approx(-LR * 1e-6 / (1e-6 + EPS), rel=1e-6)
  assert abs(old.numpy()[0]) < abs(reference.numpy()[0]) / 10


def test_checkpoint_of_the_old_optimizer_restores_and_resumes(tmp_path):
  """Checkpoints written before the change (tf-models' AdamWeightDecay)
  restore into AdamW: same slots, step and hyper-parameters."""
  start = np.array([0.5, -0.25], np.float32)
  grads = _gradients(3)
  old_weights = tf.Variable(start, name="dense/kernel")
  old = tfm_optimization.AdamWeightDecay(
    LR, epsilon=EPS, weight_decay_rate=WD, gradient_clip_norm=0.0
  )
  for g in grads:
    old.apply_gradients([(tf.constant(g[:2], tf.float32), old_weights)])
  prefix = tf.train.Checkpoint(weights=old_weights, optimizer=old).save(str(tmp_path / "ckpt"))

  new_weights = tf.Variable(np.zeros(2, np.float32), name="dense/kernel")
  new = optimization.AdamW(LR, weight_decay_rate=WD, epsilon=EPS)
  checkpoint = tf.train.Checkpoint(weights=new_weights, optimizer=new)
  status = checkpoint.restore(prefix)
  new.apply_gradients([(tf.constant(grads[0][:2], tf.float32), new_weights)])  # creates slots
  status.assert_consumed()
  assert int(new.iterations.numpy()) == 4  # 3 restored steps + this one
  m = old.get_slot(old_weights, "m").numpy() * B1 + (1 - B1) * grads[0][:2]
  np.testing.assert_allclose(new.get_slot(new_weights, "m").numpy(), m, rtol=1e-5)
