"""A job is a function of its settings: `XConfig` + `run(config)` + `main`.

Every job module has a frozen dataclass of its settings, whose field names
are the job's flag names and whose defaults are the flags' defaults; a
`run(config)` that does the work; `define_flags()`; and a `main` that builds
the config from the parsed flags with `config_from_flags`. So the library
never reads absl's FLAGS, a job runs from Python exactly as from the command
line (`dataclasses.replace` for a variation), and tests build configs rather
than fake the flag object.

A field whose default is None where its flag has a value means "not given":
the job then takes the setting from its data (the input files' manifest, the
model directory) or, without one, the flag's default. A flag given on the
command line counts even when it restates its default, which is why a config
takes a flag's value only when the flag was given (`present`), else the
field's default.

`ModelConfig` and `TrainingConfig` are settings several jobs share; their
flags (`define_model_flags`, `define_training_flags`) take the defaults from
them. tests/test_job_config.py checks every job's fields and defaults against
its flags.
"""

import dataclasses
from typing import Any, Dict, Optional

from absl import flags

from bert_pl import cli


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """The model to load (`define_model_flags`)."""

  init_checkpoint: Optional[str] = None
  bert_config_file: Optional[str] = None
  vocab_file: Optional[str] = None
  do_lower_case: Optional[bool] = cli.TOKENIZER_DEFAULTS["do_lower_case"]
  tokenization: Optional[str] = cli.TOKENIZER_DEFAULTS["tokenization"]
  num_hidden_layers: Optional[int] = None
  layer_map: Optional[str] = None  # comma list of checkpoint layers


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig:
  """What every training job has (`define_training_flags`); each job
  gives `learning_rate` its default."""

  output_dir: str
  train_batch_size: int = 32  # GLOBAL, split over the replicas
  learning_rate: float
  weight_decay: float = 0.01
  save_checkpoints_steps: int = 1000
  distribution_strategy: str = "mirrored"
  num_gpus: Optional[int] = None
  # Fixed by default, as Hugging Face's Trainer (seed=42): a job run twice
  # without --random_seed gives the same model on CPU (the main job's initial
  # checkpoint is trained so).
  random_seed: int = 12345
  dtype: str = "float32"
  bucket_width: int = 0


def field_defaults(config_class) -> Dict[str, Any]:
  """The dataclass's default of each field that has one: the flags'
  defaults, for `define_flags`."""
  return {
    field.name: field.default
    for field in dataclasses.fields(config_class)
    if field.default is not dataclasses.MISSING
  }


def config_from_flags(config_class, flag_values: Optional[flags.FlagValues] = None, **values):
  """A `config_class` from the parsed flags (default: absl's FLAGS): each
  field takes its flag's value when the flag was given, else the field's
  default (a field without one, the flag's value); a field without a flag
  keeps its default (the Beam jobs leave out the flags of local workers and
  hand-made shards); `values` set fields that are not flags."""
  flag_values = flags.FLAGS if flag_values is None else flag_values
  found = {}
  for field in dataclasses.fields(config_class):
    if field.name in values or field.name not in flag_values:
      continue
    flag = flag_values[field.name]
    if flag.present or field.default is dataclasses.MISSING:
      found[field.name] = flag.value
  return config_class(**found, **values)


def define_model_flags() -> None:
  """`ModelConfig`'s flags: the model to load, as in the original BERT scripts."""
  d = field_defaults(ModelConfig)
  flags.DEFINE_string(
    "init_checkpoint",
    d["init_checkpoint"],
    "Google TF1 checkpoint (prefix or directory), Hugging Face "
    "model.safetensors (file or directory), or a model directory "
    "written by bert_pl. run_classifier/run_ner: `none` starts from "
    "random weights (needs --bert_config_file and --vocab_file).",
  )
  flags.DEFINE_string(
    "bert_config_file",
    d["bert_config_file"],
    "bert_config.json (Google format). Optional when the checkpoint's "
    "directory has one (or a Hugging Face config.json).",
  )
  flags.DEFINE_string(
    "vocab_file", d["vocab_file"], "vocab.txt. Optional when the checkpoint's directory has one."
  )
  cli.define_tokenizer_flags()
  flags.DEFINE_integer(
    "num_hidden_layers",
    d["num_hidden_layers"],
    "Use the first N layers of the checkpoint (e.g. 3 of 12).",
  )
  flags.DEFINE_string(
    "layer_map",
    d["layer_map"],
    "Comma list of checkpoint layers to take, e.g. 0,5,11 (overrides --num_hidden_layers).",
  )
  cli.require(lambda v: v >= 1, ">= 1", "num_hidden_layers")


def define_training_flags(learning_rate: float) -> None:
  """`TrainingConfig`'s flags, every training job's (with the job's default
  learning rate)."""
  d = field_defaults(TrainingConfig)
  flags.DEFINE_string("output_dir", None, "The model directory (checkpoints, config, vocab).")
  flags.DEFINE_integer(
    "train_batch_size", d["train_batch_size"], "GLOBAL batch size (split over replicas)."
  )
  flags.DEFINE_float("learning_rate", learning_rate, "Peak learning rate of AdamW.")
  flags.DEFINE_float(
    "weight_decay", d["weight_decay"], "AdamW weight decay (not LayerNorm, biases)."
  )
  flags.DEFINE_integer(
    "save_checkpoints_steps", d["save_checkpoints_steps"], "Steps between checkpoints and logs."
  )
  flags.DEFINE_enum(
    "distribution_strategy",
    d["distribution_strategy"],
    ["mirrored", "multi_worker_mirrored", "one_device"],
    "tf.distribute strategy.",
  )
  flags.DEFINE_integer("num_gpus", d["num_gpus"], "GPUs to use (default: all).")
  flags.DEFINE_integer(
    "random_seed",
    d["random_seed"],
    "Seed of initialisation, dropout and data shuffling (reproducible runs).",
  )
  cli.define_dtype_flag()
  flags.DEFINE_integer(
    "bucket_width",
    d["bucket_width"],
    "Batch training examples of similar length (buckets this many tokens "
    "wide) and cut each batch to its longest row; 0: off, every batch "
    "padded to max_seq_length.",
  )
  cli.require(lambda v: v > 0, "> 0", "learning_rate")
  cli.require(lambda v: v >= 1, ">= 1", "train_batch_size", "save_checkpoints_steps")
  cli.require(lambda v: v >= 0, ">= 0", "weight_decay", "num_gpus", "bucket_width")
