r"""The paper's comparison on public data: baseline vs Model-B vs Model-D.

    ./run_scripts/reproduce_paper.sh --quick [--data_dir=../shared/data]

For each task (classification: online_shopping_10_cats, 10 categories;
NER: CLUENER2020) the labeled data is split with a fixed seed into a small
labeled train set, a test set and an unlabeled pool whose labels are held
back, and for each seed an initial checkpoint is written (randomly
initialised: no pretrained Chinese weights exist on these machines, so "the
12-layer Chinese BERT" is replaced by a random model of the chosen shape),
then the pipeline driver (`bert_pl.pipeline`, in process; every step a
separate job, as a user runs them) runs, in OUTPUT/TASK/seedN:

  baseline    fine-tuned from the initial checkpoint;
  model_a     step 1: masked-LM pre-training from init on the pool;
  model_b     step 2: Model-A fine-tuned;
  round1/pseudo  step 3: Model-B's pseudo-labels for the pool (scored against
              the held-back labels);
  hard_mlm/round1/model_c, model_d   steps 4 and 5 as the paper's first
              version (MLM + one-hot task loss), from init; and
  hard_mlm_from_a/round1/...         the same with step 4 from Model-A;
  whole_word/...  (quick and full modes) the method again with steps 1 and 4
              masking whole words of rjieba's segmentation (its own Model-A,
              Model-B and pseudo-labels; hard_mlm only): the row model_d_wwm.

Every job's output directory is kept; a re-run skips the jobs already done.
Results (test accuracy and macro-F1, or CoNLL entity F1) go to
`REPORT_DIR/results.json` (default: the output directory), and
`experiments/report.py` makes the table, the plot and RESULTS.md from it.
The committed experiments/RESULTS.md is `--full --report_dir=experiments`.
"""

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import random
import re
import shutil
import sys
import time

from absl import flags

from bert_pl import atomic_files, cli, errors, modeling, pipeline, plan, tokenization
from data_prep import cluener_to_conll, common, csv_to_tsv, split_dataset
from experiments import real_report, real_weights, report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Sizes per mode: labeled train / test / pool examples (None: all), the
# model shape, training lengths and seeds. On 2 CPU cores a job's fixed cost
# (start-up, tracing) is ~15 s and the whole experiment is ~66 jobs, so the
# model is small (hidden 64, 2 layers: ~8 pre-training steps/s at batch 32)
# and fine-tuning runs more epochs at a higher learning rate than BERT's
# (a random model needs them: 3 epochs at 2e-5 leave it at chance).
MODES = {
  "smoke": dict(
    classification=(200, 300, 1500),
    ner=(150, 200, 600),
    hidden=32,
    layers=2,
    heads=2,
    intermediate=64,
    pretrain_steps=40,
    epochs=2,
    batch=32,
    seeds=(1,),
    pretrain_lr=5e-3,
    finetune_lr=5e-3,
    initializer_range=0.1,
    whole_word=False,  # the row is ~8 more jobs a seed: not in CI's smoke run
  ),
  "quick": dict(
    classification=(1000, 2000, 4000),
    ner=(700, 1000, 3000),
    hidden=64,
    layers=2,
    heads=4,
    intermediate=256,
    pretrain_steps=300,
    epochs=8,
    batch=32,
    seeds=(1, 2, 3),
    pretrain_lr=5e-3,
    finetune_lr=5e-3,
    initializer_range=0.1,
    whole_word=True,
  ),
  "full": dict(
    classification=(2000, 5000, 12000),
    ner=(1000, None, 6000),
    hidden=64,
    layers=2,
    heads=4,
    intermediate=256,
    pretrain_steps=1000,
    epochs=12,
    batch=32,
    seeds=(1, 2, 3),
    pretrain_lr=5e-3,
    finetune_lr=5e-3,
    initializer_range=0.1,
    whole_word=True,
  ),
}
TASKS = {
  "classification": dict(job="run_classifier", max_seq_length=64, tokenization="wordpiece"),
  "ner": dict(job="run_ner", max_seq_length=64, tokenization="char"),
}

