"""BertConfig and the encoder configured exactly like BERT."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bert_pl import modeling

from conftest import minilm_dir, shared_path


def _tiny(**changes):
  values = dict(
    vocab_size=97,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=40,
    type_vocab_size=2,
  )
  values.update(changes)
  return modeling.BertConfig(**values)


def test_google_config_round_trip_keeps_every_key(tmp_path):
  source = shared_path("bert-base-chinese", "bert_config.json")
  config = modeling.BertConfig.from_json_file(str(source))
  assert (config.vocab_size, config.hidden_act, config.type_vocab_size) == (21128, "gelu", 2)
  assert config.extra["pooler_type"] == "first_token_transform"
  config.to_json_file(str(tmp_path / "c.json"))
  assert json.loads((tmp_path / "c.json").read_text()) == json.loads(source.read_text())


def test_hugging_face_activation_names(tmp_path):
  hf = modeling.BertConfig.from_hf_json_file(str(minilm_dir() / "config.json"))
  assert hf.hidden_act == "gelu_exact"  # HF "gelu" is the erf gelu
  path = tmp_path / "config.json"
  path.write_text(
    json.dumps(
      {"vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2, "hidden_act": "gelu_new"}
    )
  )
  assert modeling.BertConfig.from_hf_json_file(str(path)).hidden_act == "gelu"
  with pytest.raises(ValueError, match="unsupported hidden_act 'mish'"):
    _tiny(hidden_act="mish")


def test_gelu_variants():
  x = tf.constant([-2.0, -0.5, 1.0, 3.0])
  tanh_gelu = 0.5 * x * (1 + tf.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
  np.testing.assert_allclose(modeling.gelu(x), tanh_gelu, atol=1e-6)
  np.testing.assert_allclose(
    modeling.gelu_exact(x), 0.5 * x * (1 + tf.math.erf(x / np.sqrt(2))), atol=1e-6
  )
  assert abs(float(modeling.gelu(1.0)) - float(modeling.gelu_exact(1.0))) > 1e-4


def test_encoder_takes_every_setting_from_the_config():
  config = _tiny(
    initializer_range=0.5,
    hidden_dropout_prob=0.2,
    attention_probs_dropout_prob=0.3,
    hidden_act="gelu",
  )
  model = modeling.create_model(config)
  encoder = model.encoder
  assert encoder._type_embedding_layer.embeddings.shape == (2, 32)  # not 16
  assert encoder._position_embedding_layer._position_embeddings.shape == (40, 32)
  block = encoder.transformer_layers[0]
  assert block._inner_activation is modeling.gelu
  assert block._output_dropout_rate == 0.2 and block._attention_dropout_rate == 0.3
  assert model.masked_lm.activation is modeling.gelu
  # TruncatedNormal(stddev=0.5) cut at 2 sigma has a standard deviation of 0.88 * 0.5.
  std = float(tf.math.reduce_std(encoder._embedding_layer.embeddings))
  assert std == pytest.approx(0.8796 * 0.5, rel=0.05)


def test_mlm_head_and_pooler_compute_bert():
  """Logits = LayerNorm(act(dense(h))) . E^T + b at the gathered positions."""
  model = modeling.create_model(_tiny())
  rng = np.random.default_rng(0)
  for var in model.masked_lm.trainable_variables:  # non-trivial LayerNorm and bias
    var.assign(rng.normal(0, 0.3, var.shape).astype(np.float32))
  ids = tf.constant(rng.integers(0, 97, (2, 10)), tf.int32)
  positions = tf.constant([[1, 4, 9], [0, 2, 2]], tf.int32)
  out = model(
    {
      "input_word_ids": ids,
      "input_mask": tf.ones_like(ids),
      "input_type_ids": tf.zeros_like(ids),
      "masked_lm_positions": positions,
    },
    training=False,
  )
  seq = out["sequence_output"].numpy()
  head = model.masked_lm
  h = seq[np.arange(2)[:, None], positions.numpy()]
  h = modeling.gelu(h @ head.dense.kernel.numpy() + head.dense.bias.numpy()).numpy()
  mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
  h = (h - mean) / np.sqrt(
    var + 1e-12
  ) * head.layer_norm.gamma.numpy() + head.layer_norm.beta.numpy()
  table = model.encoder.get_embedding_table().numpy()
  expected = h @ table.T + head.bias.numpy()
  assert out["mlm_logits"].shape == (2, 3, 97)
  np.testing.assert_allclose(out["mlm_logits"].numpy(), expected, atol=1e-4)
  pooler = model.encoder.pooler_layer
  np.testing.assert_allclose(
    out["pooled_output"].numpy(),
    np.tanh(seq[:, 0] @ pooler.kernel.numpy() + pooler.bias.numpy()),
    atol=1e-5,
  )


def test_mean_pool_counts_only_real_tokens():
  seq = tf.constant([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
  pooled = modeling.mean_pool(seq, tf.constant([[1, 1, 0], [1, 1, 1]]))
  np.testing.assert_allclose(pooled.numpy(), [[2.0], [4.0]])
