"""The errors a user can cause, each a type of its own.

A job's entry point (`cli.run`) prints these as one line, `error: WHERE: WHAT`,
and exits with code 2; every other exception is a bug and keeps its
traceback. So bad input is recognised where it is read (a file, a line, a
flag) or where an output cannot be written, and raised there as one of these
types, with the file (and line) or flag in its message; nothing is turned into
a one-line error by its Python type alone (a `ValueError` from a bug must not
read like a user's mistake).

File-system failures come as `OSError` from Python and as `tf.errors.OpError`
from TensorFlow's file API; `reading` and `writing` turn those raised inside
their block into these types, naming the file.
"""

import contextlib
from typing import Iterator, Tuple

import tensorflow as tf


class InputError(ValueError):
  """Bad user input: a file, a line of it, or a flag. The message says
  where and what: `FILE[:LINE]: what is wrong` or `--flag=value: what`."""


class CheckpointError(InputError):
  """A checkpoint that cannot be read, or not loaded into the model as configured."""


class OutputError(InputError):
  """An output that cannot be written (a read-only directory, a full disk).
  Raised once the job has removed what it had written under temporary names."""


# What the OS says when a disk is full or a file size limit is reached; a
# job treats them alike.
_OUT_OF_SPACE = ("No space left on device", "File too large", "Disk quota exceeded")
# How a file operation fails: in Python, and in TensorFlow's file API.
IO_ERRORS = (OSError, tf.errors.OpError)


def reason(error: BaseException) -> str:
  """The OS's words for a failed file operation (e.g. "Permission denied"),
  without the path and op names TensorFlow adds."""
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  if isinstance(error, UnicodeDecodeError):
    return f"invalid UTF-8: {error.reason} at byte {error.start}"
  message = error.message if isinstance(error, tf.errors.OpError) else str(error)
  # TensorFlow: "{{function_node ...}} PATH; File too large [Op:SaveV2]"
  return message.split(" [Op:")[0].rsplit("; ", 1)[-1].strip()


@contextlib.contextmanager
def writing(path: str, what: str = "cannot write") -> Iterator[None]:
  """Turns a file-system error raised inside the block into an `OutputError`
  naming `path`. Callers remove their temporary files before it leaves them."""
  try:
    yield
  except IO_ERRORS as e:
    cause = reason(e)
    if cause in _OUT_OF_SPACE:
      what += ", out of disk space"
    raise OutputError(f"{path}: {what} ({cause})") from e


@contextlib.contextmanager
def reading(
  path: str, what: str = "cannot read", error: type = InputError, damaged: Tuple[type, ...] = ()
) -> Iterator[None]:
  """Turns a file-system error raised inside the block, bytes that are not
  UTF-8, or an exception of `damaged` (a parser's "bad file") into `error`
  naming `path`."""
  try:
    yield
  except IO_ERRORS + (UnicodeDecodeError,) + damaged as e:
    raise error(f"{path}: {what} ({reason(e)})") from e


def check_file(path: str) -> None:
  """A file the job reads must exist and not be a directory (which
  TensorFlow reads as an empty file)."""
  if not tf.io.gfile.exists(path):
    raise InputError(f"{path}: file not found")
  if tf.io.gfile.isdir(path):
    raise InputError(
      f"{path}: a directory, not a file (for the files in it, give {path.rstrip('/')}/*)"
    )


def remove_quietly(path: str) -> None:
  """Removes a file or directory tree if it exists, when cleaning up after
  an error: a failure here must not hide the error being reported."""
  try:
    if tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
    elif tf.io.gfile.exists(path):
      tf.io.gfile.remove(path)
  except IO_ERRORS:
    pass
