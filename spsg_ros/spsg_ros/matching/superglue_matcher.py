"""SuperGlue matching of two feature sets through a backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..features.types import Features
from .superglue_post import superglue_config
from .types import Matches

if TYPE_CHECKING:  # the backends layer sits above; this is for annotations only
    from ..backends.base import Backend


class SuperGlueMatcher:
    def __init__(self, backend: Backend, config: Mapping[str, Any] | None = None):
        self.backend = backend
        self.config = superglue_config(config)

    def __call__(self, features0: Features, features1: Features) -> Matches:
        return self.backend.superglue(features0, features1, self.config["match_threshold"])
