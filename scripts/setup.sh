#!/usr/bin/env bash
# Installs the system packages Rankwise needs (OpenBLAS) when they are missing.
set -euo pipefail
have_blas() { ldconfig -p 2>/dev/null | grep -qE 'libopenblas\.so\.0|libblis\.so\.4'; }
if have_blas; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing libopenblas-dev" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null
else
  echo "setup: OpenBLAS not found. Install it: sudo apt-get install libopenblas-dev (or libblis-dev)" >&2
  exit 1
fi
