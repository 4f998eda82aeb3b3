"""Bad input through the real entry points: one `error:` line, exit code 2,
nothing half-written; and a genuine bug keeps its traceback.

The command-line contract of `cli.run` (exit code 2, exactly one stderr line
starting with `error:`, naming the file (and line) or flag, no traceback) is
checked once per entry point, running the job as a user does (`python -m
bert_pl.<job>`, tiny models, a read-only output directory); bad flag values
go through `cli`'s flag parsing. Every other case runs the job through
`run(config)` (in-process, or a full disk's in one child process) and
checks the error's message, since each process pays seconds of TensorFlow
import; each case checks that no file is left in the output directory under
a final or temporary name.

A read-only directory is mode 555; root writes there anyway, so for root the
job runs without CAP_DAC_OVERRIDE. A full disk is a file size limit
(RLIMIT_FSIZE, SIGXFSZ ignored): a write past it fails with EFBIG, which the
jobs treat as ENOSPC. The limit is set either far below the file's size (a
write fails) or inside its last, partly filled buffer: the file is written in
whole buffers of 4096 bytes (or a multiple) until it is closed, so then only
the close, which writes the last buffer, fails.
"""

import ctypes
import hashlib
import importlib.util
import json
import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import types

import pytest
from absl import flags
from test_finetuning import _finetuning_config
from test_training import _pretraining_config, _random_init

from bert_pl import (
  cli,
  create_pretraining_data,
  errors,
  export_fast_model,
  export_saved_model,
  export_tf1_checkpoint,
  fast_inference,
  finetuning,
  predict_pseudo_labels,
  run_pretraining,
)
from data_prep import build_vocab, conll_iob1_to_iob2, csv_to_tsv, split_dataset

from conftest import REPO

_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE = 24, 1


def _drop_root_write_power():
  """In a child before exec: without CAP_DAC_OVERRIDE, root obeys mode 555."""
  if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
      raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _run(command, read_only=False, file_size_limit=None):
  """Runs `command` (argv) with the limits asked for; returns the result."""

  def limits():
    if read_only:
      _drop_root_write_power()
    if file_size_limit is not None:
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

  return subprocess.run(
    command,
    capture_output=True,
    text=True,
    cwd=REPO,
    preexec_fn=limits,
    env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    timeout=1800,
  )


def _job(module, *args, **limits):
  return _run([sys.executable, "-m", f"bert_pl.{module}", *map(str, args)], **limits)


def _one_error(result, expected):
  """Exit code 2, no traceback, and one `error:` line: `error: EXPECTED`
  (a string, or a regular expression the rest of the line matches)."""
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1, result.stderr[-3000:]
  if isinstance(expected, re.Pattern):
    assert expected.fullmatch(lines[0][len("error: ") :]), lines[0]
  else:
    assert lines[0] == f"error: {expected}"


def _refused(job, config, expected, error=errors.InputError):
  """`job.run(config)` refused with `error` whose message is EXPECTED (a
  string, or a regular expression it matches): the line `cli.run` prints."""
  with pytest.raises(error) as raised:
    job.run(config)
  if isinstance(expected, re.Pattern):
    assert expected.fullmatch(str(raised.value)), str(raised.value)
  else:
    assert str(raised.value) == expected


def _classifier_flag_errors(argvs):
  """Each of `argvs` (run_classifier's command lines) parsed by `cli`'s flag
  parsing, in ONE process (the flags reset between them): what the job
  prints and exits with before it starts, as results `_one_error` checks."""
  code = (
    "import sys\n"
    "from absl import flags\n"
    "from bert_pl import cli, finetuning\n"
    "finetuning.define_flags('classification')\n"
    f"for argv in {[list(map(str, argv)) for argv in argvs]!r}:\n"
    "  try:\n"
    "    cli._parse_flags(argv, known_only=False)\n"
    "    code = 0\n"
    "  except SystemExit as exit_:\n"
    "    code = exit_.code\n"
    "  print(f'@@ {code}', file=sys.stderr, flush=True)\n"
    "  flags.FLAGS.unparse_flags()\n"
  )
  result = _run([sys.executable, "-c", code])
  assert result.returncode == 0, result.stderr[-3000:]
  cases, stderr = [], ""
  for line in result.stderr.splitlines(keepends=True):
    if line.startswith("@@ "):
      cases.append(types.SimpleNamespace(returncode=int(line.split()[1]), stderr=stderr))
      stderr = ""
    else:
      stderr += line
  assert len(cases) == len(argvs), result.stderr[-3000:]
  return cases