FLAGS = flags.FLAGS
ALL_MODES = list(MODES) + list(real_weights.MODES)
flags.DEFINE_enum(
  "mode",
  "quick",
  ALL_MODES,
  "Chinese from scratch: smoke (CI), quick (< 30 min on 2 cores), full; real "
  "pretrained weights (experiments/real_weights.py): real, real_smoke (CI).",
)
flags.DEFINE_list(
  "sizes",
  ["low", "high"],
  "Real modes: the labeled sizes to run, low (10 per class, 200 sentences) "
  "and/or high (50 per class, 1,000 sentences).",
)
flags.DEFINE_bool(
  "report_only",
  False,
  "Real modes: run no job, write the report of the jobs done so far (of a run "
  "still going, or cut short: rows not done are left out).",
)
flags.DEFINE_string(
  "report_note",
  None,
  "Real modes: a line the report prints under the environment, e.g. the "
  "commits the jobs ran at when --report_only assembles a run made by "
  "several invocations.",
)
for _mode in ALL_MODES:
  flags.DEFINE_bool(_mode, False, f"Same as --mode={_mode}.")
flags.DEFINE_string(
  "data_dir",
  os.path.join(os.path.dirname(REPO), "shared", "data"),
  "The public data (layout of ../shared/data/README.md).",
)
flags.DEFINE_string("output_dir", None, "Where every job writes (default output/paper_MODE).")
flags.DEFINE_list(
  "tasks",
  list(TASKS),
  "Tasks to run (Chinese modes: classification, ner; "
  "real modes: banking77, conll2003, all when none of these is given).",
)
flags.DEFINE_list("seeds", None, "Seeds to run (default: the mode's).")
flags.DEFINE_string(
  "results_name",
  real_report.DEFAULT_NAME,
  "Real modes: the name of the run's results in --report_dir (NAME.json, "
  "NAME.png), results_real or results_real_<tag> (lower case, digits, _): a "
  "run of other settings beside the committed one gets its own section.",
)
flags.DEFINE_string(
  "report_dir",
  None,
  "Where RESULTS.md, results.png and results.json go (default --output_dir; "
  "the committed full run used experiments/).",
)


def prepare_classification(data_dir, out, sizes):
  """online_shopping_10_cats -> labeled TSV (label = category) -> split."""
  tsv = os.path.join(out, "all.tsv")
  csv_to_tsv.run(
    csv_to_tsv.CsvToTsvConfig(
      os.path.join(data_dir, "online_shopping_10_cats", "online_shopping_10_cats.csv"),
      tsv,
      label_column="cat",
      text_columns="review",
      has_header=True,
    )
  )
  num_train, num_test, num_pool = sizes
  split_dataset.run(
    split_dataset.SplitDatasetConfig(tsv, out, "tsv", num_train, num_test, seed=12345)
  )
  # Lines as the readers split them (at "\n" only): str.splitlines would also
  # split at the separators some texts hold (U+2028, U+001C, ...).
  with open(tsv, encoding="utf-8") as f:
    labels = sorted({line.split("\t", 1)[0] for line in f})
  with open(os.path.join(out, "labels.txt"), "w", encoding="utf-8") as f:
    f.write("".join(label + "\n" for label in labels))
  _truncate_pool(out, num_pool, conll=False)


