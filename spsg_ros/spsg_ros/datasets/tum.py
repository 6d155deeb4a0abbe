"""TUM RGB-D sequences: ``rgb.txt`` (``timestamp filename``), ``rgb/*.png``,
``groundtruth.txt`` (``timestamp tx ty tz qx qy qz qw``, the colour camera's
optical centre in the motion-capture world).

Ground truth is associated to each image by the nearest stamp within
``max_difference`` (0.02 s, as TUM's ``associate.py``). Intrinsics: an
intrinsics YAML when given, else the published calibration of the freiburg1/2/3
sensor named in the folder, else the ROS default (525, 525, 319.5, 239.5).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Optional

import numpy as np

from .base import DatasetError, Sequence, SequenceFrame

from .image_files import frame_from_file, first_image_size

from .intrinsics import pinhole_camera_info, read_intrinsics_yaml, scaled_camera_info

from .poses import Trajectory

log = logging.getLogger(__name__)

# fx, fy, cx, cy, d0..d4 of the colour cameras (TUM RGB-D "file formats" page)
TUM_CALIBRATION = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "freiburg2": (520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "freiburg3": (535.4, 539.2, 320.1, 247.6, (0.0, 0.0, 0.0, 0.0, 0.0)),
    "default": (525.0, 525.0, 319.5, 239.5, (0.0, 0.0, 0.0, 0.0, 0.0)),
}


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    out = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((number, line.replace(",", " ").split()))
    return out


def _seconds_to_ns(text: str, path: Path, number: int) -> int:
    try:
        seconds, _, fraction = text.partition(".")
        fraction = (fraction + "000000000")[:9]
        return int(seconds) * 1_000_000_000 + int(fraction)
    except ValueError as exc:
        raise DatasetError(
            f"{path}:{number}: timestamp {text!r} is not a number of seconds"
        ) from exc


def read_tum_list(path: Path) -> list[tuple[int, str]]:
    entries = []
    for number, parts in _lines(path):
        if len(parts) < 2:
            raise DatasetError(f"{path}:{number}: expected 'timestamp filename'")
        entries.append((_seconds_to_ns(parts[0], path, number), parts[1]))
    if not entries:
        raise DatasetError(f"{path} lists no images")
    entries.sort()
    return entries


def read_tum_trajectory(path: Path) -> Trajectory:
    stamps, positions, quats = [], [], []
    for number, parts in _lines(path):
        if len(parts) != 8:
            raise DatasetError(
                f"{path}:{number}: expected 'timestamp tx ty tz qx qy qz qw', "
                f"got {len(parts)} values"
            )
        stamps.append(_seconds_to_ns(parts[0], path, number))
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not numbers: {parts[1:]}") from exc
        positions.append(values[:3])
        quats.append(values[3:])
    if not stamps:
        raise DatasetError(f"{path} holds no poses")
    return Trajectory(stamps, positions, quats)


def is_tum(path: Path) -> bool:
    return (path / "rgb.txt").is_file()


class TumSequence(Sequence):
    kind = "tum"

    def __init__(
        self,
        path: str | Path,
        *,
        intrinsics: Optional[str | Path] = None,
        max_difference: float = 0.02,
        stereo: bool = False,
        **selection,
    ):
        super().__init__(path, **selection)
        if stereo:
            raise DatasetError(
                "TUM RGB-D sequences are monocular (colour + depth): --stereo not possible"
            )
        if not self.path.is_dir():
            raise DatasetError(f"TUM folder {self.path} does not exist")
        self.entries = read_tum_list(self.path / "rgb.txt")
        width, height = first_image_size(self.path / e[1] for e in self.entries)
        if intrinsics is not None:
            self.camera_info = read_intrinsics_yaml(intrinsics, (width, height))
        else:
            match = re.search(r"freiburg([123])", str(self.path.resolve()))
            key = f"freiburg{match.group(1)}" if match else "default"
            if not match:
                log.warning(
                    "%s: freiburg camera not named in the path, using default intrinsics",
                    self.path,
                )
            fx, fy, cx, cy, D = TUM_CALIBRATION[key]
            info = pinhole_camera_info(fx, fy, cx, cy, 640, 480, D=D)
            self.camera_info = (
                info if (width, height) == (640, 480) else scaled_camera_info(info, width, height)
            )
        gt_path = self.path / "groundtruth.txt"
        self.gt = read_tum_trajectory(gt_path) if gt_path.is_file() else None
        if self.gt is not None:
            self.has_ground_truth = True
            self.ground_truth_kind = "pose"
        self.max_difference_ns = int(max_difference * 1e9)
        self.world_frame = "z_up"
        self.frame_id = "openni_rgb_optical_frame"

    def _stamps(self) -> list[int]:
        return [s for s, _ in self.entries]

    def _load(self, position: int, index: int) -> SequenceFrame:
        stamp, name = self.entries[position]
        path = self.path / name
        frame = frame_from_file(path, index, stamp, self.frame_id, self.camera_info)
        if self.gt is not None:
            pose, position_w = self.gt.nearest(stamp, self.max_difference_ns)
            if pose is not None:
                frame.gt_pose, frame.gt_position = pose, np.asarray(position_w, float)
        return frame
