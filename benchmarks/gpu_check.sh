#!/usr/bin/env bash
# The one-GPU check (benchmarks/gpu_check.py): bash benchmarks/gpu_check.sh [--smoke] [flags].
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
