"""SIGINT, SIGTERM and SIGHUP as one orderly stop request.

Python's default turns only SIGINT into ``KeyboardInterrupt``; SIGTERM (``docker
stop``, systemd, ``timeout``) and SIGHUP (a closed terminal) kill the process
at once and leave a bag without its index and a run without its summary.
Inside :class:`StopSignals` all three raise :class:`Interrupted` (a
``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` cleanup applies),
except inside :meth:`StopSignals.writing`: a signal arriving while a frame's
outputs are being written is held until they are complete, so no record is cut
in half. Later signals, while the outputs are being closed, are only logged.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Iterator, Optional

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        self.exit_code = 128 + self.signum
        super().__init__(f"stopped by {self.signal_name}")


def exit_code_for(name: Optional[str]) -> int:
    """128 + the number of the signal called ``name`` ("SIGTERM" -> 143; None: SIGINT, 130)."""
    return 128 + int(getattr(signal, name or "SIGINT", signal.SIGINT))


def exit_code_of(exc: BaseException) -> int:
    """128 + the signal of an :class:`Interrupted`; 130 (SIGINT) for a plain Ctrl-C."""
    return getattr(exc, "exit_code", 128 + int(signal.SIGINT))


class StopSignals:
    """Handlers for :data:`STOP_SIGNALS` while the ``with`` block runs (main thread only)."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._writing = 0
        self._previous: dict[int, object] = {}

    @property
    def signal_name(self) -> Optional[str]:
        return None if self.received is None else signal.Signals(self.received).name

    @property
    def exit_code(self) -> Optional[int]:
        return None if self.received is None else 128 + self.received

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            log.warning("%s received while stopping: ignored", signal.Signals(signum).name)
            return
        self.received = signum
        if self._writing == 0:
            raise Interrupted(signum)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal arrived (call between units of work)."""
        if self.received is not None:
            raise Interrupted(self.received)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold signals until the block is done (one frame's outputs, the final summary)."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1


@contextlib.contextmanager
def holding(stop: Optional[StopSignals]) -> Iterator[None]:
    """:meth:`StopSignals.writing` of ``stop``, or nothing when there is none."""
    if stop is None:
        yield
    else:
        with stop.writing():
            yield
