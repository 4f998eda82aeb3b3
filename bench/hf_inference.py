"""The PyTorch peer of bench_fast_inference.py (Hugging Face, float32 eager).

Runs in the bench-only environment (.venv-bench: torch 2.13.0 CPU build,
transformers); bert_pl itself never imports PyTorch. The paper's model as
`transformers.BertForSequenceClassification` with random weights (speed does
not depend on them; nothing is downloaded), built from bench_fast_inference's
BERT config. The batches are bench_fast_inference's: its rows already sorted
by length (`prediction.predict_sorted`'s order), cut into batches of
`--batch_size`, each cut to its longest row, as `prediction.Predictor` does.
One pass warms up, the next is timed, as for the other runtimes.

Prints one JSON object: lines/s and the versions.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
import transformers


def batches(arrays, batch_size):
  for start in range(0, len(arrays["input_ids"]), batch_size):
    mask = arrays["input_mask"][start : start + batch_size]
    width = max(int(mask.sum(1).max()), 1)
    yield {
      name: torch.from_numpy(arrays[key][start : start + batch_size, :width].astype(np.int64))
      for name, key in (
        ("input_ids", "input_ids"),
        ("attention_mask", "input_mask"),
        ("token_type_ids", "segment_ids"),
      )
    }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", required=True, help=".npz of bench_fast_inference.py")
  parser.add_argument("--bert_config", required=True, help="its BERT config (JSON)")
  parser.add_argument("--num_labels", type=int, required=True)
  parser.add_argument("--batch_size", type=int, default=256)
  args = parser.parse_args()
  torch.manual_seed(1)
  torch.set_num_threads(os.cpu_count())
  arrays = dict(np.load(args.examples))
  with open(args.bert_config, encoding="utf-8") as f:
    config = transformers.BertConfig(**json.load(f), num_labels=args.num_labels)
  model = transformers.BertForSequenceClassification(config).eval()
  data = list(batches(arrays, args.batch_size))

  def predict():
    with torch.inference_mode():
      return [model(**batch).logits.argmax(-1) for batch in data]

  predict()
  start = time.perf_counter()
  predict()
  elapsed = time.perf_counter() - start
  print(
    json.dumps(
      {
        "lines_per_s": round(len(arrays["input_ids"]) / elapsed, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": model.config._attn_implementation,
      }
    )
  )


if __name__ == "__main__":
  main()
