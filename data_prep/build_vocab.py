"""Builds a BERT `vocab.txt` from corpus files, laid out like Google's vocabularies so that special-token ids
match the original checkpoints: [PAD]=0, [unused1]..[unusedN], then [UNK], [CLS], [SEP], [MASK] (with the
default --num_unused=99: [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, as in bert-base-chinese).

The text is split into words exactly as the original BERT BasicTokenizer does (the algorithm that
bert_pl.tokenization reproduces in TensorFlow ops): delete control and format characters, split on whitespace,
with --do_lower_case lower-case, decompose (NFD) and drop combining marks, then split off punctuation and CJK
characters as words of their own. So every vocabulary entry is in the form the model will look up. (Not
tensorflow-text's BasicTokenizer, which bert_vocab_from_dataset uses: its lower_case applies NFKC case folding,
'，' -> ',', and would build entries the project's tokenizer never produces.) The vocabulary then holds:
  * every single character of those words, sorted by code point: the CJK characters (BERT splits them one per
    token) and every punctuation mark and ASCII character seen, so character mode never maps seen text to
    [UNK]. --min_count drops rarer characters, except ASCII and punctuation, which are always kept;
  * WordPiece pieces for the non-CJK words of two or more characters (Latin words, numbers), learned by
    tensorflow-text's BERT vocabulary learner (`wordpiece_tokenizer_learner_lib.learn`, the learning half of
    `bert_vocab_from_dataset`) from the counts of those words only: CJK characters and punctuation are whole
    tokens already and would otherwise come back as "##" pieces that no tokenizer produces.
The output has no duplicates and a deterministic order.

Input formats (--format): text = each whole line; tsv = each line without its first (label) column;
conll = the first column of each token line, a sentence's tokens joined by spaces.
"""

import argparse
import collections
import os
import sys
import unicodedata

from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

if __package__ in (None, ""):  # run as `python data_prep/build_vocab.py`: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bert_pl import input_files
from bert_pl.cli import InputError
from data_prep import common

SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]")

# The CJK blocks BERT's tokenizers split one character per token (google-research/bert `_is_chinese_char`).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(char):
    """BERT's `_is_chinese_char`: True for a character in the CJK ranges."""
    code = ord(char)
    return any(low <= code <= high for low, high in CJK_RANGES)


def is_punctuation(char):
    """BERT's `_is_punctuation`: every non-alphanumeric printable ASCII character, and Unicode P*."""
    code = ord(char)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(char).startswith("P"))


def always_kept(char):
    """True for ASCII printable characters and punctuation: kept in the vocabulary whatever their count."""
    return " " < char <= "~" or is_punctuation(char)


def is_deleted(char):
    """BERT's `_clean_text` deletes control and format characters (but not tab, newline, CR) and U+FFFD."""
    return char == "\ufffd" or (unicodedata.category(char) in ("Cc", "Cf") and char not in "\t\n\r")


def basic_tokenize(text, lower_case):
    """Splits `text` into words as the original BERT BasicTokenizer does (see the module docstring)."""
    text = "".join(c for c in text if not is_deleted(c))
    words = []
    for word in text.split():
        if lower_case:
            word = "".join(c for c in unicodedata.normalize("NFD", word.lower())
                           if unicodedata.category(c) != "Mn")
        current = ""
        for char in word:
            if is_punctuation(char) or is_cjk(char):
                words.extend(filter(None, (current, char)))
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


def expand_inputs(spec):
    """Returns the files named by a comma-separated list of paths and glob patterns, by the rule of every bert_pl
    job (`input_files.expand_input_files`: each glob sorted and without temporaries, side files or directories)."""
    try:
        return input_files.expand_input_files(spec)
    except InputError as e:
        path, _, message = str(e).partition(": ")
        raise common.DataError(path, None, message) from None


def iter_texts(path, input_format):
    """Yields the text parts of one corpus file in the chosen format (see the module docstring)."""
    if input_format == "conll":
        for block in common.read_conll_blocks(path):
            yield " ".join(fields[0] for _, fields in block)
        return
    for _, line in common.read_lines(path):
        yield line.partition("\t")[2] if input_format == "tsv" else line


def count_words(paths, input_format, lower_case):
    """Returns (Counter of BERT words, lines read) over the text parts of the corpus files."""
    counts = collections.Counter()
    lines = 0
    for path in paths:
        for text in iter_texts(path, input_format):
            lines += 1
            counts.update(basic_tokenize(text, lower_case))
    return counts, lines


def learn_wordpieces(word_counts, vocab_size):
    """Learns WordPiece tokens for the non-CJK words with tensorflow-text's BERT vocabulary learner.

    Single-character words (punctuation, a lone letter or digit) are already in the vocabulary as characters
    and would only add "##" pieces that no tokenizer produces (BERT never continues a word with punctuation).
    """
    words = sorted((word, count) for word, count in word_counts.items()
                   if len(word) > 1 and not any(map(is_cjk, word)))
    if not words:
        return []
    return learner.learn(words, vocab_size, reserved_tokens=[])


def build_vocab(paths, input_format="text", num_unused=99, min_count=1, do_lower_case=True, vocab_size=8000):
    """Returns (vocabulary list, counts) for the corpus files `paths`."""
    word_counts, lines = count_words(paths, input_format, do_lower_case)
    char_counts = collections.Counter()
    for word, count in word_counts.items():
        for char in word:
            char_counts[char] += count
    chars = sorted(char for char, count in char_counts.items()
                   if count >= min_count or always_kept(char))
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, num_unused + 1)] + list(SPECIAL_TOKENS)
    seen = set(vocab)

    def add(tokens):
        added = [token for token in tokens if token not in seen]
        seen.update(added)
        vocab.extend(added)
        return len(added)

    counts = dict(files=len(paths), lines=lines, distinct_words=len(word_counts), characters=add(chars),
                  cjk_characters=sum(map(is_cjk, chars)), dropped_rare_characters=len(char_counts) - len(chars),
                  wordpieces=add(learn_wordpieces(word_counts, vocab_size)), vocab_size=len(vocab))
    return vocab, counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, help="comma-separated corpus files and glob patterns")
    parser.add_argument("--output_file", required=True, help="vocab.txt to write")
    parser.add_argument("--format", choices=["text", "tsv", "conll"], default="text",
                        help="which parts of each file are text (default text: whole lines)")
    parser.add_argument("--num_unused", type=int, default=99,
                        help="[unusedN] slots after [PAD] (default 99: [UNK]=100 as in Google's vocabularies)")
    parser.add_argument("--min_count", type=int, default=1,
                        help="minimum count of a non-ASCII, non-punctuation character (default 1)")
    common.add_bool_flag(parser, "--do_lower_case", True, "lower-case and strip accents, as BERT uncased does")
    parser.add_argument("--vocab_size", type=int, default=8000,
                        help="target size of the learned WordPiece part (default 8000)")
    args = parser.parse_args(argv)
    if args.num_unused < 0 or args.min_count < 1 or args.vocab_size < 1:
        parser.error("--num_unused must be >= 0, --min_count and --vocab_size >= 1")
    vocab, counts = build_vocab(expand_inputs(args.input_file), args.format, args.num_unused, args.min_count,
                                args.do_lower_case, args.vocab_size)
    with common.atomic_open(args.output_file) as out:
        out.writelines(token + "\n" for token in vocab)
    common.print_counts("build_vocab", **counts)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
