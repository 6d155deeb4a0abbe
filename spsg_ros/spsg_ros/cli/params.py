"""``spsg-ros params --mode mono|stereo``: the node's ROS 2 parameter file, from the schema.

``spsg_ros/config/mono.yaml`` and ``stereo.yaml`` are this command's output; the
file is also a valid ``--config`` of ``spsg-ros replay`` and of the Python Frontend.
"""

from __future__ import annotations

import argparse
import sys

from .. import parameters as schema


def add_parser(sub) -> None:
    p = sub.add_parser(
        "params",
        help="print the node's parameter file (every parameter, default, range and meaning)",
        description="Print frontend_node's ROS 2 parameter file for a mode, "
        "generated from the one parameter schema.",
    )
    p.add_argument(
        "--mode", choices=schema.MODES, default="mono", help="node mode (default: mono)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(schema.params_file_text(args.mode))
    return 0
