"""ASL / EuRoC folders, which is also OIVIO's layout.

::

    SEQUENCE/mav0/cam0/data.csv          #timestamp [ns],filename
    SEQUENCE/mav0/cam0/data/<stamp>.png
    SEQUENCE/mav0/cam0/sensor.yaml       intrinsics [fu, fv, cu, cv], distortion_coefficients,
                                         resolution, T_BS (body from sensor)
    SEQUENCE/mav0/cam1/...               right camera (stereo)
    SEQUENCE/mav0/state_groundtruth_estimate0/data.csv
                                         timestamp, p x y z, q w x y z, ...   (EuRoC)
    SEQUENCE/mav0/vicon0/data.csv        timestamp, p x y z, q w x y z       (EuRoC V*)
    SEQUENCE/mav0/leica0/data.csv        timestamp, p x y z                  (OIVIO, EuRoC MH)

Ground truth is interpolated at the image stamps and turned into the pose of
cam0 (``T_world_body @ T_BS(cam0)``). Leica ground truth has no orientation:
it gives the prism position only (``gt_position``).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ..frontend.types import CameraInfo
from .base import DatasetError, Sequence, SequenceFrame
from .image_files import frame_from_file, load_image
from .intrinsics import _read_yaml, read_intrinsics_yaml
from .poses import Trajectory

log = logging.getLogger(__name__)


def find_mav0(path: Path) -> Optional[Path]:
    for candidate in (path / "mav0", path):
        if (candidate / "cam0" / "data.csv").is_file():
            return candidate
    return None


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    rows = []
    with open(path, newline="", errors="replace") as f:
        for row in csv.reader(f):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            rows.append([c.strip() for c in row])
    return rows


def read_camera_csv(path: Path) -> list[tuple[int, str]]:
    """(stamp_ns, filename) rows of a ``cam*/data.csv``."""
    entries = []
    for number, row in enumerate(_rows(path), 1):
        if len(row) < 2:
            raise DatasetError(
                f"{path}: row {number} should be 'timestamp [ns],filename', got {row}"
            )
        try:
            stamp = int(row[0])
        except ValueError as exc:
            raise DatasetError(
                f"{path}: row {number}: timestamp {row[0]!r} is not an integer (ns)"
            ) from exc
        entries.append((stamp, row[1]))
    if not entries:
        raise DatasetError(f"{path} lists no images")
    entries.sort()
    return entries


def read_asl_pose_csv(path: Path, position_only: bool = False) -> Trajectory:
    """Ground truth rows ``timestamp, px, py, pz[, qw, qx, qy, qz, ...]`` (ASL: w first)."""
    stamps, positions, quats = [], [], []
    need = 4 if position_only else 8
    for number, row in enumerate(_rows(path), 1):
        if len(row) < need:
            raise DatasetError(
                f"{path}: row {number} has {len(row)} columns, expected at least {need}"
            )
        try:
            values = [float(v) for v in row[1:need]]
            stamps.append(int(row[0]))
        except ValueError as exc:
            raise DatasetError(f"{path}: row {number} is not numeric: {row[:need]}") from exc
        positions.append(values[:3])
        if not position_only:
            qw, qx, qy, qz = values[3:7]
            quats.append([qx, qy, qz, qw])
    if not stamps:
        raise DatasetError(f"{path} holds no ground truth rows")
    return Trajectory(stamps, positions, None if position_only else quats)


def _t_bs(sensor: dict, path: Path) -> np.ndarray:
    value = sensor.get("T_BS")
    if value is None:
        return np.eye(4)
    data = value.get("data") if isinstance(value, dict) else value
    try:
        T = np.asarray(data, float).reshape(4, 4)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: T_BS must hold 16 numbers") from exc
    return T


def read_camera_sensor(path: Path) -> tuple[CameraInfo, np.ndarray]:
    """(CameraInfo, T_BS) of an ASL camera ``sensor.yaml``."""
    info = read_intrinsics_yaml(path)
    sensor = _read_yaml(path)
    model = str(sensor.get("distortion_model", "radial-tangential"))
    if model not in ("radial-tangential", "radtan", "plumb_bob"):
        log.warning("%s: distortion model %s is passed on as is in CameraInfo.D", path, model)
    if info.D.size == 4:  # k1 k2 p1 p2 -> plumb_bob k1 k2 p1 p2 k3
        info.D = np.concatenate([info.D, [0.0]])
    return info, _t_bs(sensor, path)


def is_asl(path: Path) -> bool:
    return find_mav0(path) is not None


class AslSequence(Sequence):
    """EuRoC / OIVIO / any ASL-layout sequence."""

    kind = "asl"

    def __init__(
        self,
        path: str | Path,
        *,
        stereo: bool = False,
        left: str = "cam0",
        right: str = "cam1",
        gt_max_gap: float = 0.1,
        stereo_tolerance: float = 0.005,
        intrinsics: Optional[str | Path] = None,
        **selection,
    ):
        super().__init__(path, **selection)
        mav0 = find_mav0(self.path)
        if mav0 is None:
            raise DatasetError(
                f"{self.path} is not an ASL/EuRoC folder: mav0/{left}/data.csv missing"
            )
        self.mav0 = mav0
        self.left_name, self.right_name = left, right
        self.entries = read_camera_csv(mav0 / left / "data.csv")
        left_sensor = mav0 / left / "sensor.yaml"
        if intrinsics is not None:
            self.camera_info, self.T_BS_left = read_intrinsics_yaml(intrinsics), np.eye(4)
        elif left_sensor.is_file():
            self.camera_info, self.T_BS_left = read_camera_sensor(left_sensor)
        else:
            raise DatasetError(
                f"{left_sensor} does not exist (intrinsics needed; pass an intrinsics YAML)"
            )
        self.stereo = bool(stereo)
        self.right_by_stamp: dict[int, str] = {}
        self.right_stamps = np.zeros(0, np.int64)
        self.stereo_tolerance_ns = int(stereo_tolerance * 1e9)
        if self.stereo:
            right_csv = mav0 / right / "data.csv"
            if not right_csv.is_file():
                raise DatasetError(f"stereo needs {right_csv}, which does not exist")
            right_entries = read_camera_csv(right_csv)
            self.right_by_stamp = dict(right_entries)
            self.right_stamps = np.array([s for s, _ in right_entries], np.int64)
            right_sensor = mav0 / right / "sensor.yaml"
            if not right_sensor.is_file():
                raise DatasetError(
                    f"{right_sensor} does not exist (stereo needs the right calibration)"
                )
            self.right_camera_info, T_BS_right = read_camera_sensor(right_sensor)
            T_right_left = np.linalg.inv(T_BS_right) @ self.T_BS_left
            baseline = float(np.linalg.norm(T_right_left[:3, 3]))
            for info in (self.camera_info, self.right_camera_info):
                info.T_right_left = T_right_left
                info.baseline = baseline
        self.gt: Optional[Trajectory] = None
        self.gt_max_gap_ns = int(gt_max_gap * 1e9)
        self.T_body_gt = np.eye(4)
        for folder, position_only in (
            ("state_groundtruth_estimate0", False),
            ("vicon0", False),
            ("leica0", True),
        ):
            csv_path = mav0 / folder / "data.csv"
            if csv_path.is_file():
                self.gt = read_asl_pose_csv(csv_path, position_only)
                sensor_path = mav0 / folder / "sensor.yaml"
                if sensor_path.is_file() and not position_only:
                    # the tracked frame (marker) sits at T_BS in the body frame
                    self.T_body_gt = np.linalg.inv(_t_bs(_read_yaml(sensor_path), sensor_path))
                self.ground_truth_kind = "position" if position_only else "pose"
                self.has_ground_truth = True
                self.gt_source = str(csv_path)
                break
        self.world_frame = "z_up"
        self.frame_id = left
        self.name = mav0.parent.name if mav0.name == "mav0" else mav0.name

    def _stamps(self) -> list[int]:
        return [s for s, _ in self.entries]

    def _right_file(self, stamp: int) -> Optional[str]:
        if stamp in self.right_by_stamp:
            return self.right_by_stamp[stamp]
        if len(self.right_stamps) == 0:
            return None
        i = int(np.argmin(np.abs(self.right_stamps - stamp)))
        if abs(int(self.right_stamps[i]) - stamp) <= self.stereo_tolerance_ns:
            return self.right_by_stamp[int(self.right_stamps[i])]
        return None

    def _load(self, position: int, index: int) -> SequenceFrame:
        stamp, name = self.entries[position]
        path = self.mav0 / self.left_name / "data" / name
        frame = frame_from_file(path, index, stamp, self.frame_id, self.camera_info)
        if self.stereo and frame.error is None:
            rname = self._right_file(stamp)
            if rname is None:
                frame.error, frame.image = (
                    f"no {self.right_name} image within "
                    f"{self.stereo_tolerance_ns / 1e6:.1f} ms of {stamp}",
                    None,
                )
            else:
                right, rencoding, rerror = load_image(self.mav0 / self.right_name / "data" / rname)
                if rerror is not None:
                    frame.error, frame.image = rerror, None
                else:
                    frame.right_image, frame.right_encoding = right, rencoding
                    frame.right_frame_id = self.right_name
                    frame.right_camera_info = self.right_camera_info
        if self.gt is not None:
            T_world_tracked, position_w = self.gt.at(stamp, self.gt_max_gap_ns)
            if T_world_tracked is not None:
                frame.gt_pose = T_world_tracked @ self.T_body_gt @ self.T_BS_left
                frame.gt_position = frame.gt_pose[:3, 3].copy()
            elif position_w is not None:
                frame.gt_position = position_w
        return frame
