"""Converts a CSV (or TSV) file with a label column and one or more text
columns into the labeled classification TSV of docs/DESIGN.md section 2:
`label<TAB>text1[<TAB>text2...]`.

Columns are chosen by header name (with --has_header) or by 0-based index.
Field cleaning, so that every output line is one well-formed example:
byte-order marks (U+FEFF, which starts ~20 reviews of online_shopping_10_cats)
are removed wherever they occur; tabs and line breaks inside a field become
spaces; surrounding whitespace is stripped. Rows whose text columns are all
empty after cleaning are skipped and counted. A row lacking a chosen column,
with an empty label, or with a label missing from --label_map stops the job
with `error: path:line: message`, or, with --skip_bad_lines, is skipped and
counted.
"""

import csv
import dataclasses
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from absl import flags

from bert_pl import cli, errors, input_files
from data_prep import common

FORMATS = ("csv", "tsv")
_FIELD_CLEANUP = str.maketrans(
  {"\ufeff": None, "\t": " ", "\r": " ", "\n": " ", "\u2028": " ", "\u2029": " "}
)


def clean_field(value: str) -> str:
  """Returns `value` without BOMs, tabs or line breaks, stripped."""
  return value.translate(_FIELD_CLEANUP).strip()


def parse_label_map(spec: str) -> Dict[str, str]:
  """Parses "src:dst,src:dst" into a dict; an empty spec means no mapping."""
  mapping = {}
  for pair in filter(None, spec.split(",")):
    source, colon, target = pair.partition(":")
    if not colon or not source or not target:
      raise errors.InputError(f"--label_map={spec}: entry {pair!r} is not source:target")
    mapping[source] = target
  return mapping


def resolve_column(spec: str, header: Optional[List[str]]) -> int:
  """The index of column `spec`: a header name when there is a header, else a 0-based index."""
  if header is not None and spec in header:
    return header.index(spec)
  if spec.isdigit():
    return int(spec)
  raise ValueError(
    f"column {spec!r} is not in the header {header}"
    if header
    else f"column {spec!r} is not a 0-based index (no header)"
  )


def read_rows(path: str, input_format: str) -> Iterator[Tuple[int, List[str]]]:
  """(first line number, row) for each CSV/TSV record; blank lines are not records."""
  dialect = (
    dict(delimiter=",") if input_format == "csv" else dict(delimiter="\t", quoting=csv.QUOTE_NONE)
  )
  # A quoted CSV field may span lines: the reader gets them with their ends.
  reader = csv.reader((line + "\n" for _, line in input_files.numbered_lines(path)), **dialect)
  while True:
    start_line = reader.line_num + 1
    try:
      row = next(reader, None)
    except csv.Error as e:
      raise errors.InputError(f"{path}:{start_line}: bad {input_format.upper()}: {e}") from None
    if row is None:
      return
    if row:
      yield start_line, row


def parse_row(
  row: Sequence[str], label_index: int, text_indices: Sequence[int], label_map: Dict[str, str]
) -> Tuple[str, List[str]]:
  """(label, [text, ...]) of one row, cleaned and mapped; ValueError if the row is bad."""
  needed = max([label_index] + list(text_indices))
  if len(row) <= needed:
    raise ValueError(f"row has {len(row)} columns, column {needed} is needed")
  label = clean_field(row[label_index])
  if not label:
    raise ValueError("empty label")
  if label_map:
    if label not in label_map:
      raise ValueError(f"label {label!r} is not in --label_map")
    label = label_map[label]
  return label, [clean_field(row[i]) for i in text_indices]


@dataclasses.dataclass(frozen=True)
class CsvToTsvConfig:
  """The input and output files and the columns (see the flags)."""

  input_file: str
  output_file: str
  label_column: str
  text_columns: str  # comma list, in output order
  has_header: bool = False
  input_format: str = "csv"
  label_map: str = ""  # "source:target,..."
  skip_bad_lines: bool = False


def run(config: CsvToTsvConfig) -> Dict[str, int]:
  """Converts one CSV/TSV file into a labeled TSV file; returns the counts."""
  path = config.input_file
  label_map = parse_label_map(config.label_map)
  rows = read_rows(path, config.input_format)
  header, header_line = None, None
  if config.has_header:
    header_line, header = next(rows, (None, None))
    if header is None:
      raise errors.InputError(f"{path}: empty file: no header row")
    header = [clean_field(name) for name in header]
  try:
    label_index = resolve_column(config.label_column, header)
    text_indices = [resolve_column(spec, header) for spec in config.text_columns.split(",")]
  except ValueError as e:
    where = f"{path}:{header_line}" if header_line else path
    raise errors.InputError(f"{where}: {e}") from None
  counts = dict(read=0, written=0, skipped_empty=0, skipped_bad=0)
  with common.outputs([config.output_file], f"--output_file={config.output_file}", path) as (out,):
    for line, row in rows:
      counts["read"] += 1
      try:
        label, texts = parse_row(row, label_index, text_indices, label_map)
      except ValueError as e:
        if not config.skip_bad_lines:
          raise errors.InputError(f"{path}:{line}: {e}") from None
        counts["skipped_bad"] += 1
        continue
      if not any(texts):
        counts["skipped_empty"] += 1
        continue
      out.write("\t".join([label] + texts) + "\n")
      counts["written"] += 1
  return counts


def define_flags():
  flags.DEFINE_string("input_file", None, "CSV or TSV input.")
  flags.DEFINE_string("output_file", None, "Labeled TSV output: label<TAB>text...")
  flags.DEFINE_string("label_column", None, "Label column: header name or 0-based index.")
  flags.DEFINE_string(
    "text_columns",
    None,
    "Comma list of text columns (header names or 0-based indices), in output order.",
  )
  flags.DEFINE_bool("has_header", CsvToTsvConfig.has_header, "The first row names the columns.")
  flags.DEFINE_enum(
    "input_format",
    CsvToTsvConfig.input_format,
    FORMATS,
    "csv: comma-separated with quoting; tsv: tab-separated, no quoting.",
  )
  flags.DEFINE_string(
    "label_map",
    CsvToTsvConfig.label_map,
    'Optional "source:target,..." label renaming; unmapped labels are bad rows.',
  )
  flags.DEFINE_bool(
    "skip_bad_lines", CsvToTsvConfig.skip_bad_lines, "Skip and count bad rows instead of stopping."
  )
  flags.mark_flags_as_required(["input_file", "output_file", "label_column", "text_columns"])


def main(argv):
  del argv
  f = flags.FLAGS
  config = CsvToTsvConfig(
    input_file=f.input_file,
    output_file=f.output_file,
    label_column=f.label_column,
    text_columns=f.text_columns,
    has_header=f.has_header,
    input_format=f.input_format,
    label_map=f.label_map,
    skip_bad_lines=f.skip_bad_lines,
  )
  common.print_counts("csv_to_tsv", run(config))


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
