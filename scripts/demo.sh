#!/usr/bin/env bash
# Main job on a fresh machine: set up .venv, then match two frames of the shared
# sample sequence and write the keypoints/matches (.npz) and a picture of them.
# Usage: bash scripts/demo.sh [--weights-dir DIR] [extra match-pair options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
SEQ=${SPSG_DEMO_SEQUENCE:-../shared/data/freiburg_sequence}
OUT=${SPSG_DEMO_OUT:-demo_out}
mapfile -t frames < <(ls "$SEQ"/*.png | sort | head -2)
spsg-ros match-pair "${frames[0]}" "${frames[1]}" --resize -1 --max-keypoints 1024 \
    --out "$OUT/pair.npz" --viz "$OUT/pair.png" "$@"
echo "results: $OUT/pair.npz (keypoints, descriptors, matches), $OUT/pair.png (picture)"
