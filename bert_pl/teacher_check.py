"""Says when the teacher cannot help: a degenerate step 3, from its pseudo-labels alone.

Steps 4-5 learn from step 3's pseudo-labels, so a teacher that predicts
almost one class, or almost no entity, makes them teach that and nothing
else; the test metric of Model-D then falls, and without gold labels for
the pool nothing else in the report says why. The check needs no gold: it
compares the pseudo-labels' distribution with the labeled training set's,
which is the only estimate of the pool's (the method assumes the pool is in
the labeled set's domain). It returns plain sentences with the numbers;
no warning means none of the signals below fired, not that the teacher is
good (only `--pool_labels` measures that).

Signals and thresholds:
- classification, one class far above its labeled share: pseudo share p of
  a class against its labeled share q fires when p ≥ q + ½(1 − q), i.e. the
  class took at least half of the share the labeled set gives all the other
  classes together. A ratio alone (p ≥ k·q) cannot serve every task: with 2
  classes a share can at most double, with 77 a 3x share is 4% of the pool
  and ordinary noise. Halfway to one-class is a collapse at any number of
  classes (binary: ≥ 75% for a 50% class; 77 balanced classes: ≥ 51%) and
  far from what a shift of the pool's mix alone would give.
- NER, entities per sentence far below the labeled rate: fires below a
  quarter of the labeled set's rate. A teacher with a recall of a half still
  finds half the entities; below a quarter, step 4's targets are mostly O and
  teach the student to find none (the case this check was made for: 29, 695
  and 0 entities over 4,203 pool sentences against CoNLL's ~1.7 per
  sentence).
- NER, tags that break the BIO scheme: an I-X not preceded by B-X or I-X.
  The teacher's CRF learns that O → I-X never occurs, so a trained teacher
  writes almost none; more than 1% of the predicted entities starting so
  means its tag sequences are not learned (or the files are not its).
Counting entities ignores how a sentence is cut into units (step 3 writes
characters or words, the labeled set may have words), so the rates compare.
"""

import collections
from typing import Dict, List, Sequence

from bert_pl import input_files, tag_schemes

CLASS_SHARE_FRACTION = 0.5  # of the way from the labeled share to all-one-class
ENTITY_RATE_FRACTION = 0.25  # of the labeled set's entities per sentence
BROKEN_ENTITY_SHARE = 0.01  # of the predicted entities, starting with I- after O or another type


def _examples(task: str, paths: Sequence[str]):
  for path in paths:
    yield from input_files.read_examples(path, task, input_files.Counts())


def class_shares(paths: Sequence[str]) -> Dict:
  """{'examples': n, 'shares': {label: share}} of classification files."""
  counts = collections.Counter(example.label for example in _examples("classification", paths))
  total = sum(counts.values())
  return {"examples": total, "shares": {label: n / total for label, n in sorted(counts.items())}}


def broken_starts(tags: Sequence[str]) -> int:
  """The I-X tags that do not follow B-X or I-X: breaks of the BIO scheme."""
  previous, broken = "O", 0
  for tag in tags:
    if tag.startswith("I-") and previous[2:] != tag[2:]:
      broken += 1
    previous = tag
  return broken


def entity_counts(paths: Sequence[str]) -> Dict:
  """{'sentences', 'entities', 'broken'} of CoNLL files (BIO)."""
  sentences = entities = broken = 0
  for example in _examples("ner", paths):
    sentences += 1
    entities += len(tag_schemes.entities(example.tags))
    broken += broken_starts(example.tags)
  return {"sentences": sentences, "entities": entities, "broken": broken}


def entity_rate(counts: Dict) -> float:
  """Entities per sentence of entity_counts' numbers (0 without a sentence)."""
  return counts["entities"] / max(counts["sentences"], 1)


def _class_warnings(pseudo: Dict, labeled: Dict) -> List[str]:
  warnings = []
  for label, share in pseudo["shares"].items():
    labeled_share = labeled["shares"].get(label, 0.0)
    if share >= labeled_share + CLASS_SHARE_FRACTION * (1 - labeled_share):
      warnings.append(
        f"the teacher gave {share:.1%} of {pseudo['examples']:,} pool examples the class "
        f"{label!r}, which has {labeled_share:.1%} of the labeled set: a degenerate teacher "
        "(almost one class); steps 4-5 would learn that class"
      )
  return warnings


def _entity_warnings(pseudo: Dict, labeled: Dict) -> List[str]:
  warnings = []
  rate, labeled_rate = entity_rate(pseudo), entity_rate(labeled)
  if rate < ENTITY_RATE_FRACTION * labeled_rate:
    warnings.append(
      f"the teacher found {pseudo['entities']:,} entities in {pseudo['sentences']:,} pool "
      f"sentences ({rate:.3f} per sentence), the labeled set has {labeled_rate:.3f}: a "
      "degenerate teacher (almost no entity); steps 4-5 would learn to find none"
    )
  if pseudo["broken"] and pseudo["broken"] > BROKEN_ENTITY_SHARE * pseudo["entities"]:
    warnings.append(
      f"{pseudo['broken']:,} of the teacher's {pseudo['entities']:,} entities start with an "
      "I- tag without B- (the BIO scheme is broken): its tag sequences are not learned"
    )
  return warnings


def check(task: str, pseudo_files: Sequence[str], train_file: str) -> Dict:
  """The pseudo-labels' and the labeled set's numbers, and 'warnings': plain
  sentences, empty when no signal fired."""
  if task == "classification":
    pseudo, labeled = class_shares(pseudo_files), class_shares([train_file])
    written, warnings = pseudo["examples"], _class_warnings(pseudo, labeled)
  else:
    pseudo, labeled = entity_counts(pseudo_files), entity_counts([train_file])
    written, warnings = pseudo["sentences"], _entity_warnings(pseudo, labeled)
  if not written:
    warnings = [
      "the teacher wrote no pseudo-label (all below --min_confidence?): steps 4-5 have "
      "nothing to learn from"
    ]
  return {"pseudo_labels": pseudo, "labeled": labeled, "warnings": warnings}


def describe(task: str, result: Dict) -> str:
  """The check in one line for the report: its warnings, or the numbers it
  found unremarkable."""
  if result["warnings"]:
    return "WARNING: " + "; ".join(result["warnings"]) + "."
  pseudo, labeled = result["pseudo_labels"], result["labeled"]
  if task == "classification":
    label, share = max(pseudo["shares"].items(), key=lambda item: item[1])
    return (
      f"no sign of a degenerate teacher: its most frequent class {label!r} has {share:.1%} of "
      f"the pool, {labeled['shares'].get(label, 0.0):.1%} of the labeled set."
    )
  return (
    f"no sign of a degenerate teacher: {entity_rate(pseudo):.3f} entities per pool sentence "
    f"(labeled set: {entity_rate(labeled):.3f}), {pseudo['broken']} I- tags without B-."
  )