def _files(directory):
  """Every file and directory under `directory`, relative, sorted."""
  if not directory.exists():
    return []
  return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.fixture(scope="module")
def tiny(corpus, tmp_path_factory):
  """A tiny config and its random initial model directory, a classifier
  fine-tuned from it for 2 steps, and small input files."""
  work = tmp_path_factory.mktemp("bad_inputs")
  init = _random_init(corpus, work)
  train = work / "train.tsv"
  train.write_text(
    "".join((corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:64]),
    encoding="utf-8",
  )
  pool = work / "pool" / "pool.txt"
  pool.parent.mkdir()
  pool.write_text(
    "".join((corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:200]),
    encoding="utf-8",
  )
  finetuning.run(
    _finetuning_config(
      "classification",
      init_checkpoint=str(init),
      train_file=str(train),
      label_file=str(corpus / "labels.txt"),
      output_dir=str(work / "classifier"),
      do_eval=False,
      num_train_epochs=1.0,
      max_seq_length=32,
    )
  )
  return types.SimpleNamespace(
    config=work / "config.json",
    vocab=corpus / "vocab.txt",
    labels=corpus / "labels.txt",
    tags=corpus / "tags.txt",
    init=init,
    classifier=work / "classifier",
    train=train,
    pool=pool,
  )


@pytest.fixture
def read_only_dir(tmp_path):
  """An empty directory no job can write into (else the test is skipped)."""
  directory = tmp_path / "read_only"
  directory.mkdir()
  directory.chmod(0o555)
  probe = _run([sys.executable, "-c", f"open({str(directory / 'x')!r}, 'w')"], read_only=True)
  if probe.returncode == 0:
    os.remove(directory / "x")
    pytest.skip("cannot make a directory read-only here")
  yield directory
  directory.chmod(0o755)


def _data_args(tiny, input_file, output_file, *extra):
  return (
    "create_pretraining_data",
    f"--input_file={input_file}",
    f"--output_file={output_file}",
    f"--vocab_file={tiny.vocab}",
    "--max_seq_length=32",
    "--max_predictions_per_seq=5",
    *extra,
  )


def _data_config(tiny, input_file, output_file, **values):
  """`_data_args`' job, in-process."""
  return create_pretraining_data.CreatePretrainingDataConfig(
    str(input_file),
    str(output_file),
    str(tiny.vocab),
    max_seq_length=32,
    max_predictions_per_seq=5,
    **values,
  )


def _pretraining_args(tiny, output_dir, *extra):
  return (
    "run_pretraining",
    f"--init_checkpoint={tiny.init}",
    f"--output_dir={output_dir}",
    "--do_train",
    "--num_train_steps=0",
    *extra,
  )


def _classifier_args(tiny, output_dir, *extra):
  return (
    "run_classifier",
    f"--init_checkpoint={tiny.init}",
    f"--train_file={tiny.train}",
    f"--label_file={tiny.labels}",
    f"--output_dir={output_dir}",
    "--do_train",
    "--max_seq_length=32",
    *extra,
  )


def _classifier_config(tiny, output_dir, **values):
  """`_classifier_args`' job, in-process."""
  return _finetuning_config(
    "classification",
    **{
      "init_checkpoint": str(tiny.init),
      "train_file": str(tiny.train),
      "label_file": str(tiny.labels),
      "output_dir": str(output_dir),
      "do_eval": False,
      "max_seq_length": 32,
      **values,
    },
  )


