r"""Fine-tunes, evaluates and predicts classification (steps 2 and 5); see `finetuning`.

    python -m bert_pl.run_classifier --do_train --do_eval --do_predict \
      --train_file=TRAIN --eval_file=TEST --predict_file=POOL \
      --init_checkpoint=models/model_a --output_dir=models/model_b
"""

from bert_pl import finetuning


def run_main():
  finetuning.run_main("classification")


if __name__ == "__main__":
  run_main()
