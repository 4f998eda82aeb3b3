"""One tokenizer for data jobs, training, prediction and the exported SavedModel.

Every id a model sees comes from `BertTokenizer.tokenize_with_offsets`, a
`tf.function` built from TensorFlow and tensorflow-text ops only. Data jobs call
it eagerly on batches of Python strings; a SavedModel calls the very same
function in its graph. There is no second (pure Python) implementation whose
ids could drift from the served ones.

WordPiece mode reproduces the original BERT `FullTokenizer` id for id:

1. *Pre-tokenization on the raw text*: split on BERT's whitespace, and on
   punctuation and CJK characters, which are kept as tokens of their own
   (`tensorflow_text.regex_split_with_offsets`). Splitting before normalising
   gives offsets into the text the user passed in.
2. *Normalisation of each word*, the way BERT does it: delete control and
   format characters (Cc, Cf, U+FFFD); with `do_lower_case`, lower-case with
   full Unicode rules, decompose (NFD) and drop combining marks (Mn). This is
   deliberately not tensorflow-text's `lower_case=True`, which applies
   NFKC case folding and so turns full-width punctuation into ASCII
   ('，' -> ',') and gives other ids than BERT for most Chinese text.
3. *WordPiece* with greedy longest-match-first
   (`tensorflow_text.FastWordpieceTokenizer`); a word longer than
   `max_input_chars_per_word` characters (200, as in google-research/bert)
   becomes a single `[UNK]`, as does a word with no full segmentation.

Decisions on the awkward inputs (all tested against the original algorithm):

* full-width letters, digits and punctuation are NOT folded to ASCII:
  'ＡＢＣ，' stays full-width ('ａｂｃ' after lower-casing), as in BERT;
* accents are stripped only with `do_lower_case` ('Café' -> 'cafe');
* emoji and other non-punctuation symbols (Unicode S*) are not split off
  from adjacent letters ('ok😀' is one word, usually `[UNK]`); next to CJK
  characters or spaces they stand alone;
* control and format characters (NUL, zero-width space, BOM ...) are deleted
  without splitting ('a\\x00b' -> 'ab'); tab, newline, CR, Unicode space
  separators and U+2028/U+2029 split words; runs of them count as one;
* words over `max_input_chars_per_word` characters become `[UNK]`.

Character mode makes every non-space character one token (looked up as a
whole; unknown characters become `[UNK]`), which keeps a one-to-one alignment
between characters and tags for Chinese NER. Normalisation is the same as in
WordPiece mode, applied per character; a character that normalises to nothing
(a control character, a lone combining mark) yields no token.

Offsets are character (Unicode code point) offsets into the raw input, end
exclusive. When normalisation changes a word's byte length (accents, some
lower-casing), every piece of that word carries the whole word's span.
"""

import unicodedata
from typing import Iterable, List, NamedTuple, Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from bert_pl import errors

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
WORDPIECE, CHAR = "wordpiece", "char"
MODES = (WORDPIECE, CHAR)

# BERT's `_is_whitespace`, plus the line/paragraph separators that Python's
# str.split() (used by BERT's whitespace_tokenize) also splits on.
_WHITESPACE = r"[\t\n\r\p{Zs}\x{2028}\x{2029}]"
# BERT's `_is_punctuation`: all non-alphanumeric printable ASCII, and Unicode P*.
_PUNCTUATION = r"[!-/:-@\[-`{-~\p{P}]"
# BERT's `_is_chinese_char`: the CJK blocks split one character per token.
CJK_RANGES = (
  (0x4E00, 0x9FFF),
  (0x3400, 0x4DBF),
  (0x20000, 0x2A6DF),
  (0x2A700, 0x2B73F),
  (0x2B740, 0x2B81F),
  (0x2B820, 0x2CEAF),
  (0xF900, 0xFAFF),
  (0x2F800, 0x2FA1F),
)
_CJK = "[" + "".join(f"\\x{{{low:X}}}-\\x{{{high:X}}}" for low, high in CJK_RANGES) + "]"
_DELIM = f"{_WHITESPACE}+|{_PUNCTUATION}|{_CJK}"
_KEEP_DELIM = f"{_PUNCTUATION}|{_CJK}"
# BERT's `_clean_text` deletes these (tab, newline and CR are whitespace).
_CONTROL = r"[\p{Cc}\p{Cf}\x{FFFD}]"
_COMBINING_MARK = r"\p{Mn}"


