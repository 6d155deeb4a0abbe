"""A plain folder of images: sorted by name, stamped at a given rate from a base time.

Intrinsics come from an optional YAML (see :func:`read_intrinsics_yaml`); a
``camera.yaml`` / ``intrinsics.yaml`` / ``camera_info.yaml`` beside the images
is used when present. Without any, a centred pinhole with f = max(w, h) is
assumed (and logged), which is enough to look at matches but not for poses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from .base import (
    DEFAULT_BASE_TIME_NS,
    DatasetError,
    Sequence,
    SequenceFrame,
    synthesised_stamps,
)

from .image_files import frame_from_file, first_image_size, list_images

from .intrinsics import default_camera_info, read_intrinsics_yaml

log = logging.getLogger(__name__)

CALIBRATION_NAMES = ("camera.yaml", "intrinsics.yaml", "camera_info.yaml", "calibration.yaml")


class FolderSequence(Sequence):
    kind = "folder"

    def __init__(
        self,
        path: str | Path,
        *,
        rate_hz: float = 10.0,
        base_time_ns: int = DEFAULT_BASE_TIME_NS,
        intrinsics: Optional[str | Path] = None,
        frame_id: str = "camera",
        stereo: bool = False,
        **selection,
    ):
        super().__init__(path, **selection)
        if stereo:
            raise DatasetError(
                f"{self.path}: a plain image folder is monocular; --stereo not possible"
            )
        if not self.path.is_dir():
            raise DatasetError(f"image folder {self.path} does not exist")
        self.files = list_images(self.path)
        self.stamps = synthesised_stamps(len(self.files), rate_hz, base_time_ns)
        width, height = first_image_size(self.files)
        if intrinsics is None:
            intrinsics = next(
                (self.path / n for n in CALIBRATION_NAMES if (self.path / n).is_file()), None
            )
        if intrinsics is not None:
            self.camera_info = read_intrinsics_yaml(intrinsics, (width, height))
            self.intrinsics_source = str(intrinsics)
        else:
            log.warning(
                "%s: no intrinsics YAML, assuming f = %d px centred (poses are approximate)",
                self.path,
                max(width, height),
            )
            self.camera_info = default_camera_info(width, height)
            self.intrinsics_source = "assumed"
        self.frame_id = frame_id
        self.world_frame = "optical"

    def _stamps(self) -> list[int]:
        return self.stamps

    def _load(self, position: int, index: int) -> SequenceFrame:
        path = self.files[position]
        frame = frame_from_file(
            path, index, self.stamps[position], self.frame_id, self.camera_info
        )
        return frame
