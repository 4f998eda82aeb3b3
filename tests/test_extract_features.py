"""extract_features on real BERT weights against Hugging Face's outputs."""

import json
import os
import shutil

import numpy as np
import pytest
from test_training import _random_init

from bert_pl import errors, extract_features

from conftest import minilm_dir, run_job, shared_path


def test_real_minilm_weights_match_reference(tmp_path):
  """all-MiniLM-L6-v2 via safetensors: ids equal, outputs within 1e-4."""
  reference = json.loads(shared_path("reference", "minilm_l6_v2_hf_outputs.json").read_text())
  examples = reference["examples"]
  input_file = tmp_path / "input.txt"
  input_file.write_text("".join(e["text"] + "\n" for e in examples), encoding="utf-8")
  output_file = tmp_path / "features.jsonl"
  result = run_job(
    "extract_features",
    f"--input_file={input_file}",
    f"--output_file={output_file}",
    f"--init_checkpoint={minilm_dir()}",
    f"--max_seq_length={reference['max_seq_length']}",
    "--layers=-1,-2",
    "--batch_size=3",
  )
  assert "read 8 lines, wrote 8 examples" in result.stdout
  lines = [json.loads(line) for line in output_file.read_text().splitlines()]
  assert [line["linex_index"] for line in lines] == list(range(8))
  for line, example in zip(lines, examples):
    assert line["input_ids"] == example["input_ids"]
    tokens = [f["token"] for f in line["features"]]
    assert (
      tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) == len(example["input_ids"])
    )
    assert [layer["index"] for layer in line["features"][0]["layers"]] == [-1, -2]
    last = np.array([f["layers"][0]["values"] for f in line["features"]])
    assert last.shape == (len(tokens), 384)
    np.testing.assert_allclose(last[:, :4], example["sequence_output_first4"], atol=1e-4)
    np.testing.assert_allclose(line["mean_pooled"], example["mean_pooled"], atol=1e-4)
    # mean_pooled is the mean of the last layer over [CLS] .. [SEP].
    np.testing.assert_allclose(line["mean_pooled"], last.mean(0), atol=2e-6)


def test_pairs_and_bad_input(tmp_path):
  input_file = tmp_path / "pairs.txt"
  input_file.write_text("a man ||| a dog\nsingle text\n", encoding="utf-8")
  output_file = tmp_path / "out.jsonl"
  run_job(
    "extract_features",
    f"--input_file={input_file}",
    f"--output_file={output_file}",
    f"--init_checkpoint={minilm_dir()}",
    "--layers=-1",
    "--num_hidden_layers=2",
  )
  pair, single = [json.loads(line) for line in output_file.read_text().splitlines()]
  assert [f["token"] for f in pair["features"]] == [
    "[CLS]",
    "a",
    "man",
    "[SEP]",
    "a",
    "dog",
    "[SEP]",
  ]
  assert [f["token"] for f in single["features"]] == ["[CLS]", "single", "text", "[SEP]"]

  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"fine\n\xff\xfe broken\n")
  result = run_job(
    "extract_features",
    f"--input_file={bad}",
    f"--output_file={output_file}.2",
    f"--init_checkpoint={minilm_dir()}",
    check=False,
  )
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert f"error: {bad}:2: invalid UTF-8" in result.stderr
  assert not (tmp_path / "out.jsonl.2").exists()


@pytest.fixture(scope="module")
def tiny_init(corpus, tmp_path_factory):
  """The tiny config's model directory at random weights."""
  return _random_init(corpus, tmp_path_factory.mktemp("extract"))


def _extract(init, input_file, output_file, **changes):
  return extract_features.run(
    extract_features.ExtractFeaturesConfig(
      init_checkpoint=str(init),
      input_file=str(input_file),
      output_file=str(output_file),
      layers="-1",
      max_seq_length=32,
      **changes,
    )
  )


def test_output_over_an_input_is_refused(tiny_init, tmp_path):
  """Before: --output_file equal to --input_file replaced the text with its features."""
  text = tmp_path / "text.txt"
  text.write_text("甲乙\n丙丁\n", encoding="utf-8")
  link = tmp_path / "hard_link.txt"
  os.link(text, link)
  vocab = tiny_init / "vocab.txt"
  vocab_copy = tmp_path / "vocab.txt"
  shutil.copy(vocab, vocab_copy)
  for output, flag, path, changes in (
    (text, "--input_file", text, {}),
    (link, "--input_file", text, {}),  # another name of the same file
    (tmp_path / "." / "text.txt", "--input_file", text, {}),
    (vocab_copy, "--vocab_file", vocab_copy, {"vocab_file": str(vocab_copy)}),
  ):
    with pytest.raises(errors.InputError) as refused:
      _extract(tiny_init, text, output, **changes)
    assert str(refused.value) == (
      f"--output_file={output} would write over {flag}={path}; write the output elsewhere"
    )
  assert text.read_text(encoding="utf-8") == "甲乙\n丙丁\n"
  assert vocab_copy.read_bytes() == vocab.read_bytes()
  assert _extract(tiny_init, text, tmp_path / "features.jsonl") == 2
  assert sorted(os.listdir(tmp_path)) == [
    "features.jsonl",
    "hard_link.txt",
    "text.txt",
    "vocab.txt",
  ]


def test_empty_input_is_refused(tiny_init, tmp_path):
  """Before: exit 0 and an empty output (every other job refuses an empty file)."""
  empty = tmp_path / "empty.txt"
  empty.write_text("")
  with pytest.raises(errors.InputError) as refused:
    _extract(tiny_init, empty, tmp_path / "features.jsonl")
  assert str(refused.value) == f"{empty}: empty file (no examples)"
  assert sorted(os.listdir(tmp_path)) == ["empty.txt"]
