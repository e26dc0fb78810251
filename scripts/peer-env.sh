#!/usr/bin/env bash
# Creates (once) a Python virtual environment with torch (CPU use), transformers, peft, gguf and rouge-score from PyPI,
# used only to measure and cross-check against the reference stack. Prints its python's path.
# torch is installed without its CUDA dependencies (--no-deps): they are large and unused on a CPU.
set -euo pipefail
DIR=${RANKWISE_PEER_DIR:-/opt/rankwise-peer}
PY="$DIR/bin/python"
if [ -x "$PY" ] && "$PY" -c "import torch, transformers, peft, gguf, rouge_score" 2>/dev/null; then echo "$PY"; exit 0; fi
echo "peer-env: creating $DIR (torch, transformers, peft, gguf, rouge-score from PyPI)" >&2
python3 -m venv "$DIR" >&2
"$PY" -m pip install -q --disable-pip-version-check --retries 5 --no-deps torch >&2
"$PY" -m pip install -q --disable-pip-version-check --retries 5 filelock typing-extensions sympy networkx jinja2 fsspec numpy transformers peft gguf rouge-score nltk >&2
"$PY" -c "import torch, transformers, peft, gguf, rouge_score" >&2
echo "$PY"
