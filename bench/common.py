"""What the benchmarks share: the corpus, the paper's model shape, FLOP counts
and the matmul peak they are compared with.

The corpus is the project's generated sample corpus: classification items
average 28 characters (the paper's short user texts, max under 64 tokens),
NER descriptions 18. Its vocab is padded with [unused] tokens to 21,128
entries, the size of Google's Chinese vocab, so that the embedding table and
the MLM output layer cost what the paper's model costs.
"""

import json
import os
import pathlib
import subprocess
import time
from typing import Dict, Iterable, Sequence, Tuple

from data_prep import build_vocab, make_sample_corpus

REPO = pathlib.Path(__file__).resolve().parent.parent

CHINESE_VOCAB_SIZE = 21128
PAPER_MODEL = dict(
  hidden_size=768,
  num_hidden_layers=3,
  num_attention_heads=12,
  intermediate_size=3072,
  max_position_embeddings=512,
  type_vocab_size=2,
  hidden_act="gelu",
)


def make_corpus(
  directory: pathlib.Path, num_train: int = 10, num_unlabeled: int = 10, num_ner_train: int = 10
) -> Dict[str, str]:
  """Generates the sample corpus and a vocab of 21,128 tokens; returns paths."""
  directory.mkdir(parents=True, exist_ok=True)
  make_sample_corpus.run(
    make_sample_corpus.MakeSampleCorpusConfig(
      str(directory),
      num_train=num_train,
      num_unlabeled=num_unlabeled,
      num_ner_train=num_ner_train,
      num_test=10,
      num_ner_test=10,
      num_ner_unlabeled=10,
    )
  )
  vocab = directory / "vocab.txt"
  build_vocab.run(
    build_vocab.BuildVocabConfig(f"{directory}/unlabeled.txt,{directory}/train.tsv", str(vocab))
  )
  tokens = vocab.read_text(encoding="utf-8").splitlines()
  tokens += [f"[unused{i}]" for i in range(len(tokens), CHINESE_VOCAB_SIZE)]
  vocab.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
  return {"dir": str(directory), "vocab": str(vocab)}


def write_paper_config(path: pathlib.Path, **changes) -> str:
  values = dict(
    PAPER_MODEL,
    vocab_size=CHINESE_VOCAB_SIZE,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    initializer_range=0.02,
    **changes,
  )
  path.write_text(json.dumps(values, indent=2) + "\n")
  return str(path)


def forward_flops_per_token(
  width: float, hidden: int = 768, layers: int = 3, intermediate: int = 3072
) -> float:
  """Encoder FLOPs per token of a sequence `width` tokens wide: the QKV,
  output and feed-forward matmuls (2 x (4 H^2 + 2 H I)) and attention
  scores and sums (2 x 2 x width x H), per layer."""
  return layers * (2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * width * hidden)


def training_flops(
  tokens: float,
  width: float,
  examples: float,
  predictions_per_seq: int,
  task: str,
  num_labels: int,
  hidden: int = 768,
  layers: int = 3,
  intermediate: int = 3072,
  vocab: int = CHINESE_VOCAB_SIZE,
) -> float:
  """FLOPs of training steps (forward + backward = 3 x forward) computing
  `tokens` token positions (padding included) in sequences `width` wide:
  encoder, pooler, the MLM head at the gathered positions (dense + decoder)
  and the task head. 9.28 GFLOP per example for the paper model at width 64
  with 10 predictions and a classifier."""
  forward = tokens * forward_flops_per_token(width, hidden, layers, intermediate)
  forward += examples * 2 * hidden * hidden  # pooler
  forward += examples * predictions_per_seq * 2 * (hidden * hidden + hidden * vocab)
  if task == "classification":
    forward += examples * 2 * hidden * num_labels
  elif task == "ner":
    forward += tokens * 2 * hidden * num_labels
  return 3 * forward


def matmul_peak(
  shapes: Iterable[Tuple[int, int, int]], dtype: str = "float32", repeats: int = 5
) -> float:
  """The best GFLOP/s of TensorFlow's matmul over `shapes` (m, k, n): the
  model's own GEMM shapes, measured in this process."""
  import tensorflow as tf

  best = 0.0
  for m, k, n in shapes:
    a = tf.cast(tf.random.normal([m, k]), dtype)
    b = tf.cast(tf.random.normal([k, n]), dtype)
    matmul = tf.function(tf.matmul)
    matmul(a, b).numpy()
    for _ in range(repeats):
      start = time.perf_counter()
      for _ in range(3):
        c = matmul(a, b)
      c.numpy()
      best = max(best, 3 * 2 * m * k * n / (time.perf_counter() - start) / 1e9)
  return best


def model_gemm_shapes(tokens: int, hidden: int = 768, intermediate: int = 3072):
  return [(tokens, hidden, hidden), (tokens, hidden, intermediate), (tokens, intermediate, hidden)]


def run_output(command: Sequence[str], env: Dict[str, str] = None, cwd=REPO) -> str:
  """Runs a process to completion; returns its stdout (exits on failure)."""
  result = subprocess.run(
    list(command),
    cwd=cwd,
    capture_output=True,
    text=True,
    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
  )
  if result.returncode:
    raise SystemExit(f"{' '.join(command[:3])} failed:\n{result.stderr[-3000:]}")
  return result.stdout


def run_json(command: Sequence[str], env: Dict[str, str] = None, cwd=REPO) -> dict:
  """Runs a benchmark process that prints its results as JSON on its last
  stdout line."""
  return json.loads(run_output(command, env, cwd).strip().splitlines()[-1])
