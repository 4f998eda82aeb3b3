"""Loading Google TF1 checkpoints, layer extraction, model dirs, TF1 export."""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from bert_pl import checkpoints, export_tf1_checkpoint, modeling

from conftest import run_job, shared_path

# Google's chinese_L-12_H-768_A-12 scaled down: 768 -> 48, 3072 -> 192.
_SCALE = {768: 48, 3072: 192}


def _write_google_standin(directory, seed=0):
  """A checkpoint with exactly the real variable names of Google's Chinese BERT.

  Written by TF1's Saver, as google-research/bert wrote its checkpoints;
  shapes scaled down, values random. Returns (prefix, {name: array}).
  """
  listing = shared_path("chinese_L-12_H-768_A-12_index_only", "variables.txt")
  rng = np.random.default_rng(seed)
  values = {}
  for line in listing.read_text().splitlines():
    name, shape, dtype = line.split("\t")
    assert dtype == "float32"
    dims = [_SCALE.get(d, d) for d in json.loads(shape)]
    values[name] = rng.normal(0, 0.05, dims).astype(np.float32)
  assert len(values) == 206
  prefix = os.path.join(directory, "bert_model.ckpt")
  with tf.Graph().as_default():
    variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      saver.save(session, prefix, write_meta_graph=False)
  config = json.loads(
    shared_path("chinese_L-12_H-768_A-12_index_only", "bert_config.json").read_text()
  )
  config.update(hidden_size=48, intermediate_size=192)
  with open(os.path.join(directory, "bert_config.json"), "w") as f:
    json.dump(config, f)
  return prefix, values


@pytest.fixture(scope="module")
def google_standin(tmp_path_factory):
  return _write_google_standin(str(tmp_path_factory.mktemp("google")))


def _expected(values, layer_map):
  """Source tensors renamed to the layers the model should hold."""
  expected = {}
  for name, value in values.items():
    if name.startswith("bert/encoder/layer_"):
      source = int(name.split("/")[2].split("_")[1])
      if source in layer_map:
        rest = name.split("/", 3)[3]
        expected[f"bert/encoder/layer_{layer_map.index(source)}/{rest}"] = value
    elif not name.startswith("cls/seq_relationship"):
      expected[name] = value
  return expected


@pytest.mark.parametrize("num_layers,layer_map", [(3, None), (None, [0, 5, 11])])
def test_first_layers_and_layer_map_equal_their_source(google_standin, num_layers, layer_map):
  prefix, values = google_standin
  model, source = checkpoints.load_bert(prefix, num_hidden_layers=num_layers, layer_map=layer_map)
  assert source.kind == "tf1"
  assert model.config.num_hidden_layers == 3
  assert model.config.type_vocab_size == 2
  loaded = checkpoints.model_weights(model)
  expected = _expected(values, layer_map or [0, 1, 2])
  # Every tensor of layers 0-2 (or 0, 5, 11), embeddings, pooler, MLM head.
  assert sorted(loaded) == sorted(expected)
  assert len(loaded) == 5 + 3 * 16 + 2 + 5
  for name, value in expected.items():
    np.testing.assert_array_equal(loaded[name], value, err_msg=name)
  # The reshape really is the one BERT's attention uses: query kernel columns
  # of head h are source columns h*head_size:(h+1)*head_size.
  query = model.encoder.transformer_layers[1]._attention_layer._query_dense.kernel.numpy()
  source_layer = (layer_map or [0, 1, 2])[1]
  source_query = values[f"bert/encoder/layer_{source_layer}/attention/self/query/kernel"]
  np.testing.assert_array_equal(query[:, 2, :], source_query[:, 8:12])
  # The MLM decoder is the word-embedding table itself.
  assert model.masked_lm.embedding_table is model.encoder.get_embedding_table()


def test_mismatches_fail_naming_variable_and_shapes(google_standin, tmp_path):
  prefix, _ = google_standin
  config = modeling.BertConfig.from_json_file(
    os.path.join(os.path.dirname(prefix), "bert_config.json")
  )
  wrong_vocab = tmp_path / "vocab_config.json"
  config.replace(vocab_size=21000).to_json_file(str(wrong_vocab))
  with pytest.raises(
    checkpoints.CheckpointError,
    match=r"bert/embeddings/word_embeddings: checkpoint shape "
    r"\[21128, 48\] != model shape \[21000, 48\]",
  ):
    checkpoints.load_bert(prefix, str(wrong_vocab), num_hidden_layers=3)
  wrong_hidden = tmp_path / "hidden_config.json"
  config.replace(hidden_size=96, intermediate_size=192).to_json_file(str(wrong_hidden))
  with pytest.raises(
    checkpoints.CheckpointError,
    match=r"bert/embeddings/LayerNorm/beta: checkpoint shape \[48\] "
    r"!= model shape \[96\]",
  ):
    checkpoints.load_bert(prefix, str(wrong_hidden), num_hidden_layers=3)
  with pytest.raises(
    checkpoints.CheckpointError, match="layer 12 requested, but the checkpoint has 12 layers"
  ):
    checkpoints.load_bert(prefix, layer_map=[0, 5, 12])