@pytest.mark.parametrize(
  "job",
  [
    "create_pretraining_data",
    "predict_pseudo_labels",
    "run_classifier",
    "run_pretraining",
    "export_saved_model",
    "export_fast_model",
    pytest.param("beam.create_pretraining_data", marks=pytest.mark.slow),
  ],
)
def test_read_only_output_directory(tiny, read_only_dir, job):
  if job == "export_fast_model":
    pytest.importorskip("onnxruntime")
  out = read_only_dir
  args, where = {
    "create_pretraining_data": (
      _data_args(tiny, tiny.pool, out / "data.tfrecord"),
      out / "data.tfrecord",
    ),
    "predict_pseudo_labels": (
      (
        "predict_pseudo_labels",
        f"--model_dir={tiny.classifier}",
        f"--input_file={tiny.pool}",
        f"--output_dir={out}",
      ),
      out / "pool.txt.confidence",
    ),
    "run_classifier": (_classifier_args(tiny, out / "model"), out / "model"),
    "run_pretraining": (_pretraining_args(tiny, out), out / "bert_config.json"),
    # Before: a traceback from inside tf.saved_model.save.
    "export_saved_model": (
      ("export_saved_model", f"--model_dir={tiny.classifier}", f"--export_dir={out}/1"),
      out / "1",
    ),
    # Before: a PermissionError traceback from tf2onnx writing its temporary.
    "export_fast_model": (_fast_model_args(tiny, out / "model.onnx"), out / "model.onnx"),
    # Before: an OSError traceback from Beam's WriteToTFRecord.
    "beam.create_pretraining_data": (
      (job,) + _data_args(tiny, tiny.pool, out / "data.tfrecord")[1:],
      out / "data.tfrecord",
    ),
  }[job]
  _one_error(_job(*args, read_only=True), f"{where}: cannot write (Permission denied)")
  assert _files(out) == []


def _fast_model_args(tiny, output_file):
  return (
    "export_fast_model",
    f"--model_dir={tiny.classifier}",
    "--quantize=none",
    f"--output_file={output_file}",
  )


def _shards_size(tiny, tmp_path):
  """The size of the TFRecords of `_data_args` (written here, in-process)."""
  path = tmp_path / "reference.tfrecord"
  create_pretraining_data.run(
    create_pretraining_data.CreatePretrainingDataConfig(
      str(tiny.pool), str(path), str(tiny.vocab), max_seq_length=32, max_predictions_per_seq=5
    )
  )
  return path.stat().st_size


def _pseudo_labels_size(tiny, tmp_path):
  """The size of the pseudo-labeled file of `tiny.pool` (written here, in-process)."""
  predict_pseudo_labels.run(
    predict_pseudo_labels.PredictPseudoLabelsConfig(
      str(tiny.classifier), str(tiny.pool), str(tmp_path / "reference")
    )
  )
  return (tmp_path / "reference" / "pool.txt").stat().st_size


def _limit(fails_at, size=None):
  """The file size limit at which a write of `size` bytes fails `fails_at`."""
  if fails_at in ("checkpoint", "weights"):
    return 40000  # the model's small files fit, its weights (> 100 KB) do not
  if fails_at == "write":
    return size // 4
  assert size % 4096 >= 2  # a last, partly filled buffer
  return size - size % 4096 // 2


