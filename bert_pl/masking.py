"""Masked-LM example creation, as google-research/bert's, streamed.

For each sequence: candidates are the real tokens except [CLS], [SEP] and
padding. The number to predict is `masked_lm_prob` x candidates, rounded
stochastically (floor, plus one with probability equal to the fraction), so
that the selected share is `masked_lm_prob` in expectation whatever the
lengths (plain rounding selects 4 of 28 tokens, 14.3%, where 15% was asked),
at least 1 and at most `max_predictions_per_seq`. Each selected token becomes
[MASK] 80% of the time, a random token 10%, and stays unchanged 10%; the
random token is drawn uniformly from the vocabulary without [PAD], [UNK],
[CLS], [SEP] and [MASK].

Whole-word masking selects whole words (a word is a run of tokens that touch
in the raw text and are not punctuation, so WordPiece continuations join their
word; Chinese text needs its words separated by spaces, or a segmenter's words:
bert_pl.segmentation) until the budget is reached, skipping words that would
exceed it, as the original does. The [MASK] / random / keep choice stays per
token (per character in Chinese), as in the original's and Chinese-BERT-wwm's
whole-word masking: a masked word can be part [MASK], part kept.

N-gram masking (`ngram_mask_max` = N > 1, with whole words) selects spans of
n consecutive whole words instead, ERNIE-Gram / ALBERT style: the words are
visited in random order as span starts and each draws n from p(n) = (1/n) /
sum_{k<=N} 1/k (N=3: 6/11, 3/11, 2/11), shorter spans more likely; a span
that would run past the budget, past the sequence's words (or across a
[SEP]) or into a word already taken is shortened, down to its first word,
which is skipped as in whole-word masking when it still does not fit. The
budget is the same, so the masked share stays `masked_lm_prob`.

`masked_lm_prob=0` masks nothing (the unmasked task data of the method's
later version): the input stays as it is and the `masked_lm_*` features are
all zero, weights included, so the original parsing spec still reads them.

Randomness comes from the `np.random.Generator` passed in; callers derive it
from (seed, chunk, dupe) so that outputs do not depend on how many processes
share the work.
"""

import math
from typing import Dict, Optional

import numpy as np

from bert_pl import errors

MASKED_LM_PROB = 0.15


def default_max_predictions(max_seq_length: int, masked_lm_prob: float = MASKED_LM_PROB) -> int:
  """`--max_predictions_per_seq` when none is given, one rule for the whole
  project: the masked share of a full sequence, rounded up (64 -> 10; 128 ->
  20, the original's setting)."""
  return math.ceil(round(max_seq_length * masked_lm_prob, 6))


