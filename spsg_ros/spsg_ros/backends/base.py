"""The one interface every inference backend implements.

A backend runs the networks only: SuperPoint's dense part (logits and raw
descriptor map) and SuperGlue up to its log-assignment matrix. Everything
before and after (scaling, NMS, keypoint selection, descriptor sampling, match
extraction) runs on the host in numpy, identically for all backends.

LightGlue (``Backend.lightglue``) returns its matches together with its adaptive
depth and width (layers run, points pruned); the default implementation runs the
PyTorch network (:mod:`spsg_ros.networks.lightglue`), which a backend may replace
with its own runtime.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..features.types import Features
from ..matching.lightglue_matcher import (
    LIGHTGLUE_NETWORK_KEYS,
    LightGlueMatcher,
    LightGlueResult,
    lightglue_match_config,
)
from ..matching.types import Matches

#: LightGlue networks a backend keeps loaded (one per weights and configuration; a node
#: whose parameters change at runtime builds a new one and drops the oldest)
LIGHTGLUE_CACHE_SIZE = 4


class BackendUnavailable(RuntimeError):
    """The requested backend or execution provider cannot run here; the message
    names what is installed and how to get the missing piece."""


class BackendOptionError(ValueError):
    """Options the backend does not take: the message names each one (with a
    close match when there is one) and lists the backend's valid options."""

    def __init__(
        self, backend: str, unknown: Iterable[str], valid: Iterable[str], detail: str = ""
    ):
        self.backend = backend
        self.unknown = list(unknown)
        self.valid = sorted(valid)
        named = ", ".join(_with_hint(name, self.valid) for name in self.unknown)
        plural = "s" if len(self.unknown) > 1 else ""
        super().__init__(
            f"backend '{backend}' has no option{plural} {named}{detail}; "
            f"valid options: {', '.join(self.valid)}"
        )


#: where cgroup v2 and v1 keep the CPU quota of the process's group
CGROUP_V2_CPU_MAX = "/sys/fs/cgroup/cpu.max"
CGROUP_V1_CPU_QUOTA = (
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
)


def cgroup_cpu_limit(
    cpu_max: str = CGROUP_V2_CPU_MAX, v1_files: tuple[str, str] = CGROUP_V1_CPU_QUOTA
) -> int | None:
    """Whole CPUs the cgroup CPU quota allows (rounded up), None without a quota."""
    try:
        quota, period = open(cpu_max, encoding="ascii").read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = (int(open(f, encoding="ascii").read()) for f in v1_files)
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity call on this platform
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(cores, limit) if limit else cores)


def resolve_num_threads(num_threads: int | None) -> int:
    """The thread count of a ``num_threads`` option: 0 or None = :func:`available_cores`,
    an explicit count as given."""
    if num_threads is None:
        num_threads = 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(f"num_threads = {num_threads!r}: expected an integer >= 0 (0: auto)")
    return available_cores() if num_threads == 0 else num_threads


