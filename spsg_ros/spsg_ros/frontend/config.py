"""Frontend configuration: defaults, YAML/dict loading and validation.

The values users set (max_keypoints, resize, min_matches ...) take their
defaults and ranges from the one parameter schema, :mod:`spsg_ros.parameters`
(entries with a ``config_path``); :data:`DEFAULT_CONFIG` holds only the internal
settings besides them. A ROS 2 parameter file of the node is a valid
configuration too. Every mistake fails at construction with a
:class:`~spsg_ros.config.ConfigError` naming the parameter
(``frontend.pose.min_matches = -1: expected ...``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from .. import parameters as schema
from ..config import ConfigError, check, is_int, is_number, merge_config
from ..features.superpoint_post import superpoint_config
from ..matching.lightglue_matcher import lightglue_match_config
from ..matching.nearest_neighbor import nn_config
from ..matching.superglue_post import superglue_config

# Internal settings; the user-facing ones (backend, weights, max_keypoints, matcher,
# resize, min_matches ...) are merged in from the parameter schema below.
_INTERNAL_DEFAULTS: dict[str, Any] = {
    "backend": {"options": {}},  # further backend-specific keyword arguments
    "superpoint": {},  # schema: max_keypoints, nms_radius, ...
    "superglue": {},  # schema: match_threshold, sinkhorn_iterations
    # schema: weights, depth_confidence, width_confidence, filter_threshold; the weights
    # are looked up in backend.weights_dir. pruning_rule cpu: prune on any device as
    # upstream does on the CPU (cuda / flash: only above 1024 / 1536 points)
    "lightglue": {"pruning_rule": "cpu"},
    "nn": {"mutual": True},  # mutual nearest neighbour + Lowe ratio (schema)
    "preprocess": {
        "interpolation": "area",  # area | linear | cubic | nearest
        "clahe_clip_limit": 2.0,
        "clahe_tile_grid": 8,
        "mono16": "scale",  # scale (v / 257) | minmax (per-image stretch) | shift (v >> 8)
    },
    "pose": {
        # usac_accurate | magsac | ransac (upstream eval) | lmeds
        "essential_method": "usac_accurate",
        "ransac_confidence": 0.99999,
        "ransac_max_iters": 1000,
        "pnp_confidence": 0.999,
        "pnp_max_iters": 1000,
        # left-right matches worse than this are not triangulated
        "stereo_max_reprojection_px": 2.0,
        "stereo_min_disparity_px": 1.0,  # nearer than f * baseline / this only
    },
    # fallback intrinsics for frames without CameraInfo: None or
    # {fx, fy, cx, cy, distortion: [...], baseline: metres or None}
    "camera": None,
    "f_ransac_confidence": 0.99,
}


def _with_schema_defaults(internal: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(internal))
    for key, value in schema.frontend_defaults().items():
        if isinstance(value, dict):
            merged[key] = dict(merged.get(key) or {}, **value)
        else:
            merged[key] = value
    return merged


DEFAULT_CONFIG: dict[str, Any] = _with_schema_defaults(_INTERNAL_DEFAULTS)

CAMERA_DEFAULTS: dict[str, Any] = {
    "fx": None,
    "fy": None,
    "cx": None,
    "cy": None,
    "distortion": [],
    "baseline": None,
}

ConfigSource = Union[None, str, os.PathLike, Mapping[str, Any]]


def load_config(source: ConfigSource = None) -> dict[str, Any]:
    """Validated frontend configuration from a YAML file, a dict, or None (defaults).

    A YAML file may hold the configuration at top level or under a ``frontend`` key.
    """
    if source is None:
        user: Mapping[str, Any] = {}
    elif isinstance(source, Mapping):
        user = source
    else:
        user = _read_yaml(Path(source))
    return validate(user)


def _read_yaml(path: Path) -> Mapping[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"frontend config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping of frontend parameters, got {type(data).__name__}"
        )
    if set(data) == {"frontend"} and isinstance(data["frontend"], Mapping):
        data = data["frontend"]
    elif schema.is_params_file_data(data):  # a node parameter file (config/<mode>.yaml)
        try:
            data = schema.frontend_config_from_params(
                schema.params_of_node(data, str(path)), str(path)
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return data


def _section(user: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = user.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"frontend.{key} = {value!r}: expected a mapping")
    return value


def validate(user: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``user`` into :data:`DEFAULT_CONFIG` and check every value."""
    if not isinstance(user, Mapping):
        raise ConfigError(f"frontend config: expected a mapping, got {type(user).__name__}")
    cfg = merge_config(DEFAULT_CONFIG, user, "frontend")
    cfg = copy.deepcopy(cfg)

    backend = merge_config(
        DEFAULT_CONFIG["backend"], _section(user, "backend"), "frontend.backend"
    )
    check(
        "frontend.backend",
        "name",
        backend["name"],
        lambda v: isinstance(v, str) and v,
        "a backend name",
    )
    check(
        "frontend.backend",
        "device",
        backend["device"],
        lambda v: isinstance(v, str) and v,
        "a device string such as cpu or cuda:0",
    )
    check(
        "frontend.backend",
        "options",
        backend["options"],
        lambda v: isinstance(v, Mapping),
        "a mapping of backend keyword arguments",
    )
    options = dict(backend["options"])
    if backend["num_threads"]:
        # the thread count goes to the backend as its num_threads option (every built-in
        # backend takes it); 0 (auto) is each backend's own default, so it is not passed
        # and backends registered without the option keep working
        options["num_threads"] = backend["num_threads"]
    cfg["backend"] = dict(backend, options=options)

    sp_user = dict(DEFAULT_CONFIG["superpoint"], **_section(user, "superpoint"))
    cfg["superpoint"] = _named(superpoint_config, sp_user)
    # the networks take 0 (no keypoints); for the frontend it is a mistake
    check(
        "frontend.superpoint",
        "max_keypoints",
        cfg["superpoint"]["max_keypoints"],
        lambda v: v == -1 or v >= 1,
        "-1 (all keypoints) or a positive integer",
    )
    cfg["superglue"] = _named(superglue_config, _section(user, "superglue"))
    cfg["nn"] = _named(nn_config, _section(user, "nn"))
    cfg["lightglue"] = _lightglue(_section(user, "lightglue"))

    check(
        "frontend",
        "matcher",
        cfg["matcher"],
        lambda v: v in schema.MATCHERS,
        ", ".join(f"'{m}'" for m in schema.MATCHERS[:-1]) + f" or '{schema.MATCHERS[-1]}'",
    )
    check(
        "frontend",
        "pair_with",
        cfg["pair_with"],
        lambda v: v in ("previous", "keyframe"),
        "'previous' or 'keyframe'",
    )
    check(
        "frontend",
        "keyframe_min_tracked",
        cfg["keyframe_min_tracked"],
        lambda v: is_number(v) and 0 <= v <= 1,
        "a number in [0, 1]",
    )
    check(
        "frontend",
        "f_rej_th",
        cfg["f_rej_th"],
        lambda v: is_number(v) and v > 0,
        "a positive number (px)",
    )
    check(
        "frontend",
        "f_ransac_confidence",
        cfg["f_ransac_confidence"],
        lambda v: is_number(v) and 0 < v < 1,
        "a number in (0, 1)",
    )

    cfg["preprocess"] = _preprocess(_section(user, "preprocess"))
    cfg["pose"] = _pose(_section(user, "pose"))
    cfg["camera"] = None if user.get("camera") is None else _camera(_section(user, "camera"))
    _check_schema_ranges(cfg)
    return cfg


