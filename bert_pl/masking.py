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
word; Chinese text needs its words separated by spaces) until the budget is
reached, skipping words that would exceed it, as the original does.

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
  ):
    if not 0.0 <= masked_lm_prob < 1.0:
      raise errors.InputError(f"masked_lm_prob must be in [0, 1), got {masked_lm_prob}")
    self.special_ids = np.array(sorted(set(special_ids)), np.int64)
    self.random_ids = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), self.special_ids)
    self.mask_id = mask_id
    self.masked_lm_prob = masked_lm_prob
    self.max_predictions_per_seq = max_predictions_per_seq
    self.do_whole_word_mask = do_whole_word_mask

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

  @staticmethod
  def _whole_words(candidates, continues, budget, rng):
    words, current = [], []
    for position in candidates:
      if current and not (continues[position] and position == current[-1] + 1):
        words.append(current)
        current = []
      current.append(position)
    words.append(current)
    chosen = []
    for index in rng.permutation(len(words)):
      word = words[index]
      if len(chosen) + len(word) <= budget:
        chosen.extend(word)
      if len(chosen) == budget:
        break
    return np.sort(np.array(chosen, np.int64))
