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

Randomness comes from the `np.random.Generator` passed in; callers derive it
from (seed, chunk, dupe) so that outputs do not depend on how many processes
share the work.
"""

from typing import Dict, Optional

import numpy as np


class Masker:
  """Creates masked-LM predictions for batches of packed sequences."""

  def __init__(self, vocab_size: int, special_ids, mask_id: int,
               masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
               do_whole_word_mask: bool = False):
    if not 0.0 < masked_lm_prob < 1.0:
      raise ValueError(f"masked_lm_prob must be in (0, 1), got {masked_lm_prob}")
    self.special_ids = np.array(sorted(set(special_ids)), np.int64)
    self.random_ids = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), self.special_ids)
    self.mask_id = mask_id
    self.masked_lm_prob = masked_lm_prob
    self.max_predictions_per_seq = max_predictions_per_seq
    self.do_whole_word_mask = do_whole_word_mask

  def mask(self, input_ids: np.ndarray, input_mask: np.ndarray, rng: np.random.Generator,
           word_continues: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Returns the masked `input_ids` and `masked_lm_positions/ids/weights`."""
    n = input_ids.shape[0]
    p = self.max_predictions_per_seq
    masked = input_ids.copy()
    positions = np.zeros([n, p], np.int64)
    ids = np.zeros([n, p], np.int64)
    weights = np.zeros([n, p], np.float32)
    is_candidate = (input_mask == 1) & ~np.isin(input_ids, self.special_ids)
    for row in range(n):
      candidates = np.flatnonzero(is_candidate[row])
      if candidates.size == 0:
        continue
      expected = candidates.size * self.masked_lm_prob
      count = int(expected) + int(rng.random() < expected - int(expected))
      count = min(max(count, 1), p, candidates.size)
      if self.do_whole_word_mask and word_continues is not None:
        chosen = self._whole_words(candidates, word_continues[row], count, rng)
      else:
        chosen = np.sort(rng.choice(candidates, count, replace=False))
      k = chosen.size
      original = input_ids[row, chosen]
      draw = rng.random(k)
      replacement = np.where(draw < 0.8, self.mask_id, original)
      random_token = draw >= 0.9
      replacement[random_token] = rng.choice(self.random_ids, int(random_token.sum()))
      masked[row, chosen] = replacement
      positions[row, :k] = chosen
      ids[row, :k] = original
      weights[row, :k] = 1.0
    return {"input_ids": masked, "masked_lm_positions": positions,
            "masked_lm_ids": ids, "masked_lm_weights": weights}

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
