"""The Hugging Face transformers baseline of bench_training.py (PyTorch, fp32).

Runs in the bench-only environment (.venv-bench: torch 2.13.0 CPU build,
transformers); bert_pl itself never imports PyTorch. The paper's model as
`transformers.BertModel` + `BertOnlyMLMHead` (decoder tied to the word
embeddings) applied at the gathered masked positions + the task head:
dropout + linear on the pooled [CLS] output, or per-token potentials and a
linear-chain CRF (forward algorithm in PyTorch) for NER. AdamW (weight decay
0.01) and gradient clipping to norm 1.0, as bert_pl. Batches of the examples
in file order, each padded to its longest row.

Prints one JSON object: examples/s and real tokens/s over the timed steps.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
import transformers
from transformers.models.bert import modeling_bert


class PretrainingModel(torch.nn.Module):
  def __init__(self, config, task, num_labels):
    super().__init__()
    self.bert = modeling_bert.BertModel(config)
    self.mlm = modeling_bert.BertOnlyMLMHead(config)
    self.mlm.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
    self.task = task
    self.dropout = torch.nn.Dropout(config.hidden_dropout_prob)
    self.head = torch.nn.Linear(config.hidden_size, num_labels)
    self.transitions = torch.nn.Parameter(torch.zeros(num_labels, num_labels))

  def forward(self, batch):
    out = self.bert(
      input_ids=batch["input_ids"],
      attention_mask=batch["input_mask"],
      token_type_ids=batch["segment_ids"],
    )
    sequence = out.last_hidden_state
    positions = batch["masked_lm_positions"]
    gathered = torch.gather(sequence, 1, positions[:, :, None].expand(-1, -1, sequence.shape[-1]))
    logits = self.mlm(gathered)
    weights = batch["masked_lm_weights"]
    per_position = torch.nn.functional.cross_entropy(
      logits.reshape(-1, logits.shape[-1]), batch["masked_lm_ids"].reshape(-1), reduction="none"
    )
    loss = (per_position * weights.reshape(-1)).sum() / (weights.sum() + 1e-5)
    if self.task == "classification":
      task_logits = self.head(self.dropout(out.pooler_output))
      loss = loss + torch.nn.functional.cross_entropy(task_logits, batch["label_ids"].reshape(-1))
    else:
      potentials = self.head(self.dropout(sequence))
      loss = (
        loss
        - crf_log_likelihood(
          potentials, batch["tag_ids"], batch["input_mask"], self.transitions
        ).mean()
      )
    return loss


def crf_log_likelihood(potentials, tags, mask, transitions):
  """log p(tags) per sequence of a linear-chain CRF over the masked positions."""
  mask = mask.bool()
  batch = torch.arange(potentials.shape[0])
  score = potentials[batch, 0, tags[:, 0]]
  alphas = potentials[:, 0]
  for t in range(1, potentials.shape[1]):
    step = mask[:, t]
    score = score + torch.where(
      step, potentials[batch, t, tags[:, t]] + transitions[tags[:, t - 1], tags[:, t]], 0.0
    )
    new = torch.logsumexp(alphas[:, :, None] + transitions, 1) + potentials[:, t]
    alphas = torch.where(step[:, None], new, alphas)
  return score - torch.logsumexp(alphas, 1)


def batches(arrays, batch_size):
  n = len(arrays["input_ids"]) // batch_size
  while True:
    for i in range(n):
      rows = slice(i * batch_size, (i + 1) * batch_size)
      width = int(arrays["input_mask"][rows].sum(1).max())
      yield {
        k: torch.from_numpy(v[rows, :width] if k in SEQUENCE else v[rows]).long()
        if k != "masked_lm_weights"
        else torch.from_numpy(v[rows]).float()
        for k, v in arrays.items()
      }


SEQUENCE = ("input_ids", "input_mask", "segment_ids", "tag_ids")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", required=True, help=".npz of bench_training.py")
  parser.add_argument("--task", choices=["classification", "ner"], required=True)
  parser.add_argument("--num_labels", type=int, required=True)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--warmup_steps", type=int, default=3)
  parser.add_argument("--timed_steps", type=int, default=10)
  args = parser.parse_args()
  torch.manual_seed(1)
  torch.set_num_threads(os.cpu_count())
  arrays = dict(np.load(args.examples))
  config = transformers.BertConfig(
    vocab_size=21128,
    hidden_size=768,
    num_hidden_layers=3,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu_new",
    type_vocab_size=2,
  )
  model = PretrainingModel(config, args.task, args.num_labels).train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
  data = batches(arrays, args.batch_size)

  def step(batch):
    optimizer.zero_grad(set_to_none=True)
    loss = model(batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss)

  for _ in range(args.warmup_steps):
    step(next(data))
  real = padded = 0
  start = time.perf_counter()
  for _ in range(args.timed_steps):
    batch = next(data)
    real += int(batch["input_mask"].sum())
    padded += batch["input_ids"].numel()
    loss = step(batch)
  elapsed = time.perf_counter() - start
  print(
    json.dumps(
      {
        "examples_per_s": round(args.timed_steps * args.batch_size / elapsed, 2),
        "real_tokens_per_s": round(real / elapsed, 1),
        "padding_share": round(1 - real / padded, 3),
        "mean_width": round(padded / (args.timed_steps * args.batch_size), 1),
        "total_loss": loss,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": model.bert.config._attn_implementation,
      }
    )
  )


if __name__ == "__main__":
  main()
