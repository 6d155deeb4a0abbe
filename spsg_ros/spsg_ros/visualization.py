"""Match images for people: both frames side by side, match lines coloured by
confidence (blue low, red high), and a caption."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def _to_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image.copy()


def confidence_colors(confidence: np.ndarray) -> np.ndarray:
    """(N, 3) BGR uint8 from the jet colormap of confidences in [0, 1]."""
    values = np.clip(np.asarray(confidence, np.float32), 0, 1)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0]
    return lut[(values * 255).astype(np.uint8)]


def draw_matches(
    image0: np.ndarray,
    image1: np.ndarray,
    keypoints0: np.ndarray,
    keypoints1: np.ndarray,
    matched0: np.ndarray,
    matched1: np.ndarray,
    confidence: np.ndarray,
    text: Sequence[str] = (),
    margin: int = 10,
) -> np.ndarray:
    """BGR uint8 picture; ``matched0/1`` (M, 2) are the matched keypoint positions."""
    img0, img1 = _to_bgr(image0), _to_bgr(image1)
    h0, w0 = img0.shape[:2]
    h1, w1 = img1.shape[:2]
    height = max(h0, h1)
    canvas = np.full((height, w0 + margin + w1, 3), 255, np.uint8)
    canvas[:h0, :w0] = img0
    canvas[:h1, w0 + margin :] = img1
    offset = np.array([w0 + margin, 0], np.float32)
    for x, y in np.round(keypoints0).astype(int):
        cv2.circle(canvas, (int(x), int(y)), 1, (255, 255, 255), -1, cv2.LINE_AA)
    for x, y in np.round(keypoints1 + offset).astype(int):
        cv2.circle(canvas, (int(x), int(y)), 1, (255, 255, 255), -1, cv2.LINE_AA)
    colors = confidence_colors(confidence)
    for p0, p1, color in zip(
        np.round(matched0).astype(int), np.round(matched1 + offset).astype(int), colors
    ):
        c = tuple(int(v) for v in color)
        cv2.line(canvas, tuple(int(v) for v in p0), tuple(int(v) for v in p1), c, 1, cv2.LINE_AA)
        cv2.circle(canvas, tuple(int(v) for v in p0), 2, c, -1, cv2.LINE_AA)
        cv2.circle(canvas, tuple(int(v) for v in p1), 2, c, -1, cv2.LINE_AA)
    scale = max(0.5, min(1.5, height / 640.0))
    for i, line in enumerate(text):
        org = (8, int(22 * scale * (i + 1)))
        cv2.putText(
            canvas, line, org, cv2.FONT_HERSHEY_DUPLEX, scale * 0.7, (0, 0, 0), 3, cv2.LINE_AA
        )
        cv2.putText(
            canvas,
            line,
            org,
            cv2.FONT_HERSHEY_DUPLEX,
            scale * 0.7,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return canvas
