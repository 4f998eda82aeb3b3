"""Step 3 on the fast path (`fast_inference`) against the TensorFlow job.

Speed: the paper's model (3 layers, hidden 768, vocab 21,128, 318 classes;
random weights: speed does not depend on them) on the generated corpus's
texts at max_seq_length 64, batch 256, in one process:
  model_*     model time on the same length-sorted batches cut to their
              longest row (`prediction.predict_sorted`): TensorFlow float32
              (what the job runs), ONNX Runtime float32 and dynamic int8
              (the fast path's `FastPredictor`);
  job_*       the whole job (`predict_pseudo_labels.run`: loading the
              model, tracing the tokenizer, reading, tokenization, prediction,
              writing) on the TensorFlow model and with `--fast_model` float32
              and int8, end to end on the `--lines` lines;
  steady_*    the same jobs' rate once started: lines / (job time - the
              time of the same job on a 16-line file, its start-up). A pool
              of hundreds of millions of lines runs at this rate, so the
              projected machine-days use it;
  model_torch_float32  the peer: Hugging Face BertForSequenceClassification
              in PyTorch (`hf_inference.py`, run by `--hf_python`, the
              bench-only .venv-bench of bench/setup_venv_bench.sh) on the
              same token ids in the same batches (a temporary .npz);
              skipped, with the reason, when that Python is absent.
Each runs once to warm up, then is timed; rates are lines/s, ratios against
TensorFlow in the same run, and the projected machine-days for 500 million
lines at each steady rate; `startup_s` is each job's start-up.

Accuracy: for each trained `--model_dir` with its labeled `--test_file`,
the fast models (exported to a temporary directory, never into the model
directory) are checked as the job's gate checks them (`fast_inference.check`):
label (tag) agreement with float32 TensorFlow and accuracy (entity F1) of both.

Prints one JSON object (last line).

    .venv/bin/python -m bench.bench_fast_inference --lines=4096 \\
      --model_dir=out/banking77/model_b --test_file=out/banking77/data/test.tsv
"""

import argparse
import json
import pathlib
import shutil
import tempfile
import time

import numpy as np

from bench import common
from bench.bench_predict_pseudo_labels import write_model_dir
from bert_pl import (
  export_fast_model,
  fast_inference,
  features,
  input_files,
  model_dir,
  modeling,
  predict_pseudo_labels,
  prediction,
  task_models,
  tokenization,
)

POOL_LINES = 500e6
STARTUP_LINES = 16  # a job on this many lines: its start-up
NUM_LABELS = 318


def seconds(function) -> float:
  """The time of `function`'s second call (the first warms up)."""
  function()
  start = time.perf_counter()
  function()
  return time.perf_counter() - start


def torch_peer(work: pathlib.Path, hf_python: str, directory, encoded, batch_size: int):
  """Lines/s of the PyTorch peer on the rows in `predict_sorted`'s order."""
  order = np.argsort(encoded["input_mask"].sum(1), kind="stable")
  arrays = work / "batches.npz"
  np.savez(arrays, **{k: encoded[k][order] for k in ("input_ids", "input_mask", "segment_ids")})
  peer = common.run_json(
    [
      hf_python,
      str(common.REPO / "bench/hf_inference.py"),
      f"--examples={arrays}",
      f"--bert_config={directory / 'bert_config.json'}",
      f"--num_labels={NUM_LABELS}",
      f"--batch_size={batch_size}",
    ]
  )
  arrays.unlink()
  return peer


