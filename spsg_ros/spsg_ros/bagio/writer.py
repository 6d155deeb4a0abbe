"""ROS 2 bags written with rosbags and the ``mcap`` library (no ROS 2 needed).

:class:`BagWriter` writes a rosbag2 folder as ``ros2 bag record`` names it
(``NAME/NAME_0.mcap`` and ``NAME/metadata.yaml``, metadata version 9, the rosbags
metadata: topics, QoS, type hashes), with connections opened on first use and a close
that is safe to call twice (``with`` blocks close it on errors and Ctrl-C, so an
interrupted run still leaves a readable bag). The MCAP storage (:class:`McapCrcStorage`,
``mcap.writer.Writer``) carries chunk and data-section CRCs, so a flipped bit is caught
when the bag is read, and it is crash-safe: a chunk is closed and the file flushed to the
OS once its oldest message is ``flush_seconds`` old (at the next write) or the chunk holds
``chunk_size`` bytes, so a killed process (SIGKILL, power loss, full disk) leaves a bag
holding every message written more than about a second before; ``spsg-ros replay`` reads
such an unfinished bag and ``spsg-ros bag recover`` (:mod:`spsg_ros.bagio.recover`) makes
a clean copy of it.
:class:`ResultsBagWriter` writes the frontend's results with our message types
(:mod:`spsg_ros.bagio.typestore`, conversions of :mod:`spsg_ros.messages.conversions`).

Humble note: rosbags writes metadata version 9; if ``ros2 bag play`` of an
older rosbag2 refuses the bag, ``ros2 bag reindex BAG -s mcap`` rewrites the
metadata for it (rosbag2 issue 1895).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..frontend.types import FrameResult
from ..messages.topics import (
    GROUND_TRUTH_TOPICS,
    ODOM_FRAME_ID,
    OUTPUT_TOPICS,
    OUTPUTS_BY_NAME,
    TF_STATIC_TOPIC,
    WORLD_FRAME_ID,
)

log = logging.getLogger(__name__)

#: results bag topic of each output, by its node-relative name: the node's topics under
#: ``/frontend`` (ground truth: :data:`GROUND_TRUTH_TOPICS`)
RESULT_TOPICS = {topic.name: topic.bag_topic for topic in OUTPUT_TOPICS}

#: a chunk is closed (and the file flushed) when it holds this many bytes ...
CHUNK_BYTES = 1 << 20
#: ... or when its oldest message is this old (wall time, checked at each write)
FLUSH_SECONDS = 0.5


class BagWriteError(ValueError):
    """The bag cannot be created or written; the message names the path."""


def bag_file_name(folder: Path, suffix: str) -> str:
    """``NAME_0.SUFFIX`` for the bag folder ``NAME``, as ``ros2 bag record`` names it."""
    return f"{folder.name}_0.{suffix}"


class McapCrcStorage:
    """The rosbags storage-writer protocol over ``mcap.writer.Writer``.

    Chunk CRCs and the data-section CRC on, profile ``ros2``, the ``rosbag2`` metadata
    record (``serialized_metadata``: the bag information as in metadata.yaml) written at
    close as rosbag2 writes it, channel metadata ``offered_qos_profiles`` and
    ``topic_type_hash``. Chunks are closed by size or age, see :class:`BagWriter`.
    """

    def __init__(
        self,
        path: Path,
        compression: Any,
        *,
        chunk_size: int = CHUNK_BYTES,
        flush_seconds: float = FLUSH_SECONDS,
        clock=time.monotonic,
    ):
        from mcap.writer import CompressionType, Writer

        from rosbags.rosbag2.enums import CompressionMode

        if not hasattr(Writer, "flush"):
            raise BagWriteError("the mcap package is too old (Writer.flush needs mcap >= 1.5)")
        self.path = path / bag_file_name(path, "mcap")
        self._file = self.path.open("xb")
        kind = (
            CompressionType.ZSTD
            if compression == CompressionMode.STORAGE
            else CompressionType.NONE
        )
        # the size limit is ours (below): the mcap writer would close chunks without
        # flushing the file
        self._mcap = Writer(
            self._file,
            chunk_size=1 << 62,
            compression=kind,
            enable_crcs=True,
            enable_data_crcs=True,
        )
        self._mcap.start(profile="ros2", library=_library_name())
        self.chunk_size = int(chunk_size)
        self.flush_seconds = float(flush_seconds)
        self._clock = clock
        self._schemas: dict[str, int] = {}
        self._channels: dict[int, int] = {}
        self._pending_bytes = 0
        self._oldest: Optional[float] = None
        self.chunks_flushed = 0

    def add_msgtype(self, connection) -> None:
        from rosbags.interfaces import MessageDefinitionFormat

        encoding = (
            "ros2msg" if connection.msgdef.format == MessageDefinitionFormat.MSG else "ros2idl"
        )
        self._schemas[connection.msgtype] = self._mcap.register_schema(
            name=connection.msgtype,
            encoding=encoding,
            data=connection.msgdef.data.encode("utf-8"),
        )

    def add_connection(self, connection, offered_qos_profiles: str) -> None:
        metadata = {"offered_qos_profiles": offered_qos_profiles}
        if connection.digest:
            metadata["topic_type_hash"] = connection.digest
        self._channels[connection.id] = self._mcap.register_channel(
            topic=connection.topic,
            message_encoding=connection.ext.serialization_format,
            schema_id=self._schemas[connection.msgtype],
            metadata=metadata,
        )

    def write(self, connection, timestamp: int, data) -> None:
        self._mcap.add_message(
            channel_id=self._channels[connection.id],
            log_time=int(timestamp),
            data=bytes(data),
            publish_time=int(timestamp),
        )
        now = self._clock()
        if self._oldest is None:
            self._oldest = now
        self._pending_bytes += len(data) + 31  # opcode, length, message header
        if self._pending_bytes >= self.chunk_size or now - self._oldest >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Close the chunk in progress (if any) and hand the file's buffer to the OS."""
        if self._oldest is not None:
            self._mcap.flush()
            self.chunks_flushed += 1
        self._pending_bytes = 0
        self._oldest = None

    def close(self, version: int, metadata: str) -> None:
        del version
        self.flush()
        self._mcap.add_metadata("rosbag2", {"serialized_metadata": metadata})
        self._mcap.finish()
        self._file.close()

    def abort(self) -> None:
        """Close the file as it is: complete chunks stay readable (no summary, no footer)."""
        try:
            self.flush()
        finally:
            self._file.close()


