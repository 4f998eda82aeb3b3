r"""Writes any loadable model out as an original Google BERT model directory.

    python -m bert_pl.export_tf1_checkpoint --init_checkpoint=output/model_c \
        --output_dir=model_c_tf1

Output: `bert_model.ckpt.{index,data-00000-of-00001}` with Google's variable
names and shapes (encoder, pooler, MLM head), `bert_config.json` (with the
layer count actually kept) and `vocab.txt`, so that the model can be used by
google-research/bert, Hugging Face converters and other BERT tools.
"""

import os

import tensorflow as tf
from absl import flags

from bert_pl import checkpoints, cli, errors, tokenization


def export(init_checkpoint: str, output_dir: str, bert_config_file=None,
           vocab_file=None, num_hidden_layers=None, layer_map=None) -> str:
  """Loads `init_checkpoint` and writes it to `output_dir`; returns the prefix."""
  model, source = checkpoints.load_bert(init_checkpoint, bert_config_file,
                                        num_hidden_layers, layer_map)
  vocab_file = vocab_file or source.vocab_file
  if not vocab_file:
    raise errors.InputError("no --vocab_file given and no vocab.txt beside --init_checkpoint")
  vocab_size = len(tokenization.load_vocab(vocab_file))
  if vocab_size != model.config.vocab_size:
    raise errors.InputError(f"{vocab_file} has {vocab_size} tokens but the model's "
                            f"vocab_size is {model.config.vocab_size}")
  tf.io.gfile.makedirs(output_dir)
  prefix = os.path.join(output_dir, checkpoints.TF1_CHECKPOINT_NAME)
  checkpoints.write_tf1_checkpoint(model, prefix)
  model.config.to_json_file(os.path.join(output_dir, "bert_config.json"))
  tf.io.gfile.copy(vocab_file, os.path.join(output_dir, "vocab.txt"), overwrite=True)
  return prefix


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  prefix = export(FLAGS.init_checkpoint, FLAGS.output_dir, FLAGS.bert_config_file,
                  FLAGS.vocab_file, FLAGS.num_hidden_layers,
                  checkpoints.parse_layer_map(FLAGS.layer_map))
  print(f"wrote {prefix}, bert_config.json and vocab.txt to {FLAGS.output_dir}")


def run_main():
  cli.define_model_flags()
  flags.DEFINE_string("output_dir", None, "Directory for the TF1 model.")
  flags.mark_flags_as_required(["init_checkpoint", "output_dir"])
  flags.adopt_module_key_flags(cli)  # --help lists the shared flags too
  cli.run(main)


if __name__ == "__main__":
  run_main()
