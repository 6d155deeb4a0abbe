"""Camera trajectory from chained relative poses (shared by the node and the replay)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np


class TrajectoryAccumulator:
    """World poses of the camera from chained relative poses.

    The world frame is the optical frame of the first frame the frontend
    processed. A frame's pose is its reference's pose composed with the inverse
    relative pose (``T_world_cur = T_world_ref @ inv(T_cur_ref)``); references
    are looked up by stamp among the last ``history`` frames, so keyframe
    pairing works.

    Only what was measured is published: a frame without a valid pose gets no
    world pose (never a copy of the previous one). When such a frame still
    becomes the next reference (a pairing reset, or the frontend giving up on an
    old reference), it is kept internally as an anchor at the last published
    pose, so the trajectory continues from there. Mono translations are unit
    directions, so the mono trajectory has one unit of length per step.
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
        self,
        stamp_ns: int,
        ref_stamp_ns: Optional[int],
        pose: Any,
        becomes_reference: bool = True,
    ) -> Optional[np.ndarray]:
        """World pose (4x4) to publish for the frame at ``stamp_ns``, or None.

        ``pose`` is the frame's relative pose to its reference: anything with
        ``valid`` and ``inverse_matrix()`` (a frontend RelativePose);
        ``becomes_reference`` says whether later frames may be paired with this
        one (``FrameResult.is_keyframe``).
        """
        reference = self._poses.get(int(ref_stamp_ns)) if ref_stamp_ns is not None else None
        published: Optional[np.ndarray] = None
        if self.latest is None:
            if not becomes_reference:
                return None  # a flagged frame cannot be the origin
            current = published = np.eye(4)
        elif reference is not None and pose.valid:
            current = published = reference @ pose.inverse_matrix()
        elif becomes_reference:
            current = self.latest.copy()  # anchor: continue from the last published pose
        else:
            return None
        self._poses[int(stamp_ns)] = current
        while len(self._poses) > self.history:
            self._poses.pop(next(iter(self._poses)))  # dicts keep insertion order
        if published is not None:
            self.latest = published
            return published.copy()
        return None
