"""Outputs written under temporary names and renamed when complete.

A job that is killed, or cannot write (a read-only directory, a full disk),
must leave nothing under a final name that a later run would take for a whole
output, and no temporary file filling the disk. So files are written under
temporary names and renamed only once closed; a write, close or rename that
fails removes every temporary file first, then raises `errors.OutputError`
naming the file. Closing can be where a full disk shows (the last buffer is
written then), and a writer whose buffer cannot be written may fail to close
again while being cleaned up: that must not hide the error.

Two jobs must not write one output at once: each would take the other's
temporaries for a killed run's and remove them, and the last rename would
win. So an output is locked while it is written (`lock`: `.NAME.lock`
beside it, held with `flock`, naming its owner), and a job that finds it
locked is refused with one line saying by whom. The kernel releases the
lock of a killed job, so it is taken over (its file reused), as that job's
temporaries are removed (`remove_stale_temporaries`). Outputs on remote
file systems (`gs://...`) have no lock.
"""

import fcntl
import os
import re
import socket
import time
from typing import Any, Callable, List, Optional, Sequence, Union

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
    self.locks: List[Optional[int]] = []
    try:
      for final in self.final_paths:
        self.locks.append(lock(final))
    except errors.OutputError:
      self._unlock()  # the temporaries are not this writer's yet
      raise
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
    self._unlock()

  def abort(self) -> None:
    """Closes the writers, ignoring their errors, and removes the temporary files."""
    for writer in self.writers:
      try:
        writer.close()
      except errors.IO_ERRORS:
        pass
    for tmp in self.tmp_paths:
      errors.remove_quietly(tmp)
    self._unlock()

  def _unlock(self) -> None:
    for final, fd in zip(self.final_paths, self.locks):
      unlock(final, fd)
    self.locks = []

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
  temporary is stale when its output is not locked: an output that another
  live job is writing is refused (`lock`)."""
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
    output = _TEMPORARY.fullmatch(entry)
    final = os.path.join(directory, output.group(1)) if output else None
    fd = lock(final) if final else None
    errors.remove_quietly(os.path.join(directory, entry))
    if final:
      unlock(final, fd)
  if removed:
    logging.info(
      "removed %d stale temporary file(s) of an earlier run from %s: %s",
      len(removed),
      directory,
      ", ".join(removed[:5]),
    )
  return len(removed)


# A temporary's name, its output's in group 1 (`temporary_path`).
_TEMPORARY = re.compile(r"\.?(.+)\.tmp-\d+")


def _lock_path(path: str) -> str:
  directory, name = os.path.split(path)
  return os.path.join(directory, f".{name}.lock")


def lock(path: str) -> Optional[int]:
  """Locks the output `path` for this process, or raises `errors.OutputError`
  saying which job holds it; returns the lock's file descriptor for
  `unlock` (None: a remote path, not locked). `unlock` removes the lock
  file, so one opened just before that is no lock: a new one is taken."""
  if "://" in path:
    return None
  where = _lock_path(path)
  while True:
    with errors.writing(path):
      fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
      os.close(fd)
      raise errors.OutputError(
        f"{path}: being written by another job ({owner or 'starting'}): wait for it to end, "
        "or write elsewhere"
      ) from None
    try:
      if os.fstat(fd).st_ino == os.stat(where).st_ino:
        break
    except FileNotFoundError:
      pass
    os.close(fd)
  started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
  try:  # who holds it, for a job refused; on a full disk it stays blank
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}".encode(), 0)
  except OSError:
    pass
  return fd


def unlock(path: str, fd: Optional[int]) -> None:
  """Releases `lock(path)`'s lock, its file removed first (a job that opened
  it meanwhile finds it gone, and takes a new one)."""
  if fd is None:
    return
  try:
    os.unlink(_lock_path(path))
  except OSError:
    pass
  os.close(fd)


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
