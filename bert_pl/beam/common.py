"""What the Beam jobs share: flags, pipeline options, counters, errors.

Flags the job does not know (`--direct_running_mode`, `--project`,
`--temp_location`, `--flink_master`, ...) are Beam pipeline options and go to
the runner untouched, so Dataflow, Flink and Spark take their usual options.
"""

import errno
import importlib
import logging
import os
import re
from typing import Dict, List, Optional

import apache_beam as beam
from absl import flags
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from bert_pl import cli, errors

NAMESPACE = "bert_pl"


def run(main) -> None:
  """A Beam job's entry point, after its own flags are defined: adds
  --runner and gives `main` the unknown flags (the pipeline options)."""
  flags.DEFINE_string(
    "runner",
    "DirectRunner",
    "Beam runner: DirectRunner (this machine), DataflowRunner, FlinkRunner, "
    "SparkRunner, ...; other --flags are passed on as pipeline options.",
  )
  cli.run(main, known_only=True)


def pipeline_options(runner: str, pipeline_args: List[str]) -> PipelineOptions:
  """The runner's options. DirectRunner's `multi_threading` mode is refused:
  it is known to drop TFRecord records on this stack (not reproduced here on a
  20,000-record write, but the tests cover `in_memory`, the default, and
  `multi_processing` only)."""
  options = PipelineOptions([f"--runner={runner}", *pipeline_args])
  if options.view_as(DirectOptions).direct_running_mode == "multi_threading":
    raise errors.InputError(
      "--direct_running_mode=multi_threading is not supported: it is known "
      "to drop TFRecord records on this Beam/TensorFlow stack; use "
      "multi_processing"
    )
  return options


def import_tensorflow_text() -> None:
  """Imports tensorflow_text in a worker process (from `DoFn.setup`): it
  registers the tokenizer ops, which a worker that unpickled a DoFn has not
  loaded yet."""
  importlib.import_module("tensorflow_text")


def counter(name: str):
  return beam.metrics.Metrics.counter(NAMESPACE, name)


# An OSError of Beam's own file sinks (WriteToTFRecord), as the runner's
# wrapping shows it: "[Errno 28] No space left on device" or
# "[Errno 13] Permission denied: '/out/beam-temp-...'".
_SINK_ERROR = re.compile(
  r"OSError: \[Errno (\d+)\] ([A-Za-z][A-Za-z -]*[A-Za-z])(?:: '([^'\n]*)')?"
)
_OUT_OF_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EROFS, errno.EPERM)


def sink_error(message: str, output: str) -> Optional[errors.OutputError]:
  """The `OutputError` for a runner's error `message` that is an OSError of
  writing `output` (its directory): out of disk space anywhere (only writes
  fail so), or a permission error on a path in the output's directory; None
  for anything else (an input's error, a bug), which keeps its traceback."""
  match = _SINK_ERROR.search(message)
  if not match:
    return None
  number, words, path = int(match.group(1)), match.group(2).strip(), match.group(3)
  directory = os.path.dirname(os.path.abspath(output))
  if number in _OUT_OF_SPACE:
    return errors.OutputError(f"{output}: cannot write, out of disk space ({words})")
  if number in _NOT_WRITABLE and path and os.path.abspath(path).startswith(directory + os.sep):
    return errors.OutputError(f"{output}: cannot write ({words})")
  return None


def run_pipeline(pipeline: beam.Pipeline, output: Optional[str] = None) -> Dict[str, int]:
  """Runs the pipeline to completion; returns its counters. An error of
  `errors` raised in a worker (wrapped by the runner) comes back as that
  error, with the original one-line message (file:line: what); so does an
  OSError of Beam's own sinks writing `output` (`sink_error`)."""
  # The in-process worker logs a failing bundle's traceback before the error
  # reaches us; user errors are reported below in one line, others re-raised.
  logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
  try:
    result = pipeline.run()
    result.wait_until_finish()
  except Exception as e:  # the runner wraps the worker's exception in its own
    match = re.search(r"\b(InputError|CheckpointError|OutputError): (.+)", str(e))
    if match:
      raise getattr(errors, match.group(1))(match.group(2).strip()) from None
    written = sink_error(str(e), output) if output else None
    if written:
      raise written from e
    raise
  counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
  totals: Dict[str, int] = {}
  for item in counters:
    value = item.committed if item.committed is not None else item.attempted
    totals[item.key.metric.name] = totals.get(item.key.metric.name, 0) + int(value or 0)
  return totals