class Masker:
  """Creates masked-LM predictions for batches of packed sequences."""

  def __init__(
    self,
    vocab_size: int,
    special_ids,
    mask_id: int,
    masked_lm_prob: float = 0.15,
    max_predictions_per_seq: int = 20,
    do_whole_word_mask: bool = False,
    ngram_mask_max: int = 1,
  ):
    if not 0.0 <= masked_lm_prob < 1.0:
      raise errors.InputError(f"masked_lm_prob must be in [0, 1), got {masked_lm_prob}")
    self.special_ids = np.array(sorted(set(special_ids)), np.int64)
    self.random_ids = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), self.special_ids)
    self.mask_id = mask_id
    self.masked_lm_prob = masked_lm_prob
    self.max_predictions_per_seq = max_predictions_per_seq
    self.do_whole_word_mask = do_whole_word_mask
    self.ngram_probabilities = ngram_probabilities(ngram_mask_max)

  def mask(
    self,
    input_ids: np.ndarray,
    input_mask: np.ndarray,
    rng: np.random.Generator,
    word_continues: Optional[np.ndarray] = None,
  ) -> Dict[str, np.ndarray]:
    """Returns the masked `input_ids` and `masked_lm_positions/ids/weights`."""
    n, length = input_ids.shape
    p = self.max_predictions_per_seq
    if self.masked_lm_prob == 0:
      nothing = np.zeros([n, p], np.int64)
      return {
        "input_ids": input_ids.copy(),
        "masked_lm_positions": nothing,
        "masked_lm_ids": nothing,
        "masked_lm_weights": nothing.astype(np.float32),
      }
    is_candidate = (input_mask == 1) & ~np.isin(input_ids, self.special_ids)
    num_candidates = is_candidate.sum(1)
    expected = num_candidates * self.masked_lm_prob
    count = np.floor(expected).astype(np.int64)
    count += rng.random(n) < expected - count
    count = np.minimum(np.minimum(np.maximum(count, 1), p), num_candidates)
    if self.do_whole_word_mask and word_continues is not None:
      positions = np.full([n, p], length, np.int64)
      for row in range(n):
        chosen = self._whole_words(
          np.flatnonzero(is_candidate[row]), word_continues[row], int(count[row]), rng
        )
        positions[row, : chosen.size] = chosen
    else:
      # Uniform choice without replacement, all rows at once: the `count`
      # candidates with the smallest random keys.
      keys = np.where(is_candidate, rng.random((n, length)), 2.0)
      smallest = np.argsort(keys, axis=1, kind="stable")[:, :p]
      taken = np.arange(p)[None, :] < count[:, None]
      positions = np.sort(np.where(taken, smallest, length), axis=1)
    valid = positions < length
    positions = np.where(valid, positions, 0)
    original = np.take_along_axis(input_ids, positions, axis=1)
    draw = rng.random((n, p))
    random_tokens = rng.choice(self.random_ids, (n, p))
    replacement = np.where(draw < 0.8, self.mask_id, np.where(draw < 0.9, original, random_tokens))
    masked = input_ids.copy()
    rows, slots = np.nonzero(valid)
    masked[rows, positions[rows, slots]] = replacement[rows, slots]
    return {
      "input_ids": masked,
      "masked_lm_positions": positions,
      "masked_lm_ids": np.where(valid, original, 0),
      "masked_lm_weights": valid.astype(np.float32),
    }

  def _whole_words(self, candidates, continues, budget, rng):
    words, current = [], []
    for position in candidates:
      if current and not (continues[position] and position == current[-1] + 1):
        words.append(current)
        current = []
      current.append(position)
    words.append(current)
    chosen = [p for span in self.ngram_spans(words, budget, rng) for i in span for p in words[i]]
    return np.sort(np.array(chosen, np.int64))

  def ngram_spans(self, words, budget, rng):
    """The spans (lists of consecutive word indices) to mask, in the order
    chosen: whole words (n-grams of them) until `budget` tokens."""
    order = rng.permutation(len(words))
    probabilities = self.ngram_probabilities
    if probabilities.size == 1:
      lengths = np.ones(len(words), np.int64)  # no draw: the same masks as before n-grams
    else:
      lengths = rng.choice(probabilities.size, len(words), p=probabilities) + 1
    taken = np.zeros(len(words), bool)
    spans, size = [], 0
    for index, length in zip(order, lengths):
      # n consecutive words: each starts where the one before it ended.
      span = 1
      while (
        span < length
        and index + span < len(words)
        and words[index + span][0] == words[index + span - 1][-1] + 1
      ):
        span += 1
      while span and (
        taken[index : index + span].any()
        or size + sum(len(w) for w in words[index : index + span]) > budget
      ):
        span -= 1
      if span:
        spans.append(list(range(index, index + span)))
        taken[index : index + span] = True
        size += sum(len(w) for w in words[index : index + span])
      if size == budget:
        break
    return spans


def ngram_probabilities(ngram_mask_max: int) -> np.ndarray:
  """p(n) of an n-gram span, n = 1..ngram_mask_max: proportional to 1/n."""
  weights = 1.0 / np.arange(1, ngram_mask_max + 1)
  return weights / weights.sum()
