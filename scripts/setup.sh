#!/usr/bin/env bash
# Installs the system packages Rankwise needs when they are missing: OpenBLAS (the matrix products), Chromium
# (headless, for the test that renders a report page; the reports themselves need no browser) and Open MPI (runs on
# several processes; the tests start ranks with mpirun).
set -euo pipefail
have_blas() { ldconfig -p 2>/dev/null | grep -qE 'libopenblas\.so\.0|libblis\.so\.4'; }
missing=()
have_blas || missing+=(libopenblas-dev)
command -v chromium > /dev/null || missing+=(chromium)
command -v mpirun > /dev/null || missing+=(openmpi-bin libopenmpi-dev)
[ ${#missing[@]} = 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif ! have_blas; then
  echo "setup: OpenBLAS not found. Install it: sudo apt-get install libopenblas-dev (or libblis-dev)" >&2
  exit 1
else
  echo "setup: not installed: ${missing[*]} (chromium: the report rendering test; Open MPI: runs on several" \
    "processes and their tests): sudo apt-get install ${missing[*]}" >&2
fi
