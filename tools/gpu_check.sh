#!/usr/bin/env bash
# The GPU check: install, test and measure mmdiff on a CUDA machine in one
# command; writes work_dirs/gpu_check/gpu_check.{json,md}. Every step and
# option: bash tools/gpu_check.sh --help (the logic is tools/gpu_check.py).
#
#   bash tools/gpu_check.sh                       # on a CUDA machine
#   bash tools/gpu_check.sh --cpu-rehearsal       # no GPU: rehearse it
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" tools/gpu_check.py "$@"