def test_full_disk(tiny, tmp_path):
  """Each job's writes on a full disk, in ONE child process (the limit is
  the process's; each job runs through `run(config)` under its own limit):
  one error naming the file, nothing left but what was complete before."""
  data_size, pseudo_size = _shards_size(tiny, tmp_path), _pseudo_labels_size(tiny, tmp_path)
  cases = []  # (module, config, limit, the file named, what is left)
  for fails_at in ("write", "close"):
    out = tmp_path / f"data_{fails_at}"
    config = _data_config(tiny, tiny.pool, out / "data.tfrecord")
    cases.append(
      ("create_pretraining_data", config, _limit(fails_at, data_size), out, "data.tfrecord", [])
    )
    out = tmp_path / f"pseudo_{fails_at}"
    config = predict_pseudo_labels.PredictPseudoLabelsConfig(
      str(tiny.classifier), str(tiny.pool), str(out)
    )
    cases.append(
      ("predict_pseudo_labels", config, _limit(fails_at, pseudo_size), out, "pool.txt", [])
    )
  out = tmp_path / "pretraining"
  config = _pretraining_config(init_checkpoint=str(tiny.init), output_dir=str(out), do_eval=False)
  left = ["bert_config.json", "schedule.json", "task.json", "vocab.txt"]
  cases.append(("run_pretraining", config, _limit("checkpoint"), out, "ckpt-0", left))
  if importlib.util.find_spec("onnxruntime"):  # before: an OSError traceback from tf2onnx
    out = tmp_path / "fast_model"
    config = export_fast_model.FastModelConfig(
      model_dir=str(tiny.classifier), quantize="none", output_file=str(out / "model.onnx")
    )
    cases.append(("export_fast_model", config, _limit("weights"), out, "model.onnx", []))
  jobs = tmp_path / "jobs.pickle"
  jobs.write_bytes(pickle.dumps([case[:3] for case in cases]))
  code = (
    "import importlib, json, pickle, resource, signal, sys\n"
    "from bert_pl import errors\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
    "messages = []\n"
    f"for module, config, limit in pickle.loads(open({str(jobs)!r}, 'rb').read()):\n"
    "  resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))\n"
    "  try:\n"
    "    importlib.import_module('bert_pl.' + module).run(config)\n"
    "    messages.append(None)\n"
    "  except errors.InputError as e:\n"
    "    messages.append(str(e))\n"
    "  finally:\n"
    "    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))\n"
    "print(json.dumps(messages))\n"
  )
  result = _run([sys.executable, "-c", code])
  assert result.returncode == 0, result.stderr[-3000:]
  messages = json.loads(result.stdout.splitlines()[-1])
  for (module, _, _, out, where, left), message in zip(cases, messages, strict=True):
    what = "cannot write the checkpoint" if module == "run_pretraining" else "cannot write"
    assert message == f"{out / where}: {what}, out of disk space (File too large)", module
    assert _files(out) == left, module


@pytest.mark.slow
def test_full_disk_beam(tiny, tmp_path):
  """Before: an OSError traceback, beam-temp-* left."""
  out = tmp_path / "out"
  args = ("beam.create_pretraining_data",) + _data_args(tiny, tiny.pool, out / "data.tfrecord")[1:]
  _one_error(
    _job(*args, file_size_limit=_limit("write", _shards_size(tiny, tmp_path))),
    f"{out / 'data.tfrecord'}: cannot write, out of disk space (File too large)",
  )
  assert _files(out) == []


@pytest.mark.parametrize("garbage", ["checkpoint", "bert_model.ckpt", "model.safetensors"])
def test_directory_of_garbage_as_init_checkpoint(tiny, tmp_path, garbage):
  """Random bytes under a checkpoint's names: the file that is not one is named."""
  directory = tmp_path / "garbage"
  directory.mkdir()
  names = {
    "checkpoint": ["checkpoint", "bert_model.ckpt.index", "model.safetensors"],
    "bert_model.ckpt": [
      "bert_model.ckpt.index",
      "bert_model.ckpt.data-00000-of-00001",
      "model.safetensors",
    ],
    "model.safetensors": ["model.safetensors"],
  }[garbage]
  for i, name in enumerate(names):
    (directory / name).write_bytes(bytes([0xFF - i]) + os.urandom(299))
  out = tmp_path / "out"
  reason = {
    "checkpoint": r"invalid UTF-8: invalid start byte at byte 0",
    "bert_model.ckpt": r"not an sstable \(bad magic number\)",
    "model.safetensors": r".+",
  }[garbage]
  _refused(
    run_pretraining,
    _pretraining_config(
      init_checkpoint=str(directory),
      bert_config_file=str(tiny.config),
      vocab_file=str(tiny.vocab),
      output_dir=str(out),
      do_eval=False,
    ),
    re.compile(
      rf"{re.escape(str(directory / garbage))}: not a readable "
      rf"checkpoint \({reason}\)"
    ),
  )
  assert _files(out) == []


