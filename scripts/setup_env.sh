#!/usr/bin/env bash
# Create ./.venv with everything the tools and tests need (no ROS 2 required).
# torch is pinned: a bare 'torch' requirement pulls several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==${SPSG_TORCH_VERSION:-2.13.0}"
# compat mode: a path entry, so the source package wins over the ROS package folder
# of the same name when commands run from the repository root
python -m pip install -q --config-settings editable_mode=compat \
    -e "./spsg_ros[torch,export,openvino,bags,plots,test]"
