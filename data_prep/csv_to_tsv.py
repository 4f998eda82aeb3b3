"""Converts a CSV (or TSV) file with a label column and one or more text columns into the labeled
classification TSV of DESIGN.md section 2: `label<TAB>text1[<TAB>text2...]`.

Columns are chosen by header name (with --has_header) or by 0-based index. Field cleaning, so that every
output line is one well-formed example: byte-order marks (U+FEFF, which starts ~20 reviews of
online_shopping_10_cats) are removed wherever they occur; tabs and line breaks inside a field become spaces;
surrounding whitespace is stripped. Rows whose text columns are all empty after cleaning are skipped and
counted. A row lacking a chosen column, with an empty label, or with a label missing from --label_map stops
the job with `path:line: message`, or, with --skip_bad_lines, is skipped and counted.
"""

import argparse
import csv
import os
import sys

if __package__ in (None, ""):  # run as `python data_prep/csv_to_tsv.py`: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data_prep import common

_FIELD_CLEANUP = str.maketrans({"\ufeff": None, "\t": " ", "\r": " ", "\n": " ", "\u2028": " ", "\u2029": " "})


def clean_field(value):
    """Returns `value` without BOMs, tabs or line breaks, stripped."""
    return value.translate(_FIELD_CLEANUP).strip()


def parse_label_map(spec):
    """Parses "src:dst,src:dst" into a dict; an empty spec means no mapping."""
    mapping = {}
    for pair in filter(None, spec.split(",")):
        source, colon, target = pair.partition(":")
        if not colon or not source or not target:
            raise ValueError(f"--label_map entry {pair!r} is not source:target")
        mapping[source] = target
    return mapping


def resolve_column(spec, header):
    """Returns the index of column `spec`: a header name when there is a header, else a 0-based index."""
    if header is not None and spec in header:
        return header.index(spec)
    if spec.isdigit():
        return int(spec)
    raise ValueError(f"column {spec!r} is not in the header {header}" if header else
                     f"column {spec!r} is not a 0-based index (no header)")


def read_rows(input_path, input_format):
    """Yields (first_line_number, row) for each CSV/TSV record; blank lines are not records."""
    dialect = dict(delimiter=",") if input_format == "csv" else dict(delimiter="\t", quoting=csv.QUOTE_NONE)
    reader = csv.reader((line for _, line in common.read_lines(input_path, keep_ends=True)), **dialect)
    while True:
        start_line = reader.line_num + 1
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise common.DataError(input_path, start_line, f"bad {input_format.upper()}: {e}") from None
        if row is None:
            return
        if row:
            yield start_line, row


def convert(input_path, output_path, label_column, text_columns, has_header=False, input_format="csv",
            label_map=None, skip_bad_lines=False):
    """Converts one CSV/TSV file into a labeled TSV file; returns the counts.

    `text_columns` is a list of column specs; `label_map` an optional {source: target} dict.
    """
    rows = read_rows(input_path, input_format)
    header, header_line = None, None
    if has_header:
        header_line, header = next(rows, (None, None))
        if header is None:
            raise common.DataError(input_path, None, "empty file: no header row")
        header = [clean_field(name) for name in header]
    try:
        label_index = resolve_column(label_column, header)
        text_indices = [resolve_column(spec, header) for spec in text_columns]
    except ValueError as e:
        raise common.DataError(input_path, header_line, str(e)) from None
    counts = dict(read=0, written=0, skipped_empty=0, skipped_bad=0)
    with common.atomic_open(output_path) as out:
        for line, row in rows:
            counts["read"] += 1
            try:
                label, texts = parse_row(row, label_index, text_indices, label_map)
            except ValueError as e:
                if not skip_bad_lines:
                    raise common.DataError(input_path, line, str(e)) from None
                counts["skipped_bad"] += 1
                continue
            if not any(texts):
                counts["skipped_empty"] += 1
                continue
            out.write("\t".join([label] + texts) + "\n")
            counts["written"] += 1
    return counts


def parse_row(row, label_index, text_indices, label_map):
    """Returns (label, [text, ...]) of one row, cleaned and mapped; ValueError if the row is bad."""
    needed = max([label_index] + text_indices)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, help="CSV or TSV input")
    parser.add_argument("--output_file", required=True, help="labeled TSV output: label<TAB>text...")
    parser.add_argument("--label_column", required=True, help="label column: header name or 0-based index")
    parser.add_argument("--text_columns", required=True,
                        help="comma-separated text columns (header names or 0-based indices), in output order")
    common.add_bool_flag(parser, "--has_header", False, "the first row names the columns")
    parser.add_argument("--input_format", choices=["csv", "tsv"], default="csv",
                        help="csv: comma-separated with quoting; tsv: tab-separated, no quoting (default csv)")
    parser.add_argument("--label_map", default="",
                        help='optional "source:target,..." label renaming; unmapped labels are bad rows')
    common.add_bool_flag(parser, "--skip_bad_lines", False, "skip and count bad rows instead of stopping")
    args = parser.parse_args(argv)
    try:
        label_map = parse_label_map(args.label_map)
    except ValueError as e:
        parser.error(str(e))
    counts = convert(args.input_file, args.output_file, args.label_column, args.text_columns.split(","),
                     args.has_header, args.input_format, label_map, args.skip_bad_lines)
    common.print_counts("csv_to_tsv", **counts)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
