"""Self-describing datasets: the glob rule, the manifest create_pretraining_data
writes, and what run_pretraining does with it."""

import hashlib
import json
import os
import shutil

import pytest
import tensorflow as tf
from test_training import _pretraining_config, _tiny_config

from bert_pl import create_pretraining_data, input_files, input_pipeline, run_pretraining
from bert_pl.errors import InputError

from conftest import run_job

MAX_SEQ, MAX_PRED = 64, 10


@pytest.fixture(scope="module")
def datasets(corpus, tmp_path_factory):
  """An MLM dataset (2 shards) and a pseudo-labeled classification one with
  confidences (3 shards), both small; tests copy them before damaging them."""
  directory = tmp_path_factory.mktemp("datasets")
  lines = (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  (directory / "pool.txt").write_text("".join(lines[:400]), encoding="utf-8")
  labeled = (corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:300]
  (directory / "pseudo.tsv").write_text("".join(labeled), encoding="utf-8")
  (directory / "pseudo.tsv.confidence").write_text(
    "".join(f"{0.5 + i % 5 / 10}\n" for i in range(len(labeled)))
  )
  settings = dict(
    vocab_file=str(corpus / "vocab.txt"), max_seq_length=MAX_SEQ, max_predictions_per_seq=MAX_PRED
  )
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      input_file=str(directory / "pool.txt"),
      output_file=str(directory / "mlm" / "data.tfrecord"),
      num_output_shards=2,
      **settings,
    )
  )
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      input_file=str(directory / "pseudo.tsv"),
      output_file=str(directory / "cls" / "data.tfrecord"),
      num_output_shards=3,
      task="classification",
      label_file=str(corpus / "labels.txt"),
      **settings,
    )
  )
  return directory


def _copy(datasets, name, tmp_path):
  shutil.copytree(datasets / name, tmp_path / name)
  return tmp_path / name


def _run(corpus, tmp_path, input_file, **values):
  """run_pretraining (2 steps of a tiny model) on `input_file`."""
  values = dict(
    dict(
      bert_config_file=_tiny_config(corpus, tmp_path / "config.json"),
      vocab_file=str(corpus / "vocab.txt"),
      input_file=input_file,
      output_dir=str(tmp_path / "model"),
      num_train_steps=2,
      do_eval=False,
      train_batch_size=8,
    ),
    **values,
  )
  return run_pretraining.run(_pretraining_config(**values))


def test_one_glob_rule_skips_temporaries_side_files_and_directories(tmp_path):
  data = tmp_path / "data"
  (data / "sub").mkdir(parents=True)
  (data / "beam-temp-b.txt-0123456789abcdef0123456789abcdef").mkdir()
  names = [
    "b.txt",
    "a.txt",
    ".a.txt.tmp-12",
    "a.txt.tmp-3",
    "a.txt.tmp",
    "a.txt.confidence",
    "a.txt.logits",
    "a.txt.manifest.json",
    "step1.done",
  ]
  for name in names:
    (data / name).write_text("x\n")
  expected = [str(data / "a.txt"), str(data / "b.txt")]
  assert input_files.expand_input_files(f"{data}/*,{data}/b.txt") == expected
  assert input_files.expand_input_files(f"{data}/a*") == [str(data / "a.txt")]
  # A path named on purpose is taken, side file or not.
  assert input_files.expand_input_files(f"{data}/a.txt.confidence") == [
    str(data / "a.txt.confidence")
  ]
  with pytest.raises(
    InputError,
    match=f"^{data}/sub: a directory, not a file \\(for the files in it, give {data}/sub/\\*\\)$",
  ):
    input_files.expand_input_files(f"{data}/a.txt,{data}/sub")
  with pytest.raises(InputError, match=f"^{data}/\\.\\*: no file matches$"):
    input_files.expand_input_files(f"{data}/.*")


def test_stale_temporaries_are_removed_and_never_read(corpus, tmp_path):
  out = tmp_path / "pool.tfrecord"
  stale = [
    ".pool.tfrecord-00001-of-00002.tmp-99999",
    "pool.tfrecord.tmp-4242",
    ".pool.tfrecord.manifest.json.tmp-7",
  ]
  for name in stale:
    (tmp_path / name).write_bytes(b"half a shard")
  (tmp_path / "beam-temp-pool.tfrecord-0123456789abcdef0123456789abcdef").mkdir()
  (tmp_path / ".other.tfrecord.tmp-5").write_bytes(b"another output's")
  with pytest.raises(InputError, match="no file matches"):  # only temporaries so far
    input_files.expand_input_files(f"{out}*")
  lines = (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  (tmp_path / "in.txt").write_text("".join(lines[:50]), encoding="utf-8")
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      str(tmp_path / "in.txt"),
      str(out),
      str(corpus / "vocab.txt"),
      num_output_shards=2,
      max_seq_length=MAX_SEQ,
      max_predictions_per_seq=MAX_PRED,
    )
  )
  assert sorted(os.listdir(tmp_path)) == [
    ".other.tfrecord.tmp-5",
    "in.txt",
    "pool.tfrecord-00000-of-00002",
    "pool.tfrecord-00001-of-00002",
    "pool.tfrecord.manifest.json",
  ]
  assert input_files.expand_input_files(f"{out}*") == [
    f"{out}-00000-of-00002",
    f"{out}-00001-of-00002",
  ]