@pytest.mark.parametrize(
  "change,message",
  [
    ({"vocab_size": None}, "no vocab_size (the size of the model's vocab.txt)"),
    ({"vocab_size": "abc"}, "vocab_size must be a positive integer, got 'abc'"),
    ({"hidden_dropout_prob": "0.1"}, "hidden_dropout_prob must be a number in [0, 1), got '0.1'"),
  ],
)
def test_bad_bert_config(tiny, tmp_path, change, message):
  """In process: run_pretraining's command-line contract (one line, exit 2)
  is checked by test_read_only_output_directory and test_full_disk."""
  values = json.loads(tiny.config.read_text())
  values.update(change)
  config = tmp_path / "bert_config.json"
  config.write_text(json.dumps({k: v for k, v in values.items() if v is not None}))
  out = tmp_path / "out"
  with pytest.raises(errors.InputError) as raised:
    run_pretraining.run(
      _pretraining_config(
        bert_config_file=str(config), vocab_file=str(tiny.vocab), output_dir=str(out)
      )
    )
  assert str(raised.value) == f"{config}: {message}"
  assert _files(out) == []


def _model_listing_another(tiny, tmp_path):
  """A copy of the classifier's settings whose `checkpoint` file lists the
  classifier's own latest checkpoint through `..`. Returns (dir, listed)."""
  model = tmp_path / "model"
  model.mkdir()
  for name in ("task.json", "bert_config.json", "vocab.txt"):
    (model / name).write_bytes((tiny.classifier / name).read_bytes())
  latest = (tiny.classifier / "checkpoint").read_text().split('"')[1]
  listed = f"../{tiny.classifier.name}/{os.path.basename(latest)}"
  (tmp_path / tiny.classifier.name).symlink_to(tiny.classifier)
  (model / "checkpoint").write_text(f'model_checkpoint_path: "{listed}"\n')
  return model, listed


def test_a_reader_never_follows_a_checkpoint_file_out_of_the_model_directory(tiny, tmp_path):
  """predict_pseudo_labels (as export_saved_model, export_fast_model) on a
  directory whose `checkpoint` file lists another model's checkpoint through
  `..`: before, it predicted with those weights under this task.json."""
  model, listed = _model_listing_another(tiny, tmp_path)
  out = tmp_path / "out"
  _refused(
    predict_pseudo_labels,
    predict_pseudo_labels.PredictPseudoLabelsConfig(str(model), str(tiny.pool), str(out)),
    f"{model}/checkpoint: lists {listed}, outside the model directory",
  )
  assert _files(out) == []


def test_init_checkpoint_directory_never_follows_its_checkpoint_file_out(tiny, tmp_path):
  """A directory given as --init_checkpoint (the pipeline passes Model-A's
  and Model-C's this way) is read through the same check: before, step 2
  fine-tuned from the weights the crafted file listed, exit 0."""
  model, listed = _model_listing_another(tiny, tmp_path)
  out = tmp_path / "out"
  _refused(
    finetuning,
    _classifier_config(tiny, out, init_checkpoint=str(model)),
    f"{model}/checkpoint: lists {listed}, outside the model directory",
  )
  assert _files(out) == []


