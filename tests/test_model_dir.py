"""Model directories are authoritative (issue 17): evaluation and prediction
take a model's settings from its task.json and change nothing but their
outputs; contradicting flags, another job's directory, a checkpoint of another
shape in --output_dir are one-line errors; --init_checkpoint=none; NER metrics
on the whole gold annotation."""

import dataclasses
import json
import logging
import pathlib
import shutil
import types

import pytest
from test_finetuning import _finetuning_config
from test_training import _pretraining_config, _random_init, _tiny_config

from bert_pl import (
  create_pretraining_data,
  errors,
  export_saved_model,
  finetuning,
  model_dir,
  predict_pseudo_labels,
  run_pretraining,
)

from conftest import run_job

SEQ = 32  # the tagger's max_seq_length: 30 characters of a sentence are seen
TAGGER = dict(tokenization="char", max_seq_length=SEQ, label_file="tags.txt")


@pytest.fixture(scope="module")
def tagger(corpus, tmp_path_factory):
  """A tiny NER model directory (char, max_seq_length 32) fine-tuned from a
  run_pretraining directory, with the files and eval_results.txt its training
  wrote."""
  work = tmp_path_factory.mktemp("model_dir")
  init = _random_init(corpus, work)
  model = work / "ner"
  results = finetuning.run(
    _finetuning_config(
      "ner",
      init_checkpoint=str(init),
      train_file=str(corpus / "ner_train.txt"),
      eval_file=str(corpus / "ner_test.txt"),
      output_dir=str(model),
      num_train_epochs=1.0,
      **dict(TAGGER, label_file=str(corpus / "tags.txt")),
    )
  )
  assert results["truncated_sentences"] > 0  # some test sentences are longer than 30
  return types.SimpleNamespace(work=work, init=init, model=model, files=_files(model))


def _files(directory: pathlib.Path):
  return {
    p.relative_to(directory).as_posix(): p.read_bytes()
    for p in sorted(directory.rglob("*"))
    if p.is_file()
  }


def _not_given(task, **values):
  """The config of a run that restates nothing: every setting None (not
  given, as `finetuning.make_main` builds it), no training."""
  return _finetuning_config(
    task, **dict(dict.fromkeys(model_dir.SETTINGS), do_train=False, **values)
  )


def _one_error(result) -> str:
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, result.stderr[-3000:]
  return errors[0]


