"""LightGlue matching of two feature sets (PyTorch, any feature type).

``LightGlueMatcher(features0, features1)`` returns :class:`Matches` like the
SuperGlue and nearest-neighbour matchers. LightGlue's adaptive depth and width
give two more facts per pair, which ``Matches`` does not hold: they are kept on
the matcher after each call (``last_stop_layer``, ``last_pruned``), and
:meth:`LightGlueMatcher.match` returns them together with the matches.

:class:`BackendLightGlueMatcher` is the frontend's matcher: LightGlue through a
backend's ``lightglue`` (see :meth:`spsg_ros.backends.base.Backend.lightglue`),
whose ``config`` keys and defaults are :data:`LIGHTGLUE_MATCH_DEFAULTS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..config import check, merge_config
from ..networks.config import LIGHTGLUE_DEFAULTS, lightglue_config
from ..features.types import Features
from .types import Matches

if TYPE_CHECKING:  # the backends layer sits above; this is for annotations only
    from ..backends.base import Backend

#: the ``config`` of ``Backend.lightglue``: weights (a path or a short name, looked up in
#: weights_dir; None: the default folder) and the network's matching settings, at the
#: defaults of :data:`spsg_ros.networks.config.LIGHTGLUE_DEFAULTS`
LIGHTGLUE_NETWORK_KEYS = (
    "depth_confidence",
    "width_confidence",
    "filter_threshold",
    "pruning_rule",
)
LIGHTGLUE_MATCH_DEFAULTS: dict[str, Any] = {
    "weights": "lightglue",
    "weights_dir": None,
    **{key: LIGHTGLUE_DEFAULTS[key] for key in LIGHTGLUE_NETWORK_KEYS},
}
#: layers of every upstream LightGlue release
DEFAULT_N_LAYERS = 9


def lightglue_match_config(user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`LIGHTGLUE_MATCH_DEFAULTS` updated by ``user``, checked (ConfigError naming
    the key: ``lightglue.depth_confidence = 2: expected ...``)."""
    cfg = merge_config(LIGHTGLUE_MATCH_DEFAULTS, user, "lightglue")
    check(
        "lightglue",
        "weights",
        cfg["weights"],
        lambda v: isinstance(v, os.PathLike) or (isinstance(v, str) and v != ""),
        "a weights file path or a short name (lightglue, superpoint_lightglue, disk_lightglue)",
    )
    check(
        "lightglue",
        "weights_dir",
        cfg["weights_dir"],
        lambda v: v is None or isinstance(v, (str, os.PathLike)),
        "a folder or None",
    )
    # the network's own settings, checked by the network's rules
    lightglue_config({key: cfg[key] for key in LIGHTGLUE_NETWORK_KEYS})
    return cfg


@dataclass
class LightGlueResult:
    """One LightGlue run: the matches, the number of layers run (1..n_layers; 0 when
    an image had no keypoint), how many points of each image were pruned and the
    number of layers of the network (9 for every upstream release)."""

    matches: Matches
    stop_layer: int
    num_pruned: tuple[int, int]
    n_layers: int = DEFAULT_N_LAYERS


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
        return LightGlueResult(
            matches, self.last_stop_layer, self.last_pruned, int(self.config["n_layers"])
        )


class BackendLightGlueMatcher:
    """LightGlue through ``backend.lightglue`` with ``config`` (keys of
    :data:`LIGHTGLUE_MATCH_DEFAULTS`), as :class:`~.superglue_matcher.SuperGlueMatcher`
    drives SuperGlue: ``matcher(f0, f1)`` gives the matches, :meth:`match` the whole
    :class:`LightGlueResult`."""

    def __init__(self, backend: Backend, config: Mapping[str, Any] | None = None):
        self.backend = backend
        self.config = lightglue_match_config(config)

    def match(self, features0: Features, features1: Features) -> LightGlueResult:
        return self.backend.lightglue(features0, features1, self.config)

    def __call__(self, features0: Features, features1: Features) -> Matches:
        return self.match(features0, features1).matches