def test_fast_model_info_is_checked_against_the_checked_latest_checkpoint(tiny, tmp_path):
  """fast_inference.read_info (and transitions_crf, export) find the latest
  checkpoint through checkpoints.latest_checkpoint: before, read_info
  followed the crafted file and accepted a fast model made from the other
  directory's checkpoint."""
  model, listed = _model_listing_another(tiny, tmp_path)
  fast_model = tmp_path / "model.onnx"
  fast_model.write_bytes(b"onnx")
  latest = (tiny.classifier / "checkpoint").read_text().split('"')[1]
  info = {"source_checkpoint": latest, "fingerprint": "", "quantization": "none"}
  info["model_sha256"] = hashlib.sha256(b"onnx").hexdigest()
  (tmp_path / "model.onnx.json").write_text(json.dumps(info))
  with pytest.raises(errors.CheckpointError) as raised:
    fast_inference.read_info(str(fast_model), str(model))
  assert str(raised.value) == f"{model}/checkpoint: lists {listed}, outside the model directory"


def test_max_seq_length_beyond_the_position_embeddings(tiny, tmp_path):
  """Before: a traceback from Keras in the first step, and bert_config.json,
  task.json, vocab.txt left in --output_dir."""
  values = json.loads(tiny.config.read_text())
  config = tmp_path / "bert_config.json"
  config.write_text(json.dumps(dict(values, max_position_embeddings=16)))
  out = tmp_path / "out"
  _refused(
    finetuning,
    _classifier_config(
      tiny,
      out,
      init_checkpoint=finetuning.RANDOM_INIT,
      bert_config_file=str(config),
      vocab_file=str(tiny.vocab),
    ),
    "--max_seq_length=32: more than the model's max_position_embeddings=16",
  )
  assert _files(out) == []


def test_max_seq_length_too_small_for_cls_and_sep(tiny, tmp_path):
  """Three fields need three [SEP]s: the line that has them is named (the
  flag's own minimum is test_bad_training_numbers')."""
  out = tmp_path / "out"
  fields = tmp_path / "fields.txt"
  fields.write_text("甲乙丙\n甲\t乙\t丙\n", encoding="utf-8")
  with pytest.raises(errors.InputError) as raised:
    create_pretraining_data.run(
      create_pretraining_data.CreatePretrainingDataConfig(
        input_file=str(fields),
        output_file=str(out / "data.tfrecord"),
        vocab_file=str(tiny.vocab),
        max_seq_length=4,
        max_predictions_per_seq=5,
      )
    )
  assert str(raised.value) == (
    f"{fields}:2: 3 fields need --max_seq_length >= 5 ([CLS], a [SEP] after each "
    "field, a token), got 4"
  )
  assert _files(out) == []


def test_output_over_the_input(tiny, tmp_path):
  """--output_dir the input's directory (outputs take their input's name) and
  --output_file an input file: refused, the input untouched."""
  pool = tmp_path / "pool"
  pool.mkdir()
  text = tiny.pool.read_text(encoding="utf-8")
  (pool / "a.txt").write_text(text, encoding="utf-8")
  _refused(
    predict_pseudo_labels,
    predict_pseudo_labels.PredictPseudoLabelsConfig(
      str(tiny.classifier), f"{pool}/*.txt", str(pool)
    ),
    f"--output_dir={pool} (outputs take their input's name) would write over "
    f"--input_file={pool}/a.txt; write the output elsewhere",
  )
  _refused(
    create_pretraining_data,
    _data_config(tiny, pool / "a.txt", pool / "a.txt"),
    f"--output_file={pool}/a.txt would write over --input_file={pool}/a.txt; "
    "write the output elsewhere",
  )
  assert _files(pool) == ["a.txt"] and (pool / "a.txt").read_text(encoding="utf-8") == text


