"""SuperPoint on images: backend dense inference + numpy host post-processing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .superpoint_post import superpoint_config
from .types import Features

if TYPE_CHECKING:  # the backends layer sits above; this is for annotations only
    from ..backends.base import Backend


def to_network_input(images: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 grayscale images of one size -> (B, 1, H, W) float32 in [0, 1].

    The batch is the one full-size array made: each image is converted straight into
    its slot (uint8 / 255 in float32, the same arithmetic as ``astype`` then divide).
    """
    arrays = [np.asarray(img) for img in images]
    if not arrays:
        raise ValueError("no images to batch")
    first = arrays[0]
    for image in arrays:
        if image.ndim != 2:
            raise ValueError(f"expected grayscale (H, W) images, got shape {image.shape}")
        if image.shape != first.shape:
            raise ValueError(
                f"images of one batch must have one size: {first.shape} and {image.shape}"
            )
    batch = np.empty((len(arrays), 1) + first.shape, np.float32)
    for slot, image in zip(batch, arrays):
        if image.dtype == np.uint8:
            np.divide(image, np.float32(255.0), out=slot[0])
        else:
            slot[0] = image  # cast as astype(np.float32) does
    return batch


class SuperPointExtractor:
    """Keypoints and descriptors of grayscale images with one backend."""

    def __init__(self, backend: Backend, config: Mapping[str, Any] | None = None):
        self.backend = backend
        self.config = superpoint_config(config)

    def __call__(self, image: np.ndarray) -> Features:
        return self.extract_batch([image])[0]

    def extract_batch(self, images: Sequence[np.ndarray]) -> list[Features]:
        """One backend call for images of the same size (one call each where the
        backend cannot batch)."""
        if not images:
            return []
        if not self.backend.supports_batch and len(images) > 1:
            return [f for img in images for f in self.extract_batch([img])]
        return self.backend.superpoint(to_network_input(images), self.config)
