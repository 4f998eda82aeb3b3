"""Chinese word segmentation for whole-word masking (create_pretraining_data).

Chinese BERT tokenizes one character per token, so the original
`--do_whole_word_mask` (which joins `##` word pieces) has no words to mask in
Chinese text. Chinese-BERT-wwm, UER-py and Hugging Face's `run_chinese_ref.py`
take the words from a segmenter instead; here the segmenter is jieba, in its
Rust build `rjieba` (fast, the recommended one) or the original Python
package `jieba` (both MIT, offline, in the optional `segment` extra). The
words only decide which tokens are masked together: the tokenizer still
makes every id, one token per character, so `input_ids` do not depend on the
segmenter.

A user dictionary (`--segmenter_user_dict`, jieba's format: `word [frequency]
[tag]` per line) adds domain words (dish and shop names) through `add_word`,
which both packages have, so one parser serves both and a bad line is
reported as `FILE:LINE`. A word without a frequency gets the one that makes
the segmenter keep it whole (jieba's `suggest_freq`).

A `Segmenter` is built once per process (the job's `ChunkProcessor`: once
per worker process and per Beam `DoFn.setup`); the packages are imported only
then, so bert_pl runs without them when `--segmenter=none`.
"""

import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np

from bert_pl import errors

NONE, JIEBA, RJIEBA = "none", "jieba", "rjieba"
SEGMENTERS = (NONE, JIEBA, RJIEBA)
INSTALL_HINT = "pip install -e '.[segment]' (or pip install rjieba jieba)"

UserWord = Tuple[str, Optional[int], Optional[str]]


def _import(name: str):
  try:
    if name == RJIEBA:
      import rjieba

      return rjieba
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict ..." lines
    return jieba
  except ImportError:
    raise errors.InputError(
      f"--segmenter={name}: the package {name} is not installed; install it with {INSTALL_HINT}"
    ) from None


def read_user_dict(path: str) -> List[UserWord]:
  """(word, frequency or None, tag or None) of each non-empty line of a jieba
  user dictionary."""
  errors.check_file(path)
  words = []
  with errors.reading(path), open(path, encoding="utf-8-sig") as f:
    for line_number, line in enumerate(f, start=1):
      parts = line.split()
      if not parts:
        continue
      frequency = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
      rest = parts[1 if frequency is None else 2 :]
      if len(rest) > 1:
        raise errors.InputError(
          f"{path}:{line_number}: expected 'word [frequency] [tag]', got {line.strip()!r}"
        )
      words.append((parts[0], frequency, rest[0] if rest else None))
  return words


def check(name: str, user_dict: Optional[str]) -> None:
  """Fails fast, before any worker starts, on a segmenter that is not
  installed or a bad user dictionary: `InputError`."""
  if name not in SEGMENTERS:
    raise errors.InputError(f"--segmenter={name}: choose from {', '.join(SEGMENTERS)}")
  if name == NONE:
    if user_dict:
      raise errors.InputError("--segmenter_user_dict needs --segmenter=rjieba or jieba")
    return
  _import(name)
  if user_dict:
    read_user_dict(user_dict)


class Segmenter:
  """A segmenter instance of its own (the user words added to it only)."""

  def __init__(self, name: str, user_dict: Optional[str] = None):
    module = _import(name)
    if name == RJIEBA:
      self._jieba = module.Jieba()
      self._cut = self._jieba.cut
    else:
      self._jieba = module.Tokenizer()
      self._jieba.initialize()
      self._cut = lambda text: list(self._jieba.cut(text))
    for word, frequency, tag in read_user_dict(user_dict) if user_dict else []:
      self._jieba.add_word(word, frequency, tag)

  def cut(self, text: str) -> List[str]:
    """The words of `text`; they concatenate to `text`."""
    return self._cut(text)

  def word_of_char(self, text: str) -> np.ndarray:
    """The index of the word holding each character of `text`."""
    lengths = [len(word) for word in self.cut(text)]
    if sum(lengths) != len(text):
      raise RuntimeError(f"the segmenter lost characters of {text!r}")
    return np.repeat(np.arange(len(lengths)), lengths)

  def word_continues(
    self, texts: Sequence[Sequence[str]], token_starts: np.ndarray, input_mask: np.ndarray
  ) -> np.ndarray:
    """Whole-word flags from the segmenter's words: True where a token lies in
    the same word as the token before it.

    texts: each example's segments (the texts the tokenizer was given);
    token_starts: int [n, max_seq_length], each token's first character in
    its segment's text, -1 at [CLS], [SEP] and padding (so a word never runs
    across a [SEP]); input_mask: [n, max_seq_length].
    """
    flags = np.zeros(token_starts.shape, bool)
    for row, segments in enumerate(texts):
      is_token = token_starts[row] >= 0
      # [CLS] and each [SEP] open the next segment: segment index per position.
      segment = np.cumsum(~is_token & (input_mask[row] == 1)) - 1
      # The segments' characters one after another; word indices offset by
      # the segment's first character, so that no two segments share one.
      base = np.cumsum([0] + [len(text) for text in segments])
      word_of_char = np.concatenate(
        [self.word_of_char(text) + b for text, b in zip(segments, base)] + [np.zeros([0], int)]
      )
      starts = np.flatnonzero(is_token)
      word = word_of_char[base[segment[starts]] + token_starts[row, starts]]
      same = (starts[1:] == starts[:-1] + 1) & (word[1:] == word[:-1])
      flags[row, starts[1:][same]] = True
    return flags