def prepare_ner(data_dir, out, sizes):
  """CLUENER2020: part of train labeled, the rest the pool; dev is the test set."""
  train, dev = os.path.join(out, "cluener_train.txt"), os.path.join(out, "cluener_dev.txt")
  for split, path in (("train", train), ("dev", dev)):
    cluener_to_conll.run(
      cluener_to_conll.CluenerToConllConfig(
        _cluener_file(data_dir, split), path, skip_bad_lines=True
      )
    )
  num_train, num_test, num_pool = sizes
  split_dataset.run(split_dataset.SplitDatasetConfig(train, out, "conll", num_train, 0, seed=12345))
  blocks = list(common.read_conll_blocks(dev))[:num_test]
  with open(os.path.join(out, "test.txt"), "w", encoding="utf-8") as f:
    for block in blocks:
      common.write_conll_sentence(
        f, [fields[0] for _, fields in block], [fields[-1] for _, fields in block]
      )
  tags = sorted(
    {
      fields[-1]
      for path in (train, dev)
      for block in common.read_conll_blocks(path)
      for _, fields in block
    }
  )
  with open(os.path.join(out, "labels.txt"), "w", encoding="utf-8") as f:
    f.write("".join(tag + "\n" for tag in ["O"] + [t for t in tags if t != "O"]))
  _truncate_pool(out, num_pool, conll=True)


def _cluener_file(data_dir, split):
  """`split`.jsonl (../shared/data) or `split`.json, the name in CLUENER's
  own release (JSON lines too)."""
  for name in (f"{split}.jsonl", f"{split}.json"):
    path = os.path.join(data_dir, "cluener2020", name)
    if os.path.exists(path):
      return path
  raise errors.InputError(f"{data_dir}/cluener2020/{split}.jsonl (or {split}.json) not found")


def _truncate_pool(out, num_pool, conll):
  """Keeps `num_pool` pool examples drawn with a fixed seed (the input may be
  sorted by label), in input order, and their held-back labels."""
  if num_pool is None:
    return
  pool, labels = os.path.join(out, "pool.txt"), os.path.join(out, "pool_labels.txt")
  lines = pathlib.Path(pool).read_text(encoding="utf-8").splitlines(keepends=True)
  keep = sorted(random.Random(12345).sample(range(len(lines)), min(num_pool, len(lines))))
  pathlib.Path(pool).write_text("".join(lines[i] for i in keep), encoding="utf-8")
  if conll:
    blocks = list(common.read_conll_blocks(labels))
    with open(labels, "w", encoding="utf-8") as f:
      for i in keep:
        common.write_conll_sentence(f, [x[1][0] for x in blocks[i]], [x[1][-1] for x in blocks[i]])
  else:
    gold = pathlib.Path(labels).read_text(encoding="utf-8").splitlines(keepends=True)
    pathlib.Path(labels).write_text("".join(gold[i] for i in keep), encoding="utf-8")


# The experiment's rows: the driver's model directories.
MODEL_DIRS = {
  "baseline": "baseline",
  "model_b": "model_b",
  "model_d": "hard_mlm/round1/model_d",
  "model_d_from_a": "hard_mlm_from_a/round1/model_d",
}
WHOLE_WORD_ROW = ("model_d_wwm", "hard_mlm/round1/model_d")  # under WORK/whole_word


def whole_word_config(config: pipeline.PipelineConfig) -> pipeline.PipelineConfig:
  """The whole-word-masking row's run, in WORK/whole_word: steps 1 and 4 mask
  whole words of rjieba's segmentation (so steps 2 and 3 run again on its
  Model-A), the paper's first version only (hard_mlm), no baseline."""
  return dataclasses.replace(
    config,
    work_dir=os.path.join(config.work_dir, "whole_word"),
    do_whole_word_mask=True,
    segmenter="rjieba",
    variants=("hard_mlm",),
    baseline=False,
    export_variant=None,
  )


