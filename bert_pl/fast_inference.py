"""Step 3 on ONNX Runtime: the fast model artefact, its predictor and the
accuracy gate of a quantized one (DESIGN §12c).

Step 3 labels the whole pool, so it is the job whose cost grows with the
data. Measured on one 2-core machine with the paper's model (bench/
bench_fast_inference.py), ONNX Runtime with dynamic int8 quantization
predicts about twice as fast as TensorFlow's float32; TensorFlow Lite
(XNNPACK) was slower than TensorFlow itself. So `export_fast_model` converts the
encoder and task head of a fine-tuned model directory to ONNX (tf2onnx),
int8 or float32, and `predict_pseudo_labels --fast_model` runs it instead
of the TensorFlow model. The rest of the job is the same code: the one
tokenizer and encoder, the length-sorted batches cut to their longest row
(`prediction.Predictor`), the softmax, and for NER the exact CRF: the fast
model gives the emissions only, decoded by bert_pl's Viterbi on the float32
transitions read from the model directory's checkpoint.

The artefact is `MODEL_DIR/export/model.onnx` (float32) or
`model.int8.onnx`, with `<file>.json` beside it: the sha256 of the model
file and the fingerprint of the weights, labels and vocabulary it was made
from (`model_dir.fingerprint`), the checkpoint's name, the task, the
quantization and the input names. Step 3 checks both digests, not names: a
fast model of another directory whose checkpoint has the same name, or of
this one trained further, is refused, and so is a truncated or damaged one.

Quantized weights change predictions a little. A quantized model is used
only after `check` has compared it with the float32 TensorFlow model on a
labeled file (`--calibration_file`, e.g. the step-2 dev or test set): the
share of labels (NER: tags of CoNLL tokens) on which they agree, and the
accuracy (entity F1) of both, go to `quantization_check.json` beside the
outputs; under `--min_agreement` the job refuses unless forced. Dynamic
quantization scales a batch's activations by the batch's range, so an int8
row's logits depend on the other rows of its batch (float32 ones do not,
beyond rounding): the Beam job, which batches otherwise, and the
single-process job can then differ on near ties (on 400 lines of the tests'
tiny model: 3 labels, confidences by up to 1.5e-3; float32: identical).
"""

import contextlib
import importlib
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf

from bert_pl import (
  atomic_files,
  checkpoints,
  crf,
  errors,
  evaluation,
  features,
  input_files,
  manifest,
  model_dir,
  prediction,
)

QUANTIZATIONS = ("int8", "none")
CHECK_FILE = "quantization_check.json"
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAME = "logits"
# What step 3 checks in a fast model's JSON (`read_info`).
INFO_KEYS = ("fingerprint", "model_sha256", "quantization")
TF2ONNX_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"
INSTALL_HINT = "pip install 'bert_pl[onnx]' (run_scripts/setup_venv.sh installs it)"


def default_path(directory: str, quantize: str) -> str:
  """Where `export_fast_model` writes a model directory's fast model."""
  name = "model.int8.onnx" if quantize == "int8" else "model.onnx"
  return os.path.join(directory, "export", name)


def info_path(path: str) -> str:
  return path + ".json"


def _import(module: str):
  """A module of the `onnx` extra, or one line telling how to install it."""
  try:
    return importlib.import_module(module)
  except ImportError:
    raise errors.InputError(f"the fast model needs {module}: {INSTALL_HINT}") from None


class FastPredictor(prediction.Predictor):
  """`prediction.Predictor` with the logits from an ONNX Runtime session:
  same batching, same outputs."""

  def __init__(self, path: str, directory: str, info: Dict[str, Any], batch_size: int = 64):
    """The fast model at `path`, made from the model directory `directory`
    (task.json `info`), which gives NER its CRF transitions."""
    ort = _import("onnxruntime")
    self.info = read_info(path, directory)
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    # Threads that spin waiting for work take the cores from the other
    # processes that share them (Beam workers, other jobs).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    state = _import("onnxruntime.capi.onnxruntime_pybind11_state")
    with errors.reading(
      path, "not a model ONNX Runtime loads", damaged=(state.InvalidProtobuf, state.Fail)
    ):
      self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    self.task = info["task"]
    self.batch_size = batch_size
    self.width_multiple = 1
    self.crf = transitions_crf(directory, len(info["labels"])) if self.task == "ner" else None
    self._outputs = tf.function(
      lambda logits, mask: prediction.task_outputs(self.task, logits, mask, self.crf),
      reduce_retracing=True,
    )

  def _run(self, batch):
    logits = self.session.run([OUTPUT_NAME], {k: batch[k].numpy() for k in INPUT_NAMES})[0]
    return self._outputs(tf.constant(logits), batch["input_mask"])


