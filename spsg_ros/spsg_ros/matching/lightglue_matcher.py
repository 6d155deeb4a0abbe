"""LightGlue matching of two feature sets (PyTorch, any feature type).

``LightGlueMatcher(features0, features1)`` returns :class:`Matches` like the
SuperGlue and nearest-neighbour matchers. LightGlue's adaptive depth and width
give two more facts per pair, which ``Matches`` does not hold: they are kept on
the matcher after each call (``last_stop_layer``, ``last_pruned``), and
:meth:`LightGlueMatcher.match` returns them together with the matches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..features.types import Features
from .types import Matches


@dataclass
class LightGlueResult:
    """One LightGlue run: the matches, the number of layers run (1..n_layers; 0 when
    an image had no keypoint) and how many points of each image were pruned."""

    matches: Matches
    stop_layer: int
    num_pruned: tuple[int, int]


class LightGlueMatcher:
    """LightGlue with upstream weights on ``device`` (``"cpu"``, ``"cuda"``, ...).

    ``weights``: a file path or a short name (``lightglue`` = ``superpoint_lightglue``,
    ``disk_lightglue``) looked up in ``weights_dir``; the descriptor dimension the
    weights expect (256 SuperPoint, 128 DISK) comes from the file. ``config``: keys of
    :data:`spsg_ros.networks.lightglue.DEFAULT_CONFIG` (``depth_confidence``,
    ``width_confidence``, ``filter_threshold``, ``pruning_rule``, ...).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        weights: str | os.PathLike = "lightglue",
        device: str = "cpu",
        weights_dir: str | os.PathLike | None = None,
    ):
        import torch

        from ..networks.weights import load_lightglue

        self.device = torch.device(device)
        self.net = load_lightglue(weights, config, weights_dir).to(self.device)
        self.config = self.net.config
        self.last_stop_layer: int | None = None
        self.last_pruned: tuple[int, int] | None = None

    @property
    def input_dim(self) -> int:
        return int(self.config["input_dim"])

    def __call__(self, features0: Features, features1: Features) -> Matches:
        return self.match(features0, features1).matches

    def match(self, features0: Features, features1: Features) -> LightGlueResult:
        """Matches of two feature sets (descriptors D x N, image_size (width, height))."""
        return self.match_arrays(
            features0.keypoints,
            features0.descriptors.T,
            features0.image_size,
            features1.keypoints,
            features1.descriptors.T,
            features1.image_size,
        )

    def match_arrays(
        self,
        keypoints0: np.ndarray,
        descriptors0: np.ndarray,
        image_size0: Any,
        keypoints1: np.ndarray,
        descriptors1: np.ndarray,
        image_size1: Any,
    ) -> LightGlueResult:
        """Like :meth:`match`, from arrays: keypoints (N, 2) pixels, descriptors
        (N, input_dim) one row per keypoint, sizes (width, height) or None."""
        import torch

        for i, desc in ((0, descriptors0), (1, descriptors1)):
            if desc.ndim != 2 or desc.shape[1] != self.input_dim:
                raise ValueError(
                    f"descriptors{i}: {desc.shape[1] if desc.ndim == 2 else desc.shape}-D, "
                    f"but these LightGlue weights take {self.input_dim}-D descriptors"
                )

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)

        with torch.inference_mode():
            out = self.net(
                tensor(keypoints0),
                tensor(descriptors0),
                None if image_size0 is None else tuple(float(v) for v in image_size0),
                tensor(keypoints1),
                tensor(descriptors1),
                None if image_size1 is None else tuple(float(v) for v in image_size1),
            )
        matches = Matches(
            out["matches0"].cpu().numpy().astype(np.int64),
            out["matches1"].cpu().numpy().astype(np.int64),
            out["matching_scores0"].float().cpu().numpy(),
            out["matching_scores1"].float().cpu().numpy(),
        )
        self.last_stop_layer = int(out["stop"])
        self.last_pruned = (int(out["num_pruned0"]), int(out["num_pruned1"]))
        return LightGlueResult(matches, self.last_stop_layer, self.last_pruned)
