"""BERT weights in and out: Google TF1 checkpoints, Hugging Face safetensors,
and model directories written by this project.

Every source is first read into one canonical form, a dict from the original
Google variable names (`bert/encoder/layer_0/attention/self/query/kernel`,
`cls/predictions/output_bias`, ...) to NumPy arrays in the original shapes.
One function then selects layers, checks shapes and assigns to a `BertModel`;
the TF1 writer is the same name map run backwards. So layer extraction
(`--num_hidden_layers`, `--layer_map`), shape errors and round trips behave
identically whatever the source.

The Keras side is reached through tf-models-official's layer attributes
(pinned version 2.15.0). The reshapes are those of its TF1 converter
(`official.nlp.tools.tf1_bert_checkpoint_converter_lib`): attention
query/key/value kernels [hidden, hidden] <-> [hidden, heads, head_size], their
biases [hidden] <-> [heads, head_size], the attention output kernel
[hidden, hidden] <-> [heads, head_size, hidden]. That converter rewrites a
whole checkpoint for a fixed model; it cannot take a subset of layers or name
a mismatching variable, so the mapping is applied here variable by variable.
"""

import dataclasses
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from bert_pl import errors, modeling, tokenization
from bert_pl.errors import CheckpointError  # noqa: F401 (checkpoints.CheckpointError)

Weights = Dict[str, np.ndarray]

CHECKPOINT_KEY = "bert"  # tf.train.Checkpoint(bert=BertModel) in model dirs
TF1_CHECKPOINT_NAME = "bert_model.ckpt"
_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")
# The MLM head's own variables; its decoder is the word-embedding table.
MLM_HEAD_NAMES = tuple(
  "cls/predictions/" + n
  for n in (
    "transform/dense/kernel",
    "transform/dense/bias",
    "transform/LayerNorm/gamma",
    "transform/LayerNorm/beta",
    "output_bias",
  )
)
_STEP = "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"  # a model directory's training step
# Variables a model can do without: a Hugging Face `BertModel` has no MLM
# head and some checkpoints have no pooler. They keep their initial values.
_OPTIONAL_PREFIXES = ("cls/predictions/", "bert/pooler/")


def tf1_variables(model: modeling.BertModel) -> Dict[str, tf.Variable]:
  """Google's TF1 variable name -> the model's Keras variable."""
  enc = model.encoder
  names = {
    "bert/embeddings/word_embeddings": enc._embedding_layer.embeddings,
    "bert/embeddings/position_embeddings": enc._position_embedding_layer._position_embeddings,
    "bert/embeddings/token_type_embeddings": enc._type_embedding_layer.embeddings,
    "bert/embeddings/LayerNorm/gamma": enc._embedding_norm_layer.gamma,
    "bert/embeddings/LayerNorm/beta": enc._embedding_norm_layer.beta,
    "bert/pooler/dense/kernel": enc.pooler_layer.kernel,
    "bert/pooler/dense/bias": enc.pooler_layer.bias,
  }
  head = model.masked_lm
  names.update(
    zip(
      MLM_HEAD_NAMES,
      (head.dense.kernel, head.dense.bias, head.layer_norm.gamma, head.layer_norm.beta, head.bias),
    )
  )
  for i, block in enumerate(enc.transformer_layers):
    prefix = f"bert/encoder/layer_{i}/"
    attention = block._attention_layer
    parts = {
      "attention/self/query": attention._query_dense,
      "attention/self/key": attention._key_dense,
      "attention/self/value": attention._value_dense,
      "attention/output/dense": attention._output_dense,
      "intermediate/dense": block._intermediate_dense,
      "output/dense": block._output_dense,
    }
    for part, layer in parts.items():
      names[prefix + part + "/kernel"] = layer.kernel
      names[prefix + part + "/bias"] = layer.bias
    for part, layer in (
      ("attention/output/LayerNorm", block._attention_layer_norm),
      ("output/LayerNorm", block._output_layer_norm),
    ):
      names[prefix + part + "/gamma"] = layer.gamma
      names[prefix + part + "/beta"] = layer.beta
  return names


def mlm_head_variables(model: modeling.BertModel) -> List[tf.Variable]:
  """The MLM head's own variables (`cls/predictions/*`): the transform and the
  output bias, not the decoder, which is the word-embedding table."""
  variables = tf1_variables(model)
  return [variables[name] for name in MLM_HEAD_NAMES]


