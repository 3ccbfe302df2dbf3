#!/usr/bin/env bash
# One-command install of mmdiff and its tested stack into the current Python.
#
#   bash tools/install.sh            # CPU: torch 2.13.0, mmcv ops compiled for CPU
#   MMDIFF_TORCH=skip bash tools/install.sh
#                                    # keep the torch already installed (e.g. a
#                                    # CUDA build); mmcv then compiles CUDA ops
#                                    # when nvcc is found (FORCE_CUDA=1 to insist)
#
# mmcv 2.1.0 has no wheel for recent torch, so its ops compile from source
# (about 11 minutes on 2 cores; pip caches the wheel, later installs are fast).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip"

# System libraries: opencv (pulled in by mmengine / mmcv) needs libGL and
# glib; mmcv's ops need a C++ compiler. Install only what is missing.
need=()
ldconfig -p | grep -q 'libGL.so.1' || need+=(libgl1)
ldconfig -p | grep -q 'libgthread-2.0.so.0' || need+=(libglib2.0-0)
command -v g++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" = 0 ] && echo '' || echo sudo)
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi

$PIP install --upgrade 'pip>=23.2'
if [ "${MMDIFF_TORCH:-2.13.0}" != skip ]; then
    $PIP install "torch==${MMDIFF_TORCH:-2.13.0}"
fi
$PIP install -r requirements/build.txt
$PIP install mmengine==0.10.7 -r requirements/runtime.txt
# --no-build-isolation: mmcv's setup.py must see the installed torch.
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    $PIP install --no-build-isolation -r requirements/mminstall.txt
$PIP install -r requirements/tests.txt
$PIP install --no-build-isolation -e .
$PY - <<'PY'
import mmcv, mmdet, mmengine, torch
from mmcv.ops import RoIAlign, nms  # noqa: F401  (fails if ops are missing)
import mmdiff
print(f'mmdiff {mmdiff.__version__}: torch {torch.__version__}, '
      f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (ops ok), '
      f'mmdet {mmdet.__version__}')
PY
