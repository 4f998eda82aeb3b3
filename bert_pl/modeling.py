"""BERT as Google defined it, built from tf-models-official parts.

`BertConfig` reads and writes the original `bert_config.json`. `BertModel`
wraps tf-models-official's `BertEncoderV2` (embeddings, transformer layers,
pooler) and its `MaskedLM` head (transform + LayerNorm + output bias, decoder
tied to the word embeddings), configured from the config instead of the
library defaults, which differ from BERT: `type_vocab_size` defaults to 16 and
the activation is an anonymous lambda that cannot be named in a config.

Activations follow the meaning of each config format (DESIGN §5): in Google's
`bert_config.json` "gelu" is the tanh approximation (google-research/bert
`modeling.gelu`); in a Hugging Face `config.json` "gelu" is the exact erf gelu
and "gelu_new"/"gelu_pytorch_tanh" the tanh one. `BertConfig` stores Google's
names, plus "gelu_exact" for the erf gelu, which Google's format cannot name.
"""

import contextlib
import copy
import dataclasses
import json
import numbers
from typing import Any, Dict

import tensorflow as tf
from official.nlp.modeling import layers as nlp_layers
from official.nlp.modeling import networks

from bert_pl import errors


@tf.keras.utils.register_keras_serializable(package="bert_pl")
def gelu(x):
  """google-research/bert's gelu: the tanh approximation."""
  return tf.keras.activations.gelu(x, approximate=True)


@tf.keras.utils.register_keras_serializable(package="bert_pl")
def gelu_exact(x):
  """The exact gelu, x * Phi(x) with the erf (Hugging Face's "gelu")."""
  return tf.keras.activations.gelu(x, approximate=False)


_ACTIVATIONS = {
  "gelu": gelu,
  "gelu_exact": gelu_exact,
  "relu": tf.keras.activations.relu,
  "tanh": tf.keras.activations.tanh,
  "linear": tf.keras.activations.linear,
  "swish": tf.keras.activations.swish,
}

# Hugging Face activation names -> the names of Google's format (plus ours).
_HF_ACTIVATIONS = {
  "gelu": "gelu_exact",
  "gelu_new": "gelu",
  "gelu_pytorch_tanh": "gelu",
  "gelu_fast": "gelu",
  "relu": "relu",
  "tanh": "tanh",
  "silu": "swish",
  "swish": "swish",
  "linear": "linear",
}


def get_activation(name: str):
  """Activation for a `hidden_act` of Google's bert_config.json."""
  try:
    return _ACTIVATIONS[name.lower()]
  except KeyError:
    raise errors.InputError(
      f"unsupported hidden_act {name!r}; expected one of {sorted(_ACTIVATIONS)}"
    ) from None


# Fields that must be positive integers, and fractions in [0, 1).
_SIZES = (
  "vocab_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "intermediate_size",
  "max_position_embeddings",
  "type_vocab_size",
)
_DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob")