def tf1_shape(name: str, keras_shape: Sequence[int]) -> tuple:
  """The shape Google's checkpoint stores for a Keras variable's shape."""
  shape = tuple(keras_shape)
  if re.search(r"attention/self/(query|key|value)/kernel$", name):
    return (shape[0], shape[1] * shape[2])
  if re.search(r"attention/self/(query|key|value)/bias$", name):
    return (shape[0] * shape[1],)
  if name.endswith("attention/output/dense/kernel"):
    return (shape[0] * shape[1], shape[2])
  return shape


def model_weights(model: modeling.BertModel) -> Weights:
  """The model's weights in the canonical (Google TF1) names and shapes."""
  return {
    name: np.reshape(var.numpy(), tf1_shape(name, var.shape))
    for name, var in tf1_variables(model).items()
  }


# ---------------------------------------------------------------- sources


def read_tf1_checkpoint(path: str) -> Weights:
  """All variables of a name-based (original BERT) checkpoint."""
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


_HF_LAYER_NORM = {"weight": "gamma", "bias": "beta", "gamma": "gamma", "beta": "beta"}


def hf_to_tf1_name(name: str) -> Optional[str]:
  """Maps a Hugging Face BERT tensor name to Google's, or None to skip it."""
  if name.startswith("bert."):
    name = name[len("bert.") :]
  if (
    name.endswith("position_ids")
    or name.startswith("cls.seq_relationship")
    or name.startswith("cls.predictions.decoder")
  ):
    return None  # buffers, the NSP head, the tied decoder weight
  if name in ("cls.predictions.bias",):
    return "cls/predictions/output_bias"
  parts = re.sub(r"\.layer\.(\d+)\.", r".layer_\1.", name).split(".")
  leaf = parts.pop()
  prefix = "" if parts[0] == "cls" else "bert/"
  path = prefix + "/".join(parts)
  if parts[-1] == "LayerNorm":
    return f"{path}/{_HF_LAYER_NORM[leaf]}"
  if parts[0] == "embeddings":
    return path
  return f"{path}/{'kernel' if leaf == 'weight' else leaf}"


def read_hf_safetensors(path: str) -> Weights:
  """A Hugging Face BERT `model.safetensors` (NumPy API, no PyTorch).

  PyTorch `Linear` stores weights as [out, in]; TF kernels are [in, out].
  """
  from safetensors import SafetensorError
  from safetensors.numpy import load_file

  with _reading(path, damaged=(SafetensorError,)):
    tensors = load_file(path)
  weights = {}
  for hf_name, value in tensors.items():
    name = hf_to_tf1_name(hf_name)
    if name is None:
      continue
    weights[name] = value.T if name.endswith("/kernel") else value
  return weights


def read_model_dir_checkpoint(checkpoint_path: str, config: modeling.BertConfig) -> Weights:
  """An object-based checkpoint of this project (key `bert`)."""
  model = modeling.create_model(config)
  tf.train.Checkpoint(**{CHECKPOINT_KEY: model}).read(checkpoint_path).expect_partial()
  return model_weights(model)


@dataclasses.dataclass
class Source:
  """Where an `--init_checkpoint` points: its kind, weights path and files."""

  kind: str  # "tf1" | "safetensors" | "model_dir"
  path: str  # checkpoint prefix or .safetensors file
  config_file: Optional[str]  # bert_config.json (Google format) or config.json (HF)
  vocab_file: Optional[str]

  def read_config(self) -> Optional[modeling.BertConfig]:
    if self.config_file is None:
      return None
    if os.path.basename(self.config_file) == "config.json":
      return modeling.BertConfig.from_hf_json_file(self.config_file)
    return modeling.BertConfig.from_json_file(self.config_file)


def _reading(path: str, damaged: Tuple[type, ...] = ()):
  """Reading checkpoint files: a damaged or unreadable one is a `CheckpointError`."""
  return errors.reading(path, "not a readable checkpoint", CheckpointError, damaged)


def _is_object_based(prefix: str) -> bool:
  with _reading(prefix):
    names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  return any("/.ATTRIBUTES/" in n for n in names)


def _sidecar(directory: str, *names: str) -> Optional[str]:
  for name in names:
    path = os.path.join(directory, name)
    if tf.io.gfile.exists(path):
      return path
  return None


