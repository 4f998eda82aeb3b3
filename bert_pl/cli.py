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
