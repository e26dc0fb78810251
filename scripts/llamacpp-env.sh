#!/usr/bin/env bash
# Builds (once) llama.cpp for `rankwise bench generate --llamacpp-python`: a Python virtual environment with the PyPI
# source package llama-cpp-python 0.3.36, which compiles llama.cpp with CMake (several minutes on 2 cores; a
# benchmark set-up step, never run in CI). Prints the environment's python. Installs cmake with apt when missing.
set -euo pipefail
DIR=${RANKWISE_LLAMACPP_DIR:-/opt/rankwise-llamacpp}
PY="$DIR/bin/python"
if [ -x "$PY" ] && "$PY" -c "import llama_cpp" 2>/dev/null; then echo "$PY"; exit 0; fi
if ! command -v cmake > /dev/null; then
  echo "llamacpp-env: installing cmake (apt)" >&2
  apt-get install -y -qq cmake > /dev/null
fi
echo "llamacpp-env: creating $DIR and compiling llama-cpp-python 0.3.36 (minutes)" >&2
python3 -m venv "$DIR" >&2
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} "$DIR/bin/pip" install -q --disable-pip-version-check \
  --no-binary llama-cpp-python llama-cpp-python==0.3.36 >&2
"$PY" -c "import llama_cpp" >&2
echo "$PY"