class Tokens(NamedTuple):
  """Token ids with character offsets [start, end) into the raw input."""

  ids: tf.RaggedTensor  # int64 [batch, (tokens)]
  starts: tf.RaggedTensor  # int64 [batch, (tokens)]
  ends: tf.RaggedTensor  # int64 [batch, (tokens)]


def load_vocab(vocab_file: str) -> List[str]:
  """Reads a BERT vocab.txt: one token per line, line number = id.

  As in the original `load_vocab`, each line is stripped and kept even when
  that leaves it empty (Google's Chinese vocab has U+2028 on line 344), so ids
  stay equal to line numbers; a token listed twice maps to its last line.
  """
  errors.check_file(vocab_file)
  with errors.reading(vocab_file), tf.io.gfile.GFile(vocab_file, "rb") as f:
    raw_lines = f.read().split(b"\n")
  if raw_lines and not raw_lines[-1]:
    raw_lines.pop()
  vocab = []
  for line_number, raw in enumerate(raw_lines, start=1):
    try:
      vocab.append(raw.decode("utf-8").strip())
    except UnicodeDecodeError as e:
      raise errors.InputError(f"{vocab_file}:{line_number}: invalid UTF-8 ({e.reason})") from None
  missing = [t for t in (PAD, UNK, CLS, SEP, MASK) if t not in vocab]
  if missing:
    raise errors.InputError(f"{vocab_file}: special tokens missing: {' '.join(missing)}")
  return vocab


