"""The networks' upstream default configurations and their validation (no torch).

Each network module takes its default config from here, as upstream's
``default_config`` dicts; the numpy host code (features, matching) and the
backends validate their configurations with the same functions. The defaults a
user sees (for example max_keypoints 1024) come from :mod:`spsg_ros.parameters`.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..config import ConfigError, check, is_int, is_number, merge_config

CELL = 8

SUPERPOINT_DEFAULTS: dict[str, Any] = {
    "descriptor_dim": 256,
    "nms_radius": 4,
    "keypoint_threshold": 0.005,
    "max_keypoints": -1,
    "remove_borders": 4,
}


def superpoint_config(user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merged and validated SuperPoint configuration."""
    cfg = merge_config(SUPERPOINT_DEFAULTS, user, "superpoint")
    check(
        "superpoint",
        "descriptor_dim",
        cfg["descriptor_dim"],
        lambda v: is_int(v) and v > 0,
        "a positive integer",
    )
    check(
        "superpoint",
        "nms_radius",
        cfg["nms_radius"],
        lambda v: is_int(v) and v >= 0,
        "an integer >= 0",
    )
    check(
        "superpoint",
        "keypoint_threshold",
        cfg["keypoint_threshold"],
        lambda v: is_number(v) and 0 <= v < 1,
        "a number in [0, 1)",
    )
    check(
        "superpoint",
        "max_keypoints",
        cfg["max_keypoints"],
        lambda v: is_int(v) and v >= -1,
        "-1 (no limit) or an integer >= 0",
    )
    check(
        "superpoint",
        "remove_borders",
        cfg["remove_borders"],
        lambda v: is_int(v) and v >= 0,
        "an integer >= 0",
    )
    return cfg


SUPERGLUE_DEFAULTS: dict[str, Any] = {
    "descriptor_dim": 256,
    "keypoint_encoder": [32, 64, 128, 256],
    "GNN_layers": ["self", "cross"] * 9,
    "sinkhorn_iterations": 100,
    "match_threshold": 0.2,
}


def superglue_config(user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merged and validated SuperGlue configuration."""
    cfg = merge_config(SUPERGLUE_DEFAULTS, user, "superglue")
    check(
        "superglue",
        "descriptor_dim",
        cfg["descriptor_dim"],
        lambda v: is_int(v) and v > 0,
        "a positive integer",
    )
    check(
        "superglue",
        "sinkhorn_iterations",
        cfg["sinkhorn_iterations"],
        lambda v: is_int(v) and v >= 0,
        "an integer >= 0",
    )
    check(
        "superglue",
        "match_threshold",
        cfg["match_threshold"],
        lambda v: is_number(v) and 0 <= v <= 1,
        "a number in [0, 1]",
    )
    check(
        "superglue",
        "keypoint_encoder",
        cfg["keypoint_encoder"],
        lambda v: len(v) > 0 and all(is_int(c) and c > 0 for c in v),
        "a list of positive integers",
    )
    layers = list(cfg["GNN_layers"])
    if not layers or any(name not in ("self", "cross") for name in layers):
        raise ConfigError(f"superglue.GNN_layers = {layers!r}: expected a list of 'self'/'cross'")
    cfg["keypoint_encoder"] = list(cfg["keypoint_encoder"])
    cfg["GNN_layers"] = layers
    return cfg
