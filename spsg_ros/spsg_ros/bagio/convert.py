"""A dataset sequence as a ROS 2 bag the live node can be fed from (``ros2 bag play``).

Topics (``prefix`` default ``/camera``, matching the node's relative default
topic names under the namespace ``/camera``):

- mono: ``{prefix}/image_raw`` (sensor_msgs/Image), ``{prefix}/camera_info``;
- stereo: ``{prefix}/left/image_raw``, ``{prefix}/left/camera_info``,
  ``{prefix}/right/image_raw``, ``{prefix}/right/camera_info`` (the right P
  carries ``-fx * baseline`` for rectified pairs such as TartanAir's);
- ground truth, when the sequence has it: ``/ground_truth/pose``
  (geometry_msgs/PoseStamped of the left camera's optical frame in ``world``),
  and once, on ``/tf_static``, ``world -> odom`` at the first frame's true pose:
  the node's ``odom`` is the optical frame of the first frame it processes, so
  its odometry and the ground truth share one tree (exact when the node starts
  with the bag's first frame).

Frames the reader could not load are skipped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..datasets.base import Sequence
from ..frontend.types import CameraInfo
from ..stop_signals import holding, StopSignals
from ..messages.topics import GROUND_TRUTH_TOPICS, ODOM_FRAME_ID, TF_STATIC_TOPIC, WORLD_FRAME_ID
from .writer import BagWriter, latched_qos, tf_static_msg

log = logging.getLogger(__name__)


def camera_info_msg(typestore, info: CameraInfo, stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/CameraInfo (ROS 2 field names) of our CameraInfo."""
    from ..messages.conversions import MessageTypes, make_header

    types = MessageTypes.from_typestore(typestore)
    T = typestore.types
    D = np.asarray(info.D, np.float64).ravel()
    P = np.hstack([info.K, np.zeros((3, 1))]) if info.P is None else np.asarray(info.P, np.float64)
    model = (
        "plumb_bob"
        if D.size in (0, 5)
        else ("rational_polynomial" if D.size == 8 else "plumb_bob")
    )
    roi = T["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return T["sensor_msgs/msg/CameraInfo"](
        header=make_header(types, stamp_ns, frame_id),
        height=int(info.height),
        width=int(info.width),
        distortion_model=model,
        d=np.ascontiguousarray(D if D.size else np.zeros(5)),
        k=np.ascontiguousarray(np.asarray(info.K, np.float64).ravel()),
        r=np.eye(3).ravel(),
        p=np.ascontiguousarray(P.ravel()),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


@dataclass
class ConversionReport:
    path: Path
    frames_written: int = 0
    frames_skipped: int = 0
    skipped: list[str] = field(default_factory=list)
    topics: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    signal: Optional[str] = None


def sequence_to_bag(
    sequence: Sequence,
    out: str | Path,
    prefix: str = "/camera",
    storage: str = "mcap",
    progress: bool = True,
    distro: str = "humble",
    start_time_ns: Optional[int] = None,
    stop: Optional[StopSignals] = None,
) -> ConversionReport:
    """Write ``sequence`` into a new ROS 2 bag at ``out``.

    ``start_time_ns`` shifts all stamps so the first frame is at that time (useful
    for sources with synthesised stamps starting at 0); None keeps them. With ``stop``,
    SIGINT, SIGTERM and SIGHUP end the conversion after the frame being written, and the
    bag is closed with every frame written so far.
    """
    from tqdm import tqdm

    from ..messages.conversions import MessageTypes

    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    report = ConversionReport(Path(out))
    stereo = sequence.stereo
    left_ns = f"{prefix}/left" if stereo else prefix
    offset: Optional[int] = None
    right_info = sequence.right_camera_info
    if stereo and right_info is not None and (right_info.P is None or right_info.P[0, 3] == 0):
        log.warning(
            "%s: the stereo pair is not rectified (its right CameraInfo P has no baseline): "
            "a node reading this bag gets no stereo baseline from camera_info",
            sequence.path,
        )
    with BagWriter(out, storage=storage, distro=distro) as bag:
        types = MessageTypes.from_typestore(bag.typestore)
        try:
            for frame in tqdm(
                sequence,
                total=len(sequence) or None,
                desc="to-bag",
                unit="frame",
                disable=not progress,
            ):
                if stop is not None:
                    stop.check()
                if offset is None:
                    offset = (
                        0 if start_time_ns is None else int(start_time_ns) - int(frame.stamp_ns)
                    )
                stamp = int(frame.stamp_ns) + offset
                if not frame.ok:
                    report.frames_skipped += 1
                    report.skipped.append(f"{frame.index}: {frame.error}")
                    log.warning("skipping frame %d: %s", frame.index, frame.error)
                    continue
                with holding(stop):
                    _write_frame(
                        bag,
                        types,
                        frame,
                        stamp,
                        stereo,
                        prefix,
                        left_ns,
                        first=report.frames_written == 0,
                    )
                report.frames_written += 1
        except KeyboardInterrupt as exc:
            report.interrupted = True
            report.signal = getattr(exc, "signal_name", "SIGINT")
            log.warning(
                "%s: the bag holds the %d frames written so far",
                report.signal,
                report.frames_written,
            )
        with holding(stop):
            bag.close()
        report.topics = dict(bag.counts)
    return report


def _write_frame(
    bag, types, frame, stamp: int, stereo: bool, prefix: str, left_ns: str, first: bool
) -> None:
    """One frame's image(s), CameraInfo and ground truth (and ``/tf_static`` with the first)."""
    from ..messages.conversions import array_to_image_msg, pose_stamped_msg

    image = array_to_image_msg(types, frame.image, frame.encoding, stamp, frame.frame_id)
    bag.write(f"{left_ns}/image_raw", image, stamp)
    if frame.camera_info is not None:
        info_msg = camera_info_msg(bag.typestore, frame.camera_info, stamp, frame.frame_id)
        bag.write(f"{left_ns}/camera_info", info_msg, stamp)
    if stereo and frame.right_image is not None:
        right_id = frame.right_frame_id or f"{frame.frame_id}_right"
        right = array_to_image_msg(types, frame.right_image, frame.right_encoding, stamp, right_id)
        bag.write(f"{prefix}/right/image_raw", right, stamp)
        info = frame.right_camera_info or frame.camera_info
        if info is not None:
            info_msg = camera_info_msg(bag.typestore, info, stamp, right_id)
            bag.write(f"{prefix}/right/camera_info", info_msg, stamp)
    if frame.gt_pose is not None:
        if first:  # the node's odom is the optical frame of the first frame it processes
            tf = tf_static_msg(bag.typestore, frame.gt_pose, stamp, WORLD_FRAME_ID, ODOM_FRAME_ID)
            bag.write(TF_STATIC_TOPIC, tf, stamp, qos=latched_qos())
        gt = pose_stamped_msg(types, frame.gt_pose, stamp, WORLD_FRAME_ID)
        bag.write(GROUND_TRUTH_TOPICS["pose"], gt, stamp)