def test_no_job_writes_over_its_inputs(tiny, tmp_path):
  """Each job (the test above has create_pretraining_data's and
  predict_pseudo_labels'): before, export_saved_model --export_dir=MODEL_DIR replaced the model
  directory with the export, export_tf1_checkpoint --output_dir=MODEL_DIR
  wrote over its bert_config.json and vocab.txt, create_pretraining_data
  wrote over --vocab_file, and the data_prep tools over their input."""
  model = tmp_path / "model"
  shutil.copytree(tiny.classifier, model)
  before = _files(model)
  text = tmp_path / "text.tsv"
  text.write_text("a\tb\n", encoding="utf-8")
  vocab = tmp_path / "vocab.txt"
  shutil.copy(tiny.vocab, vocab)
  jobs = [
    (
      lambda: export_saved_model.run(
        export_saved_model.ExportSavedModelConfig(model_dir=str(model), export_dir=str(tmp_path))
      ),
      f"--export_dir={tmp_path} would write over --model_dir={model}",
    ),
    (
      lambda: export_tf1_checkpoint.run(
        export_tf1_checkpoint.ExportTf1CheckpointConfig(
          init_checkpoint=str(model), output_dir=str(model)
        )
      ),
      f"--output_dir={model} would write over --init_checkpoint={model}/bert_config.json",
    ),
    (
      lambda: create_pretraining_data.run(
        create_pretraining_data.CreatePretrainingDataConfig(
          input_file=str(tiny.pool), output_file=str(vocab), vocab_file=str(vocab)
        )
      ),
      f"--output_file={vocab} would write over --vocab_file={vocab}",
    ),
    (
      lambda: build_vocab.run(build_vocab.BuildVocabConfig(str(text), str(text))),
      f"--output_file={text} would write over --input_file={text}",
    ),
    (
      lambda: conll_iob1_to_iob2.run(
        conll_iob1_to_iob2.ConllIob1ToIob2Config(str(text), str(text))
      ),
      f"--output_file={text} would write over --input_file={text}",
    ),
    (
      lambda: csv_to_tsv.run(
        csv_to_tsv.CsvToTsvConfig(str(text), str(text), "0", "1", input_format="tsv")
      ),
      f"--output_file={text} would write over --input_file={text}",
    ),
    (
      lambda: split_dataset.run(
        split_dataset.SplitDatasetConfig(str(text), str(tmp_path), num_train=1, num_test=0)
      ),
      f"--output_dir={tmp_path} would write over --input_file={text}",
    ),
  ]
  (tmp_path / "train.tsv").symlink_to(text)  # split_dataset's output, through a link
  for job, message in jobs:
    with pytest.raises(errors.InputError) as refused:
      job()
    assert str(refused.value) == f"{message}; write the output elsewhere"
  assert _files(model) == before and text.read_text(encoding="utf-8") == "a\tb\n"
  assert vocab.read_bytes() == tiny.vocab.read_bytes()
  assert sorted(os.listdir(tmp_path)) == ["model", "text.tsv", "train.tsv", "vocab.txt"]


def test_directory_as_input_file(tiny, tmp_path):
  out = tmp_path / "out"
  directory = tiny.pool.parent
  _refused(
    create_pretraining_data,
    _data_config(tiny, directory, out / "data.tfrecord"),
    f"{directory}: a directory, not a file (for the files in it, give {directory}/*)",
  )
  assert _files(out) == []


def test_empty_pool_file_for_step_3(tiny, tmp_path):
  """An empty file is bad input for every job (it was an empty output here)."""
  empty = tmp_path / "part-1.txt"
  empty.write_bytes(b"")
  out = tmp_path / "out"
  _refused(
    predict_pseudo_labels,
    predict_pseudo_labels.PredictPseudoLabelsConfig(str(tiny.classifier), str(empty), str(out)),
    f"{empty}: empty file (no examples)",
  )
  assert _files(out) == []


def test_bad_training_numbers(tiny, tmp_path):
  """The flags' own checks (absl validators), refused before the job starts."""
  cases = [
    ("--learning_rate=-0.001", "--learning_rate=-0.001: must be > 0"),
    ("--train_batch_size=0", "--train_batch_size=0: must be >= 1"),
    ("--num_train_epochs=0", "--num_train_epochs=0.0: must be > 0"),
    ("--num_train_epochs=-2", "--num_train_epochs=-2.0: must be > 0"),
    ("--max_seq_length=2", "--max_seq_length=2: must be >= 3 ([CLS], a token, [SEP])"),
  ]
  out = tmp_path / "out"
  results = _classifier_flag_errors(
    [_classifier_args(tiny, out, flag) for flag, _ in cases] + [_classifier_args(tiny, out)]
  )
  for result, (_, message) in zip(results, cases):
    _one_error(result, message)
  assert results[-1].returncode == 0, results[-1].stderr  # the same line, good numbers
  assert _files(out) == []


