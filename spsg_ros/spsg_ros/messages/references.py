"""The reference frames' images, kept for drawing a frame's matches against its reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..frontend.types import FrameResult


@dataclass
class ReferenceView:
    """Image, its encoding and keypoints (original pixels) of a frame matched against later."""

    stamp_ns: int
    image: np.ndarray
    encoding: str
    keypoints: np.ndarray


class ReferenceViews:
    """
    The views of the frames that can still be a reference: the newest keyframe.

    The frontend matches every frame against its latest keyframe
    (``FrameResult.is_keyframe``), so call :meth:`remember` after each frame and
    :meth:`get` with ``result.ref_stamp_ns`` to find the reference's image.
    """

    def __init__(self) -> None:
        self._view: Optional[ReferenceView] = None

    def remember(self, result: FrameResult, image: np.ndarray, encoding: str) -> None:
        """Keep the frame's image when it became the reference (a keyframe)."""
        if result.is_keyframe and image is not None:
            self._view = ReferenceView(
                int(result.stamp_ns),
                image,
                encoding,
                np.asarray(result.features.keypoints, np.float32).reshape(-1, 2).copy(),
            )

    def get(self, ref_stamp_ns: Optional[int]) -> Optional[ReferenceView]:
        """The view of the reference with this stamp, or None (no reference, or not kept)."""
        view = self._view
        if ref_stamp_ns is None or view is None or view.stamp_ns != int(ref_stamp_ns):
            return None
        return view

    def clear(self) -> None:
        """Forget every view (the frontend dropped its reference)."""
        self._view = None
