"""predict_pseudo_labels: same results as --do_predict, resumable, sharded, filtered."""

import collections
import os
import subprocess
import sys

import numpy as np
import pytest

from bert_pl import finetuning, input_files, predict_pseudo_labels
from conftest import REPO, kill_when, run_job
from data_prep.common import write_parts
from test_finetuning import _finetune_flags
from test_training import _random_init


@pytest.fixture(scope="module")
def classifier(corpus, tmp_path_factory):
  """A tiny fine-tuned classifier directory, with its --do_predict output on 400 lines."""
  work = tmp_path_factory.mktemp("classifier")
  _random_init(corpus, work)
  pool = work / "pool.txt"
  pool.write_text("".join((corpus / "unlabeled.txt").read_text(encoding="utf-8")
                          .splitlines(keepends=True)[:400]), encoding="utf-8")
  finetuning.run(_finetune_flags(
      init_checkpoint=str(work / "init"), train_file=str(corpus / "train.tsv"),
      predict_file=str(pool), output_dir=str(work / "model_b"), do_eval=False, do_predict=True,
      num_train_epochs=1.0), "classification")
  return work


def test_same_labels_as_do_predict_and_min_confidence(classifier, tmp_path):
  counts = predict_pseudo_labels.run(str(classifier / "model_b"), str(classifier / "pool.txt"),
                                     str(tmp_path), batch_size=16, sort_window=4)
  assert (counts.read, counts.written, counts.skipped) == (400, 400, 0)
  ours = (tmp_path / "pool.txt").read_text(encoding="utf-8").splitlines()
  reference = (classifier / "model_b" / "predictions.tsv").read_text(encoding="utf-8").splitlines()
  assert ours == reference  # sorted, length-trimmed batches change nothing
  confidence = np.loadtxt(tmp_path / "pool.txt.confidence")
  np.testing.assert_allclose(confidence, np.loadtxt(
      classifier / "model_b" / "predictions.tsv.confidence"), atol=1e-5)
  threshold = float(np.median(confidence))
  filtered = predict_pseudo_labels.run(str(classifier / "model_b"), str(classifier / "pool.txt"),
                                       str(tmp_path / "filtered"), min_confidence=threshold)
  assert filtered.written == int(np.sum(confidence >= threshold))
  assert filtered.written + filtered.skipped == 400
  assert len((tmp_path / "filtered" / "pool.txt").read_text().splitlines()) == filtered.written


@pytest.mark.parametrize("dtype,use_xla", [("float32", True), ("bfloat16", False)])
def test_xla_and_bfloat16_predict_what_float32_predicts(classifier, tmp_path, dtype, use_xla):
  counts = predict_pseudo_labels.run(str(classifier / "model_b"), str(classifier / "pool.txt"),
                                     str(tmp_path), batch_size=16, sort_window=4, dtype=dtype,
                                     use_xla=use_xla)
  assert counts.written == 400
  ours = (tmp_path / "pool.txt").read_text(encoding="utf-8").splitlines()
  reference = (classifier / "model_b" / "predictions.tsv").read_text(encoding="utf-8").splitlines()
  confidence = np.loadtxt(tmp_path / "pool.txt.confidence")
  reference_confidence = np.loadtxt(classifier / "model_b" / "predictions.tsv.confidence")
  same = np.mean([a == b for a, b in zip(ours, reference)])
  if use_xla:  # float32 in another compiler: rounding differences only
    assert same == 1.0
    np.testing.assert_allclose(confidence, reference_confidence, atol=1e-4)
  else:  # bfloat16 keeps 8 bits of mantissa
    assert same >= 0.95, same
    np.testing.assert_allclose(confidence, reference_confidence, atol=0.05)


def test_killed_run_resumes_with_every_line_once(classifier, corpus, tmp_path):
  lines = (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  inputs = tmp_path / "in"
  inputs.mkdir()
  for i in range(12):
    (inputs / f"part-{i:02d}.txt").write_text("".join(lines[i * 600:(i + 1) * 600]),
                                              encoding="utf-8")
  output = tmp_path / "out"
  command = [sys.executable, "-m", "bert_pl.predict_pseudo_labels",
             f"--model_dir={classifier / 'model_b'}", f"--input_file={inputs}/part-*.txt",
             f"--output_dir={output}", "--predict_batch_size=32", "--sort_window=2"]
  kill_when(command, lambda: (output / "part-01.txt").exists())
  finished = sorted(p for p in os.listdir(output) if p.endswith(".txt"))
  assert 2 <= len(finished) < 12
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "already done" in result.stderr
  written = collections.Counter()
  for i in range(12):
    path = output / f"part-{i:02d}.txt"
    examples = list(input_files.read_classification(str(path), input_files.Counts()))
    assert len(examples) == 600
    written.update("\t".join(e.fields) for e in examples)
  assert written == collections.Counter(line.rstrip("\n") for line in lines[:7200])
  assert not [p for p in os.listdir(output) if p.endswith(".tmp")]


def test_shards_split_the_files():
  files = [f"f{i}" for i in range(7)]
  shards = [predict_pseudo_labels.shard_files(files, 3, k) for k in range(3)]
  assert sorted(sum(shards, [])) == sorted(files)
  assert shards[0] == ["f0", "f3", "f6"]
  with pytest.raises(ValueError, match="--shard_index=3 is not in"):
    predict_pseudo_labels.shard_files(files, 3, 3)


@pytest.mark.slow
def test_beam_job_writes_what_the_single_process_job_writes(classifier, corpus, tmp_path):
  """20,000 lines over 5 files: the Beam job's files hold the single-process
  job's lines, in the same order, in the default (in_memory) and
  multi_processing modes; confidences differ by float32 rounding at most."""
  lines = (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  lines = (lines + [line[::-1].lstrip("\n") + "\n" for line in lines])[:20000]
  write_parts(lines, tmp_path / "pool", 5)
  common = [f"--model_dir={classifier / 'model_b'}", f"--input_file={tmp_path}/pool/part-*.txt",
            "--predict_batch_size=64", "--sort_window=4"]
  single = run_job("predict_pseudo_labels", *common, f"--output_dir={tmp_path / 'single'}")
  assert "read 20000, written 20000" in single.stdout
  for mode in ("in_memory", "multi_processing"):
    output = tmp_path / mode
    beam = run_job("beam.predict_pseudo_labels", *common, f"--output_dir={output}",
                   "--runner=DirectRunner", f"--direct_running_mode={mode}",
                   "--direct_num_workers=2")
    assert "5 files labeled (0 already done), read 20000, written 20000" in beam.stdout
    written = collections.Counter()
    for i in range(5):
      name = f"part-{i}.txt"
      ours = (output / name).read_text(encoding="utf-8").splitlines()
      assert ours == (tmp_path / "single" / name).read_text(encoding="utf-8").splitlines()
      written.update(ours)
      np.testing.assert_allclose(np.loadtxt(output / f"{name}.confidence"),
                                 np.loadtxt(tmp_path / "single" / f"{name}.confidence"),
                                 atol=2e-6)
    assert sum(written.values()) == 20000
    assert not [p for p in os.listdir(output) if p.endswith(".tmp")]
  again = run_job("beam.predict_pseudo_labels", *common, f"--output_dir={tmp_path / 'in_memory'}")
  assert "0 files labeled (5 already done)" in again.stdout
