#!/usr/bin/env bash
# GPU check (issue #13): the torch networks on a CUDA device, fp32 / fp16 (autocast), eager /
# CUDA graphs, per stage (median, p90) at 480x640 and SuperGlue K = 512, 1024, 2048, with the
# keypoint and match agreement against the CPU float32 reference. Installs nothing and needs no
# network: it runs spsg_ros.evaluation.gpu_check from this working tree (PYTHONPATH) with a
# Python that has torch (CUDA build), numpy and OpenCV.
# Usage: bash scripts/gpu_check.sh [--device cpu] [--weights-dir DIR] [--frames-dir DIR] ...
#        (bash scripts/gpu_check.sh --help lists the options)
# Environment: PYTHON (default: python3 when it imports torch, else .venv/bin/python);
#              OUT (the JSON goes to $OUT/gpu_check.json, else out/gpu_check.json).
# A 290 s guard stops the run (the check must finish within 5 minutes); the JSON keeps
# what was measured up to then.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
if [ -z "${PYTHON:-}" ]; then
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import torch' >/dev/null 2>&1; then
        PYTHON=python3
    elif [ -x "$ROOT/.venv/bin/python" ]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        echo "gpu_check: no Python with torch found (python3, .venv/bin/python); set PYTHON" >&2
        exit 2
    fi
fi
export PYTHONPATH="$ROOT/spsg_ros${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
GUARD_S=290
timeout "$GUARD_S" "$PYTHON" -m spsg_ros.evaluation.gpu_check "$@"
rc=$?
if [ "$rc" -eq 124 ]; then
    echo "gpu_check: stopped by the ${GUARD_S} s guard; the JSON holds the rows measured" >&2
fi
exit "$rc"
