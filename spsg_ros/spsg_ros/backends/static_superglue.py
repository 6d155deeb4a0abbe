"""Host side of the static (K-slot, masked) SuperGlue: padding and un-padding.

Used by every backend that runs an exported SuperGlue (onnxruntime, OpenVINO,
Ascend); numpy only.

- :func:`select_slots`: which keypoints go into the K slots. With at most K
  keypoints, all of them; with more, the K best by detection score (ties: lower
  index first), kept in their original order. The others are reported
  unmatched. This is the documented "more than K" policy (also written into each
  model's sidecar): the result equals the reference SuperGlue run on that subset.
- :func:`superglue_feeds`: the contract inputs for one pair (valid slots first,
  padded slots zero with mask 0).
- :func:`unpad_log_assignment`: the (n0+1, n1+1) log assignment of the kept
  keypoints from the padded (K0+1, K1+1) output (valid rows/cols + dustbins).
- :func:`expand_log_assignment`: back to all N0, N1 keypoints, -inf (zero mass)
  for those not kept.
"""

from __future__ import annotations

import numpy as np

from ..features.types import Features
from ..networks import contract


def select_slots(scores: np.ndarray, num_slots: int | None) -> np.ndarray | None:
    """Indices of the keypoints that fit in ``num_slots`` (None: all fit)."""
    n = int(scores.shape[0])
    if num_slots is None or n <= num_slots:
        return None
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")[:num_slots]
    return np.sort(order)


def _pad(
    features: Features,
    index: np.ndarray | None,
    slots: int | None,
    dim: int,
    out: dict[str, np.ndarray],
    i: int,
) -> int:
    kpts, scores, desc = features.keypoints, features.scores, features.descriptors
    if index is not None:
        kpts, scores, desc = kpts[index], scores[index], desc[:, index]
    n = int(kpts.shape[0])
    k = n if slots is None else slots
    if desc.shape[0] != dim:
        raise contract.ModelContractError(
            f"descriptors of dimension {desc.shape[0]} fed to a SuperGlue model for {dim}"
        )
    keypoints = np.zeros((1, k, 2), np.float32)
    keypoints[0, :n] = kpts
    score = np.zeros((1, k), np.float32)
    score[0, :n] = scores
    descriptors = np.zeros((1, dim, k), np.float32)
    descriptors[0, :, :n] = desc
    mask = np.zeros((1, k), np.float32)
    mask[0, :n] = 1.0
    out[f"keypoints{i}"] = keypoints
    out[f"scores{i}"] = score
    out[f"descriptors{i}"] = descriptors
    out[f"mask{i}"] = mask
    out[f"image_size{i}"] = np.asarray([features.image_size], np.float32).reshape(1, 2)
    return n


def superglue_feeds(
    features0: Features,
    features1: Features,
    num_slots: int | None,
    descriptor_dim: int | None = None,
):
    """Contract inputs for one pair.

    Returns ``(feeds, index0, index1)``: ``feeds`` maps each input name of
    :data:`contract.SUPERGLUE_INPUTS` to its float32 array; ``index0/1`` the
    indices of the kept keypoints (None when all were kept). ``num_slots`` None
    means a dynamic model: exact sizes, masks of ones.
    """
    dim = int(descriptor_dim if descriptor_dim is not None else features0.descriptors.shape[0])
    index0 = select_slots(features0.scores, num_slots)
    index1 = select_slots(features1.scores, num_slots)
    feeds: dict[str, np.ndarray] = {}
    _pad(features0, index0, num_slots, dim, feeds, 0)
    _pad(features1, index1, num_slots, dim, feeds, 1)
    return {name: feeds[name] for name in contract.SUPERGLUE_INPUTS}, index0, index1


def unpad_log_assignment(log_assignment: np.ndarray, n0: int, n1: int) -> np.ndarray:
    """(n0+1, n1+1): valid rows/cols (the first n0 / n1 slots) and the dustbins."""
    la = np.asarray(log_assignment)
    if la.ndim == 3:
        la = la[0]
    rows = np.r_[np.arange(n0), la.shape[0] - 1]
    cols = np.r_[np.arange(n1), la.shape[1] - 1]
    if n0 == la.shape[0] - 1 and n1 == la.shape[1] - 1:
        return np.ascontiguousarray(la, dtype=np.float32)
    return np.ascontiguousarray(la[np.ix_(rows, cols)], dtype=np.float32)


def expand_log_assignment(
    sub: np.ndarray, index0: np.ndarray | None, index1: np.ndarray | None, n0: int, n1: int
) -> np.ndarray:
    """Log assignment over all keypoints from the one over the kept subset:
    keypoints not kept get -inf (no mass), so they are never matched."""
    if index0 is None and index1 is None:
        return sub
    rows = np.r_[np.arange(n0) if index0 is None else index0, n0]
    cols = np.r_[np.arange(n1) if index1 is None else index1, n1]
    full = np.full((n0 + 1, n1 + 1), -np.inf, np.float32)
    full[np.ix_(rows, cols)] = sub
    return full


def scatter_matches(
    matches, index0: np.ndarray | None, index1: np.ndarray | None, n0: int, n1: int
):
    """Matches over the kept subsets -> matches over all N0, N1 keypoints (those not
    kept are unmatched with score 0)."""
    from ..matching.types import Matches

    if index0 is None and index1 is None:
        return matches
    idx0 = np.arange(n0) if index0 is None else index0
    idx1 = np.arange(n1) if index1 is None else index1
    out = Matches.empty(n0, n1)
    out.matches0[idx0] = np.where(matches.matches0 >= 0, idx1[np.maximum(matches.matches0, 0)], -1)
    out.matches1[idx1] = np.where(matches.matches1 >= 0, idx0[np.maximum(matches.matches1, 0)], -1)
    out.scores0[idx0] = matches.scores0
    out.scores1[idx1] = matches.scores1
    return out
