"""predict_pseudo_labels: same results as --do_predict, resumable, sharded, filtered;
the teacher's logits from step 3 to the step-4 TFRecords."""

import collections
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from test_finetuning import _finetuning_config
from test_training import _random_init

from bert_pl import (
  checkpoints,
  create_pretraining_data,
  errors,
  export_fast_model,
  fast_inference,
  features,
  finetuning,
  input_files,
  manifest,
  model_dir,
  predict_pseudo_labels,
  prediction,
  tfrecords,
)
from data_prep.common import write_parts

from conftest import REPO, kill_when, run_job


@pytest.fixture(scope="module")
def classifier(corpus, tmp_path_factory):
  """A tiny fine-tuned classifier directory, with its --do_predict output on 400 lines."""
  work = tmp_path_factory.mktemp("classifier")
  _random_init(corpus, work)
  pool = work / "pool.txt"
  pool.write_text(
    "".join((corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:400]),
    encoding="utf-8",
  )
  finetuning.run(
    _finetuning_config(
      "classification",
      init_checkpoint=str(work / "init"),
      train_file=str(corpus / "train.tsv"),
      predict_file=str(pool),
      output_dir=str(work / "model_b"),
      do_eval=False,
      do_predict=True,
      write_logits=True,
      num_train_epochs=1.0,
    )
  )
  return work


@pytest.fixture(scope="module")
def tagger(classifier, corpus):
  """A tiny fine-tuned NER model (WordPiece, max_seq_length 24: some sentences
  are longer) beside the classifier, and a pool of 200 sentences."""
  finetuning.run(
    _finetuning_config(
      "ner",
      init_checkpoint=str(classifier / "init"),
      train_file=str(corpus / "ner_train.txt"),
      label_file=str(corpus / "tags.txt"),
      output_dir=str(classifier / "ner_b"),
      do_eval=False,
      num_train_epochs=1.0,
      max_seq_length=24,
    )
  )
  pool = classifier / "ner_pool.txt"
  pool.write_text(
    "".join(
      (corpus / "ner_unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:200]
    ),
    encoding="utf-8",
  )
  return classifier / "ner_b"


def _teacher(model_path, examples, max_seq_length=64):
  """The oracle: the model's own logits on its own full-width features
  (classification [n, labels], NER emission logits [n, seq, tags])."""
  model, tokenizer, info = model_dir.load_finetuned(str(model_path))
  join = info["field_join"] if info["task"] == "classification" else "concat"
  encoder = features.FeatureEncoder(tokenizer, max_seq_length, "none", field_join=join)
  encoded, _ = encoder.encode(examples)
  inputs = {k: tf.constant(encoded[k]) for k in ("input_ids", "input_mask", "segment_ids")}
  return model(inputs, training=False)["task_logits"].numpy(), encoded, info


@pytest.fixture(scope="module")
def classifier_teacher(classifier):
  """The classifier's own logits on its pool: (logits [400, 20], task.json)."""
  examples = list(input_files.read_unlabeled(str(classifier / "pool.txt"), input_files.Counts()))
  teacher, _, info = _teacher(classifier / "model_b", examples)
  return teacher, info


# The fast path (fast_inference): the ONNX Runtime model of export_fast_model.


@pytest.fixture(scope="module")
def fast_models(classifier, tagger):
  """The classifier's float32 and int8 fast models, the tagger's float32 one."""
  pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (the onnx extra): fast path not tested"
  )
  model_b = str(classifier / "model_b")
  return {
    "classification": export_fast_model.run(
      export_fast_model.FastModelConfig(model_dir=model_b, quantize="none")
    ),
    "int8": export_fast_model.run(export_fast_model.FastModelConfig(model_dir=model_b)),
    "ner": export_fast_model.run(
      export_fast_model.FastModelConfig(model_dir=str(tagger), quantize="none")
    ),
  }


# The job's behaviour (resume, sharding, filtering, side files, Beam) is
# tested on both paths: TensorFlow ("tf") and the float32 fast model ("fast"),
# whose outputs must be the TensorFlow path's: labels identical, numbers
# within 1e-4 (issue 19).
PATHS = ("tf", "fast")


