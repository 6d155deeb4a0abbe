"""Camera trajectory from chained relative poses (shared by the node and the replay)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np


class TrajectoryAccumulator:
    """World poses of the camera from chained relative poses.

    The world frame is the optical frame of the first camera pose. A frame's
    pose is its reference's pose composed with the inverse relative pose
    (``T_world_cur = T_world_ref @ inv(T_cur_ref)``); references are looked up
    by stamp among the last ``history`` frames, so keyframe pairing works. A
    frame without a valid pose (or whose reference is unknown) keeps the last
    pose. Mono translations are unit directions, so the mono trajectory has
    one unit of length per step.
    """

    def __init__(self, history: int = 512) -> None:
        if history < 1:
            raise ValueError("history must be at least 1")
        self.history = int(history)
        self._poses: Dict[int, np.ndarray] = {}
        self.latest: Optional[np.ndarray] = None

    def reset(self) -> None:
        self._poses.clear()
        self.latest = None

    def pose_at(self, stamp_ns: int) -> Optional[np.ndarray]:
        pose = self._poses.get(int(stamp_ns))
        return None if pose is None else pose.copy()

    def update(
        self, stamp_ns: int, ref_stamp_ns: Optional[int], pose: Any
    ) -> Tuple[np.ndarray, bool]:
        """World pose (4x4) of the frame at ``stamp_ns`` and whether it moved by a valid pose.

        ``pose`` is the frame's relative pose to its reference: anything with
        ``valid`` and ``inverse_matrix()`` (a frontend RelativePose).
        """
        reference = self._poses.get(int(ref_stamp_ns)) if ref_stamp_ns is not None else None
        if self.latest is None:
            current, moved = np.eye(4), False
        elif reference is not None and pose.valid:
            current, moved = reference @ pose.inverse_matrix(), True
        else:
            current, moved = self.latest.copy(), False
        self._poses[int(stamp_ns)] = current
        while len(self._poses) > self.history:
            self._poses.pop(next(iter(self._poses)))  # dicts keep insertion order
        self.latest = current
        return current.copy(), moved
