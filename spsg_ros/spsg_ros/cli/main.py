"""``spsg-ros``: the one command-line entry point, with subcommands."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from ..stop_signals import exit_code_of, StopSignals

# each module defines add_parser(subparsers) which sets `func` on its parser
COMMAND_MODULES = (
    "match_pair",
    "match_features",
    "models",
    "replay",
    "to_bag",
    "evaluate_pairs",
    "evaluate_homography",
    "make_homography_set",
    "make_synthetic",
    "export",
    "bench",
    "params",
    "bag",
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


class PipeSafeStream:
    """stdout / stderr that survive their reader going away (``| tee`` ended by Ctrl-C).

    The first failed write points the file descriptor at /dev/null, so the
    cleanup that follows (bag index, CSV, summary, plots) still runs instead of
    dying on ``BrokenPipeError`` while printing about it.
    """

    def __init__(self, stream):
        self._stream = stream
        self.closed_pipe = False

    def _lost(self) -> None:
        self.closed_pipe = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # not a real file (a test capture): writes are dropped below

    def _guarded(self, call, *args):
        """``call(*args)`` unless the reader is gone; a lost pipe silences the stream."""
        if self.closed_pipe:
            return None
        try:
            return call(*args)
        except (BrokenPipeError, ValueError):
            self._lost()
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EIO):
                raise
            self._lost()
        return None

    def write(self, text: str) -> int:
        written = self._guarded(self._stream.write, text)
        return len(text) if written is None else written

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (
        s if isinstance(s, PipeSafeStream) else PipeSafeStream(s) for s in streams
    )
    try:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        with StopSignals() as stop:
            args.stop = stop
            return _run(args)
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = streams


def _run(args: argparse.Namespace) -> int:
    """The command, with the errors users make reported in one line, not a traceback."""
    from ..backends.base import BackendUnavailable
    from ..config import ConfigError
    from ..networks.weights import WeightError

    try:
        return int(args.func(args) or 0)
    except (
        WeightError,
        BackendUnavailable,
        ConfigError,
        FileNotFoundError,
        PermissionError,
        NotADirectoryError,
        FileExistsError,
        ValueError,
    ) as exc:
        print(f"spsg-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"spsg-ros {args.command}: interrupted ({exc or 'SIGINT'})", file=sys.stderr)
        return exit_code_of(exc)


if __name__ == "__main__":
    sys.exit(main())
