"""Tokenization strings/s: bert_pl's BertTokenizer vs the original FullTokenizer.

Both tokenize the generated corpus's texts (~28 characters) with the same
vocab, WordPiece, lower-casing on: bert_pl's in-graph tokenizer
(tensorflow-text's FastWordpieceTokenizer inside one tf.function) on
batches of 512 strings, and the original BERT repo's pure-Python
FullTokenizer (tf-models-official's copy) one string at a time. Each runs
once to warm up, then is timed. Their ids are checked equal.

Prints one JSON object (last line).

    .venv/bin/python -m bench.bench_tokenization --lines=20000
"""

import argparse
import json
import pathlib
import tempfile
import time

import tensorflow as tf
from official.nlp.tools import tokenization as original

from bench import common
from bert_pl import tokenization


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=20000)
  parser.add_argument("--batch_size", type=int, default=512)
  args = parser.parse_args()
  corpus = common.make_corpus(pathlib.Path(tempfile.mkdtemp(prefix="bench_tok_")),
                              num_unlabeled=args.lines)
  texts = pathlib.Path(corpus["dir"], "unlabeled.txt").read_text(
      encoding="utf-8").replace("\t", " ").splitlines()
  ours = tokenization.BertTokenizer(corpus["vocab"])
  theirs = original.FullTokenizer(corpus["vocab"], do_lower_case=True)

  def run_ours():
    ids = []
    for start in range(0, len(texts), args.batch_size):
      ids.extend(ours.tokenize_with_offsets(tf.constant(texts[start:start + args.batch_size]))
                 .ids.to_list())
    return ids

  def run_theirs():
    return [theirs.convert_tokens_to_ids(theirs.tokenize(t)) for t in texts]

  rates, outputs = {}, {}
  for name, run in (("bert_pl", run_ours), ("full_tokenizer", run_theirs)):
    run()
    start = time.perf_counter()
    outputs[name] = run()
    rates[name] = round(len(texts) / (time.perf_counter() - start), 1)
  same = outputs["bert_pl"] == outputs["full_tokenizer"]
  print(json.dumps({"lines": len(texts), "strings_per_s": rates, "identical_ids": same,
                    "ratio": round(rates["bert_pl"] / rates["full_tokenizer"], 2)}))


if __name__ == "__main__":
  main()
