r"""The paper's comparison on public data: baseline vs Model-B vs Model-D.

    ./run_scripts/reproduce_paper.sh --quick [--data_dir=../shared/data]

For each task (classification: online_shopping_10_cats, 10 categories;
NER: CLUENER2020) the labeled data is split with a fixed seed into a small
labeled train set, a test set and an unlabeled pool whose labels are held
back, and for each seed the whole method runs as separate jobs, as a user
runs them (`python -m bert_pl.<job>`):

  init        the initial checkpoint: randomly initialised (no pretrained
              Chinese weights exist on these machines, so "the 12-layer
              Chinese BERT" is replaced by a random model of the chosen shape);
  baseline    fine-tuned from the initial checkpoint;
  model_a     step 1: masked-LM pre-training from init on the pool;
  model_b     step 2: Model-A fine-tuned;
  pseudo      step 3: Model-B's pseudo-labels for the pool (scored against
              the held-back labels);
  model_c     step 4: MLM + task loss on the pseudo-labels, from init (the
              paper), and model_c_from_a from Model-A;
  model_d     step 5: Model-C fine-tuned (and model_d_from_a).

Every job's output directory is kept; a re-run skips the jobs already done.
Results (test accuracy and macro-F1, or CoNLL entity F1) go to
`REPORT_DIR/results.json` (default: the output directory), and
`experiments/report.py` makes the table, the plot and RESULTS.md from it.
The committed experiments/RESULTS.md is `--full --report_dir=experiments`.
"""

import concurrent.futures
import json
import os
import random
import shutil
import subprocess
import sys
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from bert_pl import evaluation, input_files, modeling  # noqa: E402
from bert_pl.pipeline_report import read_eval_results  # noqa: E402
from data_prep import cluener_to_conll, common, csv_to_tsv, split_dataset  # noqa: E402
from experiments import report  # noqa: E402

# Sizes per mode: labeled train / test / pool examples (None: all), the
# model shape, training lengths and seeds. On 2 CPU cores a job's fixed cost
# (start-up, tracing) is ~15 s and the whole experiment is ~66 jobs, so the
# model is small (hidden 64, 2 layers: ~8 pre-training steps/s at batch 32)
# and fine-tuning runs more epochs at a higher learning rate than BERT's
# (a random model needs them: 3 epochs at 2e-5 leave it at chance).
MODES = {
    "smoke": dict(classification=(200, 300, 1500), ner=(150, 200, 600), hidden=32, layers=2,
                  heads=2, intermediate=64, pretrain_steps=40, epochs=2, batch=32, seeds=(1,),
                  pretrain_lr=5e-3, finetune_lr=5e-3, initializer_range=0.1),
    "quick": dict(classification=(1000, 2000, 4000), ner=(700, 1000, 3000), hidden=64,
                  layers=2, heads=4, intermediate=256, pretrain_steps=300, epochs=8, batch=32,
                  seeds=(1, 2, 3), pretrain_lr=5e-3, finetune_lr=5e-3, initializer_range=0.1),
    "full": dict(classification=(2000, 5000, 12000), ner=(1000, None, 6000), hidden=64,
                 layers=2, heads=4, intermediate=256, pretrain_steps=1000, epochs=12, batch=32,
                 seeds=(1, 2, 3), pretrain_lr=5e-3, finetune_lr=5e-3, initializer_range=0.1),
}
TASKS = {"classification": dict(job="run_classifier", max_seq_length=64, tokenization="wordpiece"),
         "ner": dict(job="run_ner", max_seq_length=64, tokenization="char")}

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "quick", list(MODES), "smoke (CI), quick (< 30 min on 2 cores), full.")
for _mode in MODES:
  flags.DEFINE_bool(_mode, False, f"Same as --mode={_mode}.")
flags.DEFINE_string("data_dir", os.path.join(os.path.dirname(REPO), "shared", "data"),
                    "The public data (layout of ../shared/data/README.md).")
flags.DEFINE_string("output_dir", None, "Where every job writes (default output/paper_MODE).")
flags.DEFINE_list("tasks", list(TASKS), "Tasks to run.")
flags.DEFINE_list("seeds", None, "Seeds to run (default: the mode's).")
flags.DEFINE_string("report_dir", None,
                    "Where RESULTS.md, results.png and results.json go (default --output_dir; "
                    "the committed full run used experiments/).")


