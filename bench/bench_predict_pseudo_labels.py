"""predict_pseudo_labels throughput: length-sorted, trimmed batches vs padding.

The paper's model shape (3 layers, hidden 768, 12 heads; random weights: speed
does not depend on them) classifies generated texts of the paper's lengths
(sample corpus, ~28 characters) at max_seq_length 64, batch 256, in one
process:
  baseline  batches in input order, padded to max_seq_length;
  trimmed   batches in input order, cut to their longest row;
  sorted    what the job does: windows of 64 batches sorted by length, each
            batch cut to its longest row.
Each mode runs once to warm up, then is timed; rates are lines/s.

    .venv/bin/python bench/bench_predict_pseudo_labels.py --lines=4096
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bert_pl import features, input_files, modeling, prediction, task_models, tokenization  # noqa: E402
from data_prep import build_vocab, make_sample_corpus  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=4096)
  parser.add_argument("--hidden_size", type=int, default=768)
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--json_output", default=None)
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_predict_"))
  make_sample_corpus.main([f"--output_dir={work}", f"--num_unlabeled={args.lines}",
                           "--num_ner_unlabeled=10", "--num_train=10", "--num_test=10",
                           "--num_ner_train=10", "--num_ner_test=10"])
  build_vocab.main([f"--input_file={work}/unlabeled.txt", f"--output_file={work}/vocab.txt"])
  tokenizer = tokenization.BertTokenizer(str(work / "vocab.txt"))
  examples = list(input_files.read_unlabeled(str(work / "unlabeled.txt"), input_files.Counts()))
  encoded, _ = features.FeatureEncoder(tokenizer, 64, "none").encode(examples)
  encoded = {k: encoded[k] for k in ("input_ids", "input_mask", "segment_ids")}
  lengths = encoded["input_mask"].sum(1)
  config = modeling.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=args.hidden_size,
                               num_hidden_layers=3, num_attention_heads=12,
                               intermediate_size=4 * args.hidden_size)
  model = task_models.BertTaskModel(config, "classification", 20)
  window = 64 * args.batch_size

  def sorted_predict(predictor):
    for start in range(0, len(lengths), window):
      part = {k: v[start:start + window] for k, v in encoded.items()}
      order = np.argsort(part["input_mask"].sum(1), kind="stable")
      predictor.predict({k: v[order] for k, v in part.items()})

  modes = {
      "baseline (padded to 64)": lambda: prediction.Predictor(
          model, args.batch_size, trim_padding=False).predict(encoded),
      "trimmed, input order": lambda: prediction.Predictor(model, args.batch_size).predict(encoded),
      "sorted + trimmed (the job)": lambda: sorted_predict(prediction.Predictor(model, args.batch_size)),
  }
  rates = {}
  for name, run in modes.items():
    run()
    start = time.perf_counter()
    run()
    rates[name] = len(lengths) / (time.perf_counter() - start)
  baseline = rates["baseline (padded to 64)"]
  print(f"{args.lines} lines, mean length {lengths.mean():.1f} tokens (max {lengths.max()}), "
        f"hidden {args.hidden_size}, batch {args.batch_size}")
  print(f"{'mode':<30}{'lines/s':>10}{'ratio':>8}")
  for name, rate in rates.items():
    print(f"{name:<30}{rate:>10.0f}{rate / baseline:>8.2f}")
  if args.json_output:
    pathlib.Path(args.json_output).write_text(json.dumps(
        {"lines": args.lines, "mean_tokens": float(lengths.mean()),
         "lines_per_s": rates, "ratio_sorted_vs_padded":
         rates["sorted + trimmed (the job)"] / baseline}, indent=2) + "\n")


if __name__ == "__main__":
  main()
