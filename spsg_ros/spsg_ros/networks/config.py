"""The networks' upstream default configurations and their validation (no torch).

Each network module takes its default config from here, as upstream's
``default_config`` dicts; the numpy host code (features, matching) and the
backends validate their configurations with the same functions. The defaults a
user sees (for example max_keypoints 1024) come from :mod:`spsg_ros.parameters`.
"""

from __future__ import annotations

import math
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


LIGHTGLUE_DEFAULTS: dict[str, Any] = {
    "input_dim": 256,  # descriptor dimension of the features (SuperPoint 256, DISK 128)
    "descriptor_dim": 256,  # model width
    "add_scale_ori": False,  # encode scale and orientation too (SIFT-like features)
    "n_layers": 9,
    "num_heads": 4,
    "flash": False,  # CUDA only: fused attention in the cross blocks (the self blocks
    #                  always use torch's scaled_dot_product_attention, as upstream)
    "mp": False,  # CUDA only: mixed precision (float16 autocast) in the layers
    "depth_confidence": 0.95,  # early exit when this share of points is confident; <= 0: off
    "width_confidence": 0.99,  # prune points with matchability < 1 - this; <= 0: off
    "filter_threshold": 0.1,  # match score threshold
    "pruning_rule": "cpu",  # minimum point count for pruning: cpu, cuda, flash or auto
}

# upstream's minimum number of points an image must have to be pruned, by device
PRUNING_MIN_POINTS = {"cpu": -1, "cuda": 1024, "flash": 1536}
PRUNING_RULES = (*PRUNING_MIN_POINTS, "auto")


def lightglue_config(user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merged and validated LightGlue configuration."""
    cfg = merge_config(LIGHTGLUE_DEFAULTS, user, "lightglue")
    for name in ("input_dim", "descriptor_dim", "n_layers", "num_heads"):
        check("lightglue", name, cfg[name], lambda v: is_int(v) and v > 0, "a positive integer")
    for name in ("add_scale_ori", "flash", "mp"):
        check("lightglue", name, cfg[name], lambda v: isinstance(v, bool), "true or false")
    check(
        "lightglue",
        "descriptor_dim",
        cfg["descriptor_dim"],
        lambda v: v % cfg["num_heads"] == 0 and (v // cfg["num_heads"]) % 2 == 0,
        f"a multiple of 2 * num_heads ({2 * cfg['num_heads']})",
    )
    for name in ("depth_confidence", "width_confidence"):
        check(
            "lightglue",
            name,
            cfg[name],
            lambda v: is_number(v) and math.isfinite(v) and v <= 1,
            "a number <= 1 (-1 or 0: off)",
        )
    check(
        "lightglue",
        "filter_threshold",
        cfg["filter_threshold"],
        lambda v: is_number(v) and 0 <= v <= 1,
        "a number in [0, 1]",
    )
    check(
        "lightglue",
        "pruning_rule",
        cfg["pruning_rule"],
        lambda v: v in PRUNING_RULES,
        f"one of {', '.join(PRUNING_RULES)}",
    )
    return cfg
