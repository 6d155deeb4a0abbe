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
    add_accelerator_args(parser)


def add_accelerator_args(parser: argparse.ArgumentParser) -> None:
    """Options of the exported-model backends (onnxruntime, auto; others may read them)."""
    g = parser.add_argument_group("exported models and runtimes")
    g.add_argument("--onnx-dir", default=None, metavar="DIR",
                   help="folder of models from `spsg-ros export` (default: export once into a cache)")
    g.add_argument("--superpoint-model", default=None, metavar="PATH",
                   help="exported SuperPoint model (.onnx with its .json sidecar)")
    g.add_argument("--superglue-model", default=None, metavar="PATH",
                   help="exported SuperGlue model (.onnx with its .json sidecar)")
    g.add_argument("--num-slots", type=int, default=None, metavar="K",
                   help="static SuperGlue with K keypoint slots (more keypoints: the K best by score); "
                        "default: dynamic K")
    g.add_argument("--providers", default=None, metavar="LIST",
                   help="onnxruntime execution providers in order, comma-separated: tensorrt, cuda, "
                        "openvino, cpu (default: from --device)")
    g.add_argument("--fp16", action="store_true", help="half precision (fp16 models, TensorRT fp16)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="intra-op threads of the runtime (default: the runtime's choice)")
    g.add_argument("--model-cache", default=None, metavar="DIR",
                   help="cache of exported models and TensorRT engines (default: ~/.cache/spsg_ros/onnx)")
    g.add_argument("--backend-preference", default=None, metavar="LIST",
                   help="order tried by --backend auto, comma-separated (default: ascend,onnxruntime,"
                        "openvino,torch; cuda devices: onnxruntime,torch)")


def superpoint_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_keypoints": args.max_keypoints, "nms_radius": args.nms_radius,
            "keypoint_threshold": args.keypoint_threshold, "remove_borders": args.remove_borders}


def superglue_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"sinkhorn_iterations": args.sinkhorn_iterations, "match_threshold": args.match_threshold}


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :func:`spsg_ros.backends.create_backend`."""
    return {"superpoint_weights": args.superpoint_weights, "superglue_weights": args.superglue_weights,
            "superpoint_config": superpoint_options(args), "superglue_config": superglue_options(args),
            "weights_dir": args.weights_dir, "device": args.device, **accelerator_options(args)}


def accelerator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The exported-model options that were given (absent ones are left out so that
    each backend keeps its own defaults)."""
    out: dict[str, Any] = {}
    for attr, key in (("onnx_dir", "onnx_dir"), ("superpoint_model", "superpoint_model"),
                      ("superglue_model", "superglue_model"), ("num_slots", "num_slots"),
                      ("threads", "intra_op_threads"), ("model_cache", "cache_dir"),
                      ("backend_preference", "backend_preference")):
        value = getattr(args, attr, None)
        if value is not None:
            out[key] = value
    providers = getattr(args, "providers", None)
    if providers:
        out["providers"] = [p.strip() for p in providers.split(",") if p.strip()]
    if getattr(args, "fp16", False):
        out["fp16"] = True
    return out