def speed(work: pathlib.Path, lines: int, batch_size: int, hf_python: str):
  corpus = common.make_corpus(work / "corpus", num_unlabeled=lines)
  pool = str(work / "corpus" / "unlabeled.txt")
  tokenizer = tokenization.BertTokenizer(corpus["vocab"])
  examples = list(input_files.read_unlabeled(pool, input_files.Counts()))
  encoded, _ = features.FeatureEncoder(tokenizer, 64, "none").encode(examples)
  config = modeling.BertConfig(vocab_size=tokenizer.vocab_size, **common.PAPER_MODEL)
  labels = [f"label{i}" for i in range(NUM_LABELS)]
  model = task_models.BertTaskModel(config, "classification", len(labels))
  directory = work / "model_b"
  write_model_dir(directory, config, corpus["vocab"], model, labels)
  info = model_dir.read_task_info(str(directory))
  fast = {
    q: export_fast_model.run(
      export_fast_model.FastModelConfig(
        model_dir=str(directory), quantize=q, output_file=str(work / f"model.{q}.onnx")
      )
    )
    for q in ("none", "int8")
  }
  predictors = {
    "tf_float32": prediction.Predictor(model, batch_size),
    "ort_float32": fast_inference.FastPredictor(fast["none"], str(directory), info, batch_size),
    "ort_int8": fast_inference.FastPredictor(fast["int8"], str(directory), info, batch_size),
  }
  rates, outputs = {}, {}
  for name, predictor in predictors.items():
    rates[f"model_{name}"] = round(
      len(examples)
      / seconds(
        lambda p=predictor, n=name: outputs.__setitem__(n, prediction.predict_sorted(p, encoded))
      ),
      1,
    )
  skipped, versions = {}, {}
  if hf_python and pathlib.Path(hf_python).exists():
    peer = torch_peer(work, hf_python, directory, encoded, batch_size)
    rates["model_torch_float32"] = peer.pop("lines_per_s")
    versions = peer
  else:
    skipped["model_torch_float32"] = (
      f"--hf_python={hf_python} not found: run bench/setup_venv_bench.sh"
    )
  agreement = {
    name: float(np.mean(outputs[name]["label_ids"] == outputs["tf_float32"]["label_ids"]))
    for name in ("ort_float32", "ort_int8")
  }
  head = work / "head.txt"
  with open(pool, encoding="utf-8") as f:
    head.write_text("".join(f.readline() for _ in range(STARTUP_LINES)), encoding="utf-8")
  startup = {}
  for name, model_file in (("tf_float32", None), ("fast_float32", fast["none"])) + (
    ("fast_int8", fast["int8"]),
  ):
    output = work / f"pseudo_{name}"

    def job(input_file=pool, model_file=model_file, output=output):
      shutil.rmtree(output, ignore_errors=True)
      predict_pseudo_labels.run(
        predict_pseudo_labels.PredictPseudoLabelsConfig(
          str(directory),
          str(input_file),
          str(output),
          predict_batch_size=batch_size,
          fast_model=model_file,
          force_quantized=model_file == fast["int8"],
        )
      )

    whole = seconds(job)
    startup[name] = round(seconds(lambda j=job: j(input_file=head)), 2)
    rates[f"job_{name}"] = round(len(examples) / whole, 1)
    rates[f"steady_{name}"] = round(len(examples) / max(whole - startup[name], 1e-9), 1)
  lengths = encoded["input_mask"].sum(1)
  return {
    "lines": len(examples),
    "batch_size": batch_size,
    "mean_tokens": round(float(lengths.mean()), 1),
    "max_tokens": int(lengths.max()),
    "num_labels": NUM_LABELS,
    "lines_per_s": rates,
    "vs_tf": {k: round(v / rates[k.split("_")[0] + "_tf_float32"], 2) for k, v in rates.items()},
    "startup_s": startup,
    "skipped": skipped,
    "torch_peer": versions,
    "random_weights_label_agreement": agreement,
    "machine_days_500m": {
      k: round(POOL_LINES / v / 86400, 1) for k, v in rates.items() if k.startswith("steady_")
    },
  }


def accuracy(work: pathlib.Path, directory: str, test_file: str, batch_size: int):
  info = model_dir.read_task_info(directory)
  results = {"task": info["task"], "test_file": test_file}
  for quantize in ("none", "int8"):
    path = export_fast_model.run(
      export_fast_model.FastModelConfig(
        model_dir=directory, quantize=quantize, output_file=str(work / f"trained.{quantize}.onnx")
      )
    )
    fast = fast_inference.FastPredictor(path, directory, info, batch_size)
    check = fast_inference.check(
      directory, fast, test_file, batch_size, str(work / f"check_{quantize}"), 0.0
    )
    results[quantize] = {
      k: check[k] for k in ("examples", "agreement", "metric", "float32", "fast")
    }
    results[quantize]["difference_points"] = round(check["difference_points"], 3)
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=4096)
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument(
    "--hf_python",
    default=str(common.REPO / ".venv-bench/bin/python"),
    help="Python of the bench-only environment; empty: skip the PyTorch peer.",
  )
  parser.add_argument("--model_dir", action="append", default=[], help="trained, repeatable")
  parser.add_argument("--test_file", action="append", default=[], help="one per --model_dir")
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_fast_"))
  try:
    result = {"speed": speed(work, args.lines, args.batch_size, args.hf_python), "trained": []}
    for directory, test_file in zip(args.model_dir, args.test_file):
      result["trained"].append(accuracy(work, directory, test_file, args.batch_size))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
