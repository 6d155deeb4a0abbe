"""``spsg-ros bag recover IN OUT``: a clean copy of an unfinished or damaged MCAP bag."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bag",
        help="bag tools: recover an unfinished or damaged MCAP bag",
        description="Tools for ROS 2 bags written by spsg-ros or ros2 bag record.",
    )
    tools = p.add_subparsers(dest="bag_command", metavar="TOOL", required=True)
    r = tools.add_parser(
        "recover",
        help="copy every complete message of an unfinished or damaged MCAP bag into a new bag",
        description="Read IN record by record (an MCAP bag whose writer was killed: no "
        "metadata.yaml, no summary or end magic; or one with a chunk whose CRC fails) and "
        "write every complete message into the new bag OUT (MCAP with chunk CRCs and "
        "metadata.yaml; topics, type definitions, type hashes and QoS kept). Prints what "
        "it kept per topic and what it skipped and why. Exit 0 when something was "
        "recovered.",
    )
    r.add_argument(
        "input",
        metavar="IN",
        type=Path,
        help="rosbag2 folder (metadata.yaml or not) or .mcap file",
    )
    r.add_argument("out", metavar="OUT", type=Path, help="bag folder to create (must not exist)")
    r.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    r.set_defaults(func=run_recover)


def run_recover(args: argparse.Namespace) -> int:
    from ..bagio.recover import recover_bag

    report = recover_bag(args.input, args.out, storage=args.storage)
    for line in report.lines():
        print(line)
    return 0