def _with_hint(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f"'{name}' (did you mean '{close[0]}'?)" if close else f"'{name}'"


class Backend(ABC):
    """Inference backend. Subclasses set ``name`` and implement the two networks."""

    name = "abstract"
    #: True when ``superpoint_dense`` accepts a batch of several images at once
    supports_batch = True

    @abstractmethod
    def superpoint_dense(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, 1, H, W) float32 in [0, 1] -> detector logits (B, 65, H/8, W/8)
        and raw descriptor maps (B, D, H/8, W/8), float32 numpy."""

    def superpoint(self, images: np.ndarray, config: Mapping[str, Any]) -> list[Features]:
        """Features of each image of the batch: dense network, then the numpy host
        post-processing (backends may override with an on-device equivalent)."""
        from ..features.superpoint_post import postprocess

        height, width = images.shape[-2:]
        semi, desc = self.superpoint_dense(images)
        return [
            postprocess(semi[i], desc[i], config, (width, height)) for i in range(images.shape[0])
        ]

    @abstractmethod
    def superglue_log_assignment(self, features0: Features, features1: Features) -> np.ndarray:
        """Log assignment (N0+1, N1+1) with dustbins for one pair, both non-empty."""

    def superglue(
        self, features0: Features, features1: Features, match_threshold: float
    ) -> Matches:
        """Upstream matches for one pair; empty inputs give no matches."""
        from ..matching.superglue_post import matches_from_log_assignment

        if len(features0) == 0 or len(features1) == 0:
            return Matches.empty(len(features0), len(features1))
        return matches_from_log_assignment(
            self.superglue_log_assignment(features0, features1), match_threshold
        )

    def lightglue(
        self, features0: Features, features1: Features, config: Mapping[str, Any]
    ) -> LightGlueResult:
        """LightGlue matches of one pair, with the layers run and the points pruned.

        ``config``: ``weights`` (a path or a short name: ``lightglue`` =
        ``superpoint_lightglue``, ``disk_lightglue``), ``weights_dir`` (where short
        names are looked up; None: the default folder), ``depth_confidence``,
        ``width_confidence``, ``filter_threshold``, ``pruning_rule`` (default
        ``cpu``); missing keys take :data:`~spsg_ros.matching.lightglue_matcher.
        LIGHTGLUE_MATCH_DEFAULTS`. Empty inputs give no matches (``stop_layer`` 0).

        The default runs the PyTorch network (:mod:`spsg_ros.networks.lightglue`),
        loaded once per (weights, weights_dir, configuration) and kept on the backend,
        on the backend's torch device when it has one (``self.device``), else on the
        CPU: exactly what :class:`~spsg_ros.matching.lightglue_matcher.LightGlueMatcher`
        gives.
        """
        return self._lightglue_matcher(config).match(features0, features1)

    def _lightglue_matcher(self, config: Mapping[str, Any]) -> LightGlueMatcher:
        cfg = lightglue_match_config(config)
        network = {key: cfg[key] for key in LIGHTGLUE_NETWORK_KEYS}
        weights, folder = cfg["weights"], cfg["weights_dir"]
        key = (
            os.fspath(weights),
            None if folder is None else os.fspath(folder),
            tuple(sorted(network.items())),
        )
        cache: OrderedDict = self.__dict__.setdefault("_lightglue_cache", OrderedDict())
        matcher = cache.get(key)
        if matcher is None:
            matcher = LightGlueMatcher(network, weights, self._lightglue_device(), folder)
            cache[key] = matcher
            while len(cache) > LIGHTGLUE_CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return matcher

    def _lightglue_device(self) -> str:
        """The backend's torch device (``self.device``) when it has one, else ``cpu``."""
        import torch

        device = getattr(self, "device", None)
        return str(device) if isinstance(device, torch.device) else "cpu"

    def describe(self) -> dict[str, Any]:
        """What runs: backend name, device, provider; logged and put in diagnostics."""
        return {"backend": self.name}

    def close(self) -> None:
        """Release devices and sessions (here: the LightGlue networks)."""
        self.__dict__.pop("_lightglue_cache", None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


BackendFactory = Callable[..., Backend]
_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    _REGISTRY[name] = factory


def available_backend_names() -> list[str]:
    return sorted(_REGISTRY)


def _factory(name: str) -> BackendFactory:
    from . import load_builtin_backends

    load_builtin_backends()
    if name not in _REGISTRY:
        raise BackendUnavailable(
            f"unknown backend '{name}' (available: {', '.join(available_backend_names())})"
        )
    return _REGISTRY[name]


def backend_option_names(name: str) -> frozenset[str] | None:
    """The keyword options backend ``name`` takes, from its factory's signature;
    None when it takes any (a factory with ``**options``, such as ``auto``)."""
    try:
        params = list(inspect.signature(_factory(name)).parameters.values())
    except (TypeError, ValueError):  # no introspectable signature: not checked
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def check_backend_options(name: str, options: Iterable[str]) -> None:
    """Raise :class:`BackendOptionError` for option names backend ``name`` does not take."""
    valid = backend_option_names(name)
    unknown = [key for key in options if valid is not None and key not in valid]
    if unknown:
        raise BackendOptionError(name, unknown, valid)


def create_backend(name: str = "torch", **options: Any) -> Backend:
    """Build the backend ``name`` with its options (weights, configs, device ...);
    an option it does not take is a :class:`BackendOptionError`."""
    factory = _factory(name)
    check_backend_options(name, options)
    return factory(**options)
