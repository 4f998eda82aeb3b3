"""Builds a BERT `vocab.txt` from corpus files, laid out like Google's
vocabularies so that special-token ids match the original checkpoints:
[PAD]=0, [unused1]..[unusedN], then [UNK], [CLS], [SEP], [MASK] (with the
default --num_unused=99: [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, as in
bert-base-chinese).

The text is split into words by the project's one tokenizer
(`tokenization.basic_tokenize_with_offsets`, the original BERT
BasicTokenizer in TensorFlow ops): control and format characters deleted,
split on whitespace, punctuation and CJK characters as words of their own,
with --do_lower_case lower-cased, decomposed (NFD) and combining marks
dropped. So every vocabulary entry is in the form the model will look up.
(Not tensorflow-text's BasicTokenizer, which bert_vocab_from_dataset uses: its
lower_case applies NFKC case folding, '，' -> ',', and would build entries the
project's tokenizer never produces.) The vocabulary then holds:
  * every single character of those words, sorted by code point: the CJK
    characters (BERT splits them one per token) and every punctuation mark
    and ASCII character seen, so character mode never maps seen text to
    [UNK]. --min_count drops rarer characters, except ASCII and punctuation,
    which are always kept;
  * WordPiece pieces for the non-CJK words of two or more characters (Latin
    words, numbers), learned by tensorflow-text's BERT vocabulary learner
    (`wordpiece_tokenizer_learner_lib.learn`, the learning half of
    `bert_vocab_from_dataset`) from the counts of those words only: CJK
    characters and punctuation are whole tokens already and would otherwise
    come back as "##" pieces that no tokenizer produces.
The output has no duplicates and a deterministic order.

Input formats (--format): text = each whole line; tsv = each line without its
first (label) column; conll = the first column of each token line, a
sentence's tokens joined by spaces.
"""

import collections
import dataclasses
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

import tensorflow as tf
from absl import flags
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from bert_pl import atomic_files, cli, input_files, tokenization
from data_prep import common

FORMATS = ("text", "tsv", "conll")
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Texts per call of the tokenizer's TensorFlow ops.
_BATCH = 4096


def always_kept(char: str) -> bool:
  """True for ASCII printable characters and punctuation: kept in the
  vocabulary whatever their count."""
  return " " < char <= "~" or tokenization.is_punctuation(char)


def basic_tokenize(texts: Sequence[str], lower_case: bool) -> List[List[str]]:
  """The words of each text, as the project's tokenizer splits them."""
  words, _, _ = tokenization.basic_tokenize_with_offsets(
    tf.constant(list(texts), tf.string), lower_case
  )
  return [[word.decode("utf-8") for word in text_words] for text_words in words.to_list()]


def iter_texts(path: str, input_format: str) -> Iterator[str]:
  """The text parts of one corpus file in the chosen format (see the module doc)."""
  if input_format == "conll":
    for block in common.read_conll_blocks(path):
      yield " ".join(fields[0] for _, fields in block)
    return
  for _, line in input_files.numbered_lines(path):
    yield line.partition("\t")[2] if input_format == "tsv" else line


def _batches(texts: Iterable[str]) -> Iterator[List[str]]:
  batch = []
  for text in texts:
    batch.append(text)
    if len(batch) == _BATCH:
      yield batch
      batch = []
  if batch:
    yield batch


def count_words(
  paths: Sequence[str], input_format: str, lower_case: bool
) -> Tuple[collections.Counter, int]:
  """(Counter of BERT words, text parts read) over the corpus files."""
  counts = collections.Counter()
  texts = 0
  for path in paths:
    for batch in _batches(iter_texts(path, input_format)):
      texts += len(batch)
      for words in basic_tokenize(batch, lower_case):
        counts.update(words)
  return counts, texts


def learn_wordpieces(word_counts: Dict[str, int], vocab_size: int) -> List[str]:
  """Learns WordPiece tokens for the non-CJK words with tensorflow-text's
  BERT vocabulary learner.

  Single-character words (punctuation, a lone letter or digit) are already in
  the vocabulary as characters and would only add "##" pieces that no
  tokenizer produces (BERT never continues a word with punctuation).
  """
  words = sorted(
    (word, count)
    for word, count in word_counts.items()
    if len(word) > 1 and not any(map(tokenization.is_cjk, word))
  )
  if not words:
    return []
  return learner.learn(words, vocab_size, reserved_tokens=[])


