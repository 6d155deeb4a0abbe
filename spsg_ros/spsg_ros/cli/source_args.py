"""Options that pick and slice an input sequence (shared by replay and to-bag)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..datasets import KINDS


def add_source_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("source")
    g.add_argument(
        "source",
        type=Path,
        help="TartanAir trajectory folder, ASL/EuRoC/OIVIO folder, TUM RGB-D folder, image "
        "folder, or ROS 1 / ROS 2 bag",
    )
    g.add_argument("--kind", choices=KINDS, default=None, help="source kind (default: detected)")
    g.add_argument("--stereo", action="store_true", help="read left and right images")
    g.add_argument(
        "--start", type=float, default=0.0, metavar="S", help="skip the first S seconds"
    )
    g.add_argument(
        "--duration", type=float, default=None, metavar="S", help="read at most S seconds"
    )
    g.add_argument(
        "--max-frames", type=int, default=None, metavar="N", help="read at most N frames"
    )
    g.add_argument("--step", type=int, default=1, metavar="K", help="use every K-th frame")
    g.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="HZ",
        help="frame rate for sources without stamps (TartanAir, image folders; default 10)",
    )
    g.add_argument(
        "--intrinsics",
        type=Path,
        default=None,
        metavar="YAML",
        help="intrinsics YAML (ROS camera_info, Kalibr/ASL sensor.yaml, or fx/fy/cx/cy keys)",
    )
    g.add_argument("--topic", default=None, help="bags: (left) image topic (default: detected)")
    g.add_argument("--right-topic", default=None, help="bags: right image topic (stereo)")
    g.add_argument(
        "--camera-info-topic",
        default=None,
        help="bags: CameraInfo topic (default: beside the image)",
    )
    g.add_argument(
        "--gt-topic",
        default=None,
        help="bags: ground-truth PoseStamped/Odometry topic of the camera (default: "
        "/ground_truth/*)",
    )


def source_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`spsg_ros.datasets.open_source` (None = not given)."""
    return {
        "kind": args.kind,
        "stereo": args.stereo or None,
        "start": args.start or None,
        "duration": args.duration,
        "max_frames": args.max_frames,
        "step": args.step if args.step != 1 else None,
        "rate_hz": args.rate,
        "intrinsics": args.intrinsics,
        "topic": args.topic,
        "right_topic": args.right_topic,
        "camera_info_topic": args.camera_info_topic,
        "gt_topic": args.gt_topic,
    }


def open_from_args(args: argparse.Namespace):
    from ..datasets import open_source

    options = source_options(args)
    kind = options.pop("kind")
    return open_source(args.source, kind=kind, **options)
