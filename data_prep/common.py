"""Plumbing shared by the data_prep jobs.

DESIGN.md section 2 asks that bad input never crashes with a bare traceback and is never silently dropped.
The pieces here make that uniform: input is read line by line as bytes and decoded here, so invalid UTF-8 is
reported with its line number; every input problem is a `DataError` that `run_main` prints as one line
`path:line: message` (or `path: message` when no line applies, e.g. a missing file) with exit status 2; and
outputs are written atomically, so a failed or interrupted job never leaves a half-written file behind.
"""

import contextlib
import os
import sys

EXIT_BAD_INPUT = 2


class DataError(Exception):
    """An input problem, located by file and (when known) 1-based line number."""

    def __init__(self, path, line, message):
        super().__init__(message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self):
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


def read_lines(path, keep_ends=False):
    """Yields (line_number, text) for each line of a UTF-8 file.

    Lines are split on b"\\n" only, so Unicode line separators inside a field (U+2028, U+0085 ...) do not
    shift line numbers. A UTF-8 byte-order mark at the start of the file is dropped. `keep_ends` keeps the
    line ending, which the csv module needs to read quoted fields that span lines.
    """
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(path, None, f"cannot open: {e.strerror or e}") from None
    with f:
        for number, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, number, f"invalid UTF-8 (byte {e.start} of the line)") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text if keep_ends else text.rstrip("\r\n")


def read_conll_blocks(path):
    """Yields CoNLL sentences as lists of (line_number, fields), fields being the line split on whitespace.

    Blank lines separate sentences; several blank lines in a row (or at the ends) give no empty sentence.
    """
    block = []
    for number, line in read_lines(path):
        fields = line.split()
        if fields:
            block.append((number, fields))
        elif block:
            yield block
            block = []
    if block:
        yield block


def write_conll_sentence(f, tokens, tags):
    """Writes one sentence as `token tag` lines followed by the blank separator line."""
    for token, tag in zip(tokens, tags):
        f.write(f"{token} {tag}\n")
    f.write("\n")


@contextlib.contextmanager
def atomic_open(path):
    """Opens `path + ".tmp"` for writing UTF-8 text and renames it to `path` only if the block succeeds."""
    tmp = path + ".tmp"
    f = open(tmp, "w", encoding="utf-8", newline="\n")
    try:
        yield f
    except BaseException:
        f.close()
        os.remove(tmp)
        raise
    f.close()
    os.replace(tmp, path)


def parse_bool(value):
    """argparse type accepting the spellings Google BERT users type: --flag, --flag=true, --flag=false."""
    lowered = value.lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def add_bool_flag(parser, name, default, help_text):
    """Adds a boolean flag usable as `--name`, `--name=true` or `--name=false`."""
    parser.add_argument(name, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL",
                        help=f"{help_text} (default {str(default).lower()})")


def print_counts(job, **counts):
    """Prints the job's final tally as one `job: key=value ...` line on stdout."""
    print(f"{job}: " + " ".join(f"{key}={value}" for key, value in counts.items()))


def run_main(main, argv=None):
    """Runs a job's `main(argv)`, turning input and file-system errors into one stderr line and exit code 2."""
    try:
        main(argv)
    except DataError as e:
        print(e, file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"{e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def write_parts(lines, directory, parts, name="part-{}.txt"):
    """Writes `lines` (with their endings) into `parts` files of (nearly) equal length in
    `directory`, named part-0.txt, part-1.txt, ...: the input shards of the scale-out jobs, whose
    unit of work is a file. Returns the glob of the files."""
    os.makedirs(directory, exist_ok=True)
    size = -(-len(lines) // parts)
    for i in range(parts):
        with atomic_open(os.path.join(directory, name.format(i))) as f:
            f.write("".join(lines[i * size:(i + 1) * size]))
    return os.path.join(str(directory), name.format("*"))