class BertTokenizer(tf.Module):
  """Text -> token ids and character offsets, in a graph (see module doc).

  Attributes:
    vocab: the tokens, index = id.
    mode: "wordpiece" or "char".
    do_lower_case: lower-case and strip accents, as BERT's `do_lower_case`.
  """

  def __init__(
    self,
    vocab_file: str,
    do_lower_case: bool = True,
    mode: str = WORDPIECE,
    max_input_chars_per_word: int = 200,
    name: str = "bert_tokenizer",
  ):
    super().__init__(name=name)
    if mode not in MODES:
      raise ValueError(f"tokenization mode must be one of {MODES}, got {mode!r}")
    self.vocab = load_vocab(vocab_file)
    # Tracked so that a SavedModel carries vocab.txt among its assets.
    self.vocab_asset = tf.saved_model.Asset(vocab_file)
    self.mode = mode
    self.do_lower_case = do_lower_case
    self.max_input_chars_per_word = max_input_chars_per_word
    self._token_to_id = {t: i for i, t in enumerate(self.vocab)}
    self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
      self._token_to_id[t] for t in (PAD, UNK, CLS, SEP, MASK)
    )
    # Single-character punctuation tokens: word boundaries for whole-word masking.
    self.punctuation_ids = [
      i for i, t in enumerate(self.vocab) if len(t) == 1 and is_punctuation(t)
    ]
    keys = list(self._token_to_id)
    self._table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys), tf.constant([self._token_to_id[k] for k in keys], tf.int64)
      ),
      default_value=self.unk_id,
    )
    # FastWordpieceTokenizer needs unique tokens; the original maps a
    # duplicated token to its last line, so earlier copies get a placeholder
    # that no word can match (words never contain '[').
    unique_vocab = [
      t if self._token_to_id[t] == i else f"[duplicate line {i + 1}]"
      for i, t in enumerate(self.vocab)
    ]
    self._wordpiece = tf_text.FastWordpieceTokenizer(
      vocab=unique_vocab,
      suffix_indicator="##",
      # Bytes, not characters: large enough for any word within the
      # character limit, which `_wordpiece_tokenize` enforces itself.
      max_bytes_per_word=4 * max_input_chars_per_word + 4,
      token_out_type=tf.int64,
      unknown_token=UNK,
      no_pretokenization=True,
    )

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
  def tokenize_with_offsets(self, texts: tf.Tensor) -> Tokens:
    """Tokenizes a batch of raw UTF-8 strings; offsets are in characters."""
    if self.mode == CHAR:
      ids, byte_starts, byte_ends = self._char_tokenize(texts)
    else:
      ids, byte_starts, byte_ends = self._wordpiece_tokenize(texts)
    return Tokens(ids, _bytes_to_chars(texts, byte_starts), _bytes_to_chars(texts, byte_ends))

  def _wordpiece_tokenize(self, texts):
    normalized, word_starts, word_ends = basic_tokenize_with_offsets(texts, self.do_lower_case)
    too_long = tf.strings.length(normalized, unit="UTF8_CHAR") > self.max_input_chars_per_word
    normalized = normalized.with_flat_values(
      tf.where(too_long.flat_values, UNK, normalized.flat_values)
    )
    # WordPiece on the flat list of words: [words, (pieces)].
    pieces, piece_starts, piece_ends = self._wordpiece.tokenize_with_offsets(normalized.flat_values)
    # Piece offsets are relative to the normalised word; they are exact in the
    # raw text only when normalisation kept the word's byte length.
    same_length = tf.equal(
      tf.cast(tf.strings.length(normalized.flat_values), tf.int64),
      word_ends.flat_values - word_starts.flat_values,
    )
    word_of_piece = pieces.value_rowids()
    base = tf.gather(word_starts.flat_values, word_of_piece)
    exact = tf.gather(same_length, word_of_piece)
    starts = tf.where(exact, base + piece_starts.flat_values, base)
    ends = tf.where(
      exact, base + piece_ends.flat_values, tf.gather(word_ends.flat_values, word_of_piece)
    )
    # Pieces per text = sum of pieces over the text's words.
    pieces_per_word = tf.RaggedTensor.from_row_lengths(
      pieces.row_lengths(), normalized.row_lengths()
    )
    ids = tf.RaggedTensor.from_row_lengths(
      pieces.flat_values, tf.reduce_sum(pieces_per_word, axis=1)
    )
    return ids, ids.with_flat_values(starts), ids.with_flat_values(ends)

  def _char_tokenize(self, texts):
    chars, starts = tf.strings.unicode_split_with_offsets(texts, "UTF-8")
    ends = starts + tf.cast(tf.strings.length(chars), tf.int64)
    is_space = tf.strings.regex_full_match(chars, _WHITESPACE)
    normalized = tf.ragged.map_flat_values(_normalize, chars, self.do_lower_case)
    keep = tf.logical_not(is_space) & (tf.strings.length(normalized) > 0)
    normalized = tf.ragged.boolean_mask(normalized, keep)
    ids = tf.ragged.map_flat_values(self._table.lookup, normalized)
    return (ids, tf.ragged.boolean_mask(starts, keep), tf.ragged.boolean_mask(ends, keep))

  def tokenize(self, texts: Iterable[str]) -> List[List[int]]:
    """Batch path for data jobs: Python strings -> lists of ids."""
    return self.tokenize_with_offsets(tf.constant(list(texts), tf.string)).ids.to_list()

  def convert_ids_to_tokens(self, ids: Sequence[int]) -> List[str]:
    return [self.vocab[i] for i in ids]


def _normalize(words: tf.Tensor, do_lower_case: bool) -> tf.Tensor:
  """BERT's per-word clean-up (see module doc, step 2)."""
  words = tf.strings.regex_replace(words, _CONTROL, "")
  if do_lower_case:
    words = tf.strings.lower(words, encoding="utf-8")
    words = tf_text.normalize_utf8(words, "NFD")
    words = tf.strings.regex_replace(words, _COMBINING_MARK, "")
  return words


