#!/usr/bin/env bash
# Main job on a fresh machine: set up .venv, render a synthetic stereo sequence with
# known ground truth (TartanAir layout), replay it through the frontend, and write
# a ROS 2 bag (MCAP), per-frame metrics, a summary and plots.
# Usage: bash scripts/demo.sh [replay options, e.g. --weights-dir DIR, --matcher nn]
# Environment: SPSG_DEMO_OUT (default demo_out), SPSG_DEMO_FRAMES (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
OUT=${SPSG_DEMO_OUT:-demo_out}
FRAMES=${SPSG_DEMO_FRAMES:-20}
rm -rf "$OUT/synthetic" "$OUT/replay"
spsg-ros make-synthetic "$OUT/synthetic" --frames "$FRAMES"
spsg-ros replay "$OUT/synthetic" --stereo --out "$OUT/replay" "$@"
cat <<MSG
results in $OUT/replay:
  results/        ROS 2 bag (results_0.mcap): keypoints, matches, relative poses, status, match images, trajectory
  metrics.csv     one row per frame
  summary.json    means, latency, accuracy against ground truth (AUC@5/10/20, RPE, ATE)
  plots/          metrics.png latency.png trajectory.png errors.png
MSG
