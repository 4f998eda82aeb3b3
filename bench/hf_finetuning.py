"""The Hugging Face side of bench_finetuning_parity.py (PyTorch, fp32).

Runs in the bench-only environment (.venv-bench). `BertForSequenceClassification`
from a Hugging Face BERT directory with its first `--num_hidden_layers`
layers, fine-tuned as bert_pl's run_classifier does: AdamW (eps 1e-6, weight
decay 0.01 on all but LayerNorm and biases), linear warmup over
`--warmup_proportion` of the steps then linear decay to 0, gradient clipping
at global norm 1.0, dropout 0.1, shuffled batches. Input ids come from the
same vocab.txt (BertTokenizer, lower case), max_seq_length as bert_pl.

Prints one JSON object: dev accuracy and the training loss at every step.
"""

import argparse
import json
import os

import numpy as np
import torch
import transformers


def read_tsv(path):
  labels, texts = [], []
  with open(path, encoding="utf-8") as f:
    for line in f:
      label, text = line.rstrip("\n").split("\t", 1)
      labels.append(int(label))
      texts.append(text)
  return labels, texts


def encode(tokenizer, texts, max_seq_length):
  batch = tokenizer(
    texts, max_length=max_seq_length, truncation=True, padding="max_length", return_tensors="pt"
  )
  return batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  for name in ("model_dir", "train_file", "eval_file"):
    parser.add_argument(f"--{name}", required=True)
  parser.add_argument("--num_hidden_layers", type=int, default=3)
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--learning_rate", type=float, default=2e-4)
  parser.add_argument("--warmup_proportion", type=float, default=0.1)
  parser.add_argument("--seed", type=int, default=1)
  args = parser.parse_args()
  torch.manual_seed(args.seed)
  torch.set_num_threads(os.cpu_count())
  tokenizer = transformers.BertTokenizer(
    os.path.join(args.model_dir, "vocab.txt"), do_lower_case=True
  )
  model = transformers.BertForSequenceClassification.from_pretrained(
    args.model_dir,
    num_hidden_layers=args.num_hidden_layers,
    num_labels=2,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
  )
  train_labels, train_texts = read_tsv(args.train_file)
  eval_labels, eval_texts = read_tsv(args.eval_file)
  train = encode(tokenizer, train_texts, args.max_seq_length)
  labels = torch.tensor(train_labels)
  steps_per_epoch = -(-len(train_labels) // args.batch_size)
  num_steps = steps_per_epoch * args.epochs
  no_decay = ("bias", "LayerNorm.weight")
  groups = [
    {
      "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
      "weight_decay": 0.01,
    },
    {
      "params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
      "weight_decay": 0.0,
    },
  ]
  optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-6)
  schedule = transformers.get_linear_schedule_with_warmup(
    optimizer, int(num_steps * args.warmup_proportion), num_steps
  )
  generator = torch.Generator().manual_seed(args.seed)
  losses = []
  model.train()
  for _ in range(args.epochs):
    order = torch.randperm(len(train_labels), generator=generator)
    for start in range(0, len(order), args.batch_size):
      rows = order[start : start + args.batch_size]
      out = model(
        input_ids=train[0][rows],
        attention_mask=train[1][rows],
        token_type_ids=train[2][rows],
        labels=labels[rows],
      )
      optimizer.zero_grad(set_to_none=True)
      out.loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      optimizer.step()
      schedule.step()
      losses.append(float(out.loss))
  model.eval()
  evaluation = encode(tokenizer, eval_texts, args.max_seq_length)
  predicted = []
  with torch.no_grad():
    for start in range(0, len(eval_labels), 128):
      rows = slice(start, start + 128)
      logits = model(
        input_ids=evaluation[0][rows],
        attention_mask=evaluation[1][rows],
        token_type_ids=evaluation[2][rows],
      ).logits
      predicted.extend(logits.argmax(-1).tolist())
  accuracy = float(np.mean(np.array(predicted) == np.array(eval_labels)))
  print(
    json.dumps(
      {
        "accuracy": accuracy,
        "losses": losses,
        "steps": num_steps,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
      }
    )
  )


if __name__ == "__main__":
  main()
