"""Ground-truth poses: quaternions (x, y, z, w), 4x4 matrices, interpolated trajectories."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..geometry.rotations import quaternion_to_rotation, rotation_to_quaternion
from .base import DatasetError


def quat_xyzw_to_matrix(q) -> np.ndarray:
    """Rotation matrix of a quaternion given as (x, y, z, w); normalised first."""
    values = [float(v) for v in q]
    if (
        len(values) != 4
        or not all(math.isfinite(v) for v in values)
        or math.sqrt(sum(v * v for v in values)) < 1e-12
    ):
        raise DatasetError(f"invalid quaternion (x y z w) = {tuple(q)}")
    return quaternion_to_rotation(*values)


def matrix_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) with w >= 0 of a rotation matrix."""
    return np.array(rotation_to_quaternion(R))


def pose_matrix(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, float).reshape(3)
    return T


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    return (math.sin((1 - a) * theta) * q0 + math.sin(a * theta) * q1) / math.sin(theta)


class Trajectory:
    """Stamped ground truth: positions (N, 3) and optional quaternions (N, 4) x y z w.

    :meth:`at` interpolates (linear position, slerp orientation) between the two
    samples around a stamp when they are at most ``max_gap_ns`` apart;
    :meth:`nearest` associates the closest sample within ``max_diff_ns``.
    """

    def __init__(self, stamps_ns, positions, quats_xyzw=None):
        order = np.argsort(np.asarray(stamps_ns, np.int64), kind="stable")
        self.stamps = np.asarray(stamps_ns, np.int64)[order]
        self.positions = np.asarray(positions, float).reshape(-1, 3)[order]
        self.quats = (
            None if quats_xyzw is None else np.asarray(quats_xyzw, float).reshape(-1, 4)[order]
        )
        if self.quats is not None:
            norms = np.linalg.norm(self.quats, axis=1, keepdims=True)
            if np.any(~np.isfinite(norms)) or np.any(norms < 1e-9):
                raise DatasetError("ground truth holds a zero or non-finite quaternion")
            self.quats = self.quats / norms

    def __len__(self) -> int:
        return len(self.stamps)

    def _result(self, position, quat) -> tuple[Optional[np.ndarray], np.ndarray]:
        if quat is None:
            return None, position
        return pose_matrix(quat_xyzw_to_matrix(quat), position), position

    def at(
        self, stamp_ns: int, max_gap_ns: int
    ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """(T_world_body or None, position or None) at ``stamp_ns`` by interpolation."""
        if len(self.stamps) == 0:
            return None, None
        i = int(np.searchsorted(self.stamps, stamp_ns))
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            return self._result(self.positions[i], None if self.quats is None else self.quats[i])
        if i == 0 or i == len(self.stamps):
            return None, None
        t0, t1 = int(self.stamps[i - 1]), int(self.stamps[i])
        if t1 - t0 > max_gap_ns:
            return None, None
        a = (stamp_ns - t0) / (t1 - t0)
        position = (1 - a) * self.positions[i - 1] + a * self.positions[i]
        quat = None if self.quats is None else _slerp(self.quats[i - 1], self.quats[i], a)
        return self._result(position, quat)

    def nearest(
        self, stamp_ns: int, max_diff_ns: int
    ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        if len(self.stamps) == 0:
            return None, None
        i = int(np.searchsorted(self.stamps, stamp_ns))
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.stamps)]
        j = min(candidates, key=lambda k: abs(int(self.stamps[k]) - stamp_ns))
        if abs(int(self.stamps[j]) - stamp_ns) > max_diff_ns:
            return None, None
        return self._result(self.positions[j], None if self.quats is None else self.quats[j])
