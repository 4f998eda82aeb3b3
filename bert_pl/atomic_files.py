"""Outputs written under temporary names and renamed when complete.

A job that is killed, or cannot write (a read-only directory, a full disk),
must leave nothing under a final name that a later run would take for a whole
output, and no temporary file filling the disk. So files are written under
temporary names and renamed only once closed; a write, close or rename that
fails removes every temporary file first, then raises `errors.OutputError`
naming the file. Closing can be where a full disk shows (the last buffer is
written then), and a writer whose buffer cannot be written may fail to close
again while being cleaned up: that must not hide the error.
"""

import os
import re
from typing import Any, Callable, List, Sequence, Union

import tensorflow as tf
from absl import logging

from bert_pl import errors


class AtomicFiles:
  """Files written under the names `tmp_paths` by the writers `open_writer`
  returns (each with a `close()`), renamed to `final_paths` by `commit()`, in
  that order. Used as a context manager, they are committed at the end of the
  block, or removed when it raises. Errors name the final paths (the names
  the user gave)."""

  def __init__(
    self, final_paths: Sequence[str], tmp_paths: Sequence[str], open_writer: Callable[[str], Any]
  ):
    self.final_paths = list(final_paths)
    self.tmp_paths = list(tmp_paths)
    self.writers: List[Any] = []
    try:
      for final, tmp in zip(self.final_paths, self.tmp_paths):
        with errors.writing(final):
          self.writers.append(open_writer(tmp))
    except errors.OutputError:
      self.abort()
      raise

  def commit(self) -> None:
    """Closes the writers, then renames the files to their final names; when
    a rename fails, the files renamed are removed again (they are not a whole
    output without the others)."""
    for writer, final in zip(self.writers, self.final_paths):
      with errors.writing(final):
        writer.close()
    renamed = []
    try:
      for tmp, final in zip(self.tmp_paths, self.final_paths):
        with errors.writing(final):
          tf.io.gfile.rename(tmp, final, overwrite=True)
        renamed.append(final)
    except errors.OutputError:
      for final in renamed:
        errors.remove_quietly(final)
      raise

  def abort(self) -> None:
    """Closes the writers, ignoring their errors, and removes the temporary files."""
    for writer in self.writers:
      try:
        writer.close()
      except errors.IO_ERRORS:
        pass
    for tmp in self.tmp_paths:
      errors.remove_quietly(tmp)

  def __enter__(self):
    return self

  def __exit__(self, error_type, error, trace) -> None:
    if error_type is not None:
      self.abort()
      return
    try:
      self.commit()
    except BaseException:
      self.abort()
      raise


def temporary_path(path: str) -> str:
  """Where `path` is written until it is complete: `.NAME.tmp-PID` beside it,
  a hidden name that no glob of the outputs (`NAME*`) matches and that every
  job's glob skips (`input_files.expand_input_files`)."""
  directory, name = os.path.split(path)
  return os.path.join(directory, f".{name}.tmp-{os.getpid()}")


def remove_stale_temporaries(directory: str, names: str, others: str = "") -> int:
  """Removes from `directory` the temporaries that killed runs left for the
  outputs whose names fullmatch the regex `names` (`.NAME.tmp-PID`, and the
  `NAME.tmp-PID` of earlier versions), and the entries fullmatching `others`
  (say, a runner's temporary directories); logs and returns how many. A
  killed job's temporaries carry its PID, so only the next run can tell them
  stale: two jobs must not write one output at once."""
  directory = directory or "."
  if not tf.io.gfile.isdir(directory):
    return 0
  stale = re.compile(rf"\.?(?:{names})\.tmp-\d+" + (f"|{others}" if others else ""))
  removed = sorted(
    entry.rstrip("/")
    for entry in tf.io.gfile.listdir(directory)
    if stale.fullmatch(entry.rstrip("/"))
  )
  for entry in removed:
    errors.remove_quietly(os.path.join(directory, entry))
  if removed:
    logging.info(
      "removed %d stale temporary file(s) of an earlier run from %s: %s",
      len(removed),
      directory,
      ", ".join(removed[:5]),
    )
  return len(removed)


def makedirs(directory: str) -> None:
  """Creates an output directory (and its parents) unless it exists."""
  with errors.writing(directory):
    tf.io.gfile.makedirs(directory)


def open_text(path: str) -> tf.io.gfile.GFile:
  """A text file open for writing, created now (TensorFlow creates it at the
  first write), so that an unwritable directory fails before any work."""
  f = tf.io.gfile.GFile(path, "w")
  f.write("")
  return f


def write_file(path: str, content: Union[str, bytes]) -> None:
  """A whole file (a config, a result), under a temporary name renamed when
  complete; when it cannot be written (`errors.OutputError`), nothing is left."""
  mode = "wb" if isinstance(content, bytes) else "w"
  with AtomicFiles(
    [path], [temporary_path(path)], lambda tmp: tf.io.gfile.GFile(tmp, mode)
  ) as files:
    with errors.writing(path):
      files.writers[0].write(content)
