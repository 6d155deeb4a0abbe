"""``spsg-ros match-features FEATURES.npz``: match two stored feature sets.

The features may come from any extractor (SuperPoint, DISK, ...): LightGlue takes
the descriptor dimension its weights were trained for, SuperGlue needs SuperPoint
features with their scores, the nearest-neighbour matcher takes anything.

Input keys (match-pair's layout): ``keypoints0/1`` (N, 2) pixels as (x, y),
``descriptors0/1`` (D, N), one column per keypoint, ``image_size0/1`` (width,
height) of the image the keypoints are in, ``scores0/1`` (N,) (SuperGlue only).
Output: the inputs, ``matches0/1`` (index in the other image or -1),
``matching_scores0/1`` and, for LightGlue, ``stop_layer`` (layers run) and
``num_pruned0/1`` (points pruned before the assignment).
"""

from __future__ import annotations

import argparse
import logging
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .common import (
    write_npz,
    add_lightglue_args,
    add_schema_option,
    check_output_file,
    lightglue_options,
)

log = logging.getLogger(__name__)

MATCHERS = ("lightglue", "superglue", "nn")
# options each matcher takes in match_features(); the rest of its config keeps its defaults
LIGHTGLUE_OPTIONS = (
    "weights",
    "weights_dir",
    "device",
    "depth_confidence",
    "width_confidence",
    "filter_threshold",
    "pruning_rule",
)
SUPERGLUE_OPTIONS = ("weights", "weights_dir", "device", "match_threshold", "sinkhorn_iterations")
NN_OPTIONS = ("ratio", "mutual")
OPTIONS = {"lightglue": LIGHTGLUE_OPTIONS, "superglue": SUPERGLUE_OPTIONS, "nn": NN_OPTIONS}


class FeatureFileError(ValueError):
    """A features file lacks a key or holds an array of the wrong shape."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "match-features",
        help="match two stored feature sets (LightGlue, SuperGlue or nearest neighbour)",
        description="Match the keypoints of two images stored in an .npz (keys keypoints0/1 "
        "N x 2, descriptors0/1 D x N as match-pair writes them, image_size0/1 as (width, "
        "height), scores0/1 for SuperGlue). Features from any extractor: LightGlue weights "
        "fix the descriptor dimension (superpoint_lightglue 256, disk_lightglue 128).",
    )
    p.add_argument("features", type=Path, metavar="FEATURES.npz")
    p.add_argument(
        "--matcher", choices=MATCHERS, default="lightglue", help="(default: %(default)s)"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the features and the matches to FILE, exactly that name (an .npz "
        "archive; no .npz is added)",
    )
    add_lightglue_args(p, title="lightglue")  # the schema's options and --pruning-rule
    g = p.add_argument_group("superglue")
    add_schema_option(g, "superglue_weights")
    add_schema_option(g, "match_threshold")
    add_schema_option(g, "sinkhorn_iterations")
    g = p.add_argument_group("nn")
    add_schema_option(g, "nn_ratio")
    g.add_argument(
        "--nn-mutual",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="nn matcher: keep mutual nearest neighbours only (default: %(default)s)",
    )
    g = p.add_argument_group("networks")
    add_schema_option(g, "weights_dir")
    add_schema_option(g, "device", note="LightGlue and SuperGlue run in PyTorch")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``args.matcher`` for :func:`match_features`."""
    if args.matcher == "lightglue":
        options = dict(lightglue_options(args), device=args.device)
        options["weights_dir"] = args.weights_dir or None
        return options
    if args.matcher == "superglue":
        return {
            "weights": args.superglue_weights,
            "weights_dir": args.weights_dir or None,
            "device": args.device,
            "match_threshold": args.match_threshold,
            "sinkhorn_iterations": args.sinkhorn_iterations,
        }
    return {"ratio": args.nn_ratio, "mutual": args.nn_mutual}


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_output_file(args.out, "--out")
    data = load_features(args.features)
    try:
        result = match_features(data, args.matcher, options_from_args(args))
    except FeatureFileError as exc:
        raise FeatureFileError(f"{args.features}: {exc}") from None
    n0, n1 = len(result["matches0"]), len(result["matches1"])
    line = f"keypoints: {n0} / {n1}, matches: {int((result['matches0'] > -1).sum())}"
    if "stop_layer" in result:
        line += (
            f", layers: {int(result['stop_layer'])}, pruned: {int(result['num_pruned0'])} / "
            f"{int(result['num_pruned1'])}"
        )
    print(line)
    if args.out:
        arrays = {k: data[k] for k in INPUT_KEYS if k in data}
        arrays.update(result)
        write_npz(args.out, arrays)
    return 0