def _library_name() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = []
    for package in ("spsg_ros", "mcap"):
        try:
            names.append(f"{package}-{version(package)}")
        except PackageNotFoundError:
            names.append(package)
    return " ".join(names)


def _rosbag2_writer_class():
    """A rosbags ``Writer`` whose MCAP storage is :class:`McapCrcStorage` and whose
    sqlite3 file is named ``NAME_0.db3`` (built on first use: rosbags is optional)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer

    class NamedSqlite3Storage(Sqlite3Writer):
        def __init__(self, path: Path, compression) -> None:
            super().__init__(path, compression)
            # rosbags names the file NAME.db3; ros2 bag record names it NAME_0.db3
            self.conn.close()
            named = path / bag_file_name(path, "db3")
            self.path.replace(named)
            self.path = named
            import sqlite3

            self.conn = sqlite3.connect(f"file:{self.path}", uri=True)
            self.cursor = self.conn.cursor()

    class Rosbag2Writer(Writer):
        def __init__(self, path: Path, *, chunk_size: int, flush_seconds: float, **kwargs):
            super().__init__(path, **kwargs)
            self.mcap_options = {"chunk_size": chunk_size, "flush_seconds": flush_seconds}
            self.STORAGE_PLUGINS = {
                StoragePlugin.SQLITE3: NamedSqlite3Storage,
                StoragePlugin.MCAP: self._mcap_storage,
            }

        def _mcap_storage(self, path: Path, compression) -> McapCrcStorage:
            return McapCrcStorage(path, compression, **self.mcap_options)

    return Rosbag2Writer


class BagWriter:
    """A ROS 2 bag (MCAP by default) with lazily created connections.

    ``path`` is the bag folder to create; the MCAP file inside is ``NAME_0.mcap``.
    ``chunk_size`` (bytes) and ``flush_seconds`` bound what a killed process loses
    (default: :data:`CHUNK_BYTES` and :data:`FLUSH_SECONDS` at the time of the call).
    """

    def __init__(
        self,
        path: str | Path,
        typestore=None,
        storage: str = "mcap",
        distro: str = "humble",
        *,
        chunk_size: Optional[int] = None,
        flush_seconds: Optional[float] = None,
    ):
        from rosbags.rosbag2 import StoragePlugin

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
            self._writer = _rosbag2_writer_class()(
                self.path,
                version=9,
                storage_plugin=plugin,
                chunk_size=CHUNK_BYTES if chunk_size is None else int(chunk_size),
                flush_seconds=FLUSH_SECONDS if flush_seconds is None else float(flush_seconds),
            )
            self._writer.open()
        except BagWriteError:
            raise
        except Exception as exc:
            raise BagWriteError(
                f"cannot create bag {self.path}: {type(exc).__name__}: {exc}"
            ) from exc
        #: the storage file inside the bag folder (``NAME_0.mcap`` or ``NAME_0.db3``)
        self.storage_path: Path = self._writer.storage.path
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def _connection(self, topic: str, msgtype: str, **definition):
        conn = self._connections.get(topic)
        if conn is None:
            if definition.get("msgdef") is None or definition.get("rihs01") is None:
                definition.pop("msgdef", None)
                definition.pop("rihs01", None)
                definition["typestore"] = self.typestore
            conn = self._writer.add_connection(topic, msgtype, **definition)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagWriteError(f"{self.path}: topic {topic} holds {conn.msgtype}, not {msgtype}")
        return conn

    def write(self, topic: str, msg: Any, stamp_ns: int, qos: Sequence[Any] = ()) -> None:
        """Serialise and write ``msg``; ``qos``: the topic's offered QoS profiles (first use)."""
        msgtype = msg.__msgtype__
        conn = self._connection(
            topic, msgtype, **({"offered_qos_profiles": list(qos)} if qos else {})
        )
        self._writer.write(conn, int(stamp_ns), self.typestore.serialize_cdr(msg, msgtype))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def write_raw(
        self,
        topic: str,
        msgtype: str,
        data: bytes,
        stamp_ns: int,
        *,
        msgdef: Optional[str] = None,
        rihs01: Optional[str] = None,
        qos: Sequence[Any] = (),
        serialization_format: str = "cdr",
    ) -> None:
        """Write an already serialised message; the connection is made on first use,
        from ``msgdef`` and ``rihs01`` when both are given, else from the typestore."""
        conn = self._connection(
            topic,
            msgtype,
            msgdef=msgdef,
            rihs01=rihs01,
            offered_qos_profiles=list(qos),
            serialization_format=serialization_format,
        )
        self._writer.write(conn, int(stamp_ns), data)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def flush(self) -> None:
        """Close the MCAP chunk in progress and flush the file (no-op for sqlite3)."""
        storage = self._writer.storage
        if storage is not None and hasattr(storage, "flush"):
            storage.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def latched_qos() -> list:
    """The offered QoS of a latched topic such as ``/tf_static`` (reliable, transient local,
    depth 1), so that ``ros2 bag play`` republishes it to late subscribers."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    unset = QosTime(0, 0)
    return [
        Qos(
            QosHistory.KEEP_LAST,
            1,
            QosReliability.RELIABLE,
            QosDurability.TRANSIENT_LOCAL,
            unset,
            unset,
            QosLiveliness.AUTOMATIC,
            unset,
            False,
        )
    ]


def tf_static_msg(typestore, T_parent_child: np.ndarray, stamp_ns: int, parent: str, child: str):
    """tf2_msgs/TFMessage with one transform, for ``/tf_static``."""
    from ..messages.conversions import MessageTypes, transform_stamped_msg

    types = MessageTypes.from_typestore(typestore)
    transform = transform_stamped_msg(types, T_parent_child, stamp_ns, parent, child)
    return typestore.types["tf2_msgs/msg/TFMessage"](transforms=[transform])


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
    Frames without a published pose (``T_world_cur`` None) get no odometry. The first
    frame with both a published pose and ground truth puts the static transform
    ``world -> odom`` on ``/tf_static``, so estimate and ground truth share one tree.
    """

    def __init__(
        self,
        path: str | Path,
        world_frame_id: str = ODOM_FRAME_ID,
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
        self.world_to_odom: Optional[np.ndarray] = None

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
        if gt_pose is not None and T_world_cur is not None and self.world_to_odom is None:
            # odom is where the estimate starts: T_world_odom = T_world_cam @ inv(T_odom_cam)
            self.world_to_odom = np.asarray(gt_pose, float) @ np.linalg.inv(T_world_cur)
            self.bag.write(
                TF_STATIC_TOPIC,
                tf_static_msg(
                    self.bag.typestore,
                    self.world_to_odom,
                    stamp,
                    WORLD_FRAME_ID,
                    self.world_frame_id,
                ),
                stamp,
                qos=latched_qos(),
            )
        if gt_pose is not None:
            gt = cv.pose_stamped_msg(types, gt_pose, stamp, WORLD_FRAME_ID)
            self.bag.write(GROUND_TRUTH_TOPICS["pose"], gt, stamp)
            self._gt_poses.append(gt)
        self._frames += 1
        self._last_stamp = max(self._last_stamp, stamp)
        if self._frames % self.path_every == 0:
            self._write_paths()
        self.bag.flush()  # a frame takes ~1 s on a CPU: put each one on disk as it completes

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
                cv.path_msg(self.types, self._gt_poses, self._last_stamp, WORLD_FRAME_ID),
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