def resolve_init_checkpoint(init_checkpoint: str) -> Source:
  """Finds the kind of checkpoint and the config and vocab beside it.

  Accepts a checkpoint prefix (`.../bert_model.ckpt`, `.../ckpt-12`), a
  directory holding one (latest by the `checkpoint` file, else
  `bert_model.ckpt`), a `.safetensors` file, or a directory holding
  `model.safetensors`.
  """
  path = init_checkpoint.rstrip("/")
  if tf.io.gfile.isdir(path):
    directory = path
    with _reading(os.path.join(path, "checkpoint")):
      prefix = latest_checkpoint(path)
    if prefix is None and tf.io.gfile.exists(os.path.join(path, TF1_CHECKPOINT_NAME + ".index")):
      prefix = os.path.join(path, TF1_CHECKPOINT_NAME)
    if prefix is None and tf.io.gfile.exists(os.path.join(path, "model.safetensors")):
      path = os.path.join(path, "model.safetensors")
    elif prefix is None:
      raise CheckpointError(
        f"{init_checkpoint}: no checkpoint found in this directory "
        "(expected a `checkpoint` file, bert_model.ckpt.index, "
        "or model.safetensors)"
      )
    else:
      path = prefix
  else:
    directory = os.path.dirname(path) or "."
  if path.endswith(".safetensors"):
    if not tf.io.gfile.exists(path):
      raise CheckpointError(f"{path}: file not found")
    return Source(
      "safetensors",
      path,
      _sidecar(directory, "config.json", "bert_config.json"),
      _sidecar(directory, "vocab.txt"),
    )
  if not tf.io.gfile.exists(path + ".index"):
    raise CheckpointError(f"{init_checkpoint}: checkpoint not found ({path}.index missing)")
  kind = "model_dir" if _is_object_based(path) else "tf1"
  return Source(
    kind, path, _sidecar(directory, "bert_config.json"), _sidecar(directory, "vocab.txt")
  )


def read_weights(source: Source, config: Optional[modeling.BertConfig]) -> Weights:
  if source.kind == "safetensors":
    return read_hf_safetensors(source.path)
  if source.kind == "model_dir" and config is None:
    raise CheckpointError(
      f"{source.path}: a model-directory checkpoint needs its bert_config.json beside it"
    )
  with _reading(source.path):
    if source.kind == "tf1":
      return read_tf1_checkpoint(source.path)
    return read_model_dir_checkpoint(source.path, config)


def mlm_head_state(source: Optional[Source]) -> str:
  """How a new model's MLM head begins (task.json's `mlm_head`): "loaded"
  from `source`, "initialised" on top of an encoder loaded from it, or
  "random" with the whole model (no `source`). Read from the variable names
  alone, before any weight is.

  A sentence encoder or a Hugging Face `BertModel` has no `cls.predictions.*`.
  A model-directory checkpoint always holds the head's variables, trained or
  not: its head is trained when run_pretraining trained it with the MLM loss
  for a step at least, else it is as its task.json says it began (a model
  written before the record: "loaded")."""
  if source is None:
    return "random"
  if source.kind == "model_dir":
    info_file = os.path.join(os.path.dirname(source.path), "task.json")
    info = modeling.read_json(info_file) if tf.io.gfile.exists(info_file) else {}
    with _reading(source.path):
      reader = tf.train.load_checkpoint(source.path)
      steps = reader.get_tensor(_STEP) if reader.has_tensor(_STEP) else 0
    trained = info.get("trained_by") == "run_pretraining" and info.get("masked_lm_loss_weight") != 0
    return "loaded" if trained and steps > 0 else info.get("mlm_head", "loaded")
  if source.kind == "safetensors":
    from safetensors import SafetensorError, safe_open

    with _reading(source.path, damaged=(SafetensorError,)):
      with safe_open(source.path, "np") as f:
        names = {hf_to_tf1_name(n) for n in f.keys()}
  else:
    with _reading(source.path):
      names = set(tf.train.load_checkpoint(source.path).get_variable_to_shape_map())
  return "loaded" if names.issuperset(MLM_HEAD_NAMES) else "initialised"


# ------------------------------------------------------------ assignment


