"""The node's latest-frame worker and its statistics (no ROS needed)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from spsg_ros.ros.worker import LatencyStats, LatestFrameWorker, RateMeter, StereoPairing


def test_worker_processes_latest_and_counts_drops():
    release = threading.Event()
    started = threading.Event()
    seen = []

    def process(item):
        seen.append(item)
        started.set()
        release.wait(5)

    worker = LatestFrameWorker(process)
    worker.start()
    try:
        worker.submit(0)
        assert started.wait(5)  # frame 0 is in progress
        replaced = [worker.submit(i) for i in range(1, 6)]
        # 1..4 were each replaced by a newer frame while 0 was processed
        assert replaced == [False, True, True, True, True]
        release.set()
        assert worker.wait_idle(5)
    finally:
        assert worker.stop(5)
    assert seen == [0, 5]
    assert (worker.submitted, worker.processed, worker.dropped) == (6, 2, 4)
    assert not worker.running


def test_submit_never_blocks_on_slow_processing():
    gate = threading.Event()
    worker = LatestFrameWorker(lambda item: gate.wait(5))
    worker.start()
    try:
        start = time.monotonic()
        for i in range(200):
            worker.submit(i)
        assert time.monotonic() - start < 0.5
    finally:
        gate.set()
        assert worker.stop(5)
    assert worker.dropped >= 198


def test_exception_keeps_worker_alive():
    errors = []
    done = []

    def process(item):
        if item == "bad":
            raise RuntimeError("corrupt frame")
        done.append(item)

    worker = LatestFrameWorker(
        process, on_error=lambda error, item: errors.append((str(error), item))
    )
    worker.start()
    try:
        worker.submit("bad")
        assert worker.wait_idle(5)
        worker.submit("good")
        assert worker.wait_idle(5)
        assert worker.running
    finally:
        worker.stop(5)
    assert errors == [("corrupt frame", "bad")] and done == ["good"]
    assert worker.errors == 1 and worker.processed == 1
    assert isinstance(worker.last_error, RuntimeError)


def test_failing_error_handler_does_not_stop_worker():
    def on_error(error, item):
        raise ValueError("logger broken")

    worker = LatestFrameWorker(lambda item: 1 / 0, on_error=on_error)
    worker.start()
    try:
        for i in range(3):
            worker.submit(i)
            assert worker.wait_idle(5)
        assert worker.running and worker.errors == 3
    finally:
        worker.stop(5)


def test_stop_discards_waiting_frame_and_is_idempotent():
    gate = threading.Event()
    seen = []
    started = threading.Event()

    def process(item):
        seen.append(item)
        started.set()
        gate.wait(5)

    worker = LatestFrameWorker(process)
    worker.start()
    worker.submit(1)
    assert started.wait(5)
    worker.submit(2)
    stopper = threading.Thread(target=worker.stop, args=(5,))
    stopper.start()
    deadline = time.monotonic() + 5
    while not worker._stopping and time.monotonic() < deadline:  # stop() has taken effect
        time.sleep(0.001)
    gate.set()
    stopper.join(5)
    assert seen == [1] and not worker.running
    assert worker.stop(1)  # second stop is a no-op
    assert LatestFrameWorker(lambda item: None).stop(1)  # never started


def test_wait_idle_times_out_while_busy():
    gate = threading.Event()
    worker = LatestFrameWorker(lambda item: gate.wait(5))
    worker.start()
    try:
        worker.submit(0)
        assert not worker.wait_idle(0.05)
    finally:
        gate.set()
        worker.stop(5)


def test_latency_percentiles_over_window():
    stats = LatencyStats(window=100)
    assert np.isnan(stats.percentile(50))
    for value in range(1, 201):  # only the last 100 (101..200) count
        stats.add(value)
    assert len(stats) == 100
    assert stats.percentile(50) == pytest.approx(150.5)
    assert stats.percentile(90) == pytest.approx(np.percentile(np.arange(101, 201), 90))


def test_rate_meter_with_fake_clock():
    now = [0.0]
    meter = RateMeter(events=20, max_age_s=120.0, clock=lambda: now[0])
    assert meter.rate() == 0.0
    for _ in range(11):  # 10 intervals of 0.1 s
        meter.tick()
        now[0] += 0.1
    now[0] -= 0.1
    assert meter.rate() == pytest.approx(10.0)
    now[0] += 5.0  # input stopped: the rate decays ...
    assert meter.rate() == pytest.approx(10 / 6.0)
    now[0] += 200.0  # ... and is 0 once every event is too old
    assert meter.rate() == 0.0
    with pytest.raises(ValueError):
        RateMeter(events=1)
    with pytest.raises(ValueError):
        RateMeter(max_age_s=0)


def test_rate_meter_means_something_at_low_frame_rates():
    """0.2 frames/s is 0.2 Hz (a 5 s window with two events used to read 0.00 Hz)."""
    now = [100.0]
    meter = RateMeter(clock=lambda: now[0])
    for _ in range(4):
        meter.tick()
        now[0] += 5.0
    now[0] -= 4.0  # 1 s after the last frame
    assert meter.rate() == pytest.approx(0.2)
    now[0] += 2.0  # still within one period: unchanged
    assert meter.rate() == pytest.approx(0.2)


def test_stereo_pairing_counts_images_without_partner():
    pairing = StereoPairing(slop_s=0.02, queue_size=10)
    ms = 1_000_000
    # pairs 5 ms apart: the synchroniser pairs before each image's arrived() call
    for t in (0, 100, 200):
        assert pairing.arrived(0, t * ms) == 0
        pairing.paired(t * ms, (t + 5) * ms)
        assert pairing.arrived(1, (t + 5) * ms) == 0
    assert (pairing.pairs, pairing.unpaired) == (3, [0, 0])
    # 50 ms apart: the left image is given up once the right side is past it + slop
    assert pairing.arrived(0, 300 * ms) == 0
    assert pairing.arrived(1, 350 * ms) == 1
    assert pairing.unpaired == [1, 0] and pairing.last_gap_ns == 50 * ms
    # the right one goes when the next left image is past it + slop
    assert pairing.arrived(0, 400 * ms) == 1
    assert pairing.unpaired == [1, 1]
    pairing.paired(400 * ms, 403 * ms)
    assert pairing.arrived(1, 403 * ms) == 0
    assert pairing.unpaired == [1, 1] and pairing.pairs == 4


def test_stereo_pairing_counts_a_side_that_never_arrives():
    pairing = StereoPairing(slop_s=0.02, queue_size=3)
    for t in range(6):  # left images only: the queue overflows
        pairing.arrived(0, t * 100_000_000)
    assert pairing.unpaired == [3, 0]
