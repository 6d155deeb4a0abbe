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

"""Latest-frame worker thread and the statistics the node reports (no ROS imports).

Subscription callbacks only hand their message to :meth:`LatestFrameWorker.submit`,
which never blocks on processing: a frame still waiting when a newer one arrives
is dropped and counted, so the frontend always works on the newest image and the
executor keeps taking messages.
"""

from __future__ import annotations

from collections import deque
import threading
import time
from typing import Any, Callable, Deque, Optional

import numpy as np


class LatestFrameWorker:
    """Run ``process(item)`` on a thread, always on the newest submitted item.

    An exception from ``process`` is counted and passed to ``on_error`` (with the
    item); the thread keeps running.
    """

    def __init__(self, process: Callable[[Any], None],
                 on_error: Optional[Callable[[BaseException, Any], None]] = None,
                 name: str = 'spsg_frontend_worker') -> None:
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
    """Events per second over a sliding time window."""

    def __init__(self, window_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError('window_s must be positive')
        self._window = float(window_s)
        self._clock = clock
        self._times: Deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            now = self._clock()
            self._times.append(now)
            self._trim(now)

    def rate(self) -> float:
        """Events per second in the window (0 with fewer than two events)."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()
