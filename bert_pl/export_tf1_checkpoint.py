r"""Writes any loadable model out as an original Google BERT model directory.

    python -m bert_pl.export_tf1_checkpoint --init_checkpoint=output/model_c \
        --output_dir=model_c_tf1

Output: `bert_model.ckpt.{index,data-00000-of-00001}` with Google's variable
names and shapes (encoder, pooler, and the MLM head when it was loaded or
trained: `checkpoints.mlm_head_state`), `bert_config.json` (with the
layer count actually kept) and `vocab.txt`, so that the model can be used by
google-research/bert, Hugging Face converters and other BERT tools.
"""

import dataclasses
import os

import tensorflow as tf
from absl import flags

from bert_pl import checkpoints, cli, input_files, job_config


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportTf1CheckpointConfig(job_config.ModelConfig):
  """The job's settings: its flags (see `define_flags`) and defaults."""

  init_checkpoint: str
  output_dir: str


def run(config: ExportTf1CheckpointConfig) -> str:
  """Loads `config.init_checkpoint` and writes it to `config.output_dir`;
  returns the checkpoint's prefix."""
  model, source = checkpoints.load_bert(
    config.init_checkpoint,
    config.bert_config_file,
    config.num_hidden_layers,
    checkpoints.parse_layer_map(config.layer_map),
  )
  vocab_file = checkpoints.resolve_vocab_file(config.vocab_file, source, model.config)
  prefix = os.path.join(config.output_dir, checkpoints.TF1_CHECKPOINT_NAME)
  written = [prefix + ".index", prefix + ".data-00000-of-00001"] + [
    os.path.join(config.output_dir, name) for name in ("bert_config.json", "vocab.txt")
  ]
  input_files.check_not_inputs(
    written,
    f"--output_dir={config.output_dir}",
    {
      # The checkpoint's directory holds its files, config and vocabulary.
      "--init_checkpoint": input_files.files_in(os.path.dirname(source.path) or ".")
      if source
      else [],
      "--bert_config_file": [config.bert_config_file],
      "--vocab_file": [vocab_file],
    },
  )
  tf.io.gfile.makedirs(config.output_dir)
  checkpoints.write_tf1_checkpoint(
    model, prefix, mlm_head=checkpoints.mlm_head_state(source) == "loaded"
  )
  model.config.to_json_file(os.path.join(config.output_dir, "bert_config.json"))
  tf.io.gfile.copy(vocab_file, os.path.join(config.output_dir, "vocab.txt"), overwrite=True)
  return prefix


def main(argv):
  del argv
  config = job_config.config_from_flags(ExportTf1CheckpointConfig)
  prefix = run(config)
  print(f"wrote {prefix}, bert_config.json and vocab.txt to {config.output_dir}")


def define_flags():
  """The flags of `ExportTf1CheckpointConfig`'s fields."""
  job_config.define_model_flags()
  flags.DEFINE_string("output_dir", None, "Directory for the TF1 model.")
  flags.mark_flags_as_required(["init_checkpoint", "output_dir"])


def run_main():
  define_flags()
  flags.adopt_module_key_flags(cli)  # --help lists the shared flags too
  cli.run(main)


if __name__ == "__main__":
  run_main()
