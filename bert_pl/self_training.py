"""Classic self-training: which pseudo-labeled examples join the labeled set.

The baseline the method's later version compares against (DESIGN §1b):
fine-tune on the labeled data plus the most confident pseudo-labels of a
step-3 output, sampled evenly from each class, so that the classes the
teacher predicts most often do not crowd out the rare ones. `finetuning`
reads the pseudo-labeled files, feeds every example to a `Sampler` and
encodes what it keeps; this module is pure Python (no TensorFlow), and
streaming: it holds the kept examples only, so a pool of any size fits.

Selection:
- The class of an example is its pseudo-label (classification). A NER
  sentence is in the bin of the RAREST entity type it contains, rarest meaning
  in the fewest sentences of the pseudo-label files (ties: the type name
  first in alphabetical order), and in the bin "O" when it has no entity. So
  the bins are disjoint (a sentence is counted once), and a sentence with a
  rare and a frequent type serves the rare type, whose bin is the one that
  runs short.
- Only examples with confidence >= `min_confidence` are candidates.
- Each class gives its `per_class` most confident candidates, or all it has.
  Equal confidences are common (files keep 6 decimals, and a confident
  classifier writes many 1.000000): they are ordered by a random key per
  example drawn from `random.Random(seed)` in file order, i.e. a seeded
  shuffle, not by position, so the head of a file is not favoured; the same
  files and seed give the same selection. The key of an example does not
  depend on `min_confidence`, so raising it only removes examples.
"""

import collections
import heapq
import random
from typing import Any, Dict, Iterable, List, Sequence, Set

from bert_pl import tag_schemes

NO_ENTITY = "O"  # the bin of NER sentences without an entity


def entity_types(tags: Sequence[str]) -> Set[str]:
  """The entity types of a BIO tag sequence."""
  return {kind for kind, _, _ in tag_schemes.entities(tags)}


def type_frequency(tag_sequences: Iterable[Sequence[str]]) -> collections.Counter:
  """Entity type -> number of sentences that contain it."""
  return collections.Counter(kind for tags in tag_sequences for kind in entity_types(tags))


def ner_bin(tags: Sequence[str], frequency: collections.Counter) -> str:
  """The rarest entity type of a sentence (`frequency` from `type_frequency`
  of all sentences), or NO_ENTITY."""
  types = entity_types(tags)
  return min(types, key=lambda kind: (frequency[kind], kind)) if types else NO_ENTITY


def ner_classes(tags: Sequence[str]) -> List[str]:
  """The bins of a BIO tag list: NO_ENTITY, then the types in tag order."""
  return [NO_ENTITY] + list(dict.fromkeys(t[2:] for t in tags if t != NO_ENTITY))


class Sampler:
  """Keeps the `per_class` most confident examples of each class of a stream."""

  def __init__(self, per_class: int, min_confidence: float = 0.0, seed: int = 0):
    if per_class < 1:
      raise ValueError(f"per_class must be >= 1, got {per_class}")
    self.per_class = per_class
    self.min_confidence = min_confidence
    self.seed = seed
    self.in_file = collections.Counter()
    self.available = collections.Counter()
    self._heaps = collections.defaultdict(list)  # min-heaps of the best per class
    self._random = random.Random(seed)
    self._count = 0

  def add(self, klass: str, confidence: float, item: Any = None) -> None:
    """One example, in file order; `item` is what `selected` returns for it."""
    index, self._count = self._count, self._count + 1
    tie_break = self._random.random()  # drawn for every example: see the module docstring
    self.in_file[klass] += 1
    if confidence < self.min_confidence:
      return
    self.available[klass] += 1
    entry = (confidence, tie_break, index, item)  # unique index: items are never compared
    heap = self._heaps[klass]
    if len(heap) < self.per_class:
      heapq.heappush(heap, entry)
    elif entry > heap[0]:
      heapq.heapreplace(heap, entry)

  def selected(self) -> List[Any]:
    """The kept items, in file order."""
    entries = sorted((e for heap in self._heaps.values() for e in heap), key=lambda e: e[2])
    return [e[3] for e in entries]

  def counts(self, classes: Sequence[str] = ()) -> Dict[str, Dict[str, int]]:
    """Class -> {in_file, available (confidence high enough), selected}, for
    `classes` (all listed, also those without examples) and any other class
    seen, in order of first appearance."""
    names = list(dict.fromkeys(list(classes) + list(self.in_file)))
    return {
      name: {
        "in_file": self.in_file[name],
        "available": self.available[name],
        "selected": len(self._heaps.get(name, ())),
      }
      for name in names
    }


def report(
  sampler: Sampler,
  classes: Sequence[str],
  pseudo_label_file: str,
  files: Sequence[str],
  num_labeled: int,
) -> Dict[str, Any]:
  """What self-training added, for self_training.json and the job's output."""
  added = sum(c["selected"] for c in sampler.counts().values())
  return {
    "pseudo_label_file": pseudo_label_file,
    "files": list(files),
    "pseudo_per_class": sampler.per_class,
    "pseudo_min_confidence": sampler.min_confidence,
    "random_seed": sampler.seed,
    "labeled_examples": num_labeled,
    "added": added,
    "training_examples": num_labeled + added,
    "classes": sampler.counts(classes),
  }


def describe(summary: Dict[str, Any]) -> str:
  """A `report` as printed lines: the totals, then a row per class."""
  classes = summary["classes"]
  width = max([len("class")] + [len(name) for name in classes])
  lines = [
    f"self-training: {summary['labeled_examples']} labeled + {summary['added']} "
    f"pseudo-labeled = {summary['training_examples']} training examples (up to "
    f"{summary['pseudo_per_class']} per class with confidence >= "
    f"{summary['pseudo_min_confidence']}, seed {summary['random_seed']})",
    f"  {'class':<{width}}  {'in file':>9}  {'available':>9}  {'selected':>9}",
  ]
  lines += [
    f"  {name:<{width}}  {c['in_file']:>9}  {c['available']:>9}  {c['selected']:>9}"
    for name, c in classes.items()
  ]
  return "\n".join(lines)
