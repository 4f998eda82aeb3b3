r"""Exports a fine-tuned model's encoder and head for the fast step 3.

    python -m bert_pl.export_fast_model --model_dir=models/model_b --quantize=int8
    python -m bert_pl.predict_pseudo_labels --model_dir=models/model_b \
      --fast_model=models/model_b/export/model.int8.onnx \
      --calibration_file=data/dev.tsv --input_file='pool/part-*.txt' --output_dir=pseudo/

Writes an ONNX model (`--quantize=int8`: dynamic int8 weights, the fast
one; `none`: float32) and `<file>.json` beside it, by default under the model
directory's `export/` (`model.int8.onnx`, `model.onnx`), never over its own
files (task.json, checkpoints). Both are written under temporary names. Why
ONNX Runtime, what the model holds and how step 3 checks a quantized one:
`fast_inference`. Needs the `onnx` extra (onnxruntime, tf2onnx).
"""

import dataclasses
from typing import Optional

from absl import flags

from bert_pl import cli, errors, fast_inference, job_config


@dataclasses.dataclass(frozen=True, kw_only=True)
class FastModelConfig:
  """The job's settings: its flags (see `define_flags`) and defaults."""

  model_dir: str  # a fine-tuned model directory
  quantize: str = "int8"  # one of fast_inference.QUANTIZATIONS
  output_file: Optional[str] = None  # default: fast_inference.default_path


def output_path(config: FastModelConfig) -> str:
  path = config.output_file or fast_inference.default_path(config.model_dir, config.quantize)
  if not path.endswith(".onnx"):
    raise errors.InputError(f"--output_file={path}: an ONNX model's name ends with .onnx")
  return path


def run(config: FastModelConfig) -> str:
  """Writes the fast model (and its JSON); returns its path."""
  path = output_path(config)
  fast_inference.export(config.model_dir, path, config.quantize)
  return path


def main(argv):
  del argv
  config = job_config.config_from_flags(FastModelConfig)
  path = run(config)
  print(f"wrote {path} (quantize={config.quantize}) and {fast_inference.info_path(path)}")


def define_flags():
  d = job_config.field_defaults(FastModelConfig)
  flags.DEFINE_string("model_dir", None, "Fine-tuned model directory (run_classifier, run_ner).")
  flags.DEFINE_enum(
    "quantize",
    d["quantize"],
    list(fast_inference.QUANTIZATIONS),
    "int8: dynamic int8 weights (fast; predict_pseudo_labels checks it on "
    "--calibration_file); none: float32.",
  )
  flags.DEFINE_string(
    "output_file",
    d["output_file"],
    "The .onnx file (default MODEL_DIR/export/model.int8.onnx, or model.onnx).",
  )
  flags.mark_flags_as_required(["model_dir"])


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