def run_seed(task, seed, mode, data, files, out):
  """The whole method for one task and seed (bert_pl.pipeline, after a random
  initial checkpoint of the mode's shape); returns every model's results and
  the wall time of every job."""
  spec, sizes = TASKS[task], MODES[mode]
  work = os.path.join(out, task, f"seed{seed}")
  os.makedirs(work, exist_ok=True)
  vocab = os.path.join(FLAGS.data_dir, "bert-base-chinese", "vocab.txt")
  config = os.path.join(work, "bert_config.json")
  modeling.BertConfig(
    vocab_size=len(tokenization.load_vocab(vocab)),
    hidden_size=sizes["hidden"],
    num_hidden_layers=sizes["layers"],
    num_attention_heads=sizes["heads"],
    intermediate_size=sizes["intermediate"],
    max_position_embeddings=128,
    initializer_range=sizes["initializer_range"],
  ).to_json_file(config)
  init = os.path.join(work, "init")
  pipeline.run_job(
    "init",
    plan.job_command(
      "run_pretraining",
      f"--bert_config_file={config}",
      f"--vocab_file={vocab}",
      f"--output_dir={init}",
      "--do_train",
      "--num_train_steps=0",
      f"--random_seed={seed}",
    ),
    os.path.join(work, "logs"),
  )
  steps = sizes["pretrain_steps"]
  config = pipeline.PipelineConfig(
    task=task,
    work_dir=work,
    pool=os.path.join(data, "pool.txt"),
    train_file=files["train"],
    eval_file=files["test"],
    label_file=os.path.join(data, "labels.txt"),
    init_checkpoint=init,
    vocab_file=vocab,
    tokenization=spec["tokenization"],
    max_seq_length=spec["max_seq_length"],
    pretrain_steps=steps,
    pretrain_warmup_steps=steps // 10,
    pretrain_learning_rate=sizes["pretrain_lr"],
    pretrain_batch_size=sizes["batch"],
    save_checkpoints_steps=max(steps // 5, 10),
    finetune_learning_rate=sizes["finetune_lr"],
    finetune_epochs=sizes["epochs"],
    finetune_batch_size=sizes["batch"],
    random_seed=seed,
    num_shards=2,
    baseline=True,
    pool_labels=os.path.join(data, "pool_labels.txt"),
    variants=("hard_mlm", "hard_mlm_from_a"),
    keep_checkpoints=False,
  )
  outcome = pipeline.run(config)
  results = {row: outcome["models"][directory]["results"] for row, directory in MODEL_DIRS.items()}
  if sizes["whole_word"]:
    whole_word = pipeline.run(whole_word_config(config))
    row, directory = WHOLE_WORD_ROW
    results[row] = whole_word["models"][directory]["results"]
    outcome["timings"].update({f"whole_word.{k}": v for k, v in whole_word["timings"].items()})
  results["pseudo_labels"] = outcome["pseudo_labels"]["round1/pseudo"]["quality"]
  timings = {
    "init": pipeline.done_seconds(os.path.join(work, "logs"), "init"),
    **outcome["timings"],
  }
  return results, timings


def main(argv):
  del argv
  chosen = [mode for mode in ALL_MODES if FLAGS[mode].value]
  if len(chosen) > 1:
    raise errors.InputError(f"choose one of --{' --'.join(chosen)}")
  mode = chosen[0] if chosen else FLAGS.mode
  out = FLAGS.output_dir or os.path.join(REPO, "output", f"paper_{mode}")
  if mode in real_weights.MODES:
    run_real(mode, out)
    return
  for needed in ("online_shopping_10_cats", "cluener2020", "bert-base-chinese"):
    if not os.path.isdir(os.path.join(FLAGS.data_dir, needed)):
      raise errors.InputError(
        f"{FLAGS.data_dir}/{needed} not found (--data_dir: the layout of ../shared/data/README.md)"
      )
  os.makedirs(out, exist_ok=True)
  start = time.time()
  seeds = [int(seed) for seed in FLAGS.seeds or MODES[mode]["seeds"]]
  summary = {
    "mode": mode,
    "sizes": {**MODES[mode], "seeds": seeds},
    "command": " ".join(["python -m experiments.reproduce_paper", *sys.argv[1:]]),
    "environment": report.environment(),
    "tasks": {},
    "timings": {},
  }

  def run_task(task):
    data = os.path.join(out, task, "data")
    if not os.path.exists(os.path.join(data, "labels.txt")):
      shutil.rmtree(data, ignore_errors=True)
      os.makedirs(data)
      prepare = prepare_classification if task == "classification" else prepare_ner
      prepare(FLAGS.data_dir, data, MODES[mode][task])
    suffix = ".tsv" if task == "classification" else ".txt"
    files = {part: os.path.join(data, part + suffix) for part in ("train", "test")}
    results, timings = {}, {}
    for seed in seeds:
      results[f"seed{seed}"], seconds = run_seed(task, seed, mode, data, files, out)
      for name, value in seconds.items():  # summed over the seeds
        timings[name] = timings.get(name, 0.0) + value
    return results, timings

  # The two tasks run side by side: on few cores much of a small job is
  # start-up (imports, tracing), which overlaps well.
  with concurrent.futures.ThreadPoolExecutor(len(FLAGS.tasks)) as pool:
    try:
      outcomes = dict(zip(FLAGS.tasks, pool.map(run_task, FLAGS.tasks)))
    except pipeline.JobError as e:
      raise SystemExit(f"error: {e}") from None  # a failed job: exit 1, as the driver's
  summary["tasks"] = {task: outcomes[task][0] for task in FLAGS.tasks}
  summary["timings"] = {task: outcomes[task][1] for task in FLAGS.tasks}
  summary["wall_seconds"] = time.time() - start
  report_dir = FLAGS.report_dir or out
  os.makedirs(report_dir, exist_ok=True)
  with open(os.path.join(report_dir, "results.json"), "w") as f:
    json.dump(summary, f, indent=1)
  markdown = report.write(summary, report_dir)
  print(markdown)


def _command_without_note(args):
  """The command line as run, less --report_note's text (printed on a line
  of its own in the report)."""
  kept, skip = [], False
  for arg in args:
    if skip:
      skip = False
    elif arg in ("--report_note", "-report_note"):
      skip = True
    elif not arg.lstrip("-").startswith("report_note="):
      kept.append(arg)
  return " ".join(["python -m experiments.reproduce_paper", *kept])


def run_real(mode, out):
  """The real-weights experiment: REPORT_DIR/results_real.json, then the
  report (experiments/report.py) from it."""
  tasks = [task for task in FLAGS.tasks if task in real_weights.TASKS] or list(real_weights.TASKS)
  if not re.fullmatch(real_report.NAME_PATTERN, FLAGS.results_name):
    raise errors.InputError(
      f"--results_name={FLAGS.results_name}: not results_real or results_real_<tag> "
      "(lower case, digits, _)"
    )
  unknown = set(FLAGS.sizes) - {"low", "high"}
  if unknown:
    raise errors.InputError(f"--sizes: unknown {', '.join(sorted(unknown))} (low, high)")
  try:
    summary = real_weights.run(mode, FLAGS.data_dir, out, tasks, FLAGS.sizes, FLAGS.report_only)
  except pipeline.JobError as e:
    raise SystemExit(f"error: {e}") from None  # a failed job: exit 1, as the driver's
  summary = {
    "mode": summary.pop("mode"),
    "command": _command_without_note(sys.argv[1:]),
    "environment": report.environment(),
    **({"report_only": True} if FLAGS.report_only else {}),
    **({"note": FLAGS.report_note} if FLAGS.report_note else {}),
    **summary,
  }
  report_dir = FLAGS.report_dir or out
  os.makedirs(report_dir, exist_ok=True)
  atomic_files.write_file(
    os.path.join(report_dir, FLAGS.results_name + ".json"), json.dumps(summary, indent=1)
  )
  print(report.regenerate(report_dir))


if __name__ == "__main__":
  cli.run(main)
