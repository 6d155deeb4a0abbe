"""What every dataset reader yields, and the helpers the readers share.

A reader (:class:`Sequence`) is an iterable of :class:`SequenceFrame`. Images
stay in the layout they were stored in (``mono8``/``mono16``/``bgr8``/``bgra8``
as the ROS encodings name them); ground truth is given, when the dataset has
it, as the 4x4 pose of the LEFT camera's optical frame (x right, y down, z
forward) in the dataset's world frame (``T_world_camera``, world-from-camera).
Position-only ground truth (Leica total stations) fills ``gt_position`` only.

A frame whose image cannot be read is still yielded, with ``image=None`` and
``error`` saying why, so that a replay can flag it and go on.

Datasets without absolute stamps (TartanAir, image folders) are stamped from a
frame rate, starting at a base time (:data:`DEFAULT_BASE_TIME_NS` unless given).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..frontend.types import CameraInfo, Frame

log = logging.getLogger(__name__)

#: Stamp of the first frame of a dataset without absolute stamps (TartanAir, image
#: folders): 1000 s. Not 0: ROS 2 takes time 0 as "unset" (under use_sim_time a
#: node sees no clock yet, and a bag made from such a dataset would start at 0).
#: Well above 0 so that a look-back window (TF buffer 10 s, tools that subtract a
#: few seconds from a stamp) never goes below zero, which rclcpp::Time refuses;
#: a round number that reads as synthetic (never a plausible wall-clock date) and
#: keeps relative times readable (frame k at 10 Hz: 1000.k s).
DEFAULT_BASE_TIME_NS = 1_000_000_000_000
#: Largest base time (s): builtin_interfaces/Time holds the seconds in an int32.
MAX_BASE_TIME_S = 2**31 - 1


class DatasetError(ValueError):
    """A sequence is missing, incomplete or malformed; the message names the file."""


@dataclass
class SequenceFrame:
    """One time step of a sequence (mono, or a stereo pair)."""

    index: int
    stamp_ns: int
    image: Optional[np.ndarray]
    encoding: str = "mono8"
    frame_id: str = "camera"
    camera_info: Optional[CameraInfo] = None
    right_image: Optional[np.ndarray] = None
    right_encoding: str = "mono8"
    right_frame_id: Optional[str] = None
    right_camera_info: Optional[CameraInfo] = None
    gt_pose: Optional[np.ndarray] = None  # 4x4 T_world_camera (left optical frame)
    gt_position: Optional[np.ndarray] = None  # (3,) camera (or prism) position in the world
    source: str = ""  # file (or bag/topic) the image came from
    error: Optional[str] = None  # why the image could not be read

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None

    @property
    def is_stereo(self) -> bool:
        return self.right_image is not None

    def frame(self) -> Frame:
        """The left (or mono) image as a frontend :class:`Frame`."""
        if self.image is None:
            raise DatasetError(f"frame {self.index} has no image: {self.error}")
        return Frame(
            image=self.image,
            stamp_ns=self.stamp_ns,
            frame_id=self.frame_id,
            encoding=self.encoding,
            camera_info=self.camera_info,
        )

    def right_frame(self) -> Frame:
        if self.right_image is None:
            raise DatasetError(
                f"frame {self.index} has no right image: {self.error or 'mono sequence'}"
            )
        return Frame(
            image=self.right_image,
            stamp_ns=self.stamp_ns,
            frame_id=self.right_frame_id or f"{self.frame_id}_right",
            encoding=self.right_encoding,
            camera_info=self.right_camera_info,
        )


class Sequence(ABC):
    """Base of the readers: iteration with a start offset, duration and frame limit.

    Subclasses implement :meth:`_frames` (all frames, in time order) and may set
    ``camera_info``, ``right_camera_info``, ``stereo``, ``world_frame``
    (``"optical"`` = y down, or ``"z_up"``), ``kind`` and ``name``.
    """

    kind = "sequence"

    def __init__(
        self,
        path: str | Path,
        *,
        start: float = 0.0,
        duration: Optional[float] = None,
        max_frames: Optional[int] = None,
        step: int = 1,
    ):
        self.path = Path(path)
        if start < 0:
            raise DatasetError(f"start offset must be >= 0 s, got {start}")
        if duration is not None and duration <= 0:
            raise DatasetError(f"duration must be > 0 s, got {duration}")
        if step < 1:
            raise DatasetError(f"step must be >= 1, got {step}")
        self.start = float(start)
        self.duration = duration
        self.max_frames = max_frames
        self.step = int(step)
        self.stereo = False
        self.camera_info: Optional[CameraInfo] = None
        self.right_camera_info: Optional[CameraInfo] = None
        self.world_frame = "z_up"
        self.has_ground_truth = False
        self.ground_truth_kind = "none"  # "pose", "position" or "none"
        self.name = self.path.name

    @abstractmethod
    def _stamps(self) -> list[int]:
        """Stamps (ns) of all frames in time order (drives selection and len())."""

    @abstractmethod
    def _load(self, position: int, index: int) -> SequenceFrame:
        """Frame at ``position`` among all frames, numbered ``index`` in the selection."""

    def selected_positions(self) -> list[int]:
        stamps = self._stamps()
        if not stamps:
            return []
        t0 = stamps[0] + int(round(self.start * 1e9))
        t1 = None if self.duration is None else t0 + int(round(self.duration * 1e9))
        chosen = [i for i, s in enumerate(stamps) if s >= t0 and (t1 is None or s <= t1)]
        chosen = chosen[:: self.step]
        if self.max_frames is not None and self.max_frames >= 0:
            chosen = chosen[: self.max_frames]
        return chosen

    def __len__(self) -> int:
        return len(self.selected_positions())

    def __iter__(self) -> Iterator[SequenceFrame]:
        for index, position in enumerate(self.selected_positions()):
            yield self._load(position, index)

    def describe(self) -> dict:
        info = self.camera_info
        return {
            "kind": self.kind,
            "path": str(self.path),
            "name": self.name,
            "frames": len(self),
            "stereo": self.stereo,
            "ground_truth": self.ground_truth_kind,
            "world_frame": self.world_frame,
            "camera": None
            if info is None
            else {
                "width": info.width,
                "height": info.height,
                "K": np.asarray(info.K).round(6).tolist(),
                "D": np.asarray(info.D).round(8).tolist(),
                "baseline": info.baseline,
            },
        }


def synthesised_stamps(
    count: int, rate_hz: float, start_ns: int = DEFAULT_BASE_TIME_NS
) -> list[int]:
    """Stamps (ns) of ``count`` frames at ``rate_hz``, the first at ``start_ns``."""
    if not rate_hz > 0:
        raise DatasetError(f"frame rate must be > 0 Hz, got {rate_hz}")
    if not 0 < start_ns <= MAX_BASE_TIME_S * 1_000_000_000:
        raise DatasetError(
            f"base time must be in (0, {MAX_BASE_TIME_S}] s (0 is unset time in ROS 2), "
            f"got {start_ns / 1e9:g} s"
        )
    return [int(start_ns) + int(round(i * 1e9 / rate_hz)) for i in range(count)]


__all__ = [
    "DEFAULT_BASE_TIME_NS",
    "DatasetError",
    "SequenceFrame",
    "Sequence",
    "synthesised_stamps",
]
