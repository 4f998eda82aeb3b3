"""What the Beam jobs share: flags, pipeline options, counters, errors.

Flags the job does not know (`--direct_running_mode`, `--project`,
`--temp_location`, `--flink_master`, ...) are Beam pipeline options and go to
the runner untouched, so Dataflow, Flink and Spark take their usual options.
"""

import importlib
import logging
import re
from typing import Dict, List

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


def run_pipeline(pipeline: beam.Pipeline) -> Dict[str, int]:
  """Runs the pipeline to completion; returns its counters. An error of
  `errors` raised in a worker (wrapped by the runner) comes back as that
  error, with the original one-line message (file:line: what)."""
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
    raise
  counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
  totals: Dict[str, int] = {}
  for item in counters:
    value = item.committed if item.committed is not None else item.attempted
    totals[item.key.metric.name] = totals.get(item.key.metric.name, 0) + int(value or 0)
  return totals