def transitions_crf(directory: str, num_tags: int) -> crf.CRF:
  """A CRF layer holding the float32 transitions of the directory's latest
  checkpoint (the object path of `training.CheckpointedRun`: head/crf)."""
  head = tf.Module()
  head.crf = crf.CRF(num_tags)
  latest = checkpoints.latest_checkpoint(directory)
  try:
    tf.train.Checkpoint(head=head).restore(
      latest
    ).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as e:
    raise model_dir.ModelDirError(
      f"{latest}: no CRF transitions of {num_tags} tags ({str(e).strip().splitlines()[0][:200]})"
    ) from None
  return head.crf


def read_info(path: str, directory: str) -> Dict[str, Any]:
  """The JSON beside a fast model, checked by content: the model file is the
  one it describes (its sha256: not truncated, damaged or replaced), made
  from the weights, labels and vocabulary `directory` holds now
  (`model_dir.fingerprint`)."""
  errors.check_file(path)
  where = info_path(path)
  errors.check_file(where)
  with errors.reading(where, "not JSON", damaged=(json.JSONDecodeError,)):
    with tf.io.gfile.GFile(where) as f:
      info = json.load(f)
  missing = [k for k in INFO_KEYS if k not in info] if isinstance(info, dict) else INFO_KEYS
  if missing:
    raise errors.InputError(
      f"{where}: not the JSON export_fast_model writes (no {', '.join(missing)})"
    )
  again = f"export it again (export_fast_model --model_dir={directory})"
  with errors.reading(path):
    digest = manifest.sha256_of(path)
  if digest != info["model_sha256"]:
    raise errors.InputError(
      f"{path}: not the model {where} describes (other bytes: truncated, damaged or "
      f"replaced); {again}"
    )
  if model_dir.fingerprint(directory) != info["fingerprint"]:
    raise errors.InputError(
      f"{where}: made from other weights, labels or vocabulary than {directory} holds "
      f"(latest checkpoint {checkpoints.latest_checkpoint(directory)}); {again}"
    )
  return info


def export(directory: str, path: str, quantize: str) -> Dict[str, Any]:
  """Writes the fast model of the fine-tuned model directory `directory`
  to `path` and its JSON beside it (under temporary names); returns the JSON."""
  if quantize not in QUANTIZATIONS:
    raise errors.InputError(f"--quantize={quantize} is not one of {', '.join(QUANTIZATIONS)}")
  tf2onnx = _import("tf2onnx")
  ort = _import("onnxruntime")
  quantization = _import("onnxruntime.quantization")
  fingerprint = model_dir.fingerprint(directory)  # of what is loaded next
  model, _, info = model_dir.load_finetuned(directory)
  spec = [tf.TensorSpec([None, None], tf.int32, name=n) for n in INPUT_NAMES]

  @tf.function(input_signature=spec)
  def logits(input_ids, input_mask, segment_ids):
    inputs = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
    return {OUTPUT_NAME: tf.cast(model(inputs, training=False)["task_logits"], tf.float32)}

  atomic_files.makedirs(os.path.dirname(path) or ".")
  float32 = atomic_files.temporary_path(path) + ".float32"
  try:
    # tf2onnx and the quantizer write the temporaries: a read-only directory
    # or a full disk is one error naming the output.
    with errors.writing(path), _optimizer_errors_not_caught():
      tf2onnx.convert.from_function(logits, input_signature=spec, opset=17, output_path=float32)
      if quantize == "int8":
        # Weights per output channel: closer to float32 at the same speed.
        quantization.quantize_dynamic(
          float32, float32 + ".int8", per_channel=True, weight_type=quantization.QuantType.QInt8
        )
        os.replace(float32 + ".int8", float32)
    with tf.io.gfile.GFile(float32, "rb") as f:
      atomic_files.write_file(path, f.read())
  finally:
    for leftover in (float32, float32 + ".int8"):
      errors.remove_quietly(leftover)
  summary = {
    "source_checkpoint": checkpoints.latest_checkpoint(directory),
    "fingerprint": fingerprint,
    "model_sha256": manifest.sha256_of(path),
    "task": info["task"],
    "num_labels": len(info["labels"]),
    "quantization": quantize,
    "runtime": f"onnxruntime {ort.__version__}",
    "inputs": list(INPUT_NAMES),
    "output": OUTPUT_NAME,
  }
  model_dir.write_json(info_path(path), summary)
  return summary


@contextlib.contextmanager
def _optimizer_errors_not_caught():
  """tf2onnx deep-copies the whole graph, weights included, before each of
  its ~50 optimizer passes, to fall back to the copy should a pass fail;
  with the paper's model (bench/bench_fast_inference.py's) the export then
  peaks at 16.4 GB resident, and at 10.6 GB without the copies. Its
  environment switch turns the copies off: a failing pass then fails the
  export, with its traceback. ("FALSE" reads as false whether tf2onnx
  compares the variable's value or, as 1.17 does, its name with "TRUE".)"""
  old = os.environ.get(TF2ONNX_CATCH_ERRORS)
  os.environ[TF2ONNX_CATCH_ERRORS] = "FALSE"
  try:
    yield
  finally:
    if old is None:
      del os.environ[TF2ONNX_CATCH_ERRORS]
    else:
      os.environ[TF2ONNX_CATCH_ERRORS] = old


