"""Options that pick and slice an input sequence (shared by replay and to-bag)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..datasets import KINDS
from ..datasets.base import DEFAULT_BASE_TIME_NS, MAX_BASE_TIME_S
from .common import bounded


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
        "--start",
        type=bounded(float, 0),
        default=0.0,
        metavar="S",
        help="skip the first S seconds (S >= 0)",
    )
    g.add_argument(
        "--duration",
        type=bounded(float, 0, low_open=True),
        default=None,
        metavar="S",
        help="read at most S seconds (S > 0)",
    )
    g.add_argument(
        "--max-frames",
        type=bounded(int, 1, also=(-1,), meaning="-1: all"),
        default=None,
        metavar="N",
        help="read at most N frames (N >= 1; -1 or absent: all)",
    )
    g.add_argument(
        "--step",
        type=bounded(int, 1),
        default=1,
        metavar="K",
        help="use every K-th frame (K >= 1)",
    )
    g.add_argument(
        "--rate",
        type=bounded(float, 0, 10**9, low_open=True),
        default=None,
        metavar="HZ",
        help="frame rate for sources without stamps (TartanAir, image folders; default 10)",
    )
    g.add_argument(
        "--base-time",
        type=bounded(float, 0, MAX_BASE_TIME_S, low_open=True),
        default=None,
        metavar="S",
        help="stamp of the first frame (s) for sources without stamps (TartanAir, image "
        f"folders; default {DEFAULT_BASE_TIME_NS / 1e9:g}: not 0, which ROS 2 reads as unset)",
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
        "base_time_ns": None if args.base_time is None else int(round(args.base_time * 1e9)),
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
