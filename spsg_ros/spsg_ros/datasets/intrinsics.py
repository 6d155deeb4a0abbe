"""Camera intrinsics of a sequence: defaults, pinhole, scaling, YAML files (ROS, Kalibr)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from ..frontend.types import CameraInfo
from .base import DatasetError


def default_camera_info(width: int, height: int) -> CameraInfo:
    """A guess for images without calibration: f = max(w, h) (about 53 deg wide), centred."""
    f = float(max(width, height))
    K = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])
    return CameraInfo(
        K=K,
        width=int(width),
        height=int(height),
        D=np.zeros(5),
        P=np.hstack([K, np.zeros((3, 1))]),
    )


def pinhole_camera_info(
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    D=None,
    baseline: Optional[float] = None,
    right: bool = False,
) -> CameraInfo:
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]], float)
    P = np.hstack([K, np.zeros((3, 1))])
    if right and baseline is not None:
        P[0, 3] = -fx * baseline
    T_rl = None
    if baseline is not None:
        T_rl = np.eye(4)
        T_rl[0, 3] = -baseline
    return CameraInfo(
        K=K,
        width=int(width),
        height=int(height),
        D=np.zeros(5) if D is None else np.asarray(D, float),
        P=P,
        baseline=baseline,
        T_right_left=T_rl,
    )


def _read_yaml(path: Path) -> dict:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _opencv_matrix(loader, node):
        return loader.construct_mapping(node, deep=True)

    _Loader.add_constructor("tag:yaml.org,2002:opencv-matrix", _opencv_matrix)
    _Loader.add_multi_constructor(
        "!",
        lambda loader, suffix, node: (
            loader.construct_mapping(node, deep=True)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_scalar(node)
        ),
    )
    if not path.is_file():
        raise DatasetError(f"calibration file {path} does not exist")
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    if lines and lines[0].startswith("%YAML:"):  # OpenCV FileStorage header, not YAML 1.x
        text = "\n".join(lines[1:])
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise DatasetError(f"calibration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"calibration file {path} does not hold a mapping")
    return data


def _matrix_values(value, count: int, what: str, path: Path) -> np.ndarray:
    if isinstance(value, dict):
        value = value.get("data")
    try:
        array = np.asarray(value, float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: {what} is not numeric") from exc
    if count and array.size != count:
        raise DatasetError(f"{path}: {what} needs {count} values, got {array.size}")
    return array


def read_intrinsics_yaml(
    path: str | Path, image_wh: Optional[tuple[int, int]] = None
) -> CameraInfo:
    """Intrinsics from a YAML file in one of three layouts:

    - ROS ``camera_info`` YAML (``image_width``, ``image_height``, ``camera_matrix``,
      ``distortion_coefficients``, optional ``projection_matrix``);
    - Kalibr / ASL ``sensor.yaml`` (``intrinsics: [fu, fv, cu, cv]``, ``resolution``,
      ``distortion_coefficients``);
    - plain keys ``fx, fy, cx, cy`` (+ ``width``, ``height``, ``D``/``distortion``,
      ``baseline``).
    """
    path = Path(path)
    data = _read_yaml(path)
    width = height = None
    D = np.zeros(5)
    P = None
    baseline = data.get("baseline")
    if "camera_matrix" in data:
        K = _matrix_values(data["camera_matrix"], 9, "camera_matrix", path).reshape(3, 3)
        width, height = data.get("image_width"), data.get("image_height")
        if "distortion_coefficients" in data:
            D = _matrix_values(data["distortion_coefficients"], 0, "distortion_coefficients", path)
        if "projection_matrix" in data:
            P = _matrix_values(data["projection_matrix"], 12, "projection_matrix", path).reshape(
                3, 4
            )
    elif "intrinsics" in data:
        fu, fv, cu, cv = _matrix_values(data["intrinsics"], 4, "intrinsics", path)
        K = np.array([[fu, 0, cu], [0, fv, cv], [0, 0, 1.0]])
        if "resolution" in data:
            width, height = (
                int(v) for v in _matrix_values(data["resolution"], 2, "resolution", path)
            )
        if "distortion_coefficients" in data:
            D = _matrix_values(data["distortion_coefficients"], 0, "distortion_coefficients", path)
    elif all(k in data for k in ("fx", "fy", "cx", "cy")):
        try:
            K = np.array(
                [
                    [float(data["fx"]), 0, float(data["cx"])],
                    [0, float(data["fy"]), float(data["cy"])],
                    [0, 0, 1.0],
                ]
            )
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: fx, fy, cx, cy must be numbers") from exc
        width, height = data.get("width"), data.get("height")
        dist = data.get("D", data.get("distortion"))
        if dist is not None:
            D = _matrix_values(dist, 0, "distortion", path)
    else:
        raise DatasetError(
            f"{path}: no intrinsics found (expected camera_matrix, intrinsics: "
            f"[fu, fv, cu, cv], or fx/fy/cx/cy keys)"
        )
    if width is None or height is None:
        if image_wh is None:
            raise DatasetError(
                f"{path}: image size missing (image_width/image_height, resolution "
                f"or width/height)"
            )
        width, height = image_wh
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise DatasetError(f"{path}: focal lengths must be positive, got {K[0, 0]}, {K[1, 1]}")
    if P is None:
        P = np.hstack([K, np.zeros((3, 1))])
    return CameraInfo(
        K=K,
        width=int(width),
        height=int(height),
        D=np.asarray(D, float),
        P=P,
        baseline=None if baseline is None else float(baseline),
    )


def scaled_camera_info(info: CameraInfo, width: int, height: int) -> CameraInfo:
    """Intrinsics of ``info`` for the same camera at another image size."""
    sx, sy = width / info.width, height / info.height
    S = np.diag([sx, sy, 1.0])
    P = None if info.P is None else S @ info.P
    return replace(info, K=S @ info.K, P=P, width=int(width), height=int(height))
