"""The host side of an exported SuperGlue (the ONNX contract): pad both keypoint
sets to the model's slots, run it, and cut the valid rows/columns back out.

Shared by the onnxruntime, openvino and ascend backends, which differ only in how
many slots they pad to and how they run the model.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from .static_superglue import (
    expand_log_assignment,
    scatter_matches,
    superglue_feeds,
    unpad_log_assignment,
)
from ..features.types import Features
from ..matching.superglue_post import matches_from_log_assignment
from ..matching.types import Matches
from .base import Backend


class PaddedSuperGlueBackend(Backend):
    """A backend whose SuperGlue is an exported model; subclasses provide
    ``sg_config`` (a validated SuperGlue config) and the two methods below."""

    @abstractmethod
    def superglue_slots(self, n0: int, n1: int) -> int | None:
        """Slots K to pad to for n0 / n1 keypoints (None: exact sizes). Raises
        BackendUnavailable when the backend has no SuperGlue model."""

    @abstractmethod
    def run_padded_superglue(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run the model on contract feeds; return ``log_assignment`` (1, K0+1, K1+1)."""

    def _run_superglue(self, features0: Features, features1: Features):
        slots = self.superglue_slots(len(features0), len(features1))
        feeds, index0, index1 = superglue_feeds(
            features0, features1, slots, self.sg_config["descriptor_dim"]
        )
        n0 = len(features0) if index0 is None else len(index0)
        n1 = len(features1) if index1 is None else len(index1)
        return unpad_log_assignment(self.run_padded_superglue(feeds), n0, n1), index0, index1

    def superglue_log_assignment(self, features0: Features, features1: Features) -> np.ndarray:
        sub, index0, index1 = self._run_superglue(features0, features1)
        return expand_log_assignment(sub, index0, index1, len(features0), len(features1))

    def superglue(
        self, features0: Features, features1: Features, match_threshold: float
    ) -> Matches:
        if len(features0) == 0 or len(features1) == 0:
            return Matches.empty(len(features0), len(features1))
        sub, index0, index1 = self._run_superglue(features0, features1)
        return scatter_matches(
            matches_from_log_assignment(sub, match_threshold),
            index0,
            index1,
            len(features0),
            len(features1),
        )