INPUT_KEYS = (
    "keypoints0",
    "keypoints1",
    "descriptors0",
    "descriptors1",
    "scores0",
    "scores1",
    "image_size0",
    "image_size1",
)


def load_features(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz (no pickled objects); one-line errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FeatureFileError(f"{path}: is a folder, expected an .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise FeatureFileError(f"{path}: a single array, expected an .npz archive")
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, FeatureFileError):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FeatureFileError(f"{path}: not a readable .npz archive ({reason})") from None


def match_features(
    data: Mapping[str, np.ndarray],
    matcher: str = "lightglue",
    options: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Match the two feature sets in ``data`` (keys as in the module docstring).

    ``matcher``: ``lightglue``, ``superglue`` or ``nn``. ``options`` (all optional):
    lightglue ``weights`` (path or short name, default ``lightglue``), ``weights_dir``,
    ``device``, ``depth_confidence``, ``width_confidence``, ``filter_threshold``,
    ``pruning_rule``; superglue ``weights`` (default ``indoor``), ``weights_dir``,
    ``device``, ``match_threshold``, ``sinkhorn_iterations``; nn ``ratio``, ``mutual``.

    Returns ``matches0/1`` (int64), ``matching_scores0/1`` (float32), and for
    lightglue ``stop_layer``, ``num_pruned0``, ``num_pruned1`` (int64 scalars).
    """
    if matcher not in MATCHERS:
        raise ValueError(f"unknown matcher '{matcher}' (choose from {', '.join(MATCHERS)})")
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS[matcher]))
    if unknown:
        raise ValueError(
            f"matcher {matcher}: unknown option(s) {', '.join(unknown)} "
            f"(known: {', '.join(OPTIONS[matcher])})"
        )
    f0, f1 = (
        _features(data, i, need_scores=matcher == "superglue", need_size=matcher == "superglue")
        for i in (0, 1)
    )
    if matcher == "nn":
        from ..matching.nearest_neighbor import NearestNeighborMatcher

        return _outputs(NearestNeighborMatcher(options)(f0, f1))
    if matcher == "superglue":
        return _outputs(_superglue(f0, f1, options))
    from ..matching.lightglue_matcher import LightGlueMatcher

    weights = options.pop("weights", "lightglue")
    weights_dir = options.pop("weights_dir", None)
    device = options.pop("device", "cpu")
    lightglue = LightGlueMatcher(options, weights=weights, device=device, weights_dir=weights_dir)
    for i, f in enumerate((f0, f1)):
        if f.descriptors.shape[0] != lightglue.input_dim:
            raise FeatureFileError(
                f"descriptors{i}: {f.descriptors.shape[0]}-D, but the LightGlue weights "
                f"{weights} take {lightglue.input_dim}-D descriptors"
                + (" (superpoint_lightglue: SuperPoint)" if lightglue.input_dim == 256 else "")
            )
    result = lightglue.match(f0, f1)
    out = _outputs(result.matches)
    out["stop_layer"] = np.int64(result.stop_layer)
    out["num_pruned0"] = np.int64(result.num_pruned[0])
    out["num_pruned1"] = np.int64(result.num_pruned[1])
    return out


def _features(data: Mapping[str, np.ndarray], i: int, need_scores: bool, need_size: bool):
    from ..features.types import Features

    required = [f"keypoints{i}", f"descriptors{i}"]
    required += [f"scores{i}"] if need_scores else []
    required += [f"image_size{i}"] if need_size else []
    missing = [k for k in required if k not in data]
    if missing:
        raise FeatureFileError(f"missing key(s) {', '.join(missing)}")
    kpts = np.asarray(data[f"keypoints{i}"])
    desc = np.asarray(data[f"descriptors{i}"])
    if kpts.ndim != 2 or kpts.shape[1] != 2:
        raise FeatureFileError(f"keypoints{i}: shape {kpts.shape}, expected (N, 2)")
    n = kpts.shape[0]
    if desc.ndim != 2 or desc.shape[1] != n:
        transposed = desc.ndim == 2 and desc.shape[0] == n
        hint = "; it looks like N x D: transpose it" if transposed else ""
        raise FeatureFileError(
            f"descriptors{i}: shape {desc.shape}, expected (D, {n}): one column per keypoint "
            f"as match-pair writes them{hint}"
        )
    if f"scores{i}" in data:
        scores = np.asarray(data[f"scores{i}"], np.float32)
        if scores.shape != (n,):
            raise FeatureFileError(f"scores{i}: shape {scores.shape}, expected ({n},)")
    else:
        scores = np.zeros(n, np.float32)
    size = None
    if f"image_size{i}" in data:
        size_array = np.asarray(data[f"image_size{i}"], np.float64).reshape(-1)
        if size_array.shape != (2,) or not np.all(np.isfinite(size_array) & (size_array > 0)):
            raise FeatureFileError(
                f"image_size{i}: {size_array.tolist()}, expected (width, height) > 0"
            )
        size = (float(size_array[0]), float(size_array[1]))
    for name, array in ((f"keypoints{i}", kpts), (f"descriptors{i}", desc)):
        if not np.all(np.isfinite(array)):
            raise FeatureFileError(f"{name}: holds NaN or infinite values")
    return Features(
        np.ascontiguousarray(kpts, np.float32),
        scores,
        np.ascontiguousarray(desc, np.float32),
        size,  # type: ignore[arg-type]  # None: LightGlue uses the keypoints' extent
    )


def _superglue(f0, f1, options: Mapping[str, Any]):
    """The torch SuperGlue reference (no SuperPoint weights needed)."""
    import torch

    from ..matching.superglue_post import matches_from_log_assignment
    from ..matching.types import Matches
    from ..networks.weights import load_superglue

    config = {k: options[k] for k in ("match_threshold", "sinkhorn_iterations") if k in options}
    net = load_superglue(options.get("weights", "indoor"), config, options.get("weights_dir"))
    device = torch.device(options.get("device", "cpu"))
    net = net.to(device)
    dim = net.config["descriptor_dim"]
    for i, f in enumerate((f0, f1)):
        if f.descriptors.shape[0] != dim:
            raise FeatureFileError(
                f"descriptors{i}: {f.descriptors.shape[0]}-D, SuperGlue takes {dim}-D "
                "(SuperPoint) descriptors"
            )
    if len(f0) == 0 or len(f1) == 0:
        return Matches.empty(len(f0), len(f1))

    def tensors(f):
        return (
            torch.from_numpy(f.keypoints)[None].to(device),
            torch.from_numpy(f.scores)[None].to(device),
            torch.from_numpy(f.descriptors)[None].to(device),
            f.image_size,
        )

    with torch.inference_mode():
        log_assignment = net.scores(*tensors(f0), *tensors(f1))[0].cpu().numpy()
    return matches_from_log_assignment(log_assignment, net.config["match_threshold"])


def _outputs(matches) -> dict[str, np.ndarray]:
    return {
        "matches0": np.asarray(matches.matches0, np.int64),
        "matches1": np.asarray(matches.matches1, np.int64),
        "matching_scores0": np.asarray(matches.scores0, np.float32),
        "matching_scores1": np.asarray(matches.scores1, np.float32),
    }