def _fast_model(request, path, task="classification"):
  """The path's --fast_model: None (TensorFlow) or the float32 fast model of `task`."""
  return request.getfixturevalue("fast_models")[task] if path == "fast" else None


def _step4(model_path, info, path, tmp_path, max_seq_length=64, masked_lm_prob=0.15):
  """create_pretraining_data on a pseudo-labeled file (and its side files),
  parsed back with the logits feature (as run_pretraining will parse it)."""
  out = str(tmp_path / "step4.tfrecord")
  label_file = tmp_path / "step4_labels.txt"
  label_file.write_text("".join(label + "\n" for label in info["labels"]), encoding="utf-8")
  counts = create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      input_file=str(path),
      output_file=out,
      vocab_file=str(model_path / "vocab.txt"),
      max_seq_length=max_seq_length,
      max_predictions_per_seq=10,
      masked_lm_prob=masked_lm_prob,
      task=info["task"],
      label_file=str(label_file),
    )
  )
  # The spec run_pretraining --pseudo_label_loss=kl parses the records with.
  spec = tfrecords.pretraining_feature_spec(
    max_seq_length, 10, info["task"], len(info["labels"]), with_logits=True
  )
  records = list(tf.data.TFRecordDataset(out).as_numpy_iterator())
  assert tfrecords.record_features(out) == {k: v.shape[0] for k, v in spec.items()}
  return counts, {k: v.numpy() for k, v in tf.io.parse_example(records, spec).items()}


def _predict(model_path, input_file, output_dir, **changes):
  """predict_pseudo_labels.run with the job's defaults but for `changes`."""
  return predict_pseudo_labels.run(
    predict_pseudo_labels.PredictPseudoLabelsConfig(
      str(model_path), str(input_file), str(output_dir), **changes
    )
  )