def run(name, command, log_dir):
  """Runs one job unless its done-marker exists; the marker holds its wall
  time in seconds (the report sums them, across resumed runs too)."""
  step = name.split("/")[-1]
  marker, log_file = (os.path.join(log_dir, step + suffix) for suffix in (".done", ".log"))
  if os.path.exists(marker):
    return
  start = time.time()
  print(f"=== {name}", flush=True)
  with open(log_file, "w") as log:
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  if result.returncode:
    raise SystemExit(f"{name} failed (exit {result.returncode}); see {log_file}")
  with open(marker, "w") as f:
    f.write(f"{time.time() - start:.1f}\n")


def step_seconds(task_dir, seeds):
  """Wall time per step, summed over the seeds, from the done-markers."""
  totals = {}
  for seed in seeds:
    logs = os.path.join(task_dir, f"seed{seed}", "logs")
    for name in sorted(os.listdir(logs)):
      if name.endswith(".done"):
        step = name[:-len(".done")]
        totals[step] = totals.get(step, 0.0) + float(open(os.path.join(logs, name)).read())
  return totals


def job(module, *args):
  return [sys.executable, "-m", f"bert_pl.{module}", *args]


def prepare_classification(data_dir, out, sizes):
  """online_shopping_10_cats -> labeled TSV (label = category) -> split."""
  tsv = os.path.join(out, "all.tsv")
  csv_to_tsv.convert(os.path.join(data_dir, "online_shopping_10_cats",
                                  "online_shopping_10_cats.csv"), tsv, "cat", ["review"],
                     has_header=True)
  num_train, num_test, num_pool = sizes
  split_dataset.split(tsv, out, "tsv", num_train, num_test, seed=12345)
  labels = sorted({line.split("\t", 1)[0] for line in open(tsv, encoding="utf-8")})
  with open(os.path.join(out, "labels.txt"), "w", encoding="utf-8") as f:
    f.write("".join(label + "\n" for label in labels))
  _truncate_pool(out, num_pool, conll=False)


def prepare_ner(data_dir, out, sizes):
  """CLUENER2020: part of train labeled, the rest the pool; dev is the test set."""
  train, dev = os.path.join(out, "cluener_train.txt"), os.path.join(out, "cluener_dev.txt")
  for split, path in (("train", train), ("dev", dev)):
    cluener_to_conll.convert(_cluener_file(data_dir, split), path, skip_bad_lines=True)
  num_train, num_test, num_pool = sizes
  split_dataset.split(train, out, "conll", num_train, 0, seed=12345)
  blocks = list(common.read_conll_blocks(dev))[:num_test]
  with open(os.path.join(out, "test.txt"), "w", encoding="utf-8") as f:
    for block in blocks:
      common.write_conll_sentence(f, [fields[0] for _, fields in block],
                                  [fields[-1] for _, fields in block])
  tags = sorted({fields[-1] for path in (train, dev) for block in common.read_conll_blocks(path)
                 for _, fields in block})
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
  raise SystemExit(f"error: {data_dir}/cluener2020/{split}.jsonl (or {split}.json) not found")


def _truncate_pool(out, num_pool, conll):
  """Keeps `num_pool` pool examples drawn with a fixed seed (the input may be
  sorted by label), in input order, and their held-back labels."""
  if num_pool is None:
    return
  pool, labels = os.path.join(out, "pool.txt"), os.path.join(out, "pool_labels.txt")
  lines = open(pool, encoding="utf-8").read().splitlines(keepends=True)
  keep = sorted(random.Random(12345).sample(range(len(lines)), min(num_pool, len(lines))))
  open(pool, "w", encoding="utf-8").write("".join(lines[i] for i in keep))
  if conll:
    blocks = list(common.read_conll_blocks(labels))
    with open(labels, "w", encoding="utf-8") as f:
      for i in keep:
        common.write_conll_sentence(f, [x[1][0] for x in blocks[i]], [x[1][-1] for x in blocks[i]])
  else:
    gold = open(labels, encoding="utf-8").read().splitlines(keepends=True)
    open(labels, "w", encoding="utf-8").write("".join(gold[i] for i in keep))


