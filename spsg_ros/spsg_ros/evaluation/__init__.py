"""Accuracy measures (pose errors, AUC, RPE/ATE), the upstream pairs protocol, plots."""

from .pose import (
    AUC_THRESHOLDS,
    PairError,
    SequenceAccuracy,
    absolute_trajectory_error,
    auc_dict,
    pose_auc,
    relative_pose_error,
    trajectory_rpe,
)

__all__ = [
    "AUC_THRESHOLDS",
    "PairError",
    "SequenceAccuracy",
    "absolute_trajectory_error",
    "auc_dict",
    "pose_auc",
    "relative_pose_error",
    "trajectory_rpe",
]