def test_unknown_ner_tag_is_reported_at_its_line(tiny, tmp_path):
  data = tmp_path / "pseudo.txt"
  data.write_text("甲 B-FLAVOR\n乙 I-FLAVOR\n丙 O\n丁 B-BOGUS\n\n", encoding="utf-8")
  out = tmp_path / "out"
  _refused(
    create_pretraining_data,
    _data_config(
      tiny,
      data,
      out / "data.tfrecord",
      task="ner",
      label_file=str(tiny.tags),
      tokenization="char",
    ),
    f"{data}:4: tag 'B-BOGUS' is not in the label file",
  )
  assert _files(out) == []


def test_a_genuine_bug_keeps_its_traceback(tiny, tmp_path):
  """A ValueError from the code, not from the input, is not an input error:
  traceback and exit code 1, no `error:` line."""
  out = tmp_path / "data.tfrecord"
  code = (
    "import sys\n"
    "from bert_pl import create_pretraining_data, masking\n"
    "def bug(*args, **kwargs):\n"
    "  raise ValueError('a bug in the masking')\n"
    "masking.Masker.mask = bug\n"
    f"sys.argv = {list(map(str, _data_args(tiny, tiny.pool, out)))!r}\n"
    "create_pretraining_data.run_main()\n"
  )
  result = _run([sys.executable, "-c", code])
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" in result.stderr and "ValueError: a bug in the masking" in result.stderr
  assert not [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert _files(tmp_path) == []


def test_cli_run_one_line_for_input_errors_only(monkeypatch, capsys):
  def bad_input(argv):
    raise errors.OutputError("out/x: cannot write (Permission denied)")

  def bug(argv):
    raise ValueError("a bug")

  monkeypatch.setattr(sys, "argv", ["job"])
  with pytest.raises(SystemExit) as exit_:
    cli.run(bad_input)
  stderr = capsys.readouterr().err
  assert exit_.value.code == 2 and "Traceback" not in stderr
  assert [s for s in stderr.splitlines() if s.startswith("error:")] == [
    "error: out/x: cannot write (Permission denied)"
  ]
  with pytest.raises(ValueError, match="a bug"):  # a process prints it, exits with 1
    cli.run(bug)
  monkeypatch.setattr(sys, "argv", ["job", "--verbose"])
  try:
    with pytest.raises(SystemExit):
      cli.run(bad_input)
  finally:
    flags.FLAGS.verbose = False
  stderr = capsys.readouterr().err
  assert "Traceback" in stderr and stderr.rstrip().endswith(
    "error: out/x: cannot write (Permission denied)"
  )


def test_missing_onnxruntime_is_one_line_with_the_install_hint(tmp_path):
  """The `onnx` extra is optional: without onnxruntime (an import finder
  refuses it, as a missing package does) the fast path's job says how to
  install it."""
  code = (
    "import runpy, sys\n"
    "class NoOnnxRuntime:\n"
    "  def find_spec(self, name, path=None, target=None):\n"
    "    if name.split('.')[0] == 'onnxruntime':\n"
    "      raise ModuleNotFoundError(f'No module named {name!r}')\n"
    "sys.meta_path.insert(0, NoOnnxRuntime())\n"
    f"sys.argv = ['export_fast_model', '--model_dir={tmp_path}', '--quantize=none']\n"
    "runpy.run_module('bert_pl.export_fast_model', run_name='__main__')\n"
  )
  _one_error(
    _run([sys.executable, "-c", code]),
    "the fast model needs onnxruntime: pip install 'bert_pl[onnx]' "
    "(run_scripts/setup_venv.sh installs it)",
  )
  assert _files(tmp_path) == []
