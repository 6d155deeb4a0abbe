"""Pose error measures used by tests and evaluation."""

from __future__ import annotations

import numpy as np


def rotation_error_deg(R_est: np.ndarray, R_true: np.ndarray) -> float:
    """Angle of R_est^T R_true in degrees."""
    cos = (np.trace(np.asarray(R_est).T @ np.asarray(R_true)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def translation_angle_deg(t_est: np.ndarray, t_true: np.ndarray, fold: bool = False) -> float:
    """Angle between two translation directions in degrees; ``fold`` gives
    min(e, 180 - e) as the upstream evaluation does (sign ambiguity). 180 when
    either vector is zero."""
    a, b = np.asarray(t_est, np.float64).ravel(), np.asarray(t_true, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return 180.0
    err = float(np.degrees(np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0))))
    return min(err, 180.0 - err) if fold else err


def translation_relative_error(t_est: np.ndarray, t_true: np.ndarray) -> float:
    """|t_est - t_true| / |t_true| (metric translations); inf for a zero reference."""
    a, b = np.asarray(t_est, np.float64).ravel(), np.asarray(t_true, np.float64).ravel()
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 1e-12 else float("inf")


def relative_pose(T_world_ref: np.ndarray, T_world_cur: np.ndarray) -> np.ndarray:
    """4x4 T_cur_ref (maps reference-camera points into the current camera) from
    two camera poses in a common world frame."""
    return np.linalg.inv(np.asarray(T_world_cur)) @ np.asarray(T_world_ref)