def basic_tokenize_with_offsets(texts: tf.Tensor, do_lower_case: bool):
  """BERT's BasicTokenizer on a batch of raw strings (module doc, steps 1
  and 2): the normalised words, words that normalise to nothing dropped,
  with their byte offsets [start, end) in the raw strings. The words WordPiece
  splits, and those a vocabulary is built from (data_prep.build_vocab)."""
  # The split op stops at a NUL byte; U+0001 has the same length and, like
  # NUL, is a control character that normalisation deletes.
  texts = tf.strings.regex_replace(texts, r"\x00", "\x01")
  words, starts, ends = tf_text.regex_split_with_offsets(texts, _DELIM, _KEEP_DELIM)
  normalized = tf.ragged.map_flat_values(_normalize, words, do_lower_case)
  keep = tf.strings.length(normalized) > 0
  return (
    tf.ragged.boolean_mask(normalized, keep),
    tf.ragged.boolean_mask(starts, keep),
    tf.ragged.boolean_mask(ends, keep),
  )


def is_cjk(char: str) -> bool:
  """BERT's `_is_chinese_char`: a character of the CJK blocks (CJK_RANGES)."""
  code = ord(char)
  return any(low <= code <= high for low, high in CJK_RANGES)


def is_punctuation(char: str) -> bool:
  """BERT's `_is_punctuation`: non-alphanumeric printable ASCII, or Unicode P*."""
  cp = ord(char)
  return (
    33 <= cp <= 47
    or 58 <= cp <= 64
    or 91 <= cp <= 96
    or 123 <= cp <= 126
    or unicodedata.category(char).startswith("P")
  )


def _bytes_to_chars(texts: tf.Tensor, byte_offsets: tf.RaggedTensor) -> tf.RaggedTensor:
  """Maps byte offsets into `texts` to code-point offsets."""
  _, char_starts = tf.strings.unicode_decode_with_offsets(texts, "UTF-8")
  # Padding with the int64 maximum keeps padded slots to the right of every
  # real offset; an offset at the end of a text maps to its length.
  dense_starts = char_starts.to_tensor(default_value=tf.int64.max)
  dense_offsets = byte_offsets.to_tensor(default_value=0)
  chars = tf.searchsorted(dense_starts, dense_offsets, side="left")
  return tf.RaggedTensor.from_tensor(tf.cast(chars, tf.int64), lengths=byte_offsets.row_lengths())


def pack_inputs(segments: Sequence[tf.RaggedTensor], max_seq_length: int, cls_id: int, sep_id: int):
  """`[CLS] s1 [SEP] s2 [SEP] ...` truncated and padded to `max_seq_length`.

  Truncation removes tokens from the end of the longest segment first (ties:
  the later segment), which is BERT's `_truncate_seq_pair` extended to any
  number of segments. The first segment has type id 0, all later ones 1 (BERT
  has two token types). Returns int32 `input_word_ids`, `input_mask`,
  `input_type_ids` of shape [batch, max_seq_length].
  """
  budget = max_seq_length - 1 - len(segments)
  if budget < 1:
    raise ValueError(f"max_seq_length={max_seq_length} leaves no room for tokens")
  trimmed = tf_text.RoundRobinTrimmer(budget).trim(list(segments))
  word_ids, type_ids = tf_text.combine_segments(trimmed, cls_id, sep_id)
  type_ids = tf.minimum(type_ids, 1)
  word_ids, mask = tf_text.pad_model_inputs(word_ids, max_seq_length)
  type_ids, _ = tf_text.pad_model_inputs(type_ids, max_seq_length)
  return {
    "input_word_ids": tf.cast(word_ids, tf.int32),
    "input_mask": tf.cast(mask, tf.int32),
    "input_type_ids": tf.cast(type_ids, tf.int32),
  }