def pseudo_label_quality(task, pseudo_file, data):
  """Step 3's pseudo-labels against the pool's held-back labels."""
  held_back = os.path.join(data, "pool_labels.txt")
  if task == "classification":
    predicted = [line.split("\t", 1)[0] for line in open(pseudo_file, encoding="utf-8")]
    gold = open(held_back, encoding="utf-8").read().splitlines()
    assert len(predicted) == len(gold), (len(predicted), len(gold))
    return {"accuracy": sum(p == g for p, g in zip(predicted, gold)) / len(gold),
            "num_examples": len(gold)}
  counts = input_files.Counts()
  predicted = [e.tags for e in input_files.read_conll(pseudo_file, counts)]
  gold = [e.tags for e in input_files.read_conll(held_back, counts)]
  assert [len(t) for t in predicted] == [len(t) for t in gold]
  metrics = evaluation.ner_metrics(gold, predicted)
  return {"f1": metrics["f1"], "num_examples": len(gold)}


def run_seed(task, seed, mode, data, files, out):
  """The whole method for one task and seed; returns every model's results."""
  spec, sizes = TASKS[task], MODES[mode]
  work = os.path.join(out, task, f"seed{seed}")
  logs = os.path.join(work, "logs")
  os.makedirs(logs, exist_ok=True)
  vocab = os.path.join(FLAGS.data_dir, "bert-base-chinese", "vocab.txt")
  labels = os.path.join(data, "labels.txt")
  seq, pred = spec["max_seq_length"], spec["max_seq_length"] * 15 // 100
  config = os.path.join(work, "bert_config.json")
  modeling.BertConfig(
      vocab_size=sum(1 for _ in open(vocab, encoding="utf-8")), hidden_size=sizes["hidden"],
      num_hidden_layers=sizes["layers"], num_attention_heads=sizes["heads"],
      intermediate_size=sizes["intermediate"], max_position_embeddings=128,
      initializer_range=sizes["initializer_range"]).to_json_file(config)
  common_flags = [f"--vocab_file={vocab}", f"--tokenization={spec['tokenization']}",
                  f"--max_seq_length={seq}", f"--random_seed={seed}", "--bucket_width=8"]
  pretrain = ["--do_train", f"--max_predictions_per_seq={pred}",
              f"--train_batch_size={sizes['batch']}", f"--learning_rate={sizes['pretrain_lr']}",
              f"--num_train_steps={sizes['pretrain_steps']}",
              f"--num_warmup_steps={sizes['pretrain_steps'] // 10}",
              f"--save_checkpoints_steps={max(sizes['pretrain_steps'] // 5, 10)}"]
  finetune = ["--do_train", "--do_eval", f"--train_file={files['train']}",
              f"--eval_file={files['test']}", f"--label_file={labels}",
              f"--train_batch_size={sizes['batch']}", f"--learning_rate={sizes['finetune_lr']}",
              f"--num_train_epochs={sizes['epochs']}"]
  d = lambda name: os.path.join(work, name)  # noqa: E731
  record_flags = [f"--vocab_file={vocab}", f"--tokenization={spec['tokenization']}",
                  f"--max_seq_length={seq}", f"--max_predictions_per_seq={pred}",
                  f"--random_seed={seed}", "--num_output_shards=2"]
  task_flags = [f"--task={task}", f"--label_file={labels}"]

  run(f"{task}/seed{seed}/init", job("run_pretraining", f"--bert_config_file={config}",
                                     f"--output_dir={d('init')}", "--do_train",
                                     "--num_train_steps=0", *common_flags), logs)
  run(f"{task}/seed{seed}/pool_records", job(
      "create_pretraining_data", f"--input_file={data}/pool.txt",
      f"--output_file={d('records/pool.tfrecord')}", *record_flags), logs)
  run(f"{task}/seed{seed}/baseline", job(spec["job"], f"--init_checkpoint={d('init')}",
                                         f"--output_dir={d('baseline')}", *finetune,
                                         *common_flags), logs)
  run(f"{task}/seed{seed}/model_a", job(
      "run_pretraining", f"--init_checkpoint={d('init')}", f"--output_dir={d('model_a')}",
      f"--input_file={d('records/pool.tfrecord')}*", *pretrain, *common_flags), logs)
  run(f"{task}/seed{seed}/model_b", job(spec["job"], f"--init_checkpoint={d('model_a')}",
                                        f"--output_dir={d('model_b')}", *finetune,
                                        *common_flags), logs)
  run(f"{task}/seed{seed}/pseudo_labels", job(
      "predict_pseudo_labels", f"--model_dir={d('model_b')}", f"--input_file={data}/pool.txt",
      f"--output_dir={d('pseudo')}"), logs)
  run(f"{task}/seed{seed}/pseudo_records", job(
      "create_pretraining_data", f"--input_file={d('pseudo')}/pool.txt",
      f"--output_file={d('records/pseudo.tfrecord')}", *task_flags, *record_flags),
      logs)
  for suffix, init in (("", d("init")), ("_from_a", d("model_a"))):
    run(f"{task}/seed{seed}/model_c{suffix}", job(
        "run_pretraining", f"--init_checkpoint={init}", f"--output_dir={d('model_c' + suffix)}",
        f"--input_file={d('records/pseudo.tfrecord')}*", f"--task_loss={task}",
        f"--label_file={labels}", *pretrain, *common_flags), logs)
    run(f"{task}/seed{seed}/model_d{suffix}", job(
        spec["job"], f"--init_checkpoint={d('model_c' + suffix)}",
        f"--output_dir={d('model_d' + suffix)}", *finetune, *common_flags), logs)
  results = {name: read_eval_results(os.path.join(d(name), "eval_results.txt"))
             for name, _ in report.ROWS}
  results["pseudo_labels"] = pseudo_label_quality(task, os.path.join(d("pseudo"), "pool.txt"),
                                                  data)
  return results