def test_missing_variable_is_named(tmp_path):
  config = modeling.BertConfig(
    vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
  )
  weights = checkpoints.model_weights(modeling.create_model(config))
  del weights["bert/encoder/layer_1/output/LayerNorm/gamma"]
  with pytest.raises(
    checkpoints.CheckpointError,
    match=r"variable bert/encoder/layer_1/output/LayerNorm/gamma "
    r"\(shape \[16\]\) is missing",
  ):
    checkpoints.assign_weights(modeling.create_model(config), weights)


def _outputs(model, seed=1):
  rng = np.random.default_rng(seed)
  ids = tf.constant(rng.integers(0, model.config.vocab_size, (3, 12)), tf.int32)
  mask = tf.constant([[1] * 12, [1] * 7 + [0] * 5, [1] * 3 + [0] * 9], tf.int32)
  out = model(
    {
      "input_word_ids": ids,
      "input_mask": mask,
      "input_type_ids": tf.concat([tf.zeros([3, 6], tf.int32), tf.ones([3, 6], tf.int32)], 1),
      "masked_lm_positions": tf.constant([[1, 2], [3, 4], [0, 2]]),
    },
    training=False,
  )
  return {k: out[k].numpy() for k in ("sequence_output", "pooled_output", "mlm_logits")}


def test_tf1_round_trip_gives_identical_outputs(google_standin, tmp_path):
  """Load -> export to TF1 -> load: the same weights and outputs, bit for bit."""
  prefix, _ = google_standin
  vocab = tmp_path / "vocab.txt"
  specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  vocab.write_text("\n".join(specials) + "\n")
  with pytest.raises(ValueError, match="has 5 tokens but the model's vocab_size is 21128"):
    export_tf1_checkpoint.run(
      export_tf1_checkpoint.ExportTf1CheckpointConfig(
        init_checkpoint=prefix, output_dir=str(tmp_path / "x"), vocab_file=str(vocab)
      )
    )
  vocab.write_text("\n".join(specials + [f"t{i}" for i in range(21128 - 5)]) + "\n")
  model, _ = checkpoints.load_bert(prefix, num_hidden_layers=3)
  out_dir = str(tmp_path / "tf1")
  written = export_tf1_checkpoint.run(
    export_tf1_checkpoint.ExportTf1CheckpointConfig(
      init_checkpoint=prefix, output_dir=out_dir, vocab_file=str(vocab), num_hidden_layers=3
    )
  )
  # The files are what original BERT reads: its names and shapes, its config.
  reader = tf.train.load_checkpoint(written)
  shapes = reader.get_variable_to_shape_map()
  assert shapes["bert/encoder/layer_2/attention/self/query/kernel"] == [48, 48]
  assert "bert/encoder/layer_3/output/dense/bias" not in shapes
  assert json.loads(pathlib.Path(out_dir, "bert_config.json").read_text())["num_hidden_layers"] == 3
  reloaded, source = checkpoints.load_bert(out_dir)
  assert source.kind == "tf1" and source.vocab_file.endswith("vocab.txt")
  for key, value in _outputs(model).items():
    np.testing.assert_array_equal(_outputs(reloaded)[key], value, err_msg=key)


def test_model_dir_checkpoint_loads(tmp_path):
  """A directory with tf.train.CheckpointManager checkpoints (key `bert`)."""
  config = modeling.BertConfig(
    vocab_size=60,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
  )
  model = modeling.create_model(config)
  model_dir = str(tmp_path / "model_a")
  manager = tf.train.CheckpointManager(
    tf.train.Checkpoint(**{checkpoints.CHECKPOINT_KEY: model}), model_dir, 3
  )
  manager.save(checkpoint_number=7)
  config.to_json_file(os.path.join(model_dir, "bert_config.json"))
  reloaded, source = checkpoints.load_bert(model_dir)
  assert source.kind == "model_dir" and source.path.endswith("ckpt-7")
  for key, value in _outputs(model).items():
    np.testing.assert_array_equal(_outputs(reloaded)[key], value, err_msg=key)
  first, _ = checkpoints.load_bert(model_dir, num_hidden_layers=1)
  np.testing.assert_array_equal(
    checkpoints.model_weights(first)["bert/encoder/layer_0/output/dense/kernel"],
    checkpoints.model_weights(model)["bert/encoder/layer_0/output/dense/kernel"],
  )


def test_export_job_reports_errors_in_one_line(google_standin, tmp_path):
  prefix, _ = google_standin
  result = run_job(
    "export_tf1_checkpoint",
    f"--init_checkpoint={prefix}",
    f"--output_dir={tmp_path / 'out'}",
    "--layer_map=0,5,12",
    check=False,
  )
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert "error: layer 12 requested, but the checkpoint has 12 layers" in result.stderr
  missing = run_job(
    "export_tf1_checkpoint",
    f"--init_checkpoint={tmp_path / 'nope'}",
    f"--output_dir={tmp_path / 'out'}",
    check=False,
  )
  assert missing.returncode == 2 and "Traceback" not in missing.stderr
  assert "checkpoint not found" in missing.stderr
