"""export_saved_model: the SavedModel serves, from raw text and without
bert_pl, what the Python prediction path predicts."""

import functools
import json
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Tuple

import numpy as np
import pytest
import tensorflow as tf
from test_finetuning import _finetuning_config
from test_training import _tiny_config

from bert_pl import (
  export_saved_model,
  features,
  finetuning,
  input_files,
  modeling,
  prediction,
  tag_schemes,
)
from bert_pl.input_files import Example
from bert_pl.model_dir import load_finetuned

from conftest import run_job

MAX_SEQ_LENGTH = 32
# Awkward single texts, for every export.
TEXTS = [
  "",
  "招牌珍珠奶茶大杯少糖去冰加椰果，" * 8,  # far longer than MAX_SEQ_LENGTH
  "香辣鸡腿堡😀🍔 ok😀 加冰",
  "大杯Coffee拿铁 with 芝士 Burger，少糖",
  "Café crème brûlée 芝士蛋糕",
  "a\x00b\u200b 奶茶\u3000去冰",
]
# TAB-separated fields: 1 to 4 (the default --max_fields) in one batch,
# empty fields (also as the last rows of their field count), and long fields
# that the round-robin trimmer shortens.
FIELDS = [
  "香辣鸡腿堡\t外酥里嫩",
  "珍珠奶茶\t人气饮品\t茶屋",
  "炸鸡\t\t韩式炸鸡\t",
  "薯条\t鸡块\t可乐\t汉堡",
  "牛肉汉堡" * 20 + "\t套餐\t" + "汉堡店" * 10,
  "\t",
]
# Signature outputs: (dtype, shape) as saved_model_cli prints them (20
# labels, hidden size 32).
CLASSIFICATION_OUTPUTS = {
  "label_ids": ("DT_INT32", "(-1)"),
  "labels": ("DT_STRING", "(-1)"),
  "probabilities": ("DT_FLOAT", "(-1, 20)"),
  "confidence": ("DT_FLOAT", "(-1)"),
}
NER_OUTPUTS = {
  "tags": ("DT_STRING", "(-1, -1)"),
  "token_starts": ("DT_INT32", "(-1, -1)"),
  "token_ends": ("DT_INT32", "(-1, -1)"),
  "entity_types": ("DT_STRING", "(-1, -1)"),
  "entity_texts": ("DT_STRING", "(-1, -1)"),
  "entity_starts": ("DT_INT32", "(-1, -1)"),
  "entity_ends": ("DT_INT32", "(-1, -1)"),
  "confidence": ("DT_FLOAT", "(-1)"),
}
ENCODER_OUTPUTS = {
  "sequence_output": ("DT_FLOAT", "(-1, -1, 32)"),
  "pooled_output": ("DT_FLOAT", "(-1, 32)"),
  "input_mask": ("DT_INT32", "(-1, -1)"),
}

