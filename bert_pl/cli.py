"""What every absl entry point shares: common flags and clean failure.

Library modules never read flags; an entry point's `define_flags()` uses the
shared `define_*_flags()` here (one definition, one help text per flag), and
its `main` builds the job's config from the parsed values (`job_config`).

Failure: the project's error types (`errors`: bad input, unwritable output)
and bad flag values stop a job with one line, `error: WHERE: WHAT`, and exit
code 2; anything else is a bug and keeps its traceback (exit code 1).
`--verbose` prints the traceback of an input error too.
"""

import sys
import traceback
from typing import Callable

from absl import app, flags, logging

from bert_pl import errors, features, precision, tag_schemes
from bert_pl.errors import InputError  # noqa: F401 (data_prep's import, until it takes errors')

flags.DEFINE_bool("verbose", False, "On bad input, print the traceback after the error line.")


def require(check: Callable[[object], bool], requirement: str, *names: str) -> None:
  """Refuses values of the flags `names` for which `check` is false (None,
  an unset optional flag, passes): `error: --name=value: must be REQUIREMENT`
  before the job starts."""
  for name in names:
    flags.register_validator(
      name, lambda value: value is None or check(value), message=f"must be {requirement}"
    )


# The tokenizer flags' defaults.
TOKENIZER_DEFAULTS = {"do_lower_case": True, "tokenization": "wordpiece"}


def define_model_flags() -> None:
  """Flags naming the model to load, as in the original BERT scripts."""
  flags.DEFINE_string(
    "init_checkpoint",
    None,
    "Google TF1 checkpoint (prefix or directory), Hugging Face "
    "model.safetensors (file or directory), or a model directory "
    "written by bert_pl. run_classifier/run_ner: `none` starts from "
    "random weights (needs --bert_config_file and --vocab_file).",
  )
  flags.DEFINE_string(
    "bert_config_file",
    None,
    "bert_config.json (Google format). Optional when the checkpoint's "
    "directory has one (or a Hugging Face config.json).",
  )
  flags.DEFINE_string(
    "vocab_file", None, "vocab.txt. Optional when the checkpoint's directory has one."
  )
  define_tokenizer_flags()
  flags.DEFINE_integer(
    "num_hidden_layers", None, "Use the first N layers of the checkpoint (e.g. 3 of 12)."
  )
  flags.DEFINE_string(
    "layer_map",
    None,
    "Comma list of checkpoint layers to take, e.g. 0,5,11 (overrides --num_hidden_layers).",
  )
  require(lambda v: v >= 1, ">= 1", "num_hidden_layers")


def define_tokenizer_flags() -> None:
  """How text is split into the vocabulary's tokens (every job that reads text)."""
  flags.DEFINE_bool(
    "do_lower_case",
    TOKENIZER_DEFAULTS["do_lower_case"],
    "Lower-case and strip accents (BERT's do_lower_case).",
  )
  flags.DEFINE_enum(
    "tokenization",
    TOKENIZER_DEFAULTS["tokenization"],
    ["wordpiece", "char"],
    "WordPiece (BERT standard) or one token per character (exact tags for Chinese NER).",
  )


def define_reader_flags() -> None:
  """How labeled and pseudo-labeled files are read (`input_files`, `features`)."""
  flags.DEFINE_string(
    "label_file", None, "Labels (classification) or BIO tags with O (ner), one per line."
  )
  flags.DEFINE_enum(
    "tag_scheme",
    "bio",
    list(tag_schemes.SCHEMES),
    "Tag scheme of NER input files (converted to BIO).",
  )
  flags.DEFINE_enum(
    "field_join",
    "sep",
    list(features.FIELD_JOINS),
    "Join TAB-separated fields with [SEP] between them, or concatenate them.",
  )
  define_skip_bad_lines_flag()


def define_skip_bad_lines_flag() -> None:
  flags.DEFINE_bool(
    "skip_bad_lines", False, "Skip and count malformed examples instead of failing on the first."
  )


def define_dtype_flag() -> None:
  """The compute precision of the jobs that run a model."""
  flags.DEFINE_enum(
    "dtype",
    "float32",
    list(precision.DTYPES),
    "Compute precision: bfloat16/float16 are mixed precision (float32 "
    "variables, losses and CRF). Faster only where the hardware has them.",
  )


def define_logits_flags() -> None:
  """The teacher-logits flags of step 3 (predict_pseudo_labels, --do_predict)."""
  flags.DEFINE_bool(
    "write_logits",
    False,
    "Also write <output>.logits: the teacher's pre-softmax logits per example "
    "(what the KL loss of step 4 trains on).",
  )
  flags.DEFINE_integer(
    "logits_top_k",
    0,
    "Classification: write only the K largest logits, as id:value pairs (0: all labels).",
  )


def define_training_flags(learning_rate: float) -> None:
  """Flags every training job has (with the job's default learning rate)."""
  flags.DEFINE_string("output_dir", None, "The model directory (checkpoints, config, vocab).")
  flags.DEFINE_integer("train_batch_size", 32, "GLOBAL batch size (split over replicas).")
  flags.DEFINE_float("learning_rate", learning_rate, "Peak learning rate of AdamW.")
  flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not LayerNorm, biases).")
  flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints and logs.")
  flags.DEFINE_enum(
    "distribution_strategy",
    "mirrored",
    ["mirrored", "multi_worker_mirrored", "one_device"],
    "tf.distribute strategy.",
  )
  flags.DEFINE_integer("num_gpus", None, "GPUs to use (default: all).")
  flags.DEFINE_integer(
    "random_seed", None, "Seed of initialisation, dropout and data shuffling (reproducible runs)."
  )
  define_dtype_flag()
  flags.DEFINE_integer(
    "bucket_width",
    0,
    "Batch training examples of similar length (buckets this many tokens "
    "wide) and cut each batch to its longest row; 0: off, every batch "
    "padded to max_seq_length.",
  )
  require(lambda v: v > 0, "> 0", "learning_rate")
  require(lambda v: v >= 1, ">= 1", "train_batch_size", "save_checkpoints_steps")
  require(lambda v: v >= 0, ">= 0", "weight_decay", "num_gpus", "bucket_width")


def require_max_seq_length(optional: bool = False) -> None:
  """--max_seq_length must leave room for [CLS], a token and [SEP] (or be 0,
  the model's, when `optional`)."""
  require(
    lambda v: v >= 3 or (optional and v == 0),
    ">= 3 ([CLS], a token, [SEP])" + (" or 0 (the model's)" if optional else ""),
    "max_seq_length",
  )


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def _parse_flags(argv, known_only: bool):
  """absl's flag parsing, with a bad flag as one `error:` line and exit code 2."""
  try:
    return flags.FLAGS(argv, known_only=known_only)
  except flags.Error as e:
    _fail(" ".join(str(e).removeprefix("flag ").split()))


def run(main, known_only: bool = False) -> None:
  """`absl.app.run(main)`, turning the project's errors into one line and
  exit code 2. With `known_only`, flags the job does not define are left to
  `main` (the Beam jobs' pipeline options)."""

  def guarded(argv):
    try:
      return main(argv)
    except errors.InputError as e:
      if flags.FLAGS.verbose:
        traceback.print_exc()
      logging.error("%s", e)
      _fail(str(e))

  app.run(guarded, flags_parser=lambda argv: _parse_flags(argv, known_only))