def _agreement(ours: List[List[str]], theirs: List[List[str]]) -> float:
  pairs = [(a, b) for x, y in zip(ours, theirs) for a, b in zip(x, y)]
  return float(np.mean([a == b for a, b in pairs])) if pairs else 1.0


def check(
  directory: str,
  fast: FastPredictor,
  calibration_file: str,
  batch_size: int,
  output_dir: str,
  min_agreement: float,
  force: bool = False,
) -> Dict[str, Any]:
  """The accuracy gate: the float32 TensorFlow model and `fast` on the
  labeled `calibration_file`; writes and returns their agreement and metric
  (accuracy, or entity F1); refuses agreement under `min_agreement` unless
  `force`."""
  model, tokenizer, info = model_dir.load_finetuned(directory)
  task, labels = info["task"], info["labels"]
  encoder = features.FeatureEncoder(
    tokenizer, info["max_seq_length"], task, labels, info.get("field_join", "sep")
  )
  examples = list(input_files.read_examples(calibration_file, task, input_files.Counts(), labels))
  if not examples:
    raise input_files.InputError(f"{calibration_file}: empty file (no examples)")
  encoded, _ = encoder.encode(examples)
  predicted = {}
  for name, predictor in (
    ("float32", prediction.Predictor(model, batch_size)),
    ("fast", fast),
  ):
    outputs = prediction.predict_sorted(predictor, encoded)
    if task == "classification":
      ids = outputs["label_ids"]
      predicted[name] = (
        [[labels[i]] for i in ids],
        evaluation.classification_metrics(encoded["label_ids"], ids, len(labels))["accuracy"],
      )
    else:
      tags = prediction.conll_tags(
        examples, encoded["starts"], encoded["ends"], outputs["tag_ids"], labels
      )
      predicted[name] = (tags, evaluation.ner_metrics([e.tags for e in examples], tags)["f1"])
  metric = "accuracy" if task == "classification" else "f1"
  agreement = _agreement(predicted["fast"][0], predicted["float32"][0])
  result = {
    "fast_model_info": fast.info,
    "calibration_file": calibration_file,
    "examples": len(examples),
    "agreement": agreement,
    "min_agreement": min_agreement,
    "metric": metric,
    "float32": predicted["float32"][1],
    "fast": predicted["fast"][1],
    "difference_points": 100 * (predicted["fast"][1] - predicted["float32"][1]),
    "passed": agreement >= min_agreement,
    "forced": force,
  }
  atomic_files.makedirs(output_dir)
  model_dir.write_json(os.path.join(output_dir, CHECK_FILE), result)
  what = "labels" if task == "classification" else "tags"
  summary = (
    f"{calibration_file}: the {fast.info['quantization']} fast model agrees with float32 on "
    f"{agreement:.2%} of {what} (--min_agreement={min_agreement}); {metric} "
    f"{result['fast']:.4f} vs {result['float32']:.4f} ({result['difference_points']:+.2f} points)"
  )
  print(summary)
  if not result["passed"] and not force:
    raise errors.InputError(f"{summary}: refused; use the float32 model or --force_quantized")
  return result


def check_flags(config) -> None:
  """The fast-path settings of a predict_pseudo_labels config: the
  TensorFlow-only ones are refused with --fast_model, the gate's without it."""
  if not config.fast_model:
    given = [
      f"--{name}"
      for name, default in (("calibration_file", None), ("force_quantized", False))
      if getattr(config, name) != default
    ]
    if given:
      raise errors.InputError(f"{', '.join(given)} needs --fast_model")
    return
  if config.dtype != "float32" or config.use_xla:
    raise errors.InputError(
      "--dtype and --use_xla are for the TensorFlow model, not --fast_model "
      f"(--dtype={config.dtype}, --use_xla={config.use_xla})"
    )


def gate(config, fast: FastPredictor) -> Optional[Dict[str, Any]]:
  """The accuracy gate of a predict_pseudo_labels config (`check` on its
  --calibration_file); a quantized model without one is refused unless
  --force_quantized. Returns the check's result, or None (not checked)."""
  if config.calibration_file:
    return check(
      config.model_dir,
      fast,
      config.calibration_file,
      config.predict_batch_size,
      config.output_dir,
      config.min_agreement,
      config.force_quantized,
    )
  if fast.info["quantization"] != "none" and not config.force_quantized:
    raise errors.InputError(
      f"{config.fast_model}: a quantized ({fast.info['quantization']}) model: give "
      "--calibration_file (a labeled dev or test file) to check it against float32, "
      "or --force_quantized"
    )
  return None