# Run in a fresh interpreter that has TensorFlow and tensorflow-text only:
# what a serving client has. Reads requests as JSON on stdin, prints results.
_SERVE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401 (registers the tokenizer's ops)

def plain(value):
  if isinstance(value, list):
    return [plain(v) for v in value]
  return value.decode("utf-8") if isinstance(value, bytes) else value

loaded, results = {}, []
for request in json.load(sys.stdin):
  if request["path"] not in loaded:  # held: signatures reference it weakly
    loaded[request["path"]] = tf.saved_model.load(request["path"])
  function = loaded[request["path"]].signatures[request["signature"]]
  try:
    outputs = function(text=tf.constant(request["texts"], tf.string))
    results.append({k: plain(v.numpy().tolist()) for k, v in outputs.items()})
  except tf.errors.InvalidArgumentError as e:
    results.append({"error": e.message})
results.append(sorted(m for m in sys.modules
                      if m.split(".")[0] in ("bert_pl", "tensorflow_addons", "official")))
print(json.dumps(results))
"""


def _random_bert_dir(corpus, directory: pathlib.Path) -> str:
  """A randomly initialised tiny BERT model directory (the init checkpoint)."""
  directory.mkdir()
  config = _tiny_config(corpus, directory / "bert_config.json")
  model = modeling.create_model(modeling.BertConfig.from_json_file(config))
  tf.train.CheckpointManager(tf.train.Checkpoint(bert=model), str(directory), 1).save()
  shutil.copy(corpus / "vocab.txt", directory / "vocab.txt")
  return str(directory)


def _variant(source: pathlib.Path, target: pathlib.Path, **task_info) -> pathlib.Path:
  """A copy of a model directory with other task.json options."""
  shutil.copytree(source, target)
  info = json.loads((target / "task.json").read_text())
  (target / "task.json").write_text(json.dumps({**info, **task_info}))
  return target


def _ner_texts(corpus):
  lines = (corpus / "ner_unlabeled.txt").read_text(encoding="utf-8").splitlines()[:6]
  return TEXTS + lines + [lines[0] + "\t" + lines[1]]


@pytest.fixture(scope="module")
def model_dirs(corpus, tmp_path_factory):
  """Briefly fine-tuned classifier and NER directories (and variants): their
  predictions are noisy (about 60 steps from random weights), which exercises
  the tag and entity decoding more than a good model would."""
  work = tmp_path_factory.mktemp("export_models")
  init = _random_bert_dir(corpus, work / "init")
  common = dict(
    init_checkpoint=init,
    max_seq_length=MAX_SEQ_LENGTH,
    num_train_epochs=1.0,
    do_eval=False,
    do_predict=True,
    distribution_strategy="one_device",
  )
  # finetuning.predict's files, for a cross-check.
  (work / "cls.txt").write_text(
    "\n".join(t for t in TEXTS + FIELDS if t.strip()) + "\n", encoding="utf-8"
  )
  (work / "ner.txt").write_text(
    "\n".join(t for t in _ner_texts(corpus) if t.strip()) + "\n", encoding="utf-8"
  )
  finetuning.run(
    _finetuning_config(
      "classification",
      train_file=str(corpus / "train.tsv"),
      label_file=str(corpus / "labels.txt"),
      predict_file=str(work / "cls.txt"),
      output_dir=str(work / "cls"),
      **common,
    )
  )
  finetuning.run(
    _finetuning_config(
      "ner",
      train_file=str(corpus / "ner_train.txt"),
      label_file=str(corpus / "tags.txt"),
      predict_file=str(work / "ner.txt"),
      output_dir=str(work / "ner"),
      tokenization="char",
      **{**common, "num_train_epochs": 2.0},
    )
  )
  return {
    "cls": work / "cls",
    "ner": work / "ner",
    "cls_concat": _variant(work / "cls", work / "cls_concat", field_join="concat"),
    "ner_wordpiece": _variant(work / "ner", work / "ner_wordpiece", tokenization="wordpiece"),
  }


@pytest.fixture(scope="module")
def exports(model_dirs, tmp_path_factory):
  """The SavedModels; NER through the job's command line (max_seq_length
  from task.json), the others through `run`."""
  out = tmp_path_factory.mktemp("exports")
  job = run_job("export_saved_model", f"--model_dir={model_dirs['ner']}", f"--export_dir={out}/ner")
  assert f"wrote SavedModel {out}/ner (signatures: serving_default, encoder)" in job.stdout
  for name in ("cls", "cls_concat", "ner_wordpiece"):
    signature = "predict" if name == "cls_concat" else "serving_default"
    assert export_saved_model.run(
      export_saved_model.ExportSavedModelConfig(
        model_dir=str(model_dirs[name]), export_dir=str(out / name), signature=signature
      )
    ) == [signature, "encoder"]
  return {name: out / name for name in model_dirs}


@pytest.fixture(scope="module")
def served(exports, corpus):
  """Every request answered by the SavedModels in one fresh interpreter."""
  requests = {  # name: (export, signature, texts)
    "cls": ("cls", "serving_default", TEXTS + FIELDS),
    "cls_concat": ("cls_concat", "predict", TEXTS + FIELDS),
    "ner": ("ner", "serving_default", _ner_texts(corpus)),
    "ner_wordpiece": ("ner_wordpiece", "serving_default", _ner_texts(corpus)),
    "cls_encoder": ("cls", "encoder", TEXTS + FIELDS),
    "ner_encoder": ("ner", "encoder", _ner_texts(corpus)),
    "empty_batch": ("cls", "serving_default", []),
    "too_many_fields": ("cls", "serving_default", ["a\tb", "\t".join("12345")]),
  }
  stdin = json.dumps(
    [
      {"path": str(exports[export]), "signature": signature, "texts": texts}
      for export, signature, texts in requests.values()
    ]
  )
  result = subprocess.run(
    [sys.executable, "-c", _SERVE],
    input=stdin,
    capture_output=True,
    text=True,
    cwd=exports["cls"].parent,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  *answers, modules = json.loads(result.stdout.splitlines()[-1])
  assert modules == []  # serving needs neither bert_pl nor tensorflow-addons
  return dict(zip(requests, answers))


@functools.lru_cache(maxsize=None)
def _python_path(model_dir: pathlib.Path, texts: Tuple[str, ...]):
  """What finetuning.predict computes: FeatureEncoder features, Predictor."""
  model, tokenizer, info = load_finetuned(str(model_dir))
  field_join = info["field_join"] if info["task"] == "classification" else "concat"
  encoder = features.FeatureEncoder(tokenizer, MAX_SEQ_LENGTH, "none", field_join=field_join)
  encoded, _ = encoder.encode([Example(f"text:{i}", t.split("\t")) for i, t in enumerate(texts)])
  return model, info["labels"], encoded, prediction.Predictor(model).predict(encoded)


@pytest.mark.parametrize("name", ["cls", "cls_concat"])
def test_classification_export_equals_python_path(name, model_dirs, served):
  _, labels, _, expected = _python_path(model_dirs[name], tuple(TEXTS + FIELDS))
  got = served[name]
  assert sorted(got) == sorted(CLASSIFICATION_OUTPUTS)
  np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-5)
  np.testing.assert_allclose(got["confidence"], expected["confidence"], atol=1e-5)
  assert got["label_ids"] == expected["label_ids"].tolist()
  assert got["labels"] == [labels[i] for i in expected["label_ids"]]
  print(
    f"\n{name}: {len(set(got['labels']))} distinct labels, max |dp| = "
    f"{np.abs(np.array(got['probabilities']) - expected['probabilities']).max():.2g}"
  )
  if name == "cls":  # the job's own predictions file (empty texts are skipped)
    kept = [i for i, t in enumerate(TEXTS + FIELDS) if t.strip()]
    written = list(
      input_files.read_classification(
        str(model_dirs[name] / "predictions.tsv"), input_files.Counts(), labels
      )
    )
    assert [e.label for e in written] == [got["labels"][i] for i in kept]
    np.testing.assert_allclose(
      [e.confidence for e in written], [got["confidence"][i] for i in kept], atol=2e-6
    )


def _expected_ner(labels, encoded, outputs, row):
  """Token tags, offsets and entities of one row, as finetuning.predict."""
  starts, ends = encoded["starts"][row], encoded["ends"][row]
  n = min(int(np.sum(starts >= 0)), MAX_SEQ_LENGTH - 2)
  tag_ids = outputs["tag_ids"][row, 1 : 1 + n]
  return (
    [labels[i] for i in tag_ids],
    starts[:n].tolist(),
    ends[:n].tolist(),
    features.decode_entities(tag_ids, starts[:n], ends[:n], labels),
  )


def _written_starts(text):
  """Where the units of a predictions.txt block start: every character of a
  text without whitespace, else every CJK character and every other word."""
  if not any(c.isspace() for c in text):
    return range(len(text))
  return [m.start() for m in re.finditer(r"[\u4e00-\u9fff]|[^\s\u4e00-\u9fff]+", text)]


def _unpad(values, padding):
  return [v for v in values if v != padding]


@pytest.mark.parametrize("name", ["ner", "ner_wordpiece"])
def test_ner_export_equals_python_path(name, model_dirs, served, corpus):
  texts = _ner_texts(corpus)
  _, labels, encoded, outputs = _python_path(model_dirs[name], tuple(texts))
  got = served[name]
  assert sorted(got) == sorted(NER_OUTPUTS)
  np.testing.assert_allclose(got["confidence"], outputs["confidence"], atol=1e-5)
  count = 0
  for row, text in enumerate(texts):
    tags, starts, ends, entities = _expected_ner(labels, encoded, outputs, row)
    assert _unpad(got["tags"][row], "") == tags, text
    assert _unpad(got["token_starts"][row], -1) == starts
    assert _unpad(got["token_ends"][row], -1) == ends
    spans = list(
      zip(
        _unpad(got["entity_types"][row], ""),
        _unpad(got["entity_starts"][row], -1),
        _unpad(got["entity_ends"][row], -1),
      )
    )
    assert spans == entities, text
    texts_of_entities = got["entity_texts"][row][: len(spans)]
    assert texts_of_entities == [text[s:e] for _, s, e in spans]
    count += len(spans)
  print(f"\n{name}: {count} entities in {len(texts)} texts")
  assert count > 0
  assert len(got["tags"][1]) == MAX_SEQ_LENGTH - 2  # the long text is truncated
  if name == "ner":  # the job's own predictions file: one unit per line (see _written_starts)
    written = list(
      input_files.read_conll(str(model_dirs[name] / "predictions.txt"), input_files.Counts())
    )
    kept = [(row, t) for row, t in enumerate(texts) if t.strip()]
    assert len(written) == len(kept)
    for sentence, (row, text) in zip(written, kept):
      n = len(_unpad(got["tags"][row], ""))
      per_char = features.char_tags(
        got["tags"][row][:n],
        zip(got["token_starts"][row][:n], got["token_ends"][row][:n]),
        len(text),
      )
      assert sentence.tags == [per_char[i] for i in _written_starts(text)], text


@pytest.mark.parametrize("name,texts", [("cls", TEXTS + FIELDS), ("ner", None)])
def test_encoder_signature_equals_the_model(name, texts, model_dirs, served, corpus):
  model, _, encoded, _ = _python_path(model_dirs[name], tuple(texts or _ner_texts(corpus)))
  got = served[name + "_encoder"]
  assert sorted(got) == sorted(ENCODER_OUTPUTS)
  mask = np.array(got["input_mask"])
  width = int(encoded["input_mask"].sum(1).max())
  assert mask.shape[1] == width  # padded to the batch's longest, not MAX_SEQ_LENGTH
  np.testing.assert_array_equal(mask, encoded["input_mask"][:, :width])
  outputs = model.bert(
    {
      "input_word_ids": encoded["input_ids"][:, :width],
      "input_mask": encoded["input_mask"][:, :width],
      "input_type_ids": encoded["segment_ids"][:, :width],
    },
    training=False,
  )
  sequence = np.array(got["sequence_output"])
  assert sequence.shape == (len(mask), width, model.config.hidden_size)
  np.testing.assert_allclose(
    sequence * mask[..., None], outputs["sequence_output"].numpy() * mask[..., None], atol=1e-5
  )
  np.testing.assert_allclose(got["pooled_output"], outputs["pooled_output"], atol=1e-5)


def test_empty_batch_and_too_many_fields(served):
  assert served["empty_batch"]["labels"] == served["empty_batch"]["probabilities"] == []
  assert "more TAB-separated fields than the 4" in served["too_many_fields"]["error"]


def test_entity_spans_match_tag_schemes():
  labels = ["O", "B-A", "I-A", "B-B", "I-B", "S-C"]
  rng = np.random.default_rng(0)
  rows = [[], [2, 2, 0, 4], [1, 2, 3, 4, 4, 2, 5, 2], []]
  rows += [rng.integers(0, len(labels), rng.integers(0, 10)).tolist() for _ in range(300)]
  tag_ids = tf.ragged.constant(rows, tf.int64, ragged_rank=1)
  types, firsts, ends = export_saved_model.entity_spans(tag_ids, labels)
  row_starts = tag_ids.row_starts().numpy()
  for row, ids in enumerate(rows):
    got = [
      (t.decode(), f - row_starts[row], e - row_starts[row])
      for t, f, e in zip(types[row].numpy(), firsts[row].numpy(), ends[row].numpy())
    ]
    assert got == tag_schemes.entities([labels[i] for i in ids]), ids


def test_vocab_asset_and_saved_model_cli(exports, model_dirs):
  for name in ("cls", "ner"):
    assert (exports[name] / "assets" / "vocab.txt").read_bytes() == (
      model_dirs[name] / "vocab.txt"
    ).read_bytes()
  cli = str(pathlib.Path(sys.executable).parent / "saved_model_cli")
  result = subprocess.run(
    [
      cli,
      "show",
      "--dir",
      str(exports["cls"]),
      "--tag_set",
      "serve",
      "--signature_def",
      "serving_default",
    ],
    capture_output=True,
    text=True,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "inputs['text']" in result.stdout and "outputs['labels']" in result.stdout
  # `--all` also loads the SavedModel in Python, which needs the tokenizer's
  # tensorflow-text ops registered, as any process serving it does.
  with_text_ops = (
    "import sys, tensorflow_text; "
    "from tensorflow.python.tools.saved_model_cli import main; "
    "sys.argv[0] = 'saved_model_cli'; main()"
  )
  for name, outputs in (("cls", CLASSIFICATION_OUTPUTS), ("ner", NER_OUTPUTS)):
    result = subprocess.run(
      [sys.executable, "-c", with_text_ops, "show", "--dir", str(exports[name]), "--all"],
      capture_output=True,
      text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sections = dict(part.split("']:", 1) for part in result.stdout.split("signature_def['")[1:])
    for signature, specs in (("serving_default", outputs), ("encoder", ENCODER_OUTPUTS)):
      for tensor, (dtype, shape) in [("inputs['text']", ("DT_STRING", "(-1)"))] + [
        (f"outputs['{k}']", v) for k, v in specs.items()
      ]:
        assert (
          f"{tensor} tensor_info:\n        dtype: {dtype}\n        shape: {shape}\n"
          in sections[signature]
        ), (name, signature, tensor)


def test_cli_bad_model_dir_is_a_one_line_error(tmp_path):
  result = run_job(
    "export_saved_model",
    f"--model_dir={tmp_path}/nope",
    f"--export_dir={tmp_path}/out",
    check=False,
  )
  assert result.returncode == 2 and "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [
    f"error: {tmp_path}/nope/task.json: not a bert_pl model directory (no task.json)"
  ]
  assert not (tmp_path / "out").exists()


def _export_marked(module, path, marker):
  export_saved_model._save(module, str(path), signatures=None)
  (path / "assets.extra").mkdir(exist_ok=True)
  (path / "assets.extra" / marker).write_text(marker)


def test_a_replacement_that_fails_keeps_the_earlier_export(tmp_path, monkeypatch):
  """Re-exporting over a version directory: until the new SavedModel is in
  place the earlier one stays (put aside, restored if the last rename fails),
  so an interrupted or failed export never leaves the version without a
  model. Before, the earlier export was removed first, then the rename failed."""
  module = tf.Module()
  module.v = tf.Variable(1.0)
  final = tmp_path / "1"
  _export_marked(module, final, "earlier")
  rename = tf.io.gfile.rename

  def rename_failing_for_the_new_export(src, dst, overwrite=False):
    if ".tmp-" in src:
      raise tf.errors.PermissionDeniedError(None, None, "Permission denied")
    return rename(src, dst, overwrite)

  monkeypatch.setattr(tf.io.gfile, "rename", rename_failing_for_the_new_export)
  with pytest.raises(export_saved_model.errors.OutputError, match="Permission denied"):
    export_saved_model._save(module, str(final), signatures=None)
  assert (final / "assets.extra" / "earlier").exists()
  assert tf.saved_model.contains_saved_model(str(final))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]  # nothing left beside it
  monkeypatch.undo()
  export_saved_model._save(module, str(final), signatures=None)  # the replacement, unfailed
  assert not (final / "assets.extra").exists() and tf.saved_model.contains_saved_model(str(final))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]
