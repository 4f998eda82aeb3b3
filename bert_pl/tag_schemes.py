"""NER tag schemes: conversion to BIO (IOB2) and entity spans.

Inside bert_pl every tag sequence is BIO: `B-X` starts an entity of type X,
`I-X` continues it, `O` is outside. Input files may use IOB1 (`I-X` starts an
entity unless it follows X; `B-X` only separates two adjacent X entities),
BIOES or BMES (`S-X` single, `E-X` end, `M-X` middle); they are converted on
reading so that training, decoding and evaluation see one scheme.
"""

from typing import List, Sequence, Tuple

SCHEMES = ("bio", "iob1", "bioes", "bmes")

Entity = Tuple[str, int, int]  # (type, start, end exclusive), in tag positions


class TagError(ValueError):
  """A bad tag; `index` is its position in the sentence."""

  def __init__(self, index: int, message: str):
    super().__init__(message)
    self.index = index


def _split(tag: str) -> Tuple[str, str]:
  if tag == "O":
    return "O", ""
  prefix, sep, kind = tag.partition("-")
  if not sep or not kind or len(prefix) != 1:
    raise ValueError(f"malformed tag {tag!r}")
  return prefix, kind


def to_bio(tags: Sequence[str], scheme: str) -> List[str]:
  """Converts a sentence's tags from `scheme` to BIO; raises on a bad tag."""
  if scheme not in SCHEMES:
    raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
  allowed = {"bio": "BI", "iob1": "BI", "bioes": "BIOES", "bmes": "BMES"}[scheme]
  out, previous_kind = [], ""
  for index, tag in enumerate(tags):
    try:
      prefix, kind = _split(tag)
    except ValueError as e:
      raise TagError(index, str(e)) from None
    if prefix != "O" and prefix not in allowed:
      raise TagError(index, f"tag {tag!r} is not valid in the {scheme.upper()} scheme")
    if prefix == "O":
      out.append("O")
    elif prefix in "BS":
      out.append(f"B-{kind}")
    elif scheme == "iob1" and prefix == "I" and previous_kind != kind:
      out.append(f"B-{kind}")
    else:  # I, M, E continue an entity
      out.append(f"I-{kind}")
    previous_kind = "" if prefix in "OSE" else kind
  return out


def entities(tags: Sequence[str]) -> List[Entity]:
  """Entity spans of a BIO sequence; an `I-X` after O or another type starts one."""
  spans, kind, start = [], None, 0
  for i, tag in enumerate(list(tags) + ["O"]):
    prefix, tag_kind = _split(tag)
    continues = prefix == "I" and tag_kind == kind
    if kind is not None and not continues:
      spans.append((kind, start, i))
      kind = None
    if prefix in "BI" and not continues:
      kind, start = tag_kind, i
  return spans