@dataclasses.dataclass
class BertConfig:
  """The fields of the original `bert_config.json`.

  Keys this class does not use (e.g. "directionality", "pooler_*" in Google's
  Chinese config) are kept in `extra` and written back unchanged.
  """

  vocab_size: int
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  initializer_range: float = 0.02
  extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    """Refuses values that describe no model (`errors.InputError`), before
    they reach TensorFlow as an obscure error."""
    for name in _SIZES:
      value = getattr(self, name)
      if not _is_number(value, numbers.Integral) or value < 1:
        raise errors.InputError(f"{name} must be a positive integer, got {value!r}")
    for name in _DROPOUTS:
      value = getattr(self, name)
      if not _is_number(value, numbers.Real) or not 0 <= value < 1:
        raise errors.InputError(f"{name} must be a number in [0, 1), got {value!r}")
    if not _is_number(self.initializer_range, numbers.Real) or self.initializer_range <= 0:
      raise errors.InputError(
        f"initializer_range must be a number > 0, got {self.initializer_range!r}"
      )
    if not isinstance(self.hidden_act, str):
      raise errors.InputError(f"hidden_act must be a name, got {self.hidden_act!r}")
    get_activation(self.hidden_act)
    if self.hidden_size % self.num_attention_heads:
      raise errors.InputError(
        f"hidden_size {self.hidden_size} is not a multiple of "
        f"num_attention_heads {self.num_attention_heads}"
      )

  @classmethod
  def from_dict(cls, values: Dict[str, Any]) -> "BertConfig":
    _check_object(values)
    if "vocab_size" not in values:
      raise errors.InputError("no vocab_size (the size of the model's vocab.txt)")
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in values.items() if k in names}
    extra = {k: v for k, v in values.items() if k not in names}
    return cls(**known, extra=extra)

  @classmethod
  def from_json_file(cls, path: str) -> "BertConfig":
    """Reads Google's bert_config.json."""
    values = read_json(path)
    with _naming(path):
      return cls.from_dict(values)

  @classmethod
  def from_hf_json_file(cls, path: str) -> "BertConfig":
    """Reads a Hugging Face BERT config.json, translating `hidden_act`."""
    values = read_json(path)
    with _naming(path):
      _check_object(values)
      hf_act = values.get("hidden_act", "gelu")
      if hf_act not in _HF_ACTIVATIONS:
        raise errors.InputError(f"unsupported hidden_act {hf_act!r}")
      values["hidden_act"] = _HF_ACTIVATIONS[hf_act]
      names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
      return cls.from_dict({k: v for k, v in values.items() if k in names})

  def check_max_seq_length(self, max_seq_length: int, where: str) -> None:
    """Refuses sequences longer than the model's position embeddings
    (`where` says whose length it is, e.g. the flag), before anything is
    built or written: Keras would fail on it deep in the first step."""
    if max_seq_length > self.max_position_embeddings:
      raise errors.InputError(
        f"{where}={max_seq_length}: more than the model's "
        f"max_position_embeddings={self.max_position_embeddings}"
      )

  def to_dict(self) -> Dict[str, Any]:
    values = dataclasses.asdict(self)
    values.update(values.pop("extra"))
    return values

  def to_json_string(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def to_json_file(self, path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(self.to_json_string())

  def replace(self, **changes) -> "BertConfig":
    return dataclasses.replace(copy.deepcopy(self), **changes)


def _check_object(values) -> None:
  if not isinstance(values, dict):
    raise errors.InputError(f"expected a JSON object of settings, got {type(values).__name__}")


def _is_number(value, kind) -> bool:
  return isinstance(value, kind) and not isinstance(value, bool)


@contextlib.contextmanager
def _naming(path: str):
  """Prefixes the message of an `errors.InputError` raised inside with `path`."""
  try:
    yield
  except errors.InputError as e:
    raise errors.InputError(f"{path}: {e}") from None


def read_json(path: str) -> Any:
  """A JSON file (a config, task.json); a missing or unreadable file or bad
  JSON is an `errors.InputError` naming it (and the line)."""
  errors.check_file(path)
  try:
    with errors.reading(path), tf.io.gfile.GFile(path, "r") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise errors.InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def _initializer(config: BertConfig):
  return tf.keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def build_encoder(config: BertConfig) -> networks.BertEncoderV2:
  """`BertEncoderV2` with every setting taken from `config`."""
  return networks.BertEncoderV2(
    vocab_size=config.vocab_size,
    hidden_size=config.hidden_size,
    num_layers=config.num_hidden_layers,
    num_attention_heads=config.num_attention_heads,
    max_sequence_length=config.max_position_embeddings,
    type_vocab_size=config.type_vocab_size,
    inner_dim=config.intermediate_size,
    inner_activation=get_activation(config.hidden_act),
    output_dropout=config.hidden_dropout_prob,
    attention_dropout=config.attention_probs_dropout_prob,
    initializer=_initializer(config),
    name="encoder",
  )


class BertModel(tf.keras.Model):
  """Encoder + pooler + masked-LM head.

  Called with `input_word_ids`, `input_mask`, `input_type_ids` (int32
  [batch, seq]) and optionally `masked_lm_positions` ([batch, predictions]),
  it returns `sequence_output`, `pooled_output`, `encoder_outputs` (one per
  layer) and, given positions, `mlm_logits` [batch, predictions, vocab]
  (computed only at the gathered positions: the full-sequence output costs
  far more).
  """

  def __init__(self, config: BertConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.encoder = build_encoder(config)
    # The word-embedding table (tied to the MLM decoder) exists only once the
    # encoder has been called.
    ones = tf.ones([1, 2], tf.int32)
    self.encoder(
      {"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros_like(ones)}
    )
    self.masked_lm = nlp_layers.MaskedLM(
      embedding_table=self.encoder.get_embedding_table(),
      activation=get_activation(config.hidden_act),
      initializer=_initializer(config),
      name="cls/predictions",
    )

  def call(self, inputs, training=None):
    outputs = self.encoder(
      {k: inputs[k] for k in ("input_word_ids", "input_mask", "input_type_ids")}, training=training
    )
    outputs = dict(outputs)
    if "masked_lm_positions" in inputs:
      outputs["mlm_logits"] = self.masked_lm(
        outputs["sequence_output"],
        masked_positions=tf.cast(inputs["masked_lm_positions"], tf.int32),
      )
    return outputs

  def build_all(self, seq_length: int = 8, num_predictions: int = 2) -> None:
    """Creates every variable (encoder, pooler, MLM head) by one dummy call."""
    ones = tf.ones([1, seq_length], tf.int32)
    self(
      {
        "input_word_ids": ones,
        "input_mask": ones,
        "input_type_ids": tf.zeros_like(ones),
        "masked_lm_positions": tf.zeros([1, num_predictions], tf.int32),
      }
    )


def create_model(config: BertConfig) -> BertModel:
  model = BertModel(config, name="bert")
  model.build_all()
  return model


def mean_pool(sequence_output: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
  """Mean of `sequence_output` over real tokens ([CLS] and [SEP] included)."""
  mask = tf.cast(input_mask, sequence_output.dtype)[:, :, None]
  return tf.reduce_sum(sequence_output * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
