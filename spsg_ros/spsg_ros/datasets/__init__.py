"""Sequence readers: TartanAir, ASL/EuRoC/OIVIO, TUM RGB-D, image folders, ROS 1/2 bags.

:func:`open_source` detects the kind of a path and returns its reader; every
reader yields :class:`SequenceFrame` objects (see :mod:`.base`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .base import DatasetError, Sequence, SequenceFrame

from .poses import Trajectory

KINDS = ("tartanair", "asl", "euroc", "oivio", "tum", "folder", "bag")

# options each reader understands besides the common selection (start, duration, max_frames, step)
_OPTIONS = {
    "tartanair": {"stereo", "rate_hz", "base_time_ns", "intrinsics", "frame_id"},
    "asl": {"stereo", "left", "right", "gt_max_gap", "stereo_tolerance", "intrinsics"},
    "tum": {"stereo", "intrinsics", "max_difference"},
    "folder": {"stereo", "rate_hz", "base_time_ns", "intrinsics", "frame_id"},
    "bag": {
        "stereo",
        "topic",
        "right_topic",
        "camera_info_topic",
        "right_camera_info_topic",
        "gt_topic",
        "intrinsics",
        "stereo_tolerance",
        "gt_max_gap",
    },
}
_SELECTION = {"start", "duration", "max_frames", "step"}


def detect_kind(path: str | Path) -> str:
    """``tartanair``, ``asl``, ``tum``, ``bag`` or ``folder``; DatasetError when none fits."""
    from .euroc import is_asl
    from .rosbag import is_bag
    from .tartanair import is_tartanair
    from .tum import is_tum

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"source {path} does not exist")
    if is_bag(path):
        return "bag"
    if path.is_file():
        raise DatasetError(f"source {path} is a file but not a bag (.bag, .mcap, .db3)")
    if is_tartanair(path):
        return "tartanair"
    if is_asl(path):
        return "asl"
    if is_tum(path):
        return "tum"
    from .image_files import IMAGE_SUFFIXES

    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        return "folder"
    raise DatasetError(
        f"cannot tell what {path} is: expected a TartanAir folder (image_left/, "
        f"pose_left.txt), an ASL/EuRoC/OIVIO folder (mav0/cam0/data.csv), a TUM RGB-D "
        f"folder (rgb.txt), a bag, or a folder of images"
    )


def open_source(path: str | Path, kind: Optional[str] = None, **options: Any) -> Sequence:
    """Reader for ``path`` (kind detected unless given). Options a reader does not
    use are ignored when they are None; otherwise they are an error."""
    kind = (kind or detect_kind(path)).lower()
    if kind in ("euroc", "oivio"):
        kind = "asl"
    if kind not in _OPTIONS:
        raise DatasetError(f"unknown source kind '{kind}' (known: {', '.join(KINDS)})")
    allowed = _OPTIONS[kind] | _SELECTION
    unused = [k for k, v in options.items() if k not in allowed and v is not None]
    if unused:
        raise DatasetError(
            f"option(s) {', '.join(sorted(unused))} do not apply to a {kind} source"
        )
    kwargs = {k: v for k, v in options.items() if k in allowed and v is not None}
    if kind == "tartanair":
        from .tartanair import TartanAirSequence

        return TartanAirSequence(path, **kwargs)
    if kind == "asl":
        from .euroc import AslSequence

        return AslSequence(path, **kwargs)
    if kind == "tum":
        from .tum import TumSequence

        return TumSequence(path, **kwargs)
    if kind == "folder":
        from .folder import FolderSequence

        return FolderSequence(path, **kwargs)
    from .rosbag import BagSequence

    return BagSequence(path, **kwargs)


__all__ = [
    "DatasetError",
    "Sequence",
    "SequenceFrame",
    "Trajectory",
    "open_source",
    "detect_kind",
    "KINDS",
]
