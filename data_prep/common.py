"""What the data_prep tools share beyond bert_pl: CoNLL blocks, outputs, the tally.

The tools are bert_pl jobs (`cli.run`, absl flags, `errors`), so bad input
stops them with one line `error: FILE[:LINE]: what` and exit code 2, and they
read files with `bert_pl.input_files`' line reader (UTF-8 checked per line).
Their outputs are written under temporary names and renamed when complete
(`bert_pl.atomic_files`), so a failed or killed tool leaves no half-written
file under a final name.
"""

import contextlib
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from bert_pl import atomic_files, errors, input_files


def read_conll_blocks(path: str) -> Iterator[List[Tuple[int, List[str]]]]:
  """CoNLL sentences as lists of (line number, fields), fields being the line
  split on whitespace, whatever the columns hold (a converter's input need not
  have valid tags yet). Blank lines separate sentences; several in a row, or
  at the ends, give no empty sentence."""
  block = []
  for number, line in input_files.numbered_lines(path):
    fields = line.split()
    if fields:
      block.append((number, fields))
    elif block:
      yield block
      block = []
  if block:
    yield block


class _Output:
  """A text output's writer whose failures name the output file."""

  def __init__(self, writer, path: str):
    self.writer, self.path = writer, path

  def write(self, text: str) -> None:
    with errors.writing(self.path):
      self.writer.write(text)


@contextlib.contextmanager
def outputs(
  paths: Sequence[str], writer: str, input_file: Optional[str]
) -> Iterator[List[_Output]]:
  """Writers of the UTF-8 text files `paths`, under temporary names renamed
  when the block succeeds; removed when it raises (`atomic_files`). None
  may be the tool's `input_file` (`writer`: the output flag as given)."""
  input_files.check_not_inputs(paths, writer, {"--input_file": [input_file]})
  with atomic_files.AtomicFiles(
    paths, [atomic_files.temporary_path(p) for p in paths], atomic_files.open_text
  ) as files:
    yield [_Output(writer, path) for writer, path in zip(files.writers, paths)]


def write_conll_sentence(f, tokens: Sequence[str], tags: Sequence[str]) -> None:
  """One sentence as `token tag` lines, then the blank separator line."""
  f.write("".join(f"{token} {tag}\n" for token, tag in zip(tokens, tags)) + "\n")


def print_counts(job: str, counts: Dict[str, int]) -> None:
  """The tool's final tally, one `job: key=value ...` line on stdout."""
  print(f"{job}: " + " ".join(f"{key}={value}" for key, value in counts.items()))


def write_parts(lines: Sequence[str], directory: str, parts: int, name: str = "part-{}.txt") -> str:
  """Writes `lines` (with their endings) into `parts` files of (nearly) equal
  length in `directory`, named part-0.txt, part-1.txt, ...: the input shards
  of the scale-out jobs, whose unit of work is a file. Returns their glob."""
  atomic_files.makedirs(str(directory))
  size = -(-len(lines) // parts)
  for i in range(parts):
    atomic_files.write_file(
      os.path.join(directory, name.format(i)), "".join(lines[i * size : (i + 1) * size])
    )
  return os.path.join(str(directory), name.format("*"))