def _first_record_features(path):
  record = next(iter(tf.data.TFRecordDataset(path)))
  feature = tf.train.Example.FromString(record.numpy()).features.feature
  return {
    name: {
      "dtype": "float32" if value.float_list.value else "int64",
      "shape": [len(value.float_list.value) or len(value.int64_list.value)],
    }
    for name, value in feature.items()
  }


def test_manifest_describes_the_shards(corpus, datasets):
  directory = datasets / "cls"
  shards = [f"data.tfrecord-0000{i}-of-00003" for i in range(3)]
  assert sorted(os.listdir(directory)) == shards + ["data.tfrecord.manifest.json"]
  written = json.loads((directory / "data.tfrecord.manifest.json").read_text(encoding="utf-8"))
  vocab = (corpus / "vocab.txt").read_bytes()
  labels = input_files.read_labels(str(corpus / "labels.txt"))
  assert {k: v for k, v in written.items() if k not in ("features", "shards")} == {
    "format": "bert_pl.pretraining_data/1",
    "records": 300,
    "max_seq_length": MAX_SEQ,
    "max_predictions_per_seq": MAX_PRED,
    "task": "classification",
    "labels": labels,
    "tokenization": "wordpiece",
    "do_lower_case": True,
    "vocab_sha256": hashlib.sha256(vocab).hexdigest(),
    "vocab_size": vocab.count(b"\n"),
    "masked_lm_prob": 0.15,
    "dupe_factor": 1,
    "do_whole_word_mask": False,
    "segmenter": "none",
    "ngram_mask_max": 1,
    "random_seed": 12345,
    "field_join": "sep",
  }
  assert written["features"] == _first_record_features(str(directory / shards[0]))
  assert set(written["features"]) == {
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
    "label_ids",
    "label_weights",
  }
  assert written["features"]["input_ids"] == {"dtype": "int64", "shape": [MAX_SEQ]}
  entries = []
  for name in shards:
    path = directory / name
    entries.append(
      {
        "file": name,
        "records": input_pipeline.count_records(str(path)),
        "bytes": os.stat(path).st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
      }
    )
  assert written["shards"] == entries
  assert [e["records"] for e in entries] == [100, 100, 100]


def test_truncated_shard_is_refused_by_name_or_skipped(corpus, datasets, tmp_path, caplog):
  directory = _copy(datasets, "mlm", tmp_path)
  shard = directory / "data.tfrecord-00001-of-00002"
  data = shard.read_bytes()
  # Cut 5 bytes into the header of record 151 of 200: TensorFlow reads the
  # 150 whole records and no error.
  cut = 0
  for _ in range(150):
    cut += 16 + int.from_bytes(data[cut : cut + 8], "little")
  shard.write_bytes(data[: cut + 5])
  assert input_pipeline.count_records(str(shard)) == 150
  pattern = f"{directory}/data.tfrecord*"
  with pytest.raises(InputError) as error:
    _run(corpus, tmp_path, pattern)
  assert str(error.value) == (
    f"{shard}: {cut + 5} bytes, the manifest says {len(data)}; "
    "regenerate it, or pass --skip_corrupt_files to train without it"
  )
  _run(corpus, tmp_path, pattern, skip_corrupt_files=True)
  assert tf.train.latest_checkpoint(str(tmp_path / "model")).endswith("ckpt-2")
  assert f"skipping {shard}: {cut + 5} bytes, the manifest says {len(data)}" in caplog.text
  # With --verify_checksums, bytes changed in place (same size) are found
  # before training (else TFRecord's CRC stops training when it reaches them).
  shard.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
  with pytest.raises(
    InputError,
    match=f"^{shard}: sha256 [0-9a-f]{{64}}, the manifest says "
    f"{hashlib.sha256(data).hexdigest()}; regenerate it",
  ):
    _run(corpus, tmp_path, pattern, verify_checksums=True)
  # A shard of an earlier run with another shard count is not in the manifest.
  shard.write_bytes(data)
  stray = directory / "data.tfrecord-00003-of-00004"
  stray.write_bytes(data)
  with pytest.raises(
    InputError,
    match=f"^{stray}: not listed in {directory}/data.tfrecord"
    r"\.manifest\.json \(a shard of an earlier run",
  ):
    _run(corpus, tmp_path, pattern)


