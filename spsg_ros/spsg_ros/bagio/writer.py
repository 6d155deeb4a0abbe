"""ROS 2 bags written with rosbags (MCAP storage, no ROS 2 needed).

:class:`BagWriter` wraps ``rosbags.rosbag2.Writer`` with connections opened on
first use and a close that is safe to call twice (``with`` blocks close it on
errors and Ctrl-C, so an interrupted run still leaves a readable bag).
:class:`ResultsBagWriter` writes the frontend's results with our message types
(:mod:`spsg_ros.bagio.typestore`, conversions of :mod:`spsg_ros.messages.conversions`).

Humble note: rosbags writes metadata version 9; if ``ros2 bag play`` of an
older rosbag2 refuses the bag, ``ros2 bag reindex BAG -s mcap`` rewrites the
metadata for it (rosbag2 issue 1895).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..frontend.types import FrameResult
from ..messages.topics import GROUND_TRUTH_TOPICS, OUTPUT_TOPICS, OUTPUTS_BY_NAME

log = logging.getLogger(__name__)

#: results bag topic of each output, by its node-relative name: the node's topics under
#: ``/frontend`` (ground truth: :data:`GROUND_TRUTH_TOPICS`)
RESULT_TOPICS = {topic.name: topic.bag_topic for topic in OUTPUT_TOPICS}


class BagWriteError(ValueError):
    """The bag cannot be created or written; the message names the path."""


class BagWriter:
    """A ROS 2 bag (MCAP by default) with lazily created connections."""

    def __init__(
        self, path: str | Path, typestore=None, storage: str = "mcap", distro: str = "humble"
    ):
        from rosbags.rosbag2 import StoragePlugin, Writer

        from .typestore import get_spsg_typestore

        self.path = Path(path)
        if self.path.exists():
            raise BagWriteError(
                f"bag {self.path} already exists (rosbags does not overwrite): "
                f"remove it or choose another path"
            )
        if not self.path.parent.is_dir():
            raise BagWriteError(
                f"folder {self.path.parent} for bag {self.path.name} does not exist"
            )
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
        if plugin is None:
            raise BagWriteError(f"unknown storage '{storage}' (mcap or sqlite3)")
        self.typestore = typestore if typestore is not None else get_spsg_typestore(distro)
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
            self._writer.open()
        except Exception as exc:
            raise BagWriteError(
                f"cannot create bag {self.path}: {type(exc).__name__}: {exc}"
            ) from exc
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        msgtype = msg.__msgtype__
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagWriteError(f"{self.path}: topic {topic} holds {conn.msgtype}, not {msgtype}")
        self._writer.write(conn, int(stamp_ns), self.typestore.serialize_cdr(msg, msgtype))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ResultsBagWriter:
    """Frontend results as a bag: our messages, the match picture, the trajectory.

    The topics and types of :data:`spsg_ros.messages.topics.OUTPUT_TOPICS` under
    ``/frontend``, as the node publishes them. Per frame: keypoints, relative_pose,
    frontend_status, matches (when there is a reference), right/keypoints and
    stereo_matches (stereo), the match picture (``matches_image``, bgr8, optionally
    scaled), the accumulated pose (``odometry``, ``nav_msgs/Odometry`` from
    ``world_frame_id`` to the image frame) and, every ``path_every`` frames and at the
    end, the trajectory so far (``trajectory``, ``nav_msgs/Path``); ground truth
    (PoseStamped and Path in frame ``world``) on ``/ground_truth/*`` when given.
    """

    def __init__(
        self,
        path: str | Path,
        world_frame_id: str = "odom",
        backend_name: str = "",
        path_every: int = 10,
        distro: str = "humble",
    ):
        from ..messages.conversions import MessageTypes

        self.bag = BagWriter(path, distro=distro)
        self.types = MessageTypes.from_typestore(self.bag.typestore)
        self.world_frame_id = world_frame_id
        self.backend_name = backend_name
        self.path_every = max(1, int(path_every))
        self._poses: list = []
        self._gt_poses: list = []
        self._frames = 0
        self._last_stamp = 0

    @property
    def path(self) -> Path:
        return self.bag.path

    def write_frame(
        self,
        result: FrameResult,
        T_world_cur: Optional[np.ndarray] = None,
        matches_image: Optional[np.ndarray] = None,
        gt_pose: Optional[np.ndarray] = None,
        latency_ms: float = 0.0,
        right_stamp_ns: Optional[int] = None,
        right_frame_id: Optional[str] = None,
    ) -> None:
        from ..messages import conversions as cv

        types, stamp = self.types, int(result.stamp_ns)
        msgs = cv.frame_result_to_messages(
            types,
            result,
            backend=self.backend_name,
            latency_ms=latency_ms,
            right_stamp_ns=right_stamp_ns,
            right_frame_id=right_frame_id,
        )
        self._write("keypoints", msgs.keypoints, stamp)
        self._write("relative_pose", msgs.relative_pose, stamp)
        self._write("frontend_status", msgs.status, stamp)
        if msgs.matches is not None:
            self._write("matches", msgs.matches, stamp)
        if msgs.right_keypoints is not None:
            self._write("right/keypoints", msgs.right_keypoints, stamp)
        if msgs.stereo_matches is not None:
            self._write("stereo_matches", msgs.stereo_matches, stamp)
        if matches_image is not None:
            self._write(
                "matches_image",
                cv.array_to_image_msg(types, matches_image, "bgr8", stamp, result.frame_id),
                stamp,
            )
        if T_world_cur is not None:
            child = result.frame_id or "camera"
            odometry = cv.odometry_msg(types, T_world_cur, stamp, self.world_frame_id, child)
            self._write("odometry", odometry, stamp)
            self._poses.append(cv.pose_stamped_msg(types, T_world_cur, stamp, self.world_frame_id))
        if gt_pose is not None:
            gt = cv.pose_stamped_msg(types, gt_pose, stamp, "world")
            self.bag.write(GROUND_TRUTH_TOPICS["pose"], gt, stamp)
            self._gt_poses.append(gt)
        self._frames += 1
        self._last_stamp = max(self._last_stamp, stamp)
        if self._frames % self.path_every == 0:
            self._write_paths()

    def _write(self, name: str, msg: Any, stamp_ns: int) -> None:
        """Write the output ``name`` of the topic table (its type checked) under /frontend."""
        topic = OUTPUTS_BY_NAME[name]
        if msg.__msgtype__ != topic.type_name:
            raise BagWriteError(
                f"{topic.bag_topic} carries {topic.type_name}, not {msg.__msgtype__}"
            )
        self.bag.write(topic.bag_topic, msg, stamp_ns)

    def _write_paths(self) -> None:
        from ..messages import conversions as cv

        if self._poses:
            self._write(
                "trajectory",
                cv.path_msg(self.types, self._poses, self._last_stamp, self.world_frame_id),
                self._last_stamp,
            )
        if self._gt_poses:
            self.bag.write(
                GROUND_TRUTH_TOPICS["path"],
                cv.path_msg(self.types, self._gt_poses, self._last_stamp, "world"),
                self._last_stamp,
            )

    def close(self) -> None:
        """Write the final paths (unless just written) and close the bag."""
        if self.bag.closed:
            return
        try:
            if self._frames % self.path_every != 0:
                self._write_paths()
        finally:
            self.bag.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
