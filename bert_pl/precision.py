"""Mixed precision: `--dtype=float32|bfloat16|float16`.

bfloat16 and float16 are Keras' `mixed_*` policies: variables (and so
checkpoints and model directories) stay float32, the encoder and heads
compute in the low precision. The losses, the CRF and the softmax over the
vocabulary are computed in float32 (`task_models.loss_terms` casts logits,
`crf.CRF` always runs in float32). float16 also needs loss scaling, or small
gradients underflow to zero: its optimizer is wrapped in a dynamic
`LossScaleOptimizer`, which the training loop asks for the scaled loss and
the unscaled gradients, and which skips a step whose gradients overflow.

Which one is faster depends on the hardware: GPUs with tensor cores (float16,
bfloat16), CPUs with AVX512-BF16 or AMX (bfloat16). On a CPU without them the
low precision is emulated and slower than float32: `bench/` measures it.
"""

import contextlib

import tensorflow as tf

DTYPES = ("float32", "bfloat16", "float16")
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def policy(dtype: str):
  """Layers created inside compute in `dtype`; the previous global policy is
  restored on exit (a layer keeps the policy it was created with)."""
  if dtype not in DTYPES:
    raise ValueError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
  previous = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy(_POLICIES[dtype])
  try:
    yield
  finally:
    tf.keras.mixed_precision.set_global_policy(previous)


def wrap_optimizer(optimizer, dtype: str):
  """Adds dynamic loss scaling for float16; other dtypes need none."""
  if dtype == "float16":
    return tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
  return optimizer


def inner_optimizer(optimizer):
  """The optimizer under any loss scaling: what checkpoints hold, so that a
  run can resume with another `--dtype`."""
  return getattr(optimizer, "inner_optimizer", optimizer)


def uses_loss_scaling(optimizer) -> bool:
  return isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