def test_data_of_another_vocab_task_labels_or_dataset_is_refused(corpus, datasets, tmp_path):
  cls = f"{datasets}/cls/data.tfrecord*"
  manifest_path = f"{datasets}/cls/data.tfrecord.manifest.json"
  tokens = (corpus / "vocab.txt").read_text(encoding="utf-8").splitlines()
  other_vocab = tmp_path / "vocab.txt"
  other_vocab.write_text("\n".join(tokens[:-1] + ["炸"]) + "\n", encoding="utf-8")
  with pytest.raises(
    InputError,
    match=f"^{manifest_path}: written with another vocabulary "
    rf"\({len(tokens)} tokens, sha256 [0-9a-f]{{12}}\.\.\.\) than {other_vocab} ",
  ):
    _run(corpus, tmp_path, cls, vocab_file=str(other_vocab), task_loss="classification")
  with pytest.raises(
    InputError, match=f"^{manifest_path}: records of --task=classification, but --task_loss=ner$"
  ):
    _run(corpus, tmp_path, cls, task_loss="ner", num_labels=9)
  labels = input_files.read_labels(str(corpus / "labels.txt"))
  swapped = tmp_path / "labels.txt"
  swapped.write_text("\n".join([labels[1], labels[0]] + labels[2:]) + "\n", encoding="utf-8")
  with pytest.raises(
    InputError, match=f"^{manifest_path}: label 0 is '{labels[0]}', {swapped} says '{labels[1]}' "
  ):
    _run(corpus, tmp_path, cls, task_loss="classification", label_file=str(swapped))
  with pytest.raises(InputError) as error:
    _run(corpus, tmp_path, f"{cls},{datasets}/mlm/data.tfrecord*")
  assert str(error.value) == (
    f"{datasets}/mlm/data.tfrecord.manifest.json: task is 'none', but "
    f"{manifest_path} says 'classification' (the input files are of "
    "two datasets)"
  )
  # No --label_file nor --num_labels: the labels are the manifest's.
  _run(corpus, tmp_path, cls, task_loss="classification")
  task = json.loads((tmp_path / "model" / "task.json").read_text(encoding="utf-8"))
  assert task["labels"] == labels and task["max_seq_length"] == MAX_SEQ


def test_records_of_another_length_without_manifest_one_line(corpus, datasets, tmp_path, caplog):
  directory = _copy(datasets, "mlm", tmp_path)
  os.remove(directory / "data.tfrecord.manifest.json")
  with pytest.raises(InputError) as error:
    # 32: within the tiny config's 64 position embeddings (more is refused first).
    _run(corpus, tmp_path, f"{directory}/data.tfrecord*", max_seq_length=32)
  assert str(error.value) == (
    f"{directory}/data.tfrecord-00000-of-00002: records of "
    "max_seq_length 64, but --max_seq_length=32"
  )
  assert "no manifest for the input files" in caplog.text
  with pytest.raises(
    InputError, match="records of max_predictions_per_seq 10, but --max_predictions_per_seq=20$"
  ):
    _run(corpus, tmp_path, f"{directory}/data.tfrecord*", max_predictions_per_seq=20)


@pytest.mark.slow
def test_lengths_come_from_the_manifest_and_a_contradicting_flag_is_refused(
  corpus, datasets, tmp_path
):
  args = [
    f"--input_file={datasets}/mlm/data.tfrecord*",
    f"--bert_config_file={_tiny_config(corpus, tmp_path / 'config.json')}",
    f"--vocab_file={corpus / 'vocab.txt'}",
    f"--output_dir={tmp_path / 'model'}",
    "--do_train",
    "--num_train_steps=2",
    "--train_batch_size=8",
  ]
  # The flags' defaults (128, 20) are not the data's (64, 10): taken from the manifest.
  run_job("run_pretraining", *args)
  task = json.loads((tmp_path / "model" / "task.json").read_text(encoding="utf-8"))
  assert task["max_seq_length"] == MAX_SEQ
  result = run_job("run_pretraining", *args, "--max_seq_length=128", check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
    f"error: {datasets}/mlm/data.tfrecord.manifest.json: max_seq_length is 64, but "
    "--max_seq_length=128"
  ]
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
  "flag,message",
  [
    ("--num_output_shards=0", "--num_output_shards=0: must be at least 1"),
    ("--num_workers=0", "--num_workers=0: must be at least 1"),
    (
      "--max_predictions_per_seq=0",
      "--max_predictions_per_seq=0 with --masked_lm_prob=0.15: "
      "no token could be masked; give at least 1 (or --masked_lm_prob=0: no masking)",
    ),
  ],
)
def test_bad_counts_are_one_line_errors(corpus, tmp_path, flag, message):
  (tmp_path / "in.txt").write_text("一\n二\n", encoding="utf-8")
  result = run_job(
    "create_pretraining_data",
    f"--input_file={tmp_path / 'in.txt'}",
    f"--output_file={tmp_path / 'out' / 'data.tfrecord'}",
    f"--vocab_file={corpus / 'vocab.txt'}",
    flag,
    check=False,
  )
  assert result.returncode == 2, result.stderr[-2000:]
  assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
    f"error: {message}"
  ]
  assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