def parse_layer_map(layer_map: Optional[str]) -> Optional[List[int]]:
  """'0,5,11' -> [0, 5, 11]; empty -> None."""
  if not layer_map:
    return None
  try:
    return [int(x) for x in layer_map.split(",")]
  except ValueError:
    raise CheckpointError(
      f"--layer_map must be comma-separated integers, got {layer_map!r}"
    ) from None


def source_num_layers(weights: Weights) -> int:
  layers = {int(m.group(1)) for m in map(_LAYER.match, weights) if m}
  return max(layers) + 1 if layers else 0


def select_layers(weights: Weights, layer_map: Sequence[int]) -> Weights:
  """Renumbers layers: target layer i takes source layer layer_map[i]."""
  available = source_num_layers(weights)
  for index in layer_map:
    if not 0 <= index < available:
      raise CheckpointError(
        f"layer {index} requested, but the checkpoint has {available} layers (0..{available - 1})"
      )
  selected = {n: v for n, v in weights.items() if not _LAYER.match(n)}
  for target, source in enumerate(layer_map):
    prefix = f"bert/encoder/layer_{source}/"
    for name, value in weights.items():
      if name.startswith(prefix):
        selected[f"bert/encoder/layer_{target}/{name[len(prefix) :]}"] = value
  return selected


@dataclasses.dataclass
class LoadReport:
  loaded: List[str]
  missing_optional: List[str]
  unused: List[str]


def assign_weights(
  model: modeling.BertModel, weights: Weights, layer_map: Optional[Sequence[int]] = None
) -> LoadReport:
  """Assigns canonical `weights` to `model`, checking every name and shape.

  `layer_map[i]` is the source layer for model layer i; by default layers
  0..N-1 of the source, N being the model's layer count.
  """
  n_layers = model.config.num_hidden_layers
  if layer_map is None:
    layer_map = list(range(n_layers))
  if len(layer_map) != n_layers:
    raise CheckpointError(
      f"--layer_map names {len(layer_map)} layers but the model has num_hidden_layers={n_layers}"
    )
  weights = select_layers(weights, layer_map)
  targets = tf1_variables(model)
  loaded, missing_optional = [], []
  updates = []
  for name in sorted(targets):
    var = targets[name]
    expected = tf1_shape(name, var.shape)
    if name not in weights:
      if name.startswith(_OPTIONAL_PREFIXES):
        missing_optional.append(name)
        continue
      raise CheckpointError(
        f"variable {name} (shape {list(expected)}) is missing from the checkpoint"
      )
    value = weights[name]
    if tuple(value.shape) != expected:
      raise CheckpointError(
        f"variable {name}: checkpoint shape {list(value.shape)} != model shape {list(expected)}"
      )
    updates.append((var, np.reshape(value, var.shape).astype(var.dtype.as_numpy_dtype)))
    loaded.append(name)
  for var, value in updates:  # only once everything matched
    var.assign(value)
  unused = sorted(set(weights) - set(targets))
  if missing_optional:
    logging.warning(
      "Not in the checkpoint, left at their initial values: %s", ", ".join(missing_optional)
    )
  if unused:
    logging.info("Checkpoint variables not used by the model: %d (e.g. %s)", len(unused), unused[0])
  return LoadReport(loaded, missing_optional, unused)


def resolve_config(
  init_checkpoint: Optional[str],
  bert_config_file: Optional[str] = None,
  num_hidden_layers: Optional[int] = None,
  layer_map: Optional[Sequence[int]] = None,
):
  """The model's config and the checkpoint's `Source` (None without one).

  The config comes from `bert_config_file`, else from the checkpoint's
  directory. The model's layer count is `len(layer_map)`, else
  `num_hidden_layers`, else the config's.
  """
  source = resolve_init_checkpoint(init_checkpoint) if init_checkpoint else None
  if bert_config_file:
    config = modeling.BertConfig.from_json_file(bert_config_file)
  elif source is not None and source.config_file:
    config = source.read_config()
  else:
    raise CheckpointError(
      f"no --bert_config_file given and none found beside --init_checkpoint={init_checkpoint!r}"
    )
  if layer_map:
    num_hidden_layers = len(layer_map)
  if num_hidden_layers:
    config = config.replace(num_hidden_layers=num_hidden_layers)
  return config, source


