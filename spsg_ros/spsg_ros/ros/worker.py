# Copyright 2026 spsg_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Latest-frame worker thread and the statistics the node reports (no ROS imports).

Subscription callbacks only hand their message to :meth:`LatestFrameWorker.submit`,
which never blocks on processing: a frame still waiting when a newer one arrives
is dropped and counted, so the frontend always works on the newest image and the
executor keeps taking messages.
"""

from __future__ import annotations

from collections import deque
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np


class LatestFrameWorker:
    """
    Run ``process(item)`` on a thread, always on the newest submitted item.

    An exception from ``process`` is counted and passed to ``on_error`` (with the
    item); the thread keeps running.
    """

    def __init__(
        self,
        process: Callable[[Any], None],
        on_error: Optional[Callable[[BaseException, Any], None]] = None,
        name: str = 'spsg_frontend_worker',
    ) -> None:
        self._process = process
        self._on_error = on_error
        self._name = name
        self._condition = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._busy = False
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self.submitted = 0
        self.processed = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: Optional[BaseException] = None

    def start(self) -> None:
        with self._condition:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, item: Any) -> bool:
        """Queue ``item`` as the next one; True when it replaced (dropped) a waiting item."""
        with self._condition:
            replaced = self._has_pending
            if replaced:
                self.dropped += 1
            self._pending, self._has_pending = item, True
            self.submitted += 1
            self._condition.notify()
        return replaced

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is waiting or being processed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._has_pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Finish the item in progress, discard a waiting one, join; False if still running."""
        with self._condition:
            self._stopping = True
            self._pending, self._has_pending = None, False
            self._condition.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        alive = thread.is_alive()
        if not alive:
            self._thread = None
        return not alive

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._has_pending and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
                self._busy = True
            try:
                self._process(item)
                self.processed += 1
            except Exception as error:  # noqa: B902 - keep the worker alive on any failure
                self.errors += 1
                self.last_error = error
                if self._on_error is not None:
                    try:
                        self._on_error(error, item)
                    except Exception:  # noqa: B902 - a failing logger must not stop the worker
                        pass
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()


class LatencyStats:
    """Percentiles of the last ``window`` latency samples (milliseconds)."""

    def __init__(self, window: int = 200) -> None:
        self._samples: Deque[float] = deque(maxlen=max(1, int(window)))
        self._lock = threading.Lock()

    def add(self, milliseconds: float) -> None:
        with self._lock:
            self._samples.append(float(milliseconds))

    def __len__(self) -> int:
        return len(self._samples)

    def percentile(self, q: float) -> float:
        """Return the q-th percentile, q in [0, 100]; NaN without samples."""
        with self._lock:
            values = np.array(self._samples, np.float64)
        if values.size == 0:
            return float('nan')
        return float(np.percentile(values, q))


