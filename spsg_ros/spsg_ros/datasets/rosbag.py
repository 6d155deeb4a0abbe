"""ROS 1 (``.bag``) and ROS 2 (folder with ``metadata.yaml``, sqlite3 or MCAP) bags.

MCAP bags (a rosbag2 folder, with or without ``metadata.yaml``, or a ``.mcap`` file)
are read record by record (:mod:`.mcap_stream`): an unfinished bag (its writer was
killed: no metadata.yaml, no summary or end magic) is read up to its truncated tail
with a warning, and a chunk whose CRC fails is reported and the image messages it held
become flagged frames (``error``: "... corrupt chunk (CRC mismatch) ...") while the
other chunks replay; ``spsg-ros bag recover`` makes a clean copy of such a bag. ROS 1
bags, sqlite3 bags and compressed rosbag2 bags are read through
``rosbags.highlevel.AnyReader``.

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
from .mcap_stream import LostChunk, McapChannel, McapDamaged, McapStream, StreamReport
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


#: storage files of a rosbag2 folder (a folder holding one is a bag, metadata.yaml or not)
STORAGE_SUFFIXES = (".mcap", ".db3", ".mcap.zstd", ".db3.zstd")


def _storage_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.name.endswith(STORAGE_SUFFIXES)]


def is_bag(path: Path) -> bool:
    """A ROS 1 bag or MCAP/sqlite3 file, or a rosbag2 folder (metadata.yaml or storage files)."""
    if path.is_file():
        return path.suffix in (".bag", ".mcap", ".db3")
    if not path.is_dir():
        return False
    return (path / "metadata.yaml").is_file() or bool(_storage_files(path))


def file_order(path: Path) -> tuple:
    """Sort key of a bag's storage files: NAME_2.mcap before NAME_10.mcap."""
    stem = path.name
    for suffix in (".zstd", ".mcap", ".db3"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    head, _, index = stem.rpartition("_")
    return (head, int(index)) if index.isdigit() else (stem, -1)


def mcap_files(path: Path) -> Optional[list[Path]]:
    """The MCAP files of the bag at ``path``, in order, or None when it is not an MCAP bag
    read record by record (ROS 1, sqlite3, compressed rosbag2: rosbags reads those).

    DatasetError for a rosbag2 folder whose metadata.yaml names missing files, and for
    one without metadata.yaml that holds no MCAP file (what to do is in the message).
    """
    if path.is_file():
        return [path] if path.suffix == ".mcap" else None
    meta = path / "metadata.yaml"
    if meta.is_file():
        import yaml

        try:
            info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
            storage = str(info.get("storage_identifier", ""))
            names = [str(n) for n in info.get("relative_file_paths") or []]
            compressed = bool(info.get("compression_mode") or info.get("compression_format"))
        except Exception as exc:  # unreadable: read the storage files without it
            log.warning("bag %s: metadata.yaml cannot be read (%s): reading its files", path, exc)
        else:
            if storage != "mcap" or compressed or not names:
                return None
            files = [path / name for name in names]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise DatasetError(
                    f"bag {path}: metadata.yaml lists {', '.join(missing)} but the folder has "
                    f"no such file"
                )
            return files
    found = _storage_files(path)
    mcaps = sorted((f for f in found if f.suffix == ".mcap"), key=file_order)
    if mcaps:
        return mcaps
    if not found:
        return None  # rosbags says what is wrong
    names = ", ".join(sorted(f.name for f in found))
    if all(f.name.endswith(".db3") for f in found):
        fix = f"`ros2 bag reindex {path} -s sqlite3` rebuilds it"
    else:
        fix = "decompress the file (zstd -d) and run `spsg-ros bag recover` on the folder"
    raise DatasetError(
        f"bag {path} has no metadata.yaml (its writer did not finish, or it was removed), "
        f"only {names}: {fix}"
    )


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


def typestore_of(channels: list[McapChannel]):
    """A typestore of the message definitions the bag carries (as rosbags' AnyReader
    builds one); definitions that do not parse are left out (the Humble store is the
    fallback)."""
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    done: set[str] = set()
    separator = "=" * 80 + "\n"
    for channel in channels:
        if not channel.msgtype or channel.msgtype in done:
            continue
        done.add(channel.msgtype)
        text = channel.schema_data.decode("utf-8", "replace")
        try:
            if channel.schema_encoding == "ros2msg":
                types = get_types_from_msg(text, channel.msgtype)
            elif channel.schema_encoding == "ros2idl":
                types = {}
                parts = text.split(separator)[1:] if text.startswith(separator + "IDL: ") else []
                for part in parts or [text]:
                    types.update(get_types_from_idl(part.split("\n", 1)[1] if parts else part))
            else:
                continue
            store.register(types)
        except Exception as exc:  # the Humble definitions are used for this type
            log.debug("message definition of %s not used: %s", channel.msgtype, exc)
    return store


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
        #: the MCAP files read record by record (None: read through rosbags)
        self._streams: Optional[list[McapStream]] = None
        #: what the record-level reading of each MCAP file found when it was opened
        self.stream_reports: list[StreamReport] = []
        self.unfinished = False
        self._lost_reported: set[tuple[Path, int]] = set()
        files = mcap_files(self.path)
        if files is not None:
            topics, counts = self._open_mcap(files)
        else:
            topics, counts = self._open_rosbags(AnyReader)
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

    # -- opening
    def _open_rosbags(self, reader_cls) -> tuple[dict[str, str], dict[str, int]]:
        try:
            with reader_cls([self.path], default_typestore=self._typestore) as reader:
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
        return topics, counts

    def _open_mcap(self, files: list[Path]) -> tuple[dict[str, str], dict[str, int]]:
        """Open the MCAP files: summary of complete files, one scan of unfinished ones."""
        self._streams = []
        topics: dict[str, str] = {}
        counts: dict[str, int] = {}
        starts, ends = [], []
        unfinished: list[tuple[McapStream, StreamReport]] = []
        for file in files:
            try:
                stream = McapStream(file)
            except McapDamaged as exc:
                raise DatasetError(f"cannot read bag {self.path}: {exc}") from exc
            stats = stream.statistics if stream.summary else None
            if stats is not None:
                report = StreamReport(file, size=stream.size, complete=True, summary=True)
                report.messages = int(stats.message_count)
                report.per_channel = {
                    int(k): int(v) for k, v in stats.channel_message_counts.items()
                }
                if stats.message_count:
                    report.start_ns = int(stats.message_start_time)
                    report.end_ns = int(stats.message_end_time)
            else:
                report = stream.scan()
                if not stream.complete or not report.clean:
                    unfinished.append((stream, report))
            self._streams.append(stream)
            self.stream_reports.append(report)
            for cid, count in report.per_channel.items():
                channel = stream.channels.get(cid)
                if channel is not None:
                    counts[channel.topic] = counts.get(channel.topic, 0) + count
            for channel in stream.channels.values():
                if channel.msgtype:
                    topics.setdefault(channel.topic, channel.msgtype)
            if report.start_ns is not None:
                starts.append(report.start_ns)
                ends.append(report.end_ns)
        if not topics:
            problems = "; ".join(p for _, r in unfinished for p in r.problems())
            at = next(
                (r.damaged_at for r in self.stream_reports if r.damaged_at is not None), None
            )
            where = f": not a valid bag or damaged at byte {at}" if at is not None else ""
            raise DatasetError(
                f"cannot read bag {self.path}{where}: no complete channel definition "
                f"in it ({problems or 'no channels'})"
            )
        if unfinished:
            self._warn_unfinished(unfinished)
        elif self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            log.warning(
                "bag %s has no metadata.yaml (its MCAP file is complete): `spsg-ros bag "
                "recover %s OUT` or `ros2 bag reindex %s -s mcap` writes one",
                self.path,
                self.path,
                self.path,
            )
        self.bag_start = min(starts) if starts else 0
        self.bag_end = max(ends) if ends else 0
        self._bag_typestore = typestore_of(
            [c for stream in self._streams for c in stream.channels.values()]
        )
        return topics, counts

    def _warn_unfinished(self, unfinished: list[tuple[McapStream, StreamReport]]) -> None:
        self.unfinished = any(not stream.complete for stream, _ in unfinished)
        read = sum(r.messages for _, r in unfinished)
        lost = sum(r.lost_messages for _, r in unfinished)
        problems = "; ".join(f"{r.path.name}: {p}" for _, r in unfinished for p in r.problems())
        missing = (
            " (no metadata.yaml)"
            if self.path.is_dir() and not (self.path / "metadata.yaml").is_file()
            else ""
        )
        log.warning(
            "bag %s is %s%s: read %d complete messages; skipped %d indexed messages "
            "and any incomplete tail (%s). `spsg-ros bag recover %s OUT` makes a clean copy",
            self.path,
            "unfinished (its writer did not close it)" if self.unfinished else "damaged",
            missing,
            read,
            lost,
            problems,
            self.path,
        )

    # -- helpers reading one topic
    def _open(self):
        return self._reader_cls([self.path], default_typestore=self._typestore)

    def _iter_topic(
        self,
        topics: list[str],
        start: Optional[int] = None,
        stop: Optional[int] = None,
        lost: bool = True,
    ):
        """(topic, msgtype, bag time, message or None, error or None) in time order;
        ``lost``: the messages of a lost MCAP chunk come as errors (else only the
        chunk's warning says they are lost)."""
        if self._streams is not None:
            yield from self._iter_mcap(topics, start, stop, lost)
            return
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

    def _iter_mcap(
        self, topics: list[str], start: Optional[int], stop: Optional[int], lost: bool = True
    ):
        """:meth:`_iter_topic` of an MCAP bag: its messages record by record; the messages
        of a lost chunk (stamps from its message index) come as errors."""
        lo = -1 if start is None else start
        hi = 1 << 64 if stop is None else stop
        for stream in self._streams or []:
            try:
                for item in stream.messages(topics=topics, start=start, stop=stop):
                    if isinstance(item, LostChunk):
                        self._report_lost(stream, item)
                        if lost:
                            yield from self._lost_events(stream, item, topics, lo, hi)
                        continue
                    yield self._deserialize(item.channel, item.log_time, item.data)
            except DatasetError:
                raise
            except Exception as exc:
                raise DatasetError(
                    f"cannot read bag {self.path} ({stream.path.name}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

    def _deserialize(self, channel: McapChannel, bag_time: int, data: bytes) -> tuple:
        topic, msgtype = channel.topic, channel.msgtype
        try:
            store = (
                self._bag_typestore
                if msgtype in self._bag_typestore.fielddefs
                else self._typestore
            )
            return topic, msgtype, bag_time, store.deserialize_cdr(data, msgtype), None
        except Exception as exc:  # a damaged message: report it, go on
            return (
                topic,
                msgtype,
                bag_time,
                None,
                f"message on {topic} at {bag_time} cannot be deserialised: {exc}",
            )

    def _lost_events(self, stream: McapStream, lost: LostChunk, topics, lo: int, hi: int):
        events = []
        for cid, stamps in lost.stamps.items():
            channel = stream.channels.get(cid)
            if channel is None or channel.topic not in topics:
                continue
            events += [(t, channel) for t in stamps if lo <= t < hi]
        events.sort(key=lambda e: e[0])
        for stamp, channel in events:
            yield (
                channel.topic,
                channel.msgtype,
                stamp,
                None,
                f"message on {channel.topic} at {stamp} lost: {lost.reason} "
                f"at byte {lost.offset} of {stream.path.name}",
            )

    def _report_lost(self, stream: McapStream, lost: LostChunk) -> None:
        key = (stream.path, lost.offset)
        if key in self._lost_reported:
            return
        self._lost_reported.add(key)
        start = (lost.start_ns - self.bag_start) / 1e9
        end = (lost.end_ns - self.bag_start) / 1e9
        log.warning(
            "bag %s: %s: %s, bag time %+.3f..%+.3f s: its messages are skipped (the "
            "frames it held are flagged); `spsg-ros bag recover` copies the rest",
            self.path,
            stream.path.name,
            lost.describe(),
            start,
            end,
        )

    def _find_camera_info(self, info_topic: str, intrinsics) -> Optional[CameraInfo]:
        if intrinsics is not None:
            return read_intrinsics_yaml(intrinsics)
        if info_topic in self.topics and self.topics[info_topic] == CAMERA_INFO_TYPE:
            for _, _, _, msg, error in self._iter_topic([info_topic], lost=False):
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
        for _, msgtype, bag_time, msg, error in self._iter_topic([self.gt_topic], lost=False):
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