def test_eval_and_predict_only_runs_change_nothing_but_their_outputs(corpus, tagger, tmp_path):
  pool = tmp_path / "pool.txt"
  pool.write_text(
    "".join(
      (corpus / "ner_unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:50]
    ),
    encoding="utf-8",
  )
  model = tmp_path / "model"
  shutil.copytree(tagger.model, model)
  # Today's bug: this rewrote task.json with the flags' defaults (wordpiece, 128).
  run_job(
    "run_ner",
    "--do_eval",
    "--do_predict",
    f"--eval_file={corpus}/ner_test.txt",
    f"--predict_file={pool}",
    f"--output_dir={model}",
  )
  after = _files(model)
  outputs = {"predictions.txt", "predictions.txt.confidence"}
  assert set(after) == set(tagger.files) | outputs  # nothing else written, no .tmp left
  for name, content in tagger.files.items():
    assert after[name] == content, name  # task.json, eval_results.txt, ... byte for byte
  # The model's 32, not the flag default 128: 30 characters of each line.
  blocks = after["predictions.txt"].decode("utf-8").split("\n\n")[:-1]
  assert len(blocks) == 50
  assert any(line.split()[1] != "O" for block in blocks for line in block.splitlines()[:30])
  assert all(line.split()[1] == "O" for block in blocks for line in block.splitlines()[30:])


def test_run_pretraining_on_its_model_directory_rewrites_nothing(corpus, tagger, tmp_path):
  """Evaluating or resuming a run_pretraining model directory takes its
  config and vocabulary from it and never rewrites them or task.json
  (before: an evaluation with --masked_lm_loss_weight=0.5 rewrote task.json,
  one with another --vocab_file replaced vocab.txt)."""
  model = tmp_path / "model_a"
  shutil.copytree(tagger.init, model)
  before = _files(model)
  lines = (corpus / "unlabeled.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  (tmp_path / "pool.txt").write_text("".join(lines[:40]), encoding="utf-8")
  vocab = (corpus / "vocab.txt").read_text(encoding="utf-8").splitlines(keepends=True)
  permuted = tmp_path / "permuted_vocab.txt"
  permuted.write_text("".join(vocab[:5] + vocab[5:][::-1]), encoding="utf-8")
  for name, vocab_file in (("data", corpus / "vocab.txt"), ("permuted", permuted)):
    create_pretraining_data.run(
      create_pretraining_data.CreatePretrainingDataConfig(
        str(tmp_path / "pool.txt"),
        str(tmp_path / name / "pool.tfrecord"),
        str(vocab_file),
        max_seq_length=64,
        max_predictions_per_seq=10,
      )
    )
  evaluate = dict(
    output_dir=str(model), input_file=f"{tmp_path}/data/pool.tfrecord*", do_train=False
  )
  results = run_pretraining.run(_pretraining_config(**evaluate, masked_lm_loss_weight=0.5))
  assert results["global_step"] == 0  # the directory's config, without --bert_config_file
  after = _files(model)
  assert {n: c for n, c in after.items() if n.startswith(("summaries/", "eval_"))}
  assert {n: c for n, c in after.items() if not n.startswith(("summaries/", "eval_"))} == before
  with pytest.raises(model_dir.ModelDirError) as error:
    run_pretraining.run(
      _pretraining_config(
        **dict(evaluate, input_file=f"{tmp_path}/permuted/pool.tfrecord*"),
        vocab_file=str(permuted),
      )
    )
  assert str(error.value) == f"{model}/vocab.txt: differs from --vocab_file={permuted}"
  with pytest.raises(model_dir.ModelDirError) as error:
    run_pretraining.run(
      _pretraining_config(
        **dict(evaluate, do_train=True, do_eval=False, num_train_steps=2), masked_lm_loss_weight=0.7
      )
    )
  assert str(error.value) == (
    f"{model}/task.json: masked_lm_loss_weight is 1.0 there, 0.7 from "
    f"--masked_lm_loss_weight ({model} holds ckpt-0 of an earlier run, which --do_train "
    f"would resume: use a new --output_dir, or delete {model} to start over)"
  )
  assert {n: c for n, c in _files(model).items() if n in before} == before


def test_a_contradicting_flag_is_an_error_naming_both_values(corpus, tagger):
  result = run_job(
    "run_ner",
    "--do_eval",
    f"--eval_file={corpus}/ner_test.txt",
    f"--output_dir={tagger.model}",
    "--max_seq_length=128",
    check=False,
  )
  assert _one_error(result) == (
    f"error: {tagger.model}/task.json: max_seq_length is {SEQ} there, --max_seq_length=128 given"
  )
  assert _files(tagger.model) == tagger.files
  # A flag restating the model's value is fine; one that differs is not, in
  # every job that reads a model directory.
  eval_only = _not_given(
    "ner", eval_file=str(corpus / "ner_test.txt"), output_dir=str(tagger.model)
  )
  with pytest.raises(
    model_dir.ModelDirError,
    match=r"task.json: tokenization is char there, "
    r"--tokenization=wordpiece given$",
  ):
    finetuning.run(dataclasses.replace(eval_only, tokenization="wordpiece", max_seq_length=SEQ))
  with pytest.raises(
    model_dir.ModelDirError,
    match=r"task.json: other labels than "
    r"--label_file=.*labels.txt \(9 there, 20 given; label 1 is 'O' there",
  ):
    finetuning.run(dataclasses.replace(eval_only, label_file=str(corpus / "labels.txt")))
  with pytest.raises(
    model_dir.ModelDirError,
    match=r"task.json: max_seq_length is 32 there, --max_seq_length=64 given",
  ):
    predict_pseudo_labels.PseudoLabeler(
      predict_pseudo_labels.PredictPseudoLabelsConfig(str(tagger.model), "", "", max_seq_length=64)
    )
  with pytest.raises(
    model_dir.ModelDirError,
    match=r"task.json: max_seq_length is 32 there, --max_seq_length=128 given",
  ):
    export_saved_model.run(
      export_saved_model.ExportSavedModelConfig(
        model_dir=str(tagger.model), export_dir=str(tagger.work / "export"), max_seq_length=128
      )
    )
  assert not (tagger.work / "export").exists()
  assert _files(tagger.model) == tagger.files


def test_evaluating_without_a_model_is_an_error(corpus, tmp_path):
  with pytest.raises(
    model_dir.ModelDirError,
    match=r"new: no checkpoint; --do_eval and "
    r"--do_predict without --do_train use the fine-tuned model of --output_dir",
  ):
    finetuning.run(
      _not_given("ner", eval_file=str(corpus / "ner_test.txt"), output_dir=str(tmp_path / "new"))
    )
  assert not (tmp_path / "new").exists()


def test_another_jobs_model_directory_is_a_one_line_error(corpus, tagger):
  """run_classifier on a run_pretraining directory (step 1's Model-A) and on
  a run_ner directory; predict_pseudo_labels on a run_pretraining one."""
  result = run_job(
    "run_classifier",
    "--do_eval",
    f"--eval_file={corpus}/test.tsv",
    f"--output_dir={tagger.init}",
    check=False,
  )
  assert _one_error(result) == (
    f"error: {tagger.init}: a run_pretraining model directory (task=none), not a model of "
    f"run_classifier: fine-tune from it with --do_train --init_checkpoint={tagger.init} "
    "and a new --output_dir"
  )
  with pytest.raises(model_dir.ModelDirError) as error:
    finetuning.run(
      _not_given("classification", eval_file=str(corpus / "test.tsv"), output_dir=str(tagger.model))
    )
  assert str(error.value) == (
    f"{tagger.model}: a run_ner model directory (task=ner), not a model of run_classifier: "
    f"use run_ner for it, or fine-tune from it with --do_train "
    f"--init_checkpoint={tagger.model} and a new --output_dir"
  )
  with pytest.raises(
    model_dir.ModelDirError,
    match=r"init: a run_pretraining model directory "
    r"\(task=none\), not a fine-tuned classification or NER model: fine-tune "
    r"it first \(run_classifier or run_ner --do_train --init_checkpoint=",
  ):
    predict_pseudo_labels.PseudoLabeler(
      predict_pseudo_labels.PredictPseudoLabelsConfig(str(tagger.init), "", "")
    )
  assert _files(tagger.model) == tagger.files


def test_a_checkpoint_of_another_shape_in_output_dir_is_named(corpus, tagger, tmp_path):
  """Training into the directory of an earlier run with other labels or
  another config: one line saying so and what to do, not TensorFlow's
  shape error."""
  tags = tmp_path / "tags.txt"
  tags.write_text((corpus / "tags.txt").read_text() + "B-X\nI-X\n")
  again = _finetuning_config(
    "ner",
    init_checkpoint=str(tagger.init),
    train_file=str(corpus / "ner_train.txt"),
    output_dir=str(tagger.model),
    do_eval=False,
    **dict(TAGGER, label_file=str(tags)),
  )
  advice = (
    f" ({tagger.model} holds ckpt-32 of an earlier run, which --do_train would resume: "
    f"use a new --output_dir, or delete {tagger.model} to start over)"
  )
  with pytest.raises(model_dir.ModelDirError) as error:
    finetuning.run(again)
  assert str(error.value) == (
    f"{tagger.model}/task.json: other labels than --label_file={tags} "
    "(9 there, 11 given; label 10 is none there, 'B-X' given)" + advice
  )
  config = json.loads((tagger.init / "bert_config.json").read_text())
  (tmp_path / "wide.json").write_text(json.dumps(dict(config, hidden_size=64)))
  with pytest.raises(model_dir.ModelDirError) as error:
    finetuning.run(
      dataclasses.replace(
        again, label_file=str(corpus / "tags.txt"), bert_config_file=str(tmp_path / "wide.json")
      )
    )
  assert str(error.value) == (
    f"{tagger.model}/bert_config.json: hidden_size is 32 there, 64 "
    f"from --init_checkpoint={tagger.init} "
    f"--bert_config_file={tmp_path}/wide.json" + advice
  )
  assert _files(tagger.model) == tagger.files
  # A directory whose own config no longer fits its checkpoint.
  broken = tmp_path / "broken"
  shutil.copytree(tagger.model, broken)
  (broken / "bert_config.json").write_text(json.dumps(dict(config, intermediate_size=48)))
  with pytest.raises(
    errors.CheckpointError,
    match=(
      rf"^{broken}/ckpt-32: the output directory's checkpoint does not fit the model as "
      r"configured \(.*\); run with the settings that wrote it, or give another --output_dir$"
    ),
  ):
    finetuning.run(
      _not_given("ner", eval_file=str(corpus / "ner_test.txt"), output_dir=str(broken))
    )


def test_fine_tuning_from_a_config_alone(corpus, tmp_path, caplog):
  bert_config = _tiny_config(corpus, tmp_path / "config.json")
  train = tmp_path / "train.tsv"
  train.write_text(
    "".join((corpus / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:64]),
    encoding="utf-8",
  )
  config = _finetuning_config(
    "classification",
    train_file=str(train),
    label_file=str(corpus / "labels.txt"),
    output_dir=str(tmp_path / "model"),
    do_eval=False,
    num_train_epochs=1.0,
  )
  with pytest.raises(errors.InputError) as error:
    finetuning.run(config)
  assert str(error.value) == (
    f"no --init_checkpoint and no checkpoint in --output_dir={tmp_path}/model "
    "(--init_checkpoint=none with --bert_config_file and --vocab_file starts from random "
    "weights)"
  )
  with pytest.raises(
    errors.InputError,
    match=r"^--init_checkpoint=none \(random weights\) needs "
    r"--bert_config_file and --vocab_file$",
  ):
    finetuning.run(dataclasses.replace(config, init_checkpoint="none"))
  with caplog.at_level(logging.WARNING):
    finetuning.run(
      dataclasses.replace(
        config,
        init_checkpoint="none",
        bert_config_file=bert_config,
        vocab_file=str(corpus / "vocab.txt"),
      )
    )
  assert (
    f"--init_checkpoint=none: the model starts from random weights ({bert_config}), not from "
    "a pre-trained BERT"
  ) in caplog.text
  info = json.loads((tmp_path / "model" / "task.json").read_text())
  assert info["trained_by"] == "run_classifier" and (tmp_path / "model" / "ckpt-2.index").exists()


def _read_conll(path: pathlib.Path):
  """[(characters, tags)] of a CoNLL file, one character per line."""
  blocks = path.read_text(encoding="utf-8").strip("\n").split("\n\n")
  return [tuple(map(list, zip(*(line.split() for line in block.splitlines())))) for block in blocks]


def _entities(tags):
  """conlleval's chunks of a BIO sequence: (type, start, end)."""
  spans, kind, start = set(), None, 0
  for i, tag in enumerate(list(tags) + ["O"]):
    continues = tag.startswith("I-") and tag[2:] == kind
    if kind and not continues:
      spans.add((kind, start, i))
      kind = None
    if tag != "O" and not continues:
      kind, start = tag[2:], i
  return spans


def test_ner_metrics_count_the_entities_of_a_truncated_tail(corpus, tagger, tmp_path):
  sentences = _read_conll(corpus / "ner_test.txt")
  short = [s for s in sentences if len(s[0]) <= SEQ - 2 and _entities(s[1])][:4]
  head = []  # sentences of at least 30 characters: what follows is cut off
  while sum(len(s[0]) for s in head) < SEQ - 2:
    head.append(sentences[-1 - len(head)])
  chars, tags = (sum((s[i] for s in head + [short[0]]), []) for i in (0, 1))
  assert max(start for _, start, _ in _entities(tags)) >= SEQ - 2
  test = short + [(chars, tags)]
  eval_file, predict_file = tmp_path / "test.txt", tmp_path / "test_text.txt"
  eval_file.write_text(
    "".join("".join(f"{c} {t}\n" for c, t in zip(*s)) + "\n" for s in test), encoding="utf-8"
  )
  predict_file.write_text("".join("".join(s[0]) + "\n" for s in test), encoding="utf-8")
  model = tmp_path / "model"
  shutil.copytree(tagger.model, model)
  results = finetuning.run(
    _not_given(
      "ner",
      eval_file=str(eval_file),
      predict_file=str(predict_file),
      output_dir=str(model),
      do_predict=True,
    )
  )
  # The oracle: conlleval's counts over the whole file, against the written
  # predictions (one character per line; the truncated tail is O there).
  predicted = _read_conll(model / "predictions.txt")
  assert [p[0] for p in predicted] == [s[0] for s in test]
  gold = sum(len(_entities(s[1])) for s in test)
  found = sum(len(_entities(p[1])) for p in predicted)
  correct = sum(len(_entities(s[1]) & _entities(p[1])) for s, p in zip(test, predicted))
  assert results["gold_entities"] == gold == sum(t.startswith("B-") for s in test for t in s[1])
  assert (results["predicted_entities"], results["correct_entities"]) == (found, correct)
  assert correct > 0
  assert results["f1"] == pytest.approx(2 * correct / (gold + found))
  assert results["recall"] == pytest.approx(correct / gold)
  assert results["truncated_sentences"] == 1
  assert "truncated_sentences = 1\n" in (model / "eval_results.txt").read_text()