def _check_schema_ranges(cfg: Mapping[str, Any]) -> None:
    """The schema's ranges and choices, so that the frontend and the node agree."""
    for spec in schema.PARAMETERS:
        if spec.config_path is None:
            continue
        value = cfg
        for key in spec.config_path:
            value = value[key]
        if value is None and spec.empty_is_none:
            continue
        if spec.kind == "double" and is_number(value):
            value = float(value)
        elif spec.kind == "string" and isinstance(value, os.PathLike):
            value = os.fspath(value)
        reason = schema.validate_value(spec, value)
        if reason:
            where = "frontend." + ".".join(spec.config_path)
            raise ConfigError(f"{where}: {reason}")


def check_parameters(values: Mapping[str, Any]) -> Optional[str]:
    """None when node parameter ``values`` make a valid configuration, else the reason."""
    reason = schema.validate_values(values)
    if reason:
        return reason
    try:
        validate(schema.frontend_config(values))
    except ConfigError as error:
        return str(error)
    return None


def _named(builder, user: Mapping[str, Any]) -> dict[str, Any]:
    """Run a sub-config builder, prefixing its errors with ``frontend.``."""
    try:
        return builder(user)
    except ConfigError as exc:
        raise ConfigError(f"frontend.{exc}") from None


def _lightglue(user: Mapping[str, Any]) -> dict[str, Any]:
    """The lightglue section: weights (looked up in backend.weights_dir) and the
    network's matching settings (Backend.lightglue's config without weights_dir)."""
    cfg = merge_config(DEFAULT_CONFIG["lightglue"], user, "frontend.lightglue")
    return {key: value for key, value in _named(lightglue_match_config, cfg).items() if key in cfg}


