"""``spsg-ros to-bag SOURCE OUT``: a dataset sequence as a ROS 2 bag for ``ros2 bag play``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..stop_signals import exit_code_for
from .common import bounded
from .source_args import add_source_args, open_from_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "to-bag",
        help="convert a TartanAir / ASL / TUM / image-folder sequence into a ROS 2 bag",
        description="Write sensor_msgs/Image + CameraInfo (and ground truth as PoseStamped on "
        "/ground_truth/pose) into a new ROS 2 bag. Play it into the node with: "
        "ros2 bag play OUT  and  ros2 launch spsg_ros frontend.launch.py with the node in "
        "the /camera namespace. On Humble, if ros2 bag refuses the bag's metadata version, "
        "run: ros2 bag reindex OUT -s mcap.",
    )
    add_source_args(p)
    p.add_argument(
        "out",
        type=Path,
        help="bag folder to create (must not exist); it holds OUT_0.mcap and metadata.yaml, "
        "as ros2 bag record writes them",
    )
    p.add_argument("--prefix", default="/camera", help="topic prefix (default: %(default)s)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument(
        "--start-time",
        type=bounded(float, 0, 2147483647, low_open=True, meaning="0 is 'unset' in ROS 2"),
        default=None,
        metavar="S",
        help="stamp of the first frame in seconds since the epoch (default: keep the source's)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bagio.convert import sequence_to_bag

    sequence = open_from_args(args)
    if len(sequence) == 0:
        raise ValueError(f"{args.source}: no frames in the selection")
    start = None if args.start_time is None else int(round(args.start_time * 1e9))
    report = sequence_to_bag(
        sequence,
        args.out,
        prefix=args.prefix,
        storage=args.storage,
        progress=not args.no_progress,
        start_time_ns=start,
        stop=getattr(args, "stop", None),
    )
    print(
        f"wrote {report.frames_written} frames to {report.path}"
        + (
            f" ({report.frames_skipped} unreadable frames skipped)"
            if report.frames_skipped
            else ""
        )
    )
    for topic, count in sorted(report.topics.items()):
        print(f"  {topic}: {count} messages")
    if report.interrupted:
        print(f"interrupted ({report.signal}): the bag is closed and holds the frames above")
        return exit_code_for(report.signal)
    if report.frames_written == 0:
        print("no frame could be read: the bag holds no images", file=sys.stderr)
        return 2
    return 0
