"""The manifest of a pre-training dataset: `<output_file>.manifest.json`.

TFRecords describe nothing about themselves, and TensorFlow's reader takes a
file cut inside a record header for its end: a shortened shard trains
silently on fewer records. So `create_pretraining_data` (both jobs) writes,
beside its shards and last of all (atomically: its existence says the shards
are complete), what they are: every shard's name, record count, byte size
and sha256, and the settings they were written with (lengths, task, labels,
tokenizer, the vocabulary's sha256 and size, masking, the features present).
`run_pretraining` takes its lengths and labels from it instead of flags
restated by hand, refuses data of another vocabulary or task, and checks
every shard's size before training (sizes are cheap; the sha256 and record
counts read every byte, so only on request).

    {"format": "bert_pl.pretraining_data/1", "records": 24000,
     "max_seq_length": 64, "max_predictions_per_seq": 10, "task": "none",
     "labels": null, "tokenization": "wordpiece", "do_lower_case": true,
     "vocab_sha256": "...", "vocab_size": 8140, "masked_lm_prob": 0.15, ...,
     "features": {"input_ids": {"dtype": "int64", "shape": [64]}, ...},
     "shards": [{"file": "data.tfrecord-00000-of-00002", "records": 12000,
                 "bytes": 7321456, "sha256": "..."}, ...]}

Shard file names are relative to the manifest's directory.
"""

import dataclasses
import hashlib
import json
import os
import re
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
from absl import logging

from bert_pl import atomic_files, input_files, tfrecords, tokenization
from bert_pl.errors import InputError

FORMAT = "bert_pl.pretraining_data/1"
# The settings every manifest of one training run's input files must share.
SHARED_SETTINGS = (
  "max_seq_length",
  "max_predictions_per_seq",
  "task",
  "labels",
  "tokenization",
  "do_lower_case",
  "vocab_sha256",
)
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")
_BLOCK = 1 << 20


def path_of(output_file: str) -> str:
  return output_file + input_files.MANIFEST_SUFFIX


def manifest_of(shard: str) -> str:
  """The manifest a shard belongs to: OUTPUT.manifest.json for OUTPUT and
  for OUTPUT-0000k-of-0000n."""
  return path_of(_SHARD_SUFFIX.sub("", shard))


def sha256_of(path: str, digest=None) -> str:
  """The sha256 of a file's bytes, read in blocks (a checkpoint can be GBs);
  given a `digest`, it is updated with them (a digest of several files)."""
  digest = digest or hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    while block := f.read(_BLOCK):
      digest.update(block)
  return digest.hexdigest()


def vocab_fingerprint(vocab_file: str) -> Dict[str, Any]:
  """The vocabulary as the manifest records it: the sha256 of vocab.txt (as
  `sha256sum` prints it) and its size."""
  return {
    "vocab_sha256": sha256_of(vocab_file),
    "vocab_size": len(tokenization.load_vocab(vocab_file)),
  }


def shard_stats(path: str) -> Dict[str, Any]:
  """A shard's entry: file name, records, bytes and sha256, in one read. A
  file ending inside a record is an `InputError`."""
  records, size, sha256, complete = _scan(path)
  if not complete:
    raise InputError(
      f"{path}: truncated TFRecord file ({size} bytes end inside record {records + 1})"
    )
  return {"file": os.path.basename(path), "records": records, "bytes": size, "sha256": sha256}


def _scan(path: str) -> Tuple[int, int, str, bool]:
  """(complete records, bytes, sha256, whether the file ends at a record's
  end), the records counted from the TFRecord framing: an 8-byte length, its
  CRC, the data, the data's CRC."""
  digest, size, records, next_record, partial = hashlib.sha256(), 0, 0, 0, b""
  with tf.io.gfile.GFile(path, "rb") as f:
    while block := f.read(_BLOCK):
      digest.update(block)
      data, data_start = partial + block, size - len(partial)
      size += len(block)
      while next_record + 8 <= size:
        offset = next_record - data_start
        next_record += 16 + struct.unpack("<Q", data[offset : offset + 8])[0]
        records += 1
      partial = data[next_record - data_start :] if next_record < size else b""
  records -= next_record > size  # the last one's header came, not all its data
  return records, size, digest.hexdigest(), next_record == size


def write(output_file: str, settings: Dict[str, Any], shards: Sequence[Dict[str, Any]]) -> str:
  """Writes the manifest of the shards of `output_file` (their
  `shard_stats`, in any order) and the job's `settings`, atomically; returns
  its path."""
  shards = sorted(shards, key=lambda shard: shard["file"])
  directory = os.path.dirname(output_file)
  features = None
  for shard in shards:
    features = tfrecords.record_features(os.path.join(directory, shard["file"]))
    if features is not None:
      break
  manifest = {
    "format": FORMAT,
    "records": sum(shard["records"] for shard in shards),
    **settings,
    "features": {
      name: {"dtype": tfrecords.feature_dtype(name), "shape": [length]}
      for name, length in sorted((features or {}).items())
    },
    "shards": list(shards),
  }
  path = path_of(output_file)
  atomic_files.write_file(path, _json(manifest))
  return path


