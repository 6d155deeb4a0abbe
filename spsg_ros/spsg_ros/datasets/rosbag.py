"""ROS 1 (``.bag``) and ROS 2 (folder with ``metadata.yaml``, sqlite3 or MCAP) bags
read through ``rosbags.highlevel.AnyReader``.

Images come from ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``
topics; intrinsics from the ``sensor_msgs/CameraInfo`` topic beside the image
topic (``/cam/image_raw`` -> ``/cam/camera_info``) or an intrinsics YAML. Ground
truth, optional, from a ``geometry_msgs/PoseStamped`` or ``nav_msgs/Odometry``
topic holding the pose of the (left) camera's optical frame (what ``spsg-ros
to-bag`` writes on ``/ground_truth/pose``). Stamps are the header stamps (the
bag time when a header stamp is zero). ``start`` and ``duration`` are seconds
relative to the start of the bag.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from ..frontend.types import CameraInfo
from ..images import ImageDecodeError, decode_compressed, decode_image
from ..messages.conversions import (
    camera_info_from_msg,
    pose_from_msg,
    time_to_ns,
    transform_from_msg,
)
from .base import DatasetError, Sequence, SequenceFrame
from .image_files import check_size
from .intrinsics import default_camera_info, read_intrinsics_yaml
from .poses import Trajectory, matrix_to_quat_xyzw

log = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
GT_TYPES = (
    "geometry_msgs/msg/PoseStamped",
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "geometry_msgs/msg/TransformStamped",
)


def is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in (".bag", ".mcap", ".db3")
    return path.is_dir() and (path / "metadata.yaml").is_file()


# ----------------------------------------------------------------------------- messages -> arrays


def stamp_ns_of(header: Any) -> int:
    return time_to_ns(header.stamp)


def image_from_msg(msg: Any) -> tuple[np.ndarray, str]:
    """(array, encoding) of a ``sensor_msgs/Image`` (:func:`spsg_ros.images.decode_image`:
    Bayer and YUV 4:2:2 come out as bgr8)."""
    try:
        return decode_image(
            msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian, msg.data
        )
    except ImageDecodeError as exc:
        raise DatasetError(str(exc)) from exc


def pose_of_msg(msg: Any, msgtype: str) -> np.ndarray:
    """4x4 pose of a PoseStamped, PoseWithCovarianceStamped, Odometry or TransformStamped."""
    if msgtype == "geometry_msgs/msg/TransformStamped":
        return transform_from_msg(msg.transform)
    if msgtype in ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseWithCovarianceStamped"):
        return pose_from_msg(msg.pose.pose)
    return pose_from_msg(msg.pose)


# ----------------------------------------------------------------------------- the reader


def _camera_info_topic_for(image_topic: str) -> str:
    parts = image_topic.rstrip("/").split("/")
    if parts[-1] in ("compressed", "theora", "compressedDepth"):
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"])


def _pick(topics: list[str], words: tuple[str, ...]) -> Optional[str]:
    for word in words:
        for topic in topics:
            if word in topic.lower():
                return topic
    return None


class BagSequence(Sequence):
    """Images (mono or stereo) of a ROS 1 or ROS 2 bag."""

    kind = "bag"

    def __init__(
        self,
        path: str | Path,
        *,
        topic: Optional[str] = None,
        right_topic: Optional[str] = None,
        camera_info_topic: Optional[str] = None,
        right_camera_info_topic: Optional[str] = None,
        gt_topic: Optional[str] = None,
        stereo: bool = False,
        intrinsics: Optional[str | Path] = None,
        stereo_tolerance: float = 0.005,
        gt_max_gap: float = 0.1,
        **selection,
    ):
        super().__init__(path, **selection)
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        if not self.path.exists():
            raise DatasetError(f"bag {self.path} does not exist")
        self._typestore = get_typestore(Stores.ROS2_HUMBLE)
        self._reader_cls = AnyReader
        try:
            with AnyReader([self.path], default_typestore=self._typestore) as reader:
                self.bag_start, self.bag_end = int(reader.start_time), int(reader.end_time)
                topics = {c.topic: c.msgtype for c in reader.connections}
                counts: dict[str, int] = {}
                for c in reader.connections:
                    counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount)
        except DatasetError:
            raise
        except Exception as exc:  # rosbags raises several error types for damaged files
            raise DatasetError(
                f"cannot read bag {self.path}: {type(exc).__name__}: {exc}"
            ) from exc
        self.topics = topics
        image_topics = sorted(t for t, m in topics.items() if m in IMAGE_TYPES)
        if not image_topics:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
            raise DatasetError(
                f"bag {self.path} has no sensor_msgs/Image or CompressedImage topic "
                f"(topics: {listing})"
            )
        self.stereo = bool(stereo)
        if topic is None:
            topic = (
                (_pick(image_topics, ("left", "cam0", "infra1")) if self.stereo else None)
                or _pick(image_topics, ("image_raw", "image_rect", "image"))
                or image_topics[0]
            )
        if topic not in topics or topics[topic] not in IMAGE_TYPES:
            raise DatasetError(
                f"bag {self.path}: '{topic}' is not an image topic "
                f"(image topics: {', '.join(image_topics)})"
            )
        self.topic = topic
        self.right_topic = None
        if self.stereo:
            others = [t for t in image_topics if t != topic]
            right_topic = right_topic or _pick(others, ("right", "cam1", "infra2"))
            if (
                right_topic is None
                or right_topic not in topics
                or topics[right_topic] not in IMAGE_TYPES
            ):
                raise DatasetError(
                    f"bag {self.path}: stereo needs a right image topic (--right-topic); "
                    f"image topics: {', '.join(image_topics)}"
                )
            self.right_topic = right_topic
        self.stereo_tolerance_ns = int(stereo_tolerance * 1e9)
        self.message_count = counts.get(topic, 0)
        self.camera_info = self._find_camera_info(
            camera_info_topic or _camera_info_topic_for(topic), intrinsics
        )
        if self.stereo:
            self.right_camera_info = self._find_camera_info(
                right_camera_info_topic or _camera_info_topic_for(self.right_topic), intrinsics
            )
            if (
                self.right_camera_info is not None
                and self.right_camera_info.baseline
                and self.camera_info
            ):
                self.camera_info.baseline = self.right_camera_info.baseline
        if gt_topic is None:
            gt_topic = _pick(
                [t for t, m in topics.items() if m in GT_TYPES], ("ground_truth", "groundtruth")
            )
        elif gt_topic not in topics or topics[gt_topic] not in GT_TYPES:
            raise DatasetError(
                f"bag {self.path}: ground truth topic '{gt_topic}' is missing or not one of "
                f"{', '.join(GT_TYPES)}"
            )
        self.gt_topic = gt_topic
        self.gt: Optional[Trajectory] = self._read_ground_truth() if gt_topic else None
        if self.gt is not None and len(self.gt):
            self.has_ground_truth = True
            self.ground_truth_kind = "pose"
        self.gt_max_gap_ns = int(gt_max_gap * 1e9)
        self.world_frame = "optical"
        self.name = self.path.name

    # -- helpers reading one topic
    def _open(self):
        return self._reader_cls([self.path], default_typestore=self._typestore)

    def _iter_topic(
        self, topics: list[str], start: Optional[int] = None, stop: Optional[int] = None
    ):
        try:
            with self._open() as reader:
                conns = [c for c in reader.connections if c.topic in topics]
                for conn, bag_time, raw in reader.messages(
                    connections=conns, start=start, stop=stop
                ):
                    try:
                        msg = reader.deserialize(raw, conn.msgtype)
                        yield conn.topic, conn.msgtype, int(bag_time), msg, None
                    except Exception as exc:  # a damaged message: report it, go on
                        yield (
                            conn.topic,
                            conn.msgtype,
                            int(bag_time),
                            None,
                            f"message on {conn.topic} at {bag_time} cannot be deserialised: {exc}",
                        )
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(
                f"cannot read bag {self.path}: {type(exc).__name__}: {exc}"
            ) from exc

    def _find_camera_info(self, info_topic: str, intrinsics) -> Optional[CameraInfo]:
        if intrinsics is not None:
            return read_intrinsics_yaml(intrinsics)
        if info_topic in self.topics and self.topics[info_topic] == CAMERA_INFO_TYPE:
            for _, _, _, msg, error in self._iter_topic([info_topic]):
                if msg is not None:
                    try:
                        return camera_info_from_msg(msg)
                    except ValueError as exc:
                        log.warning("bag %s: %s: %s", self.path, info_topic, exc)
                        break
        log.warning(
            "bag %s: no CameraInfo on %s and no intrinsics YAML: intrinsics will be assumed",
            self.path,
            info_topic,
        )
        return None

    def _read_ground_truth(self) -> Trajectory:
        stamps, positions, quats = [], [], []
        for _, msgtype, bag_time, msg, error in self._iter_topic([self.gt_topic]):
            if msg is None:
                log.warning("bag %s: %s", self.path, error)
                continue
            stamp = stamp_ns_of(msg.header) or bag_time
            T = pose_of_msg(msg, msgtype)
            stamps.append(stamp)
            positions.append(T[:3, 3])
            quats.append(matrix_to_quat_xyzw(T[:3, :3]))
        return Trajectory(stamps, positions, quats)

    # -- selection by bag time, streaming
    def _window(self) -> tuple[int, Optional[int]]:
        start = self.bag_start + int(round(self.start * 1e9))
        stop = None if self.duration is None else start + int(round(self.duration * 1e9)) + 1
        return start, stop

    def _stamps(self) -> list[int]:
        # not used for streaming; kept for the abstract interface (stamps of the selection)
        start, stop = self._window()
        return [t for _, _, t, _, _ in self._iter_topic([self.topic], start, stop)]

    def __len__(self) -> int:
        """Number of frames, estimated from the message count for a time window."""
        total = self.message_count
        span = max(1, self.bag_end - self.bag_start)
        start, stop = self._window()
        stop = self.bag_end if stop is None else min(stop, self.bag_end + 1)
        fraction = (
            min(1.0, max(0.0, (stop - start) / span)) if (self.start or self.duration) else 1.0
        )
        count = int(round(total * fraction))
        count = (count + self.step - 1) // self.step
        if self.max_frames is not None and self.max_frames >= 0:
            count = min(count, self.max_frames)
        return count

    def _decode(self, msgtype: str, msg: Any) -> tuple[np.ndarray, str]:
        if msgtype == "sensor_msgs/msg/CompressedImage":
            try:
                return decode_compressed(msg.data, msg.format)
            except ImageDecodeError as exc:
                raise DatasetError(str(exc)) from exc
        return image_from_msg(msg)

    def _make_frame(
        self,
        index: int,
        stamp: int,
        frame_id: str,
        msgtype: str,
        msg: Any,
        error: Optional[str],
        source: str,
    ) -> SequenceFrame:
        frame = SequenceFrame(
            index=index,
            stamp_ns=stamp,
            image=None,
            frame_id=frame_id or "camera",
            camera_info=self.camera_info,
            source=source,
            error=error,
        )
        if msg is not None:
            try:
                frame.image, frame.encoding = self._decode(msgtype, msg)
            except DatasetError as exc:
                frame.error = f"{source}: {exc}"
        if frame.image is not None:
            if self.camera_info is None:
                self.camera_info = default_camera_info(frame.image.shape[1], frame.image.shape[0])
                frame.camera_info = self.camera_info
            mismatch = check_size(self.camera_info, frame.image, source)
            if mismatch:
                frame.error, frame.image = mismatch, None
        if self.gt is not None:
            pose, position = self.gt.at(stamp, self.gt_max_gap_ns)
            if pose is None:
                pose, position = self.gt.nearest(stamp, self.gt_max_gap_ns // 10)
            frame.gt_pose, frame.gt_position = pose, position
        return frame

    def _raw_events(self) -> Iterator[tuple[str, str, int, Any, Optional[str]]]:
        start, stop = self._window()
        topics = [self.topic] + ([self.right_topic] if self.stereo else [])
        for topic, msgtype, bag_time, msg, error in self._iter_topic(topics, start, stop):
            stamp = bag_time
            if msg is not None and getattr(msg, "header", None) is not None:
                stamp = stamp_ns_of(msg.header) or bag_time
            yield topic, msgtype, stamp, msg, error

    def _pairs(self) -> Iterator[tuple]:
        """Mono: one event per image message. Stereo: (left, right) events with stamps
        within the tolerance; unpaired images are dropped (and logged)."""
        if not self.stereo:
            for event in self._raw_events():
                yield event, None
            return
        lefts: deque = deque()
        rights: deque = deque()
        dropped = 0
        for event in self._raw_events():
            (lefts if event[0] == self.topic else rights).append(event)
            while lefts and rights:
                dl, dr = lefts[0][2], rights[0][2]
                if abs(dl - dr) <= self.stereo_tolerance_ns:
                    yield lefts.popleft(), rights.popleft()
                elif dl < dr:
                    lefts.popleft()
                    dropped += 1
                else:
                    rights.popleft()
                    dropped += 1
        if dropped:
            log.warning(
                "bag %s: %d images had no stereo partner within %.1f ms",
                self.path,
                dropped,
                self.stereo_tolerance_ns / 1e6,
            )

    def __iter__(self) -> Iterator[SequenceFrame]:
        index = 0
        for count, (left, right) in enumerate(self._pairs()):
            if count % self.step:
                continue
            if self.max_frames is not None and 0 <= self.max_frames <= index:
                return
            topic, msgtype, stamp, msg, error = left
            frame_id = (
                getattr(getattr(msg, "header", None), "frame_id", "") if msg is not None else ""
            )
            frame = self._make_frame(
                index, stamp, frame_id, msgtype, msg, error, f"{self.path}:{topic}@{stamp}"
            )
            if right is not None and frame.error is None:
                rtopic, rtype, rstamp, rmsg, rerror = right
                if rmsg is None:
                    frame.error, frame.image = rerror, None
                else:
                    try:
                        frame.right_image, frame.right_encoding = self._decode(rtype, rmsg)
                        frame.right_frame_id = rmsg.header.frame_id or "camera_right"
                        frame.right_camera_info = self.right_camera_info or self.camera_info
                    except DatasetError as exc:
                        frame.error, frame.image = f"{self.path}:{rtopic}@{rstamp}: {exc}", None
            yield frame
            index += 1

    def _load(self, position: int, index: int) -> SequenceFrame:
        for frame in self:
            if frame.index == index:
                return frame
        raise DatasetError(f"bag {self.path}: frame {index} is outside the selection")