def _preprocess(user: Mapping[str, Any]) -> dict[str, Any]:
    section = "frontend.preprocess"
    cfg = merge_config(DEFAULT_CONFIG["preprocess"], user, section)
    resize = cfg["resize"]
    if is_int(resize):
        resize = [resize]
    check(
        section,
        "resize",
        resize,
        lambda v: (
            isinstance(v, (list, tuple))
            and len(v) in (1, 2)
            and all(is_int(x) for x in v)
            and (list(v) in ([-1], [-1, -1]) or all(x > 0 for x in v))
        ),
        "[-1] (keep), [N] (longest side, N > 0) or [W, H] (both > 0)",
    )
    cfg["resize"] = list(resize)
    check(
        section,
        "max_side",
        cfg["max_side"],
        lambda v: is_int(v) and (v == 0 or v >= 16),
        "0 (never downscale) or a side of at least 16 px",
    )
    check(
        section,
        "interpolation",
        cfg["interpolation"],
        lambda v: v in ("area", "linear", "cubic", "nearest"),
        "area, linear, cubic or nearest",
    )
    check(section, "clahe", cfg["clahe"], lambda v: isinstance(v, bool), "true or false")
    check(
        section,
        "clahe_clip_limit",
        cfg["clahe_clip_limit"],
        lambda v: is_number(v) and v > 0,
        "a positive number",
    )
    check(
        section,
        "clahe_tile_grid",
        cfg["clahe_tile_grid"],
        lambda v: is_int(v) and v > 0,
        "a positive integer",
    )
    check(
        section,
        "undistort",
        cfg["undistort"],
        lambda v: v in ("none", "points", "image"),
        "none, points or image",
    )
    check(
        section,
        "mono16",
        cfg["mono16"],
        lambda v: v in ("scale", "minmax", "shift"),
        "scale, minmax or shift",
    )
    check(
        section,
        "bit_depth",
        cfg["bit_depth"],
        lambda v: is_int(v) and (v == 0 or 8 <= v <= 16),
        "0 (auto: 12-bit when no value exceeds 4095) or 8..16",
    )
    return cfg


def _pose(user: Mapping[str, Any]) -> dict[str, Any]:
    section = "frontend.pose"
    cfg = merge_config(DEFAULT_CONFIG["pose"], user, section)
    check(
        section,
        "min_matches",
        cfg["min_matches"],
        lambda v: is_int(v) and v >= 6,
        "an integer >= 6 (PnP RANSAC needs 6 points, the essential matrix 5)",
    )
    check(
        section,
        "essential_method",
        cfg["essential_method"],
        lambda v: v in ("usac_accurate", "magsac", "ransac", "lmeds"),
        "usac_accurate, magsac, ransac or lmeds",
    )
    for key in (
        "ransac_threshold_px",
        "pnp_threshold_px",
        "stereo_max_reprojection_px",
        "stereo_min_disparity_px",
    ):
        check(section, key, cfg[key], lambda v: is_number(v) and v > 0, "a positive number (px)")
    check(
        section,
        "min_parallax_px",
        cfg["min_parallax_px"],
        lambda v: is_number(v) and v >= 0,
        "a number >= 0 (px)",
    )
    for key in ("ransac_confidence", "pnp_confidence"):
        check(section, key, cfg[key], lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)")
    for key in ("ransac_max_iters", "pnp_max_iters"):
        check(section, key, cfg[key], lambda v: is_int(v) and v > 0, "a positive integer")
    return cfg


def _camera(user: Mapping[str, Any]) -> dict[str, Any]:
    section = "frontend.camera"
    cfg = merge_config(CAMERA_DEFAULTS, user, section)
    for key in ("fx", "fy"):
        check(
            section,
            key,
            cfg[key],
            lambda v: is_number(v) and v > 0,
            "a positive focal length (px)",
        )
    for key in ("cx", "cy"):
        check(section, key, cfg[key], is_number, "a principal point coordinate (px)")
    check(
        section,
        "distortion",
        cfg["distortion"],
        lambda v: (
            isinstance(v, (list, tuple))
            and len(v) in (0, 4, 5, 8, 12, 14)
            and all(is_number(x) for x in v)
        ),
        "a list of 0, 4, 5, 8, 12 or 14 numbers (OpenCV order)",
    )
    check(
        section,
        "baseline",
        cfg["baseline"],
        lambda v: v is None or (is_number(v) and v > 0),
        "null or a positive number (metres)",
    )
    cfg["distortion"] = [float(x) for x in cfg["distortion"]]
    return cfg


def camera_matrix(camera: Optional[Mapping[str, Any]]):
    """3x3 K of a validated ``camera`` section (None passes through)."""
    import numpy as np

    if camera is None:
        return None
    return np.array(
        [[camera["fx"], 0.0, camera["cx"]], [0.0, camera["fy"], camera["cy"]], [0.0, 0.0, 1.0]],
        np.float64,
    )
