#!/usr/bin/env bash
# Install everything from nothing and run all the tests (what CI runs: .ci/run).
# Debian 12 / Python >= 3.10, as root (apt-get) or with the packages already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  # Real data for the Fashion-MNIST tests, and a real single-node SLURM cluster.
  apt-get install -y -qq dataset-fashion-mnist >/dev/null || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
  bash scripts/slurm_cluster.sh install
fi
python -m pip install -q -e '.[dev]'
export DGL_REQUIRE_SLURM=${DGL_REQUIRE_SLURM:-1}   # CI: a missing cluster is a failure, not a skip
python -m pytest -q "$@"
