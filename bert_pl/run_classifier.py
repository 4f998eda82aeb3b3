r"""Fine-tunes, evaluates and predicts classification (steps 2 and 5); see `finetuning`.

    python -m bert_pl.run_classifier --do_train --do_eval --do_predict \
      --train_file=TRAIN --eval_file=TEST --predict_file=POOL \
      --init_checkpoint=models/model_a --output_dir=models/model_b
"""

from absl import flags

from bert_pl import cli, finetuning


def run_main():
  finetuning.define_flags("classification")
  flags.adopt_module_key_flags(finetuning)  # --help lists the shared flags too
  flags.adopt_module_key_flags(cli)
  cli.run(finetuning.make_main("classification"))


if __name__ == "__main__":
  run_main()
