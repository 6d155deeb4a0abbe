"""Options shared by the subcommands that run the networks."""
from __future__ import annotations

import argparse
from typing import Any

from ..features.superpoint_post import SUPERPOINT_DEFAULTS
from ..matching.superglue_post import SUPERGLUE_DEFAULTS


def add_network_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("networks")
    g.add_argument("--superpoint-weights", default="superpoint", metavar="PATH",
                   help="SuperPoint state dict (default: upstream superpoint_v1.pth in --weights-dir)")
    g.add_argument("--superglue-weights", default="indoor", metavar="PATH|indoor|outdoor",
                   help="SuperGlue state dict or upstream name (default: indoor)")
    g.add_argument("--weights-dir", default=None, metavar="DIR",
                   help="where upstream weights are looked up (default: spsg_ros/models or $SPSG_ROS_WEIGHTS_DIR)")
    g.add_argument("--max-keypoints", type=int, default=SUPERPOINT_DEFAULTS["max_keypoints"],
                   help="keep the best N keypoints, -1 for all (default: %(default)s)")
    g.add_argument("--nms-radius", type=int, default=SUPERPOINT_DEFAULTS["nms_radius"])
    g.add_argument("--keypoint-threshold", type=float, default=SUPERPOINT_DEFAULTS["keypoint_threshold"])
    g.add_argument("--remove-borders", type=int, default=SUPERPOINT_DEFAULTS["remove_borders"])
    g.add_argument("--sinkhorn-iterations", type=int, default=SUPERGLUE_DEFAULTS["sinkhorn_iterations"])
    g.add_argument("--match-threshold", type=float, default=SUPERGLUE_DEFAULTS["match_threshold"])
    g.add_argument("--backend", default="torch", help="inference backend (default: %(default)s)")
    g.add_argument("--device", default="cpu", help="device for the backend, e.g. cpu, cuda:0 (default: cpu)")


def superpoint_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_keypoints": args.max_keypoints, "nms_radius": args.nms_radius,
            "keypoint_threshold": args.keypoint_threshold, "remove_borders": args.remove_borders}


def superglue_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"sinkhorn_iterations": args.sinkhorn_iterations, "match_threshold": args.match_threshold}


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :func:`spsg_ros.backends.create_backend`."""
    return {"superpoint_weights": args.superpoint_weights, "superglue_weights": args.superglue_weights,
            "superpoint_config": superpoint_options(args), "superglue_config": superglue_options(args),
            "weights_dir": args.weights_dir, "device": args.device}