def _close(ours, teacher):
  """Equal within the 4 significant digits of the side file (and float32
  differences between batchings)."""
  np.testing.assert_allclose(ours, teacher, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_classification_logits_from_step_3_to_the_tfrecords(
  classifier, classifier_teacher, tmp_path, request, path
):
  model_b = classifier / "model_b"
  pool = classifier / "pool.txt"
  teacher, info = classifier_teacher
  probabilities = np.exp(teacher - teacher.max(1, keepdims=True))
  probabilities /= probabilities.sum(1, keepdims=True)
  threshold = float(np.median(probabilities.max(1)))
  kept = probabilities.max(1) >= threshold
  counts = _predict(
    model_b,
    pool,
    tmp_path / "pseudo",
    predict_batch_size=16,
    sort_window=4,
    min_confidence=threshold,
    write_logits=True,
    fast_model=_fast_model(request, path),
  )
  assert counts.written == kept.sum() and counts.skipped == 400 - kept.sum()
  output = tmp_path / "pseudo" / "pool.txt"
  side = np.loadtxt(f"{output}.logits")
  assert side.shape == (kept.sum(), 20)  # filtered examples are absent from all three files
  _close(side, teacher[kept])
  assert len(np.loadtxt(f"{output}.confidence")) == kept.sum()
  # --do_predict (no filter) writes the same logits.
  _close(np.loadtxt(model_b / "predictions.tsv.logits"), teacher)

  step4, parsed = _step4(model_b, info, output, tmp_path)
  assert step4.written == step4.logits == kept.sum()
  _close(parsed["label_logits"], teacher[kept])
  assert (parsed["label_ids"][:, 0] == teacher[kept].argmax(1)).all()
  np.testing.assert_allclose(parsed["label_weights"][:, 0], probabilities.max(1)[kept], atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_top_k_logits_keep_the_k_largest(classifier, classifier_teacher, tmp_path, request, path):
  model_b = classifier / "model_b"
  pool = classifier / "pool.txt"
  teacher, info = classifier_teacher
  _predict(
    model_b,
    pool,
    tmp_path / "pseudo",
    predict_batch_size=400,
    write_logits=True,
    logits_top_k=3,
    fast_model=_fast_model(request, path),
  )
  output = tmp_path / "pseudo" / "pool.txt"
  lines = pathlib.Path(f"{output}.logits").read_text(encoding="utf-8").splitlines()
  assert len(lines) == 400
  step4, parsed = _step4(model_b, info, output, tmp_path)
  assert step4.logits == 400
  for row, line in enumerate(lines):
    pairs = [item.split(":") for item in line.split()]
    ids = [int(i) for i, _ in pairs]
    values = np.array([float(v) for _, v in pairs], np.float32)
    assert ids == np.argsort(-teacher[row])[:3].tolist()  # the 3 largest, largest first
    _close(values, teacher[row, ids])
    expected = np.full([20], np.float32(float(values.min()) - 20.0))
    expected[ids] = values
    np.testing.assert_array_equal(parsed["label_logits"][row], expected)


@pytest.mark.parametrize("path", PATHS)
def test_ner_logits_from_step_3_to_the_tfrecords(tagger, tmp_path, request, path):
  pool = tagger.parent / "ner_pool.txt"
  examples = list(input_files.read_unlabeled(str(pool), input_files.Counts()))
  seq = 24  # the model's (task.json): some sentences are truncated
  teacher, encoded, info = _teacher(tagger, examples, seq)
  num_tags = len(info["labels"])
  counts = _predict(
    tagger,
    pool,
    tmp_path / "pseudo",
    predict_batch_size=16,
    sort_window=2,
    write_logits=True,
    fast_model=_fast_model(request, path, "ner"),
  )
  assert counts.written == 200 and counts.truncated > 20
  output = tmp_path / "pseudo" / "ner_pool.txt"
  side = pathlib.Path(f"{output}.logits").read_text(encoding="utf-8").splitlines()
  texts = [e.fields[0] for e in examples]
  assert len(side) == 200
  for row, (text, line) in enumerate(zip(texts, side)):
    values = np.array(line.split(), np.float32).reshape(len(text), num_tags)  # one per char
    tokens = int(encoded["input_mask"][row].sum()) - 2
    covered = int(encoded["ends"][row, tokens - 1])  # characters of the kept tokens
    assert not values[covered:].any()  # truncated away: zeros
    assert (np.abs(values[:covered]).sum(1) > 0).all()

  step4, parsed = _step4(tagger, info, output, tmp_path, seq, masked_lm_prob=0)
  assert step4.written == step4.logits == 200
  # Unmasked: the very tokens step 3 saw.
  np.testing.assert_array_equal(parsed["input_ids"], encoded["input_ids"])
  assert not parsed["masked_lm_weights"].any()
  tag_logits = parsed["tag_logits"].reshape(200, seq, num_tags)
  lengths = encoded["input_mask"].sum(1)
  real = np.arange(seq)[None] < lengths[:, None] - 1
  real[:, 0] = False  # tokens carry a tag; [CLS], [SEP] and padding do not
  assert not tag_logits[~real].any()  # exactly zero there
  assert (np.abs(tag_logits[real]).sum(-1) > 0).all()
  _close(tag_logits[real], teacher[real])
  outside = info["labels"].index("O")
  assert (parsed["tag_ids"][:, 0] == outside).all()


def test_logits_flags_are_checked():
  prediction.OutputFormat("classification", ["a", "b"], True, 2)
  with pytest.raises(ValueError, match="--logits_top_k needs --write_logits"):
    prediction.OutputFormat("classification", ["a", "b"], False, 1)
  with pytest.raises(ValueError, match="--logits_top_k is for classification"):
    prediction.OutputFormat("ner", ["O", "B-X", "I-X"], True, 2)
  with pytest.raises(ValueError, match=r"--logits_top_k=3 is not in \[0, 2\]"):
    prediction.OutputFormat("classification", ["a", "b"], True, 3)


@pytest.mark.parametrize("path", PATHS)
def test_same_labels_as_do_predict_and_min_confidence(classifier, tmp_path, request, path):
  fast = _fast_model(request, path)
  counts = _predict(
    classifier / "model_b",
    classifier / "pool.txt",
    tmp_path,
    predict_batch_size=16,
    sort_window=4,
    fast_model=fast,
  )
  assert (counts.read, counts.written, counts.skipped) == (400, 400, 0)
  ours = (tmp_path / "pool.txt").read_text(encoding="utf-8").splitlines()
  reference = (classifier / "model_b" / "predictions.tsv").read_text(encoding="utf-8").splitlines()
  assert ours == reference  # sorted, length-trimmed batches change nothing
  confidence = np.loadtxt(tmp_path / "pool.txt.confidence")
  np.testing.assert_allclose(
    confidence, np.loadtxt(classifier / "model_b" / "predictions.tsv.confidence"), atol=1e-5
  )
  threshold = float(np.median(confidence))
  filtered = _predict(
    classifier / "model_b",
    classifier / "pool.txt",
    tmp_path / "filtered",
    min_confidence=threshold,
    fast_model=fast,
  )
  assert filtered.written == int(np.sum(confidence >= threshold))
  assert filtered.written + filtered.skipped == 400
  assert len((tmp_path / "filtered" / "pool.txt").read_text().splitlines()) == filtered.written


@pytest.mark.parametrize("dtype,use_xla", [("float32", True), ("bfloat16", False)])
def test_xla_and_bfloat16_predict_what_float32_predicts(classifier, tmp_path, dtype, use_xla):
  counts = _predict(
    classifier / "model_b",
    classifier / "pool.txt",
    tmp_path,
    predict_batch_size=16,
    sort_window=4,
    dtype=dtype,
    use_xla=use_xla,
  )
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


# The fast path's resume in CI: test_sharded_and_resumed_run_... (in process).
@pytest.mark.parametrize("path", ["tf", pytest.param("fast", marks=pytest.mark.slow)])
def test_killed_run_resumes_with_every_line_once(
  classifier, classifier_teacher, corpus, tmp_path, request, path
):
  fast = _fast_model(request, path)
  lines = (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  inputs = tmp_path / "in"
  inputs.mkdir()
  for i in range(12):
    (inputs / f"part-{i:02d}.txt").write_text(
      "".join(lines[i * 600 : (i + 1) * 600]), encoding="utf-8"
    )
  output = tmp_path / "out"
  command = [
    sys.executable,
    "-m",
    "bert_pl.predict_pseudo_labels",
    f"--model_dir={classifier / 'model_b'}",
    f"--input_file={inputs}/part-*.txt",
    f"--output_dir={output}",
    "--predict_batch_size=32",
    "--sort_window=2",
    "--write_logits",
    *([f"--fast_model={fast}"] if fast else []),
  ]
  kill_when(command, lambda: (output / "part-01.txt").exists())
  finished = sorted(p for p in os.listdir(output) if p.endswith(".txt"))
  assert 2 <= len(finished) < 12
  sides = [p for p in os.listdir(output) if p.endswith((".confidence", ".logits"))]
  assert {f"{p}.logits" for p in finished} <= set(sides)
  for side in sides:  # a side file under its final name is complete
    assert len((output / side).read_text().splitlines()) == 600, side
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "already done" in result.stderr
  labels = model_dir.read_task_info(str(classifier / "model_b"))["labels"]
  written, parts = collections.Counter(), []
  for i in range(12):
    part = output / f"part-{i:02d}.txt"
    parts.append(
      list(
        input_files.read_classification(str(part), input_files.Counts(), labels, with_logits=True)
      )
    )
    assert len(parts[-1]) == 600 and all(e.logits.shape == (20,) for e in parts[-1])
    written.update("\t".join(e.fields) for e in parts[-1])
  assert written == collections.Counter(line.rstrip("\n") for line in lines[:7200])
  # The pool's 400 lines open part-00: the model's own labels and logits.
  teacher, _ = classifier_teacher
  assert [e.label for e in parts[0][:400]] == [labels[i] for i in teacher.argmax(1)]
  _close(np.array([e.logits for e in parts[0][:400]]), teacher)
  assert not [p for p in os.listdir(output) if ".tmp" in p]


def test_an_output_another_live_job_writes_is_refused(classifier, tmp_path):
  """Two real writers of one output: a process in the middle of writing
  pool.txt (as the job writes it), and the job. Before: the job removed the
  other's temporaries as a killed run's, and the other then failed with
  "cannot write (No such file or directory)". Once the other is killed, its
  lock is taken over and its temporaries removed."""
  out = tmp_path / "out"
  out.mkdir()
  code = (
    "import sys\n"
    "from bert_pl import prediction\n"
    f"output = prediction.AtomicOutput({str(out / 'pool.txt')!r})\n"
    "output.write(['a\\n'], ['0.5\\n'])\n"
    "sys.stdin.read()\n"
  )
  writer = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE)
  try:
    temporary = out / f".pool.txt.tmp-{writer.pid}"
    deadline = time.monotonic() + 600
    while not temporary.exists():
      assert writer.poll() is None and time.monotonic() < deadline
      time.sleep(0.1)
    with pytest.raises(errors.OutputError) as refused:
      _predict(classifier / "model_b", classifier / "pool.txt", out)
    owner = rf"pid {writer.pid} on {re.escape(socket.gethostname())} since [-\d]+ [:\d]+ UTC"
    assert re.fullmatch(
      rf"{re.escape(str(out))}/pool\.txt(\.confidence)?: being written by another job "
      rf"\({owner}\): wait for it to end, or write elsewhere",
      str(refused.value),
    ), str(refused.value)
    assert temporary.exists() and not (out / "pool.txt").exists()
    writer.kill()
    writer.wait(timeout=30)
  finally:
    if writer.poll() is None:
      writer.kill()
  counts = _predict(classifier / "model_b", classifier / "pool.txt", out)
  assert counts.written == 400
  assert sorted(os.listdir(out)) == [".made_with-0-of-1.json", "pool.txt", "pool.txt.confidence"]


def test_shards_split_the_files():
  files = [f"f{i}" for i in range(7)]
  shards = [predict_pseudo_labels.shard_files(files, 3, k) for k in range(3)]
  assert sorted(sum(shards, [])) == sorted(files)
  assert shards[0] == ["f0", "f3", "f6"]
  with pytest.raises(ValueError, match="--shard_index=3 is not in"):
    predict_pseudo_labels.shard_files(files, 3, 3)


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
def test_beam_job_writes_what_the_single_process_job_writes(
  classifier, corpus, tmp_path, request, path
):
  """20,000 lines over 5 files: the Beam job's files hold the (TensorFlow)
  single-process job's lines, in the same order, in the default (in_memory)
  and multi_processing modes; confidences and logits differ by float32
  rounding at most. Each worker loads the model once."""
  fast = _fast_model(request, path)
  model = fast or str(classifier / "model_b")
  lines = (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  lines = (lines + [line[::-1].lstrip("\n") + "\n" for line in lines])[:20000]
  write_parts(lines, tmp_path / "pool", 5)
  common = [
    f"--model_dir={classifier / 'model_b'}",
    f"--input_file={tmp_path}/pool/part-*.txt",
    "--predict_batch_size=64",
    "--sort_window=4",
    "--write_logits",
  ]
  single = run_job("predict_pseudo_labels", *common, f"--output_dir={tmp_path / 'single'}")
  assert "read 20000, written 20000" in single.stdout
  common += [f"--fast_model={fast}"] if fast else []
  for mode in ("in_memory", "multi_processing"):
    output = tmp_path / mode
    beam = run_job(
      "beam.predict_pseudo_labels",
      *common,
      f"--output_dir={output}",
      "--runner=DirectRunner",
      f"--direct_running_mode={mode}",
      "--direct_num_workers=2",
    )
    assert "5 files labeled (0 already done), read 20000, written 20000" in beam.stdout
    loads = re.findall(r"process (\d+) loaded (\S+) \(load (\d+) in it\)", beam.stdout)
    # Once per worker (--direct_num_workers=2), not per bundle; in
    # multi_processing mode a worker is a process.
    assert 1 <= len(loads) <= 2 and {name for _, name, _ in loads} == {model}, loads
    if mode == "multi_processing":
      assert [n for _, _, n in loads] == ["1"] * len(loads), loads
    written = collections.Counter()
    for i in range(5):
      name = f"part-{i}.txt"
      ours = (output / name).read_text(encoding="utf-8").splitlines()
      assert ours == (tmp_path / "single" / name).read_text(encoding="utf-8").splitlines()
      written.update(ours)
      np.testing.assert_allclose(
        np.loadtxt(output / f"{name}.confidence"),
        np.loadtxt(tmp_path / "single" / f"{name}.confidence"),
        atol=1e-4 if fast else 2e-6,
      )
      # 4 significant digits of values that differ by float32 rounding: one
      # unit of the last digit at most.
      np.testing.assert_allclose(
        np.loadtxt(output / f"{name}.logits"),
        np.loadtxt(tmp_path / "single" / f"{name}.logits"),
        rtol=1.1e-3,
        atol=1e-5,
      )
    assert sum(written.values()) == 20000
    assert not [p for p in os.listdir(output) if ".tmp" in p]
  again = run_job("beam.predict_pseudo_labels", *common, f"--output_dir={tmp_path / 'in_memory'}")
  assert "0 files labeled (5 already done)" in again.stdout


def test_quantized_fast_model_passes_the_gate_or_is_refused(
  classifier, corpus, fast_models, tmp_path
):
  model_b, pool = classifier / "model_b", classifier / "pool.txt"
  int8 = fast_models["int8"]
  assert fast_models["classification"] == str(model_b / "export" / "model.onnx")
  info = json.loads(pathlib.Path(f"{int8}.json").read_text())
  assert info["quantization"] == "int8" and info["task"] == "classification"
  assert info["source_checkpoint"] == tf.train.latest_checkpoint(model_b)
  with pytest.raises(errors.InputError) as refused:
    _predict(model_b, pool, tmp_path / "unchecked", fast_model=int8)
  assert str(refused.value) == (
    f"{int8}: a quantized (int8) model: give --calibration_file (a labeled dev or "
    "test file) to check it against float32, or --force_quantized"
  )
  calibration = str(corpus / "test.tsv")

  def gated(output, min_agreement, **changes):
    return _predict(
      model_b,
      pool,
      tmp_path / output,
      fast_model=int8,
      calibration_file=calibration,
      min_agreement=min_agreement,
      **changes,
    )

  counts = gated("checked", 0.5)
  assert counts.written == 400
  check = json.loads((tmp_path / "checked" / "quantization_check.json").read_text())
  assert check["examples"] == 500 and check["metric"] == "accuracy" and check["passed"]
  agreement = check["agreement"]
  assert 0.5 <= agreement < 1.0, agreement  # int8 moves a few of the tiny model's labels
  assert check["difference_points"] == pytest.approx(100 * (check["fast"] - check["float32"]))
  with pytest.raises(errors.InputError) as refused:
    gated("refused", 1.0)
  assert str(refused.value) == (
    f"{calibration}: the int8 fast model agrees with float32 on {agreement:.2%} of labels "
    f"(--min_agreement=1.0); accuracy {check['fast']:.4f} vs {check['float32']:.4f} "
    f"({check['difference_points']:+.2f} points): refused; use the float32 model or "
    "--force_quantized"
  )
  assert not (tmp_path / "refused" / "pool.txt").exists()
  forced = json.loads((tmp_path / "refused" / "quantization_check.json").read_text())
  assert not forced["passed"] and not forced["forced"]
  gated("refused", 1.0, force_quantized=True)
  assert len((tmp_path / "refused" / "pool.txt").read_text().splitlines()) == 400
  with pytest.raises(errors.InputError, match="^--calibration_file needs --fast_model$"):
    _predict(model_b, pool, tmp_path / "x", calibration_file=calibration)
  with pytest.raises(errors.InputError, match="^--dtype and --use_xla are for the TensorFlow"):
    _predict(model_b, pool, tmp_path / "x", fast_model=int8, use_xla=True)


def _other_weights(source: pathlib.Path, target: pathlib.Path) -> str:
  """A copy of the model directory `source` whose latest checkpoint has the
  same name, task and labels but other weights (the head's negated);
  returns the checkpoint."""
  shutil.copytree(source, target)
  model, _, _ = model_dir.load_finetuned(str(target))
  for variable in model.head.trainable_variables:
    variable.assign(-variable)
  latest = tf.train.latest_checkpoint(target)
  checkpoint = tf.train.Checkpoint(**{checkpoints.CHECKPOINT_KEY: model.bert, "head": model.head})
  assert checkpoint.save_counter == 0  # made when first read: a reader's checkpoint has it
  checkpoint.write(latest)
  return latest


def test_a_fast_model_is_refused_with_another_model_directory(classifier, fast_models, tmp_path):
  """Before: the fast model of another directory whose checkpoint had the
  same name (ckpt-N), task and label count was accepted (names were
  compared), and predicted that model's labels."""
  model_b, fast = classifier / "model_b", fast_models["classification"]
  other = tmp_path / "other"
  latest = _other_weights(model_b, other)
  assert os.path.basename(latest) == os.path.basename(tf.train.latest_checkpoint(model_b))
  again = f"export it again (export_fast_model --model_dir={other})"
  with pytest.raises(errors.InputError) as refused:
    _predict(other, classifier / "pool.txt", tmp_path / "out", fast_model=fast)
  assert str(refused.value) == (
    f"{fast}.json: made from other weights, labels or vocabulary than {other} holds "
    f"(latest checkpoint {latest}); {again}"
  )
  assert not (tmp_path / "out" / "pool.txt").exists()
  # The same weights with two labels, or two tokens of the vocabulary, swapped.
  for name in ("task.json", "vocab.txt"):
    same = tmp_path / name
    shutil.copytree(model_b, same, ignore=shutil.ignore_patterns("export"))
    if name == "task.json":
      info = json.loads((same / name).read_text())
      info["labels"][:2] = info["labels"][1::-1]
      (same / name).write_text(json.dumps(info))
    else:
      tokens = (same / name).read_text(encoding="utf-8").splitlines(keepends=True)
      tokens[-2:] = tokens[:-3:-1]
      (same / name).write_text("".join(tokens), encoding="utf-8")
    with pytest.raises(errors.InputError, match="made from other weights, labels or vocabulary"):
      fast_inference.read_info(fast, str(same))
  fast_inference.read_info(fast, str(model_b))


def test_a_resumed_run_refuses_the_outputs_of_another_model(classifier, tmp_path):
  """Finished files are skipped by name: before, a run with another model
  directory (same checkpoint name, task and labels), or another
  --min_confidence, into an --output_dir of finished files kept them and
  said "already done"."""
  model_b = classifier / "model_b"
  other = tmp_path / "other"
  _other_weights(model_b, other)
  pool = tmp_path / "pool.txt"
  pool.write_text(
    "".join((classifier / "pool.txt").read_text(encoding="utf-8").splitlines(True)[:20]),
    encoding="utf-8",
  )
  out = tmp_path / "out"
  assert _predict(model_b, pool, out).written == 20
  written = (out / "pool.txt").read_text(encoding="utf-8")
  record = out / ".made_with-0-of-1.json"
  for model, changes, what in (
    (other, {}, "model_fingerprint"),
    (model_b, {"min_confidence": 0.5}, "min_confidence"),
    (model_b, {"num_shards": 2}, "model_fingerprint"),  # any shard's record
  ):
    if changes.get("num_shards"):
      (out / ".made_with-0-of-2.json").write_text(
        record.read_text().replace('"model_fingerprint": "', '"model_fingerprint": "0')
      )
    with pytest.raises(errors.InputError) as refused:
      _predict(model, pool, out, **changes)
    where = out / f".made_with-0-of-{changes.get('num_shards', 1)}.json"
    assert str(refused.value) == (
      f"{where}: the outputs in {out} were written with another {what} than this run's; "
      "give another --output_dir"
    )
  (out / ".made_with-0-of-2.json").unlink()
  assert _predict(model_b, pool, out).read == 0  # the same model: done
  assert (out / "pool.txt").read_text(encoding="utf-8") == written


@pytest.mark.parametrize(
  "damage", ["truncated", "garbage", "garbage_described", "bad_json", "list"]
)
def test_a_damaged_fast_model_is_one_error_naming_the_file(
  classifier, fast_models, tmp_path, damage
):
  """Before: an onnxruntime or JSON traceback."""
  source = pathlib.Path(fast_models["classification"])
  model, info = tmp_path / "model.onnx", tmp_path / "model.onnx.json"
  shutil.copy(source, model)
  shutil.copy(f"{source}.json", info)
  if damage == "truncated":
    model.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
  elif damage.startswith("garbage"):
    model.write_bytes(b"\x00not onnx" * 100)
  if damage == "garbage_described":  # a JSON that describes the garbage
    values = json.loads(info.read_text())
    values["model_sha256"] = manifest.sha256_of(str(model))
    info.write_text(json.dumps(values))
  elif damage == "bad_json":
    info.write_text(info.read_text()[:-10])
  elif damage == "list":
    info.write_text("[]")
  model_b = classifier / "model_b"
  with pytest.raises(errors.InputError) as raised:
    _predict(model_b, classifier / "pool.txt", tmp_path / "out", fast_model=str(model))
  message = str(raised.value)
  expected = {
    "truncated": f"{model}: not the model {info} describes (other bytes: truncated, damaged or "
    f"replaced); export it again (export_fast_model --model_dir={model_b})",
    "garbage_described": f"{model}: not a model ONNX Runtime loads (",
    "bad_json": f"{info}: not JSON (",
    "list": f"{info}: not the JSON export_fast_model writes (no fingerprint, model_sha256, "
    "quantization)",
  }
  assert message.startswith(expected.get(damage, expected["truncated"])), message
  assert "\n" not in message and not (tmp_path / "out" / "pool.txt").exists()


@pytest.fixture(scope="module")
def pool_parts(classifier):
  """The pool in 4 files, and the TensorFlow path's output of one uninterrupted run."""
  lines = (classifier / "pool.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  write_parts(lines, classifier / "pool_parts", 4)
  inputs = f"{classifier}/pool_parts/part-*.txt"
  output = classifier / "pool_parts_tf"
  _predict(classifier / "model_b", inputs, output, predict_batch_size=16, write_logits=True)
  return inputs, output


@pytest.mark.parametrize("path", PATHS)
def test_sharded_and_resumed_run_writes_what_one_tensorflow_run_writes(
  classifier, pool_parts, tmp_path, request, path
):
  inputs, reference = pool_parts
  fast = _fast_model(request, path)
  model_b = classifier / "model_b"
  out = tmp_path / "out"
  first = _predict(
    model_b,
    inputs,
    out,
    predict_batch_size=16,
    write_logits=True,
    fast_model=fast,
    num_shards=2,
    shard_index=0,
  )
  assert first.read == 200 and sorted(p for p in os.listdir(out) if p.endswith(".txt")) == [
    "part-0.txt",
    "part-2.txt",
  ]
  # A killed run: a finished file's main output gone, side files and a temporary left.
  (out / "part-2.txt").unlink()
  (out / ".part-2.txt.tmp-1").write_text("partial")
  rest = _predict(model_b, inputs, out, predict_batch_size=16, write_logits=True, fast_model=fast)
  assert rest.read == 300
  for i in range(4):
    for suffix in ("", ".confidence", ".logits"):
      ours, theirs = (d / f"part-{i}.txt{suffix}" for d in (out, reference))
      if suffix == ".logits":
        _close(np.loadtxt(ours), np.loadtxt(theirs))
      elif suffix:
        np.testing.assert_allclose(np.loadtxt(ours), np.loadtxt(theirs), atol=1e-4)
      else:
        assert ours.read_text() == theirs.read_text()
  assert not [p for p in os.listdir(out) if ".tmp" in p]


def test_export_does_not_copy_the_graph_for_each_optimizer_pass(classifier, tmp_path, monkeypatch):
  """tf2onnx's copies of the whole graph before each optimizer pass were the
  bulk of the export's memory (16.4 GB for the paper's model): none is made."""
  tf2onnx_optimizer = pytest.importorskip("tf2onnx.optimizer")
  graph_copies = []
  deepcopy = tf2onnx_optimizer.copy.deepcopy

  def counting_deepcopy(value, *args, **kwargs):
    if type(value).__name__ == "Graph":
      graph_copies.append(value)
    return deepcopy(value, *args, **kwargs)

  monkeypatch.setattr(tf2onnx_optimizer.copy, "deepcopy", counting_deepcopy)
  path = export_fast_model.run(
    export_fast_model.FastModelConfig(
      model_dir=str(classifier / "model_b"),
      quantize="none",
      output_file=str(tmp_path / "model.onnx"),
    )
  )
  assert os.path.getsize(path) > 0 and graph_copies == []
  assert "TF2ONNX_CATCH_ERRORS" not in os.environ
