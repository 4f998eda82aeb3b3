"""A job's settings as one frozen dataclass, built from its absl flags.

Every job is `XConfig` (a frozen dataclass whose field names are the job's
flag names and whose defaults are the flags' defaults) + `run(config)` +
`define_flags()` + `main(argv)`, which builds the config from the parsed
flags. So library code never reads flags, tests and other jobs (the Beam
jobs, the pipeline driver, experiments) build configs, and a flag's default
is written once: `define_flags` takes it from the dataclass.
"""

import dataclasses
from typing import Any, Dict, Optional

from absl import flags


def field_defaults(config_class) -> Dict[str, Any]:
  """The dataclass's default of each field that has one: the flags' defaults."""
  return {field.name: field.default for field in dataclasses.fields(config_class)
          if field.default is not dataclasses.MISSING}


def config_from_flags(config_class, flag_values: Optional[flags.FlagValues] = None):
  """`config_class` from the parsed flags of the same names (default: absl's
  FLAGS). A field without a flag keeps its default (the Beam jobs leave out
  the flags of local workers and hand-made shards)."""
  flag_values = flags.FLAGS if flag_values is None else flag_values
  return config_class(**{field.name: flag_values[field.name].value
                         for field in dataclasses.fields(config_class)
                         if field.name in flag_values})
