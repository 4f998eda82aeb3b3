"""Tokenization strings/s: bert_pl's BertTokenizer vs the original FullTokenizer.

Both tokenize the same texts with the same vocab, WordPiece, lower-casing
on: bert_pl's in-graph tokenizer (tensorflow-text's FastWordpieceTokenizer
inside one tf.function) on batches of 512 strings, and the original BERT
repo's pure-Python FullTokenizer (tf-models-official's copy, with
google-research/bert's 200-character word limit) one string at a time.
Each runs once to warm up, then is timed. Their ids are checked equal.

Two sets of texts:
- `generated`: the generated corpus's texts (~28 characters) with its vocab;
- `real_chinese`: CLUENER2020 and online_shopping_10_cats (reviews, up to a
  few hundred characters) with Google's Chinese vocab, from `--data_dir`
  (the layout of ../shared/data/README.md; left out when absent), every
  k-th text so that both data sets are in the `--lines` taken. The tests
  check every one of those texts id for id (tests/test_tokenization.py);
  this is where their speed is measured.

Prints one JSON object (last line): per set, lines, strings/s of each, the
ratio and whether the ids are identical.

    .venv/bin/python -m bench.bench_tokenization --lines=20000
"""

import argparse
import csv
import json
import pathlib
import tempfile
import time

import tensorflow as tf
from official.nlp.tools import tokenization as original

from bench import common
from bert_pl import tokenization


def real_chinese_texts(data_dir: pathlib.Path):
  """Every text of CLUENER2020 (train, dev, test) and online_shopping_10_cats;
  None when the data are not there."""
  vocab = data_dir / "bert-base-chinese" / "vocab.txt"
  reviews = data_dir / "online_shopping_10_cats" / "online_shopping_10_cats.csv"
  cluener = [data_dir / "cluener2020" / f"{split}.jsonl" for split in ("train", "dev", "test")]
  if not all(path.is_file() for path in [vocab, reviews, *cluener]):
    return None
  texts = []
  for path in cluener:
    with open(path, encoding="utf-8") as f:
      texts += [json.loads(line)["text"] for line in f]
  with open(reviews, encoding="utf-8") as f:
    texts += [row["review"] for row in csv.DictReader(f)]
  return texts, str(vocab)


def measure(texts, vocab_file: str, batch_size: int) -> dict:
  ours = tokenization.BertTokenizer(vocab_file)
  theirs = original.FullTokenizer(vocab_file, do_lower_case=True)
  theirs.wordpiece_tokenizer.max_input_chars_per_word = 200  # google-research/bert's

  def run_ours():
    ids = []
    for start in range(0, len(texts), batch_size):
      ids.extend(
        ours.tokenize_with_offsets(tf.constant(texts[start : start + batch_size])).ids.to_list()
      )
    return ids

  def run_theirs():
    return [theirs.convert_tokens_to_ids(theirs.tokenize(t)) for t in texts]

  rates, outputs = {}, {}
  for name, run in (("bert_pl", run_ours), ("full_tokenizer", run_theirs)):
    run()
    start = time.perf_counter()
    outputs[name] = run()
    rates[name] = round(len(texts) / (time.perf_counter() - start), 1)
  return {
    "lines": len(texts),
    "strings_per_s": rates,
    "identical_ids": outputs["bert_pl"] == outputs["full_tokenizer"],
    "ratio": round(rates["bert_pl"] / rates["full_tokenizer"], 2),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=20000)
  parser.add_argument("--batch_size", type=int, default=512)
  parser.add_argument("--data_dir", default=str(common.REPO.parent / "shared" / "data"))
  args = parser.parse_args()
  corpus = common.make_corpus(
    pathlib.Path(tempfile.mkdtemp(prefix="bench_tok_")), num_unlabeled=args.lines
  )
  texts = (
    pathlib.Path(corpus["dir"], "unlabeled.txt")
    .read_text(encoding="utf-8")
    .replace("\t", " ")
    .splitlines()
  )
  results = {"generated": measure(texts, corpus["vocab"], args.batch_size)}
  real = real_chinese_texts(pathlib.Path(args.data_dir))
  if real is not None:
    texts, vocab = real
    step = max(1, len(texts) // args.lines)
    results["real_chinese"] = measure(texts[::step][: args.lines], vocab, args.batch_size)
  print(json.dumps(results))


if __name__ == "__main__":
  main()