class RateMeter:
    """
    Events per second over the last ``events`` events, at most ``max_age_s`` old.

    Counting events instead of a fixed short window keeps the rate meaningful at
    low frame rates (0.2 Hz gives 0.2, not 0); once the stream stops for longer
    than its usual period the rate decays towards 0.
    """

    def __init__(
        self,
        events: int = 20,
        max_age_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if events < 2:
            raise ValueError('events must be at least 2')
        if max_age_s <= 0:
            raise ValueError('max_age_s must be positive')
        self._max_age = float(max_age_s)
        self._clock = clock
        self._times: Deque[float] = deque(maxlen=int(events))
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self._times.append(self._clock())

    def rate(self) -> float:
        """Events per second (0 with fewer than two recent events)."""
        with self._lock:
            now = self._clock()
            while self._times and now - self._times[0] > self._max_age:
                self._times.popleft()
            count = len(self._times)
            if count < 2:
                return 0.0
            first, last = self._times[0], self._times[-1]
            period = (last - first) / (count - 1)
            if period <= 0:
                return 0.0
            # a silence longer than the usual period counts as part of the span
            span = (last - first) if now - last <= period else (now - first)
            return (count - 1) / span


class StereoPairing:
    """
    Counts stereo images that found no partner within ``slop_s`` (no ROS imports).

    The node's approximate-time synchroniser pairs left and right images and
    silently keeps the others in its queue until they fall out. This watches the
    same stream: :meth:`arrived` for every image (after the synchroniser saw it),
    :meth:`paired` for every pair. An image becomes *unpaired* once the other
    side has moved more than ``slop_s`` past it (in-order streams cannot pair it
    any more) or more than ``queue_size`` images are waiting on its side.
    """

    SIDES = ('left', 'right')

    def __init__(self, slop_s: float, queue_size: int) -> None:
        self._slop_ns = int(round(float(slop_s) * 1e9))
        self._queue_size = max(1, int(queue_size))
        self._pending: Tuple[Dict[int, None], ...] = ({}, {})
        self._paired: Tuple[Dict[int, None], ...] = ({}, {})
        self._newest: List[Optional[int]] = [None, None]
        self._lock = threading.Lock()
        self.pairs = 0
        self.unpaired = [0, 0]
        self.last_gap_ns: Optional[int] = None  # last unpaired image to the other side's newest

    def paired(self, left_ns: int, right_ns: int) -> None:
        with self._lock:
            self.pairs += 1
            for side, stamp in enumerate((left_ns, right_ns)):
                if stamp in self._pending[side]:
                    del self._pending[side][stamp]
                else:  # the synchroniser fires before the image's own arrived() call
                    self._remember(self._paired[side], stamp)

    def arrived(self, side: int, stamp_ns: int) -> int:
        """Record an image of ``side`` (0 left, 1 right); return how many became unpaired."""
        with self._lock:
            if stamp_ns in self._paired[side]:
                del self._paired[side][stamp_ns]
            else:
                self._pending[side][stamp_ns] = None
            newest = self._newest[side]
            self._newest[side] = stamp_ns if newest is None else max(newest, stamp_ns)
            return self._expire(0) + self._expire(1)

    def _expire(self, side: int) -> int:
        other_newest = self._newest[1 - side]
        pending = self._pending[side]
        gone = [
            stamp
            for stamp in pending
            if other_newest is not None and other_newest - stamp > self._slop_ns
        ]
        overflow = len(pending) - len(gone) - self._queue_size
        if overflow > 0:
            gone += sorted(s for s in pending if s not in gone)[:overflow]
        for stamp in gone:
            del pending[stamp]
            self.unpaired[side] += 1
            if other_newest is not None:
                self.last_gap_ns = abs(other_newest - stamp)
        return len(gone)

    @staticmethod
    def _remember(seen: Dict[int, None], stamp: int, limit: int = 64) -> None:
        seen[stamp] = None
        while len(seen) > limit:
            seen.pop(next(iter(seen)))


class FrameClock:
    """
    Monotonic times of one frame's way through the node, from arrival to its last publish.

    The node marks each step; :class:`OverheadStats` turns a finished clock into the
    node's own share of the frame's time. All times are ``clock()`` seconds.
    """

    __slots__ = (
        'arrival',
        'converting',
        'frontend_start',
        'frontend_end',
        'published',
        'publishing',
        '_clock',
    )

    def __init__(self, arrival: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.arrival = arrival  # subscription (stereo: synchroniser) callback entry
        self.converting: Optional[float] = None  # worker took the frame, decoding starts
        self.frontend_start: Optional[float] = None
        self.frontend_end: Optional[float] = None
        self.published: Optional[float] = None  # after the frame's last publish
        self.publishing = 0.0  # seconds spent inside publish calls

    def now(self) -> float:
        return self._clock()

    def publish(self, publish: Callable[[Any], None], msg: Any) -> None:
        """Publish ``msg`` with ``publish``; the call's duration counts as publishing."""
        start = self._clock()
        try:
            publish(msg)
        finally:
            self.publishing += self._clock() - start


#: The node's own parts of a frame's time: waiting in the keep-latest worker, image
#: decoding, message building (and the trajectory, match image) and publish calls.
OVERHEAD_PARTS = ('queueing', 'conversion', 'building', 'publishing')


class OverheadStats:
    """
    The node's own overhead per frame: time from arrival to the last publish minus the frontend.

    overhead = (published - arrival) - (frontend end - frontend start), split exactly
    into queueing (arrival -> conversion start: waiting for the worker), conversion
    (image decoding up to the frontend call), building (after the frontend, all but
    the publish calls) and publishing. Keeps the last ``window`` frames; percentiles
    are computed only when asked (diagnostics, once a second).
    """

    def __init__(self, window: int = 200) -> None:
        # rows of milliseconds: frontend, overhead, then OVERHEAD_PARTS
        self._rows: Deque[Tuple[float, ...]] = deque(maxlen=max(1, int(window)))
        self._lock = threading.Lock()

    @staticmethod
    def breakdown(clock: FrameClock) -> Dict[str, float]:
        """Milliseconds of a finished clock: frontend, overhead and its parts."""
        marks = (clock.converting, clock.frontend_start, clock.frontend_end, clock.published)
        if any(mark is None for mark in marks):
            raise ValueError('frame clock not finished: every step must be marked')
        converting, start, end, published = marks
        after = published - end
        parts = {
            'queueing': converting - clock.arrival,
            'conversion': start - converting,
            'building': after - clock.publishing,
            'publishing': clock.publishing,
        }
        times = {'frontend': end - start, 'overhead': (published - clock.arrival) - (end - start)}
        times.update(parts)
        return {name: value * 1000.0 for name, value in times.items()}

    def add(self, clock: FrameClock) -> Dict[str, float]:
        """Record a finished frame; return its :meth:`breakdown`."""
        times = self.breakdown(clock)
        row = (times['frontend'], times['overhead']) + tuple(times[p] for p in OVERHEAD_PARTS)
        with self._lock:
            self._rows.append(row)
        return times

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        """Forget the frames so far (e.g. a warm-up)."""
        with self._lock:
            self._rows.clear()

    def frames(self) -> List[Dict[str, float]]:
        """Milliseconds of every frame in the window, oldest first (see :meth:`breakdown`)."""
        names = ('frontend', 'overhead') + OVERHEAD_PARTS
        with self._lock:
            rows = list(self._rows)
        return [dict(zip(names, row)) for row in rows]

    def last(self) -> Optional[Dict[str, float]]:
        """Milliseconds of the newest frame (frontend, overhead, parts), None before one."""
        with self._lock:
            row = self._rows[-1] if self._rows else None
        if row is None:
            return None
        return dict(zip(('frontend', 'overhead') + OVERHEAD_PARTS, row))

    def summary(
        self, quantiles: Tuple[float, ...] = (50.0, 90.0)
    ) -> Dict[str, Dict[float, float]]:
        """
        Percentiles over the window of each time, and of the overhead's share.

        Keys: frontend, overhead, the parts (ms) and ``share`` (overhead / frontend per
        frame, percent); each maps quantile -> value. NaN without frames.
        """
        with self._lock:
            rows = np.array(self._rows, np.float64).reshape(-1, 2 + len(OVERHEAD_PARTS))
        names = ('frontend', 'overhead') + OVERHEAD_PARTS
        columns = {name: rows[:, i] for i, name in enumerate(names)}
        frontend = columns['frontend']
        columns['share'] = 100.0 * columns['overhead'] / np.maximum(frontend, 1e-9)
        if rows.shape[0] == 0:
            return {name: {q: float('nan') for q in quantiles} for name in columns}
        return {
            name: dict(zip(quantiles, (float(v) for v in np.percentile(values, quantiles))))
            for name, values in columns.items()
        }