def main(argv):
  del argv
  chosen = [mode for mode in MODES if FLAGS[mode].value]
  if len(chosen) > 1:
    raise SystemExit(f"error: choose one of --{' --'.join(chosen)}")
  mode = chosen[0] if chosen else FLAGS.mode
  out = FLAGS.output_dir or os.path.join(REPO, "output", f"paper_{mode}")
  for needed in ("online_shopping_10_cats", "cluener2020", "bert-base-chinese"):
    if not os.path.isdir(os.path.join(FLAGS.data_dir, needed)):
      raise SystemExit(f"error: {FLAGS.data_dir}/{needed} not found (--data_dir: the layout of "
                       "../shared/data/README.md)")
  os.makedirs(out, exist_ok=True)
  start = time.time()
  seeds = [int(seed) for seed in FLAGS.seeds or MODES[mode]["seeds"]]
  summary = {"mode": mode, "sizes": {**MODES[mode], "seeds": seeds},
             "command": " ".join(["python -m experiments.reproduce_paper", *sys.argv[1:]]),
             "environment": report.environment(), "tasks": {}, "timings": {}}
  def run_task(task):
    data = os.path.join(out, task, "data")
    if not os.path.exists(os.path.join(data, "labels.txt")):
      shutil.rmtree(data, ignore_errors=True)
      os.makedirs(data)
      prepare = prepare_classification if task == "classification" else prepare_ner
      prepare(FLAGS.data_dir, data, MODES[mode][task])
    suffix = ".tsv" if task == "classification" else ".txt"
    files = {part: os.path.join(data, part + suffix) for part in ("train", "test")}
    return {f"seed{seed}": run_seed(task, seed, mode, data, files, out)
            for seed in seeds}

  # The two tasks run side by side: on few cores much of a small job is
  # start-up (imports, tracing), which overlaps well.
  with concurrent.futures.ThreadPoolExecutor(len(FLAGS.tasks)) as pool:
    results = dict(zip(FLAGS.tasks, pool.map(run_task, FLAGS.tasks)))
  summary["tasks"] = {task: results[task] for task in FLAGS.tasks}
  summary["timings"] = {task: step_seconds(os.path.join(out, task), seeds)
                        for task in FLAGS.tasks}
  summary["wall_seconds"] = time.time() - start
  report_dir = FLAGS.report_dir or out
  os.makedirs(report_dir, exist_ok=True)
  with open(os.path.join(report_dir, "results.json"), "w") as f:
    json.dump(summary, f, indent=1)
  markdown = report.write(summary, report_dir)
  print(markdown)


if __name__ == "__main__":
  app.run(main)
