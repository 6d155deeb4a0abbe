"""SuperPoint host post-processing in numpy (no torch).

Every backend runs only the dense network (detector logits 65 x h x w and the raw
descriptor map D x h x w) and hands the result to :func:`postprocess`, which
reproduces the upstream keypoints, scores and descriptors: softmax over the 65
bins, cell-to-pixel reshuffle, NMS by max-pooling, threshold, border removal,
top-k, and bilinear descriptor sampling (torch ``grid_sample`` with
``align_corners=True`` and zero padding).
"""

from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from ..networks.config import CELL, SUPERPOINT_DEFAULTS, superpoint_config  # noqa: F401
from .types import Features


def detector_scores(semi: np.ndarray) -> np.ndarray:
    """Dense keypoint probability map (8h, 8w) from logits (65, h, w)."""
    semi = np.asarray(semi, dtype=np.float32)
    _, h, w = semi.shape
    exp = np.exp(semi - semi.max(axis=0, keepdims=True))
    prob = exp[:-1] / exp.sum(axis=0, keepdims=True)
    # channel c of cell (i, j) is pixel (8i + c // 8, 8j + c % 8)
    return prob.reshape(CELL, CELL, h, w).transpose(2, 0, 3, 1).reshape(h * CELL, w * CELL)


def _max_pool(x: np.ndarray, radius: int) -> np.ndarray:
    """Max over a (2r+1)^2 window, stride 1. Inputs are >= 0, so padding with 0
    equals torch's -inf padding (the window always holds its non-negative centre)."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(x, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def simple_nms(scores: np.ndarray, radius: int) -> np.ndarray:
    """Non-maximum suppression as upstream: keep local maxima, then twice re-admit
    maxima outside the suppressed neighbourhoods."""
    if radius == 0:
        return scores.copy()
    zeros = np.zeros_like(scores)
    keep = scores == _max_pool(scores, radius)
    for _ in range(2):
        suppressed = _max_pool(keep.astype(np.uint8), radius) > 0
        rest = np.where(suppressed, zeros, scores)
        keep = keep | ((rest == _max_pool(rest, radius)) & ~suppressed)
    return np.where(keep, scores, zeros)


def select_keypoints(
    scores: np.ndarray, threshold: float, border: int, max_keypoints: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) and scores of the kept keypoints from an NMS'd score map."""
    height, width = scores.shape
    # compare in float32, as torch does for a float32 tensor against a Python float
    rows, cols = np.nonzero(scores > np.float32(threshold))
    inside = (
        (rows >= border) & (rows < height - border) & (cols >= border) & (cols < width - border)
    )
    rows, cols = rows[inside], cols[inside]
    values = scores[rows, cols]
    if 0 <= max_keypoints < values.shape[0]:
        # descending score (torch.topk order); ties keep row-major order
        order = np.argsort(-values, kind="stable")[:max_keypoints]
        rows, cols, values = rows[order], cols[order], values[order]
    return np.stack([rows, cols], axis=1), values.astype(np.float32)


def sample_descriptors(keypoints: np.ndarray, raw_descriptors: np.ndarray) -> np.ndarray:
    """Bilinear descriptors (D, N) at keypoints (N, 2; x, y) from the raw map (D, h, w).

    The map is L2-normalised per pixel first (upstream normalises the whole map);
    only the four neighbours of each keypoint are normalised here, which is the
    same arithmetic on the values that are used.
    """
    dim, h, w = raw_descriptors.shape
    n = keypoints.shape[0]
    if n == 0:
        return np.zeros((dim, 0), np.float32)
    kp = keypoints.astype(np.float32)
    scale = np.array([w * CELL - CELL / 2 - 0.5, h * CELL - CELL / 2 - 0.5], np.float32)
    grid = (kp - np.float32(CELL / 2 - 0.5)) / scale * np.float32(2) - np.float32(1)
    # grid_sample, align_corners=True: -1 -> 0, +1 -> size - 1
    ix = (grid[:, 0] + 1) / 2 * np.float32(w - 1)
    iy = (grid[:, 1] + 1) / 2 * np.float32(h - 1)
    x0 = np.floor(ix).astype(np.int64)
    y0 = np.floor(iy).astype(np.int64)
    fx = ix - x0
    fy = iy - y0
    out = np.zeros((n, dim), np.float32)
    for dy, dx, weight in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xs, ys = x0 + dx, y0 + dy
        valid = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)  # zero padding outside
        corner = raw_descriptors[:, np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)].T
        corner = corner / np.maximum(np.linalg.norm(corner, axis=1, keepdims=True), 1e-12)
        out += corner * (weight * valid)[:, None]
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def postprocess(
    semi: np.ndarray,
    raw_descriptors: np.ndarray,
    config: Mapping[str, Any],
    image_size: tuple[int, int] | None = None,
) -> Features:
    """Keypoints, scores and descriptors of one image from the dense network outputs.

    ``semi`` (65, h, w) logits, ``raw_descriptors`` (D, h, w) before normalisation;
    ``config`` a :func:`superpoint_config`; ``image_size`` (W, H) of the input
    (defaults to (8w, 8h)).
    """
    _, h, w = semi.shape
    if image_size is None:
        image_size = (w * CELL, h * CELL)
    if h == 0 or w == 0:  # input smaller than one 8x8 cell: nothing to detect
        return Features.empty(image_size, raw_descriptors.shape[0])
    scores = simple_nms(detector_scores(semi), int(config["nms_radius"]))
    rc, values = select_keypoints(
        scores,
        config["keypoint_threshold"],
        int(config["remove_borders"]),
        int(config["max_keypoints"]),
    )
    keypoints = rc[:, ::-1].astype(np.float32)  # (row, col) -> (x, y)
    descriptors = sample_descriptors(keypoints, np.asarray(raw_descriptors, np.float32))
    return Features(
        np.ascontiguousarray(keypoints),
        values,
        descriptors,
        (int(image_size[0]), int(image_size[1])),
    )
