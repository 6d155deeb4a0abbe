"""Stereo triangulation on normalised image coordinates.

Rectified stereo is the special case ``T_right_left = [I | (-baseline, 0, 0)]``
(the right camera sits ``baseline`` metres along the left camera's x axis, as a
ROS right CameraInfo with ``P[0, 3] = -fx * baseline`` says).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Triangulation:
    points: np.ndarray  # (N, 3) in the left camera frame
    reprojection: np.ndarray  # (N,) max of left/right reprojection error, normalised units
    valid: np.ndarray  # (N,) bool: in front of both cameras, finite


def rectified_extrinsics(baseline: float) -> np.ndarray:
    """4x4 T_right_left of a rectified pair with the right camera ``baseline`` m to the right."""
    T = np.eye(4)
    T[0, 3] = -float(baseline)
    return T


def baseline_from_projection(P_right: np.ndarray) -> float:
    """Baseline in metres from a rectified right projection matrix (P[0, 3] = -fx * b)."""
    P = np.asarray(P_right, np.float64).reshape(3, 4)
    return float(-P[0, 3] / P[0, 0])


def _project(points: np.ndarray) -> np.ndarray:
    z = points[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return points[:, :2] / z


def triangulate(
    points_left: np.ndarray, points_right: np.ndarray, T_right_left: np.ndarray
) -> Triangulation:
    """Linear (DLT) triangulation of matched normalised points of two cameras."""
    pl = np.asarray(points_left, np.float64).reshape(-1, 2)
    pr = np.asarray(points_right, np.float64).reshape(-1, 2)
    n = len(pl)
    if n == 0:
        return Triangulation(np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool))
    T = np.asarray(T_right_left, np.float64)
    homog = cv2.triangulatePoints(np.eye(3, 4), T[:3, :4], pl.T.copy(), pr.T.copy())
    with np.errstate(divide="ignore", invalid="ignore"):
        X = (homog[:3] / homog[3]).T
    X_right = X @ T[:3, :3].T + T[:3, 3]
    finite = np.all(np.isfinite(X), axis=1)
    valid = finite & (X[:, 2] > 0) & (X_right[:, 2] > 0)
    err = np.full(n, np.inf)
    if np.any(valid):
        e_left = np.linalg.norm(_project(X[valid]) - pl[valid], axis=1)
        e_right = np.linalg.norm(_project(X_right[valid]) - pr[valid], axis=1)
        err[valid] = np.maximum(e_left, e_right)
    return Triangulation(np.where(finite[:, None], X, np.nan), err, valid)