def resolve_vocab_file(
  vocab_file: Optional[str], source: Optional[Source], config: modeling.BertConfig
) -> str:
  """The vocabulary of a model of `config`: `vocab_file`, else the
  vocab.txt beside the checkpoint `source` (see `resolve_config`). Its size
  must be the config's vocab_size: other ids would index other embeddings."""
  vocab_file = vocab_file or (source.vocab_file if source else None)
  if not vocab_file:
    raise errors.InputError(
      "no --vocab_file given and no vocab.txt beside --init_checkpoint"
      + (f" ({source.path})" if source else "")
    )
  vocab_size = len(tokenization.load_vocab(vocab_file))
  if vocab_size != config.vocab_size:
    raise errors.InputError(
      f"{vocab_file} has {vocab_size} tokens but the model's vocab_size is {config.vocab_size}"
    )
  return vocab_file


def init_from_checkpoint(
  model: modeling.BertModel, source: Source, layer_map: Optional[Sequence[int]] = None
) -> LoadReport:
  """Loads `source` into an existing model (e.g. one built in a strategy scope)."""
  source_config = source.read_config() if source.config_file else model.config
  report = assign_weights(model, read_weights(source, source_config), layer_map)
  logging.info("Loaded %d variables from %s (%s)", len(report.loaded), source.path, source.kind)
  return report


def load_bert(
  init_checkpoint: Optional[str],
  bert_config_file: Optional[str] = None,
  num_hidden_layers: Optional[int] = None,
  layer_map: Optional[Sequence[int]] = None,
):
  """Builds a `BertModel` and loads `init_checkpoint` into it (see
  `resolve_config`). Returns (model, source)."""
  config, source = resolve_config(init_checkpoint, bert_config_file, num_hidden_layers, layer_map)
  model = modeling.create_model(config)
  if source is not None:
    init_from_checkpoint(model, source, layer_map)
  return model, source


# ------------------------------------------------------------------ output


def write_tf1_checkpoint(model: modeling.BertModel, prefix: str, mlm_head: bool = True) -> None:
  """Writes Google's name-based checkpoint (`prefix`.index/.data-*), without
  the MLM head unless `mlm_head` (one never trained is no head: a reader
  would take it for a trained one)."""
  weights = model_weights(model)
  names = sorted(n for n in weights if mlm_head or n not in MLM_HEAD_NAMES)
  tf.io.gfile.makedirs(os.path.dirname(prefix) or ".")
  tf.raw_ops.SaveV2(
    prefix=prefix,
    tensor_names=names,
    shape_and_slices=[""] * len(names),
    tensors=[tf.constant(weights[n]) for n in names],
  )


def check_checkpoint_file(model_dir: str) -> None:
  """Refuses a `checkpoint` file in `model_dir` that lists a checkpoint
  outside it, through `..`, or through a symbolic link that leads out.

  `tf.train.CheckpointManager` restores the latest checkpoint the file lists
  and deletes the old ones beyond `max_to_keep`, wherever they are: a crafted
  or copied file would make a run load another model and then delete its
  checkpoints. The manager itself only ever writes names inside."""
  path = os.path.join(model_dir, "checkpoint")
  with _reading(path):  # bytes that are not text: "invalid UTF-8"
    try:
      state = tf.train.get_checkpoint_state(model_dir)
    except UnicodeDecodeError:
      raise
    except ValueError:  # TensorFlow's message names the directory only
      raise errors.CheckpointError(f"{path}: no model_checkpoint_path") from None
  if state is None:
    return
  inside = os.path.join(model_dir, "")
  root = os.path.realpath(model_dir)
  for listed in [state.model_checkpoint_path, *state.all_model_checkpoint_paths]:
    # TensorFlow put model_dir before the relative paths: shown as written.
    written = listed[len(inside) :] if listed.startswith(inside) else listed
    if ".." in written.split("/") or os.path.commonpath([root, os.path.realpath(listed)]) != root:
      raise errors.CheckpointError(f"{path}: lists {written}, outside the model directory")


def latest_checkpoint(directory: str) -> Optional[str]:
  """The latest checkpoint of a model directory, for a job that reads it:
  its `checkpoint` file is checked first (`check_checkpoint_file`), so a
  reader never loads another model's weights through `..`, an absolute path
  or a link out of the directory."""
  check_checkpoint_file(directory)
  return tf.train.latest_checkpoint(directory)