def _json(manifest: Dict[str, Any]) -> str:
  """JSON with a line per setting, feature and shard (readable, greppable)."""
  dumps = lambda value: json.dumps(value, ensure_ascii=False)
  lines = []
  for key, value in manifest.items():
    if key == "features":
      inner = ",\n".join(f"  {dumps(name)}: {dumps(spec)}" for name, spec in value.items())
      lines.append(f' "features": {{\n{inner}\n }}')
    elif key == "shards":
      inner = ",\n".join(f"  {dumps(shard)}" for shard in value)
      lines.append(f' "shards": [\n{inner}\n ]')
    else:
      lines.append(f" {dumps(key)}: {dumps(value)}")
  return "{\n" + ",\n".join(lines) + "\n}\n"


def remove(output_file: str) -> None:
  """Removes the manifest of an earlier run writing `output_file` (its
  shards are about to be replaced)."""
  if tf.io.gfile.exists(path_of(output_file)):
    tf.io.gfile.remove(path_of(output_file))


@dataclasses.dataclass
class Inputs:
  """The manifests of a job's input files."""

  manifests: Dict[str, Dict[str, Any]]  # manifest path -> its contents
  owners: Dict[str, Optional[str]]  # input file -> its manifest path (None: it has none)

  def entry(self, path: str) -> Optional[Dict[str, Any]]:
    """The file's entry in its manifest (None: not listed, or no manifest)."""
    owner = self.owners.get(path)
    if owner is None:
      return None
    name = os.path.basename(path)
    return next((s for s in self.manifests[owner]["shards"] if s["file"] == name), None)

  def settings(self) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(a manifest's path, its settings) when the files have manifests, which
    must agree on `SHARED_SETTINGS`; warns about the files without one."""
    if not self.manifests:
      bare = list(self.owners)
      logging.warning(
        "no manifest for the input files (%s%s): written before manifests "
        "existed or by another tool, so max_seq_length, max_predictions_per_seq "
        "and labels come from the flags and the shards are not checked",
        ", ".join(bare[:3]),
        ", ..." if len(bare) > 3 else "",
      )
      return None
    (first, settings), *others = self.manifests.items()
    for other, values in others:
      for key in SHARED_SETTINGS:
        if values.get(key) != settings.get(key):
          raise InputError(
            f"{other}: {key} is {values.get(key)!r}, but {first} says "
            f"{settings.get(key)!r} (the input files are of two datasets)"
          )
    for owner, manifest in self.manifests.items():
      directory = os.path.dirname(owner)
      missing = [
        s["file"]
        for s in manifest["shards"]
        if not tf.io.gfile.exists(os.path.join(directory, s["file"]))
      ]
      if missing:
        logging.warning(
          "%s: %d of its %d shards are missing (%s%s)",
          owner,
          len(missing),
          len(manifest["shards"]),
          ", ".join(missing[:3]),
          ", ..." if len(missing) > 3 else "",
        )
    bare = [path for path, owner in self.owners.items() if owner is None]
    if bare:
      logging.warning(
        "%d of the %d input files have no manifest (%s%s): read unchecked, as data of %s",
        len(bare),
        len(self.owners),
        ", ".join(bare[:3]),
        ", ..." if len(bare) > 3 else "",
        first,
      )
    return first, settings

  def problems(self, files: Sequence[str], verify_checksums: bool) -> List[Tuple[str, str]]:
    """(file, what is wrong) for each of `files` that disagrees with its
    manifest: its byte size (always), its record count and sha256 (with
    `verify_checksums`: a read of every byte), or not listed at all."""
    found = []
    for path in files:
      owner = self.owners.get(path)
      if owner is None:
        continue
      entry = self.entry(path)
      if entry is None:
        found.append(
          (
            path,
            f"not listed in {owner} (a shard of an earlier run with other "
            "settings or another --num_output_shards?)",
          )
        )
        continue
      size = tf.io.gfile.stat(path).length
      if size != entry["bytes"]:
        found.append((path, f"{size} bytes, the manifest says {entry['bytes']}"))
      elif verify_checksums:
        records, _, sha256, _ = _scan(path)
        if records != entry["records"]:
          found.append((path, f"{records} records, the manifest says {entry['records']}"))
        elif sha256 != entry["sha256"]:
          found.append((path, f"sha256 {sha256}, the manifest says {entry['sha256']}"))
    return found


def read(files: Sequence[str]) -> Inputs:
  """The manifests of `files` (`manifest_of` each, where it exists)."""
  loaded: Dict[str, Optional[Dict[str, Any]]] = {}
  owners = {}
  for path in files:
    owner = manifest_of(path)
    if owner not in loaded:
      loaded[owner] = _load(owner) if tf.io.gfile.exists(owner) else None
    owners[path] = owner if loaded[owner] is not None else None
  return Inputs({k: v for k, v in loaded.items() if v is not None}, owners)


def _load(path: str) -> Dict[str, Any]:
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  try:
    manifest = json.loads(text)
  except json.JSONDecodeError as e:
    raise InputError(f"{path}:{e.lineno}: not a manifest (invalid JSON: {e.msg})") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    found = manifest.get("format") if isinstance(manifest, dict) else None
    raise InputError(
      f"{path}: not a manifest of this version (format {found!r}, expected {FORMAT!r})"
    )
  return manifest
