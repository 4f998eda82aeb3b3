"""AdamW as the AdamW paper, PyTorch and Hugging Face compute it.

The update of a variable w with gradient g at step t (1-based) is

    m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
    w = w - lr wd w - lr m_hat / (sqrt(v_hat) + eps),
    m_hat = m / (1 - b1^t),          v_hat = v / (1 - b2^t),

with the decoupled decay `lr wd w` on every variable but LayerNorm and
biases (Loshchilov & Hutter; `torch.optim.AdamW`).

Three Adams go by the name "BERT's AdamW", and they differ where it matters
for a pretrained model, whose gradients are small:

- google-research/bert `AdamWeightDecayOptimizer`: no bias correction at all,
  `m / (sqrt(v) + eps)`: the first steps move by (1 - b1) of the reference
  step, which acts as an extra warmup.
- tf-models-official `AdamWeightDecay` (Keras' legacy Adam): bias correction
  folded into the learning rate and eps added to the *uncorrected* sqrt(v),
  i.e. an effective eps of eps / sqrt(1 - b2^t): 31.6x eps at step 1, still
  2.4x at step 188 (b2 = 0.999). With eps = 1e-6 and gradients of 1e-6..1e-5
  this shrinks updates several-fold; fine-tuning MiniLM's first 3 layers on
  2,000 SST-2 sentences stayed 10 points below Hugging Face because of it.
- the reference above, which bert_pl uses, so that learning rates and
  results transfer from the PyTorch / Hugging Face recipes users know.

`AdamW` is tf-models' optimizer with one change: the eps handed to Keras'
fused Adam kernel is eps * sqrt(1 - b2^t), which turns its
`lr_t m / (sqrt(v) + eps')` (lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)) into
exactly `lr m_hat / (sqrt(v_hat) + eps)`. Its variables (slots `m` and `v`,
`iter`, the hyper-parameters) are tf-models', so checkpoints written with the
old optimizer restore into it unchanged and resume.
"""

import tensorflow as tf
from official.nlp import optimization

WEIGHT_DECAY_EXCLUDED = ("LayerNorm", "layer_norm", "bias")


class AdamW(optimization.AdamWeightDecay):
  """Decoupled AdamW with bias correction (module doc); no clipping inside:
  the training loop clips the all-reduced gradients."""

  def __init__(
    self,
    learning_rate,
    weight_decay_rate: float = 0.01,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-6,
    name: str = "AdamWeightDecay",
    **kwargs,
  ):
    super().__init__(
      learning_rate=learning_rate,
      beta_1=beta_1,
      beta_2=beta_2,
      epsilon=epsilon,
      weight_decay_rate=weight_decay_rate,
      exclude_from_weight_decay=list(WEIGHT_DECAY_EXCLUDED),
      gradient_clip_norm=0.0,
      name=name,
      **kwargs,
    )

  def _prepare_local(self, var_device, var_dtype, apply_state):
    super()._prepare_local(var_device, var_dtype, apply_state)
    coefficients = apply_state[(var_device, var_dtype)]
    coefficients["epsilon"] = coefficients["epsilon"] * tf.sqrt(1.0 - coefficients["beta_2_power"])


class AfterHeadWarmup(tf.keras.optimizers.schedules.LearningRateSchedule):
  """`head_learning_rate` for the first `head_steps` steps (the MLM head's
  warm-up, `run_pretraining`), then `schedule` from its own step 0: the
  training after the warm-up has the schedule it has without one."""

  def __init__(self, head_steps: int, head_learning_rate: float, schedule):
    super().__init__()
    self.head_steps = head_steps
    self.head_learning_rate = head_learning_rate
    self.schedule = schedule

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    after = self.schedule(tf.maximum(step - self.head_steps, 0.0))
    return tf.where(step < self.head_steps, tf.cast(self.head_learning_rate, after.dtype), after)


def create_optimizer(
  learning_rate: float,
  num_train_steps: int,
  num_warmup_steps: int,
  weight_decay: float = 0.01,
  head_warmup: tuple = (0, 0.0),
) -> AdamW:
  """`AdamW` (betas 0.9/0.999, epsilon 1e-6 as BERT) with linear warmup to
  `learning_rate`, then linear decay to 0 at `num_train_steps`; after
  `head_warmup` = (steps, constant learning rate) of an MLM head warm-up
  when its steps are not 0 (`AfterHeadWarmup`)."""
  schedule = tf.keras.optimizers.schedules.PolynomialDecay(
    learning_rate, max(num_train_steps, 1), end_learning_rate=0.0
  )
  if num_warmup_steps:
    schedule = optimization.WarmUp(learning_rate, schedule, num_warmup_steps)
  if head_warmup[0]:
    schedule = AfterHeadWarmup(*head_warmup, schedule)
  return AdamW(schedule, weight_decay_rate=weight_decay)
