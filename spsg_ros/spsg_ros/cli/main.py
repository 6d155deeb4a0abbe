"""``spsg-ros``: the one command-line entry point, with subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# each module defines add_parser(subparsers) which sets `func` on its parser
COMMAND_MODULES = (
    "match_pair",
    "models",
    "replay",
    "to_bag",
    "evaluate_pairs",
    "make_synthetic",
    "export",
    "bench",
    "params",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spsg-ros",
        description="SuperPoint + SuperGlue frontend for visual SLAM (ROS-free tools).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ..backends.base import BackendUnavailable
    from ..config import ConfigError
    from ..networks.weights import WeightError

    try:
        return int(args.func(args) or 0)
    except (WeightError, BackendUnavailable, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"spsg-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spsg-ros {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
