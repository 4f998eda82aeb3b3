"""The CRF layer against brute force, in training, replicas, bf16, SavedModel, XLA."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from bert_pl import crf

NUM_TAGS = 3


def _brute_force(potentials, tag_ids, length, transitions):
  """(log-likelihood of tag_ids, best tag sequence) by enumerating every path."""
  if length == 0:
    return 0.0, [0] * potentials.shape[0]

  def score(tags):
    return sum(potentials[t, tag] for t, tag in enumerate(tags)) + sum(
      transitions[a, b] for a, b in zip(tags, tags[1:])
    )

  paths = list(itertools.product(range(NUM_TAGS), repeat=length))
  scores = np.array([score(p) for p in paths])
  log_z = np.log(np.sum(np.exp(scores - scores.max()))) + scores.max()
  best = list(paths[int(np.argmax(scores))])
  padding = [0] * (potentials.shape[0] - length)
  return score(tuple(tag_ids[:length])) - log_z, best + padding


def _layer(use_scan=False, seed=0):
  layer = crf.CRF(NUM_TAGS, use_scan=use_scan)
  rng = np.random.default_rng(seed)
  layer.transitions.assign(rng.normal(size=[NUM_TAGS, NUM_TAGS]))
  return layer


def _batch(seq_length, lengths, seed=1):
  """Random potentials and tag ids, with -1 (invalid) tag ids at padding."""
  rng = np.random.default_rng(seed)
  potentials = rng.normal(size=[len(lengths), seq_length, NUM_TAGS]).astype(np.float32)
  tag_ids = rng.integers(0, NUM_TAGS, size=[len(lengths), seq_length]).astype(np.int32)
  tag_ids[np.arange(seq_length)[None, :] >= np.array(lengths)[:, None]] = -1
  return potentials, tag_ids, np.array(lengths, np.int32)


@pytest.mark.parametrize("use_scan", [False, True])
@pytest.mark.parametrize("seq_length,lengths", [(4, [4, 3, 2, 1, 0]), (1, [1, 0])])
def test_matches_brute_force(use_scan, seq_length, lengths):
  layer = _layer(use_scan)
  potentials, tag_ids, lengths = _batch(seq_length, lengths)
  # Unknown shapes: tfa's run-time tf.cond on max_seq_len == 1 is exercised.
  specs = [
    tf.TensorSpec([None, None, NUM_TAGS]),
    tf.TensorSpec([None, None], tf.int32),
    tf.TensorSpec([None], tf.int32),
  ]
  log_likelihood = tf.function(layer.log_likelihood, input_signature=specs)
  decode = tf.function(layer, input_signature=[specs[0], specs[2]])

  got_ll = log_likelihood(potentials, tag_ids, lengths).numpy()
  got_tags = decode(potentials, lengths).numpy()
  for i, length in enumerate(lengths):
    want_ll, want_tags = _brute_force(potentials[i], tag_ids[i], length, layer.transitions.numpy())
    np.testing.assert_allclose(got_ll[i], want_ll, atol=1e-5)
    assert got_tags[i].tolist() == want_tags
  assert got_tags.dtype == np.int32
  # A length-0 sequence: probability 1, no loss.
  assert got_ll[-1] == 0.0
  # The Viterbi path is the most probable one: its probability is the
  # largest over all paths of the first sentence.
  if seq_length == 4:
    viterbi_p = layer.sequence_probability(potentials[:1], got_tags[:1], lengths[:1])
    paths = np.array(list(itertools.product(range(NUM_TAGS), repeat=4)), np.int32)
    all_p = layer.sequence_probability(
      np.repeat(potentials[:1], len(paths), 0), paths, np.full([len(paths)], 4, np.int32)
    ).numpy()
    np.testing.assert_allclose(all_p.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(viterbi_p.numpy()[0], all_p.max(), atol=1e-6)


def _cyclic_data(num_examples=64, seq_length=6, seed=2):
  """Tags that follow t -> (t + 1) % 3; only the first token has features."""
  rng = np.random.default_rng(seed)
  first = rng.integers(0, NUM_TAGS, size=num_examples)
  tags = (first[:, None] + np.arange(seq_length)[None, :]) % NUM_TAGS
  features = np.zeros([num_examples, seq_length, 4], np.float32)
  features[:, 0] = rng.normal(scale=0.3, size=[num_examples, 4])
  features[:, 0, :NUM_TAGS] += np.eye(NUM_TAGS)[first]
  lengths = rng.integers(2, seq_length + 1, size=num_examples)
  return features, tags.astype(np.int32), lengths.astype(np.int32)


def test_training_learns_the_transition_rule():
  tf.keras.utils.set_random_seed(0)
  features, tags, lengths = _cyclic_data()
  dense = tf.keras.layers.Dense(NUM_TAGS)
  layer = crf.CRF(NUM_TAGS)
  optimizer = tf.keras.optimizers.Adam(0.1)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      log_likelihood = layer.log_likelihood(dense(features), tags, lengths)
      loss = tf.nn.compute_average_loss(-log_likelihood, global_batch_size=len(features))
    variables = dense.trainable_variables + layer.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  losses = [float(train_step()) for _ in range(100)]
  decoded = layer(dense(features), lengths).numpy()
  mask = np.arange(tags.shape[1])[None, :] < lengths[:, None]
  transitions = layer.transitions.numpy()
  print(f"loss {losses[0]:.3f} -> {losses[-1]:.4f}; transitions\n{transitions}")
  assert losses[0] > 4.0 and losses[-1] < 0.05 * losses[0]
  assert np.all(decoded[mask] == tags[mask]) and np.all(decoded[~mask] == 0)
  for i in range(NUM_TAGS):
    follower = (i + 1) % NUM_TAGS
    others = [transitions[i, j] for j in range(NUM_TAGS) if j != follower]
    assert transitions[i, follower] > max(others) + 2.0


def _one_step(strategy, batch, kernel):
  """One SGD step on the global batch; returns (loss, kernel, bias, transitions)."""
  features, tags, lengths, weights = batch
  with strategy.scope():
    dense = tf.keras.layers.Dense(NUM_TAGS, kernel_initializer=tf.constant_initializer(kernel))
    layer = crf.CRF(NUM_TAGS)
    layer.transitions.assign(np.arange(9, dtype=np.float32).reshape(3, 3) / 10)
    optimizer = tf.keras.optimizers.SGD(0.5)
  global_batch_size = len(features)
  dataset = tf.data.Dataset.from_tensor_slices(batch).batch(global_batch_size)

  def replica_step(features, tags, lengths, weights):
    with tf.GradientTape() as tape:
      log_likelihood = layer.log_likelihood(dense(features), tags, lengths)
      # Not len(features): that is this replica's share.
      loss = tf.nn.compute_average_loss(
        -log_likelihood, sample_weight=weights, global_batch_size=global_batch_size
      )
    variables = dense.trainable_variables + layer.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  @tf.function
  def step(inputs):
    losses = strategy.run(replica_step, args=inputs)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

  loss = step(next(iter(strategy.experimental_distribute_dataset(dataset))))
  return [loss.numpy(), dense.kernel.numpy(), dense.bias.numpy(), layer.transitions.numpy()]


def test_two_replicas_take_the_same_step_as_one(mirrored_strategy):
  features, tags, lengths = _cyclic_data(num_examples=8, seed=3)
  weights = np.linspace(0.2, 1.0, 8).astype(np.float32)  # pseudo-label confidences
  batch = (features, tags, lengths, weights)
  kernel = np.random.default_rng(4).normal(size=[4, NUM_TAGS]).astype(np.float32)
  mirrored = mirrored_strategy
  assert mirrored.num_replicas_in_sync == 2
  two = _one_step(mirrored, batch, kernel)
  one = _one_step(tf.distribute.OneDeviceStrategy("/cpu:0"), batch, kernel)

  layer = crf.CRF(NUM_TAGS)
  layer.transitions.assign(np.arange(9, dtype=np.float32).reshape(3, 3) / 10)
  log_likelihood = layer.log_likelihood(features @ kernel, tags, lengths).numpy()
  np.testing.assert_allclose(one[0], -np.mean(weights * log_likelihood), rtol=1e-6)
  print(f"loss {one[0]:.6f} vs {two[0]:.6f}")
  for a, b in zip(one, two):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert np.abs(one[3] - np.arange(9).reshape(3, 3) / 10).max() > 1e-2  # it moved


def test_mixed_bfloat16_computes_in_float32():
  tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    dense = tf.keras.layers.Dense(NUM_TAGS)
    layer = crf.CRF(NUM_TAGS)
  finally:
    tf.keras.mixed_precision.set_global_policy("float32")
  features, tags, lengths = _cyclic_data(num_examples=4, seed=5)
  with tf.GradientTape() as tape:
    potentials = dense(features)
    log_likelihood = layer.log_likelihood(potentials, tags, lengths)
  grads = tape.gradient(log_likelihood, dense.trainable_variables + [layer.transitions])

  assert potentials.dtype == tf.bfloat16
  assert layer.transitions.dtype == tf.float32 and layer.compute_dtype == "float32"
  assert log_likelihood.dtype == tf.float32
  assert np.all(np.isfinite(log_likelihood.numpy())) and np.all(log_likelihood.numpy() < 0)
  assert all(np.all(np.isfinite(g.numpy())) for g in grads)
  reference = _layer_like(layer).log_likelihood(tf.cast(potentials, tf.float32), tags, lengths)
  np.testing.assert_array_equal(log_likelihood.numpy(), reference.numpy())
  assert layer(potentials, lengths).dtype == tf.int32


def _layer_like(layer):
  """A float32-policy copy of the layer, with its config and weights."""
  copy = crf.CRF.from_config(layer.get_config())
  copy.set_weights(layer.get_weights())
  assert (copy.num_tags, copy.use_scan, copy.name) == (NUM_TAGS, False, "crf")
  return copy


class _Tagger(tf.Module):
  def __init__(self):
    super().__init__()
    self.dense = tf.keras.layers.Dense(NUM_TAGS)
    self.crf = _layer()

  @tf.function(input_signature=[tf.TensorSpec([None, None, 4]), tf.TensorSpec([None], tf.int32)])
  def tag(self, features, lengths):
    potentials = self.dense(features)
    tags = self.crf(potentials, lengths)
    return {"tags": tags, "confidence": self.crf.sequence_probability(potentials, tags, lengths)}


def test_saved_model_round_trip(tmp_path):
  tf.keras.utils.set_random_seed(6)
  features, _, lengths = _cyclic_data(num_examples=5, seed=6)
  lengths[-1] = 0
  tagger = _Tagger()
  want = tagger.tag(features, lengths)
  tf.saved_model.save(tagger, str(tmp_path / "module"))
  # Keep the loaded object: its functions hold its variables only weakly.
  loaded = tf.saved_model.load(str(tmp_path / "module"))
  got = loaded.tag(features, lengths)
  np.testing.assert_array_equal(got["tags"].numpy(), want["tags"].numpy())
  np.testing.assert_array_equal(got["confidence"].numpy(), want["confidence"].numpy())
  assert np.all(want["confidence"].numpy() > 0) and want["confidence"].numpy()[-1] == 1.0

  # The layer inside a functional Keras model.
  inputs = [tf.keras.Input([None, 4]), tf.keras.Input([], dtype=tf.int32)]
  model = tf.keras.Model(inputs, _layer()(tagger.dense(inputs[0]), inputs[1]))
  tf.saved_model.save(model, str(tmp_path / "keras"))
  loaded = tf.saved_model.load(str(tmp_path / "keras"))
  np.testing.assert_array_equal(loaded([features, lengths]).numpy(), want["tags"].numpy())


def _loss_and_grads(layer, potentials, tag_ids, lengths):
  with tf.GradientTape() as tape:
    tape.watch(potentials)
    log_likelihood = layer.log_likelihood(potentials, tag_ids, lengths)
    loss = tf.nn.compute_average_loss(-log_likelihood, global_batch_size=4)
  return [log_likelihood, *tape.gradient(loss, [potentials, layer.transitions])]


def _xla_batch():
  potentials, tag_ids, lengths = _batch(5, [5, 3, 1, 0], seed=7)
  return tf.constant(potentials), tag_ids, lengths


def test_upstream_bug_still_there_tfa_crf_gradient_fails_under_xla():
  """Asserts that an UPSTREAM BUG still exists: the gradient of
  tensorflow-addons' `crf_log_likelihood` does not compile under XLA (the
  reason for `crf.CRF(use_scan=True)`). When this fails, the bug is fixed."""
  tfa_layer = _layer(use_scan=False)
  try:
    tf.function(_loss_and_grads, jit_compile=True)(tfa_layer, *_xla_batch())
  except tf.errors.InvalidArgumentError as e:
    assert "FakeParam" in str(e), f"the upstream bug now fails otherwise: {str(e)[:300]}"
  else:
    pytest.fail(
      "upstream bug fixed: the gradient of tensorflow-addons' crf_log_likelihood now "
      "compiles under XLA; update crf.py's XLA note (use_scan may be unneeded) and "
      "delete this test"
    )


def test_xla():
  potentials, tag_ids, lengths = _xla_batch()

  # tfa: the log-likelihood compiles (its gradient does not: the test above).
  tfa_layer = _layer(use_scan=False)
  forward = tf.function(tfa_layer.log_likelihood, jit_compile=True)
  np.testing.assert_allclose(
    forward(potentials, tag_ids, lengths),
    tfa_layer.log_likelihood(potentials, tag_ids, lengths),
    atol=1e-6,
  )

  # use_scan: the same numbers, gradients included, under XLA; also for a
  # length-1 batch (where tfa's gradient of the transitions is None).
  scan_layer = _layer(use_scan=True)
  jitted = tf.function(_loss_and_grads, jit_compile=True)
  for args in [
    (potentials, tag_ids, lengths),
    (potentials[:, :1], tag_ids[:, :1], np.minimum(lengths, 1)),
  ]:
    want = _loss_and_grads(tfa_layer, *args)
    got = jitted(scan_layer, *args)
    for a, b in zip(want, got):
      if a is not None:
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)

  # Decoding (tfa) compiles as is.
  np.testing.assert_array_equal(
    tf.function(tfa_layer, jit_compile=True)(potentials, lengths), tfa_layer(potentials, lengths)
  )