@dataclasses.dataclass(frozen=True)
class BuildVocabConfig:
  """The corpus (`input_file`: comma list of files and globs), the
  vocabulary file to write, and how it is built (see the flags)."""

  input_file: str
  output_file: str
  format: str = "text"
  num_unused: int = 99
  min_count: int = 1
  do_lower_case: bool = True
  vocab_size: int = 8000


def build_vocab(paths: Sequence[str], config: BuildVocabConfig) -> Tuple[List[str], Dict[str, int]]:
  """(vocabulary, counts) of the corpus files `paths`."""
  word_counts, lines = count_words(paths, config.format, config.do_lower_case)
  char_counts = collections.Counter()
  for word, count in word_counts.items():
    for char in word:
      char_counts[char] += count
  chars = sorted(
    char for char, count in char_counts.items() if count >= config.min_count or always_kept(char)
  )
  vocab = (
    ["[PAD]"] + [f"[unused{i}]" for i in range(1, config.num_unused + 1)] + list(SPECIAL_TOKENS)
  )
  seen = set(vocab)

  def add(tokens):
    added = [token for token in tokens if token not in seen]
    seen.update(added)
    vocab.extend(added)
    return len(added)

  counts = dict(
    files=len(paths),
    lines=lines,
    distinct_words=len(word_counts),
    characters=add(chars),
    cjk_characters=sum(map(tokenization.is_cjk, chars)),
    dropped_rare_characters=len(char_counts) - len(chars),
    wordpieces=add(learn_wordpieces(word_counts, config.vocab_size)),
    vocab_size=len(vocab),
  )
  return vocab, counts


def run(config: BuildVocabConfig) -> Dict[str, int]:
  """Writes the vocabulary of the corpus to `config.output_file`; returns the counts."""
  paths = input_files.expand_input_files(config.input_file)
  input_files.check_not_inputs(
    [config.output_file], f"--output_file={config.output_file}", {"--input_file": paths}
  )
  vocab, counts = build_vocab(paths, config)
  atomic_files.write_file(config.output_file, "".join(token + "\n" for token in vocab))
  return counts


def define_flags():
  flags.DEFINE_string("input_file", None, "Comma list of corpus files and glob patterns.")
  flags.DEFINE_string("output_file", None, "vocab.txt to write.")
  flags.DEFINE_enum(
    "format",
    BuildVocabConfig.format,
    FORMATS,
    "Which parts of each file are text: text = whole lines, tsv = without the "
    "first (label) column, conll = the first column, a sentence per text.",
  )
  flags.DEFINE_integer(
    "num_unused",
    BuildVocabConfig.num_unused,
    "[unusedN] slots after [PAD] (99: [UNK]=100 as in Google's vocabularies).",
  )
  flags.DEFINE_integer(
    "min_count",
    BuildVocabConfig.min_count,
    "Minimum count of a non-ASCII, non-punctuation character.",
  )
  flags.DEFINE_bool(
    "do_lower_case",
    BuildVocabConfig.do_lower_case,
    "Lower-case and strip accents, as BERT uncased does.",
  )
  flags.DEFINE_integer(
    "vocab_size", BuildVocabConfig.vocab_size, "Target size of the learned WordPiece part."
  )
  flags.mark_flags_as_required(["input_file", "output_file"])
  cli.require(lambda v: v >= 0, ">= 0", "num_unused")
  cli.require(lambda v: v >= 1, ">= 1", "min_count", "vocab_size")


def main(argv):
  del argv
  f = flags.FLAGS
  config = BuildVocabConfig(
    input_file=f.input_file,
    output_file=f.output_file,
    format=f.format,
    num_unused=f.num_unused,
    min_count=f.min_count,
    do_lower_case=f.do_lower_case,
    vocab_size=f.vocab_size,
  )
  common.print_counts("build_vocab", run(config))


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
