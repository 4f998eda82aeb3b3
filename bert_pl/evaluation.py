"""Metrics of the paper: accuracy (and macro-F1), CoNLL entity-level F1."""

from typing import Dict, List, Sequence

import numpy as np
from seqeval import metrics as seqeval_metrics
from seqeval.metrics.sequence_labeling import get_entities


def classification_metrics(
  labels: Sequence[int], predictions: Sequence[int], num_labels: int
) -> Dict[str, float]:
  """Accuracy and macro-F1 (mean over labels present in gold or predictions)."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  f1s = []
  for label in range(num_labels):
    tp = np.sum((predictions == label) & (labels == label))
    fp = np.sum((predictions == label) & (labels != label))
    fn = np.sum((predictions != label) & (labels == label))
    if tp + fp + fn:
      f1s.append(2 * tp / (2 * tp + fp + fn))
  return {
    "accuracy": float(np.mean(labels == predictions)),
    "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
    "num_examples": int(labels.size),
  }


def ner_metrics(gold: List[List[str]], predicted: List[List[str]]) -> Dict[str, float]:
  """CoNLL entity-level precision/recall/F1 (seqeval's conlleval mode on
  BIO), overall and per entity type, and the entity counts they come from:
  `gold_entities`, `predicted_entities`, `correct_entities`. `gold` is the
  whole annotation: what the model did not see (a truncated tail) must be
  in `predicted` as O, so that its entities count as missed."""
  gold_entities = set(get_entities(gold))
  predicted_entities = set(get_entities(predicted))
  results = {
    "precision": seqeval_metrics.precision_score(gold, predicted),
    "recall": seqeval_metrics.recall_score(gold, predicted),
    "f1": seqeval_metrics.f1_score(gold, predicted),
  }
  report = seqeval_metrics.classification_report(gold, predicted, output_dict=True, zero_division=0)
  for kind, scores in report.items():
    if kind.endswith(" avg"):
      continue
    for name in ("precision", "recall", "f1-score"):
      results[f"{kind}_{name.replace('-score', '')}"] = float(scores[name])
  return dict(
    {k: float(v) for k, v in results.items()},
    num_sentences=len(gold),
    gold_entities=len(gold_entities),
    predicted_entities=len(predicted_entities),
    correct_entities=len(gold_entities & predicted_entities),
  )
