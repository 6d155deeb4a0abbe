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
The node's own overhead under the real ROS 2: measured per frame, shown in its diagnostics.

frontend_node runs in this process (torch backend, the shared weights, small images)
and a probe node sends a few frames over the real DDS, each after the previous one's
FrontendStatus came back. The diagnostics a ROS user sees must carry the overhead
(time from a message's arrival to its last publish minus the frontend's time) and its
parts, and the figures must agree: no negative time, the parts of a frame add up to
its overhead, every output is published after the image arrived. The arithmetic of
the per-frame split (spsg_ros.ros.worker, no ROS imports) is checked without ROS too.
"""

import re
import time

from conftest import ros_available
from conftest import ROS_REASON
import numpy as np
import pytest
from spsg_ros.ros.worker import FrameClock
from spsg_ros.ros.worker import OVERHEAD_PARTS
from spsg_ros.ros.worker import OverheadStats

HAVE_ROS = ros_available()
if HAVE_ROS:
    from diagnostic_msgs.msg import DiagnosticArray
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from ros_testing import camera_info_msg
    from ros_testing import freiburg_images
    from ros_testing import image_msg
    from ros_testing import RELIABLE
    from ros_testing import shared_dir
    from ros_testing import stamp_ns
    from sensor_msgs.msg import CameraInfo
    from sensor_msgs.msg import Image
    from spsg_ros.ros.frontend_node import FrontendNode
    from spsg_ros_msgs.msg import FrontendStatus

requires_ros = pytest.mark.skipif(not HAVE_ROS, reason=ROS_REASON)

NS = '/overhead_test'
SIZE = (160, 120)
FRAMES = 4
BASE_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
TIMEOUT_S = 30.0
LAST_FRAME = re.compile(
    r'(?P<total>[\d.]+) = queueing (?P<queueing>[\d.]+), conversion (?P<conversion>[\d.]+), '
    r'building (?P<building>[\d.]+), publishing (?P<publishing>[\d.]+); '
    r'frontend (?P<frontend>[\d.]+)'
)


class ManualClock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


def finished_clock(clock, queueing, conversion, frontend, building, publishes):
    """Walk a FrameClock through one frame with the given durations (seconds)."""
    frame = FrameClock(clock.now, clock)
    clock.now += queueing
    frame.converting = frame.now()
    clock.now += conversion
    frame.frontend_start = frame.now()
    clock.now += frontend
    frame.frontend_end = frame.now()
    clock.now += building
    for duration in publishes:
        frame.publish(lambda msg, d=duration: setattr(clock, 'now', clock.now + d), None)
    frame.published = frame.now()
    return frame


def test_overhead_is_split_exactly_into_its_parts():
    clock = ManualClock(100.0)
    stats = OverheadStats(window=3)
    times = stats.add(finished_clock(clock, 0.002, 0.001, 0.5, 0.004, (0.001, 0.0005)))
    assert times['frontend'] == pytest.approx(500.0)
    expected = {'queueing': 2.0, 'conversion': 1.0, 'building': 4.0, 'publishing': 1.5}
    for part in OVERHEAD_PARTS:
        assert times[part] == pytest.approx(expected[part]), part
    assert times['overhead'] == pytest.approx(8.5)
    assert sum(times[p] for p in OVERHEAD_PARTS) == pytest.approx(times['overhead'], abs=1e-9)
    # the window keeps the newest frames; percentiles and the share per frame
    for frontend in (0.1, 0.2, 0.4):
        stats.add(finished_clock(clock, 0.001, 0.001, frontend, 0.001, (0.001,)))
    assert len(stats) == 3
    summary = stats.summary()
    assert summary['overhead'][50.0] == pytest.approx(4.0)
    assert summary['frontend'][50.0] == pytest.approx(200.0)
    assert summary['share'][50.0] == pytest.approx(2.0)  # 4 ms of 200 ms
    assert summary['share'][90.0] == pytest.approx(3.6)  # between 2 % and 4 %
    assert stats.last()['frontend'] == pytest.approx(400.0)
    stats.clear()
    assert stats.last() is None and np.isnan(stats.summary()['overhead'][50.0])


def test_publish_time_counts_even_when_publishing_fails():
    clock = ManualClock(5.0)
    frame = FrameClock(clock.now, clock)

    def failing(msg):
        clock.now += 0.25
        raise RuntimeError('publisher gone')

    with pytest.raises(RuntimeError):
        frame.publish(failing, None)
    assert frame.publishing == pytest.approx(0.25)


def test_an_unfinished_frame_is_refused():
    frame = FrameClock(1.0, ManualClock(1.0))
    with pytest.raises(ValueError, match='not finished'):
        OverheadStats().add(frame)


def spin_until(executor, condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f'{what}: not within {timeout_s} s'
        executor.spin_once(timeout_sec=0.05)


def frontend_diagnostics(arrays):
    """Return key -> value of the newest frontend diagnostic status, or None."""
    for array in reversed(arrays):
        for status in array.status:
            if 'frontend' in status.name:
                return {item.key: item.value for item in status.values}
    return None


@pytest.fixture
def running_node():
    """frontend_node and a probe node in one executor, spun by the test."""
    weights = shared_dir() / 'weights'
    arguments = ['--ros-args', '-r', f'__ns:={NS}']
    for name, value in (
        ('backend', 'torch'),
        ('weights_dir', str(weights)),
        ('max_keypoints', 256),
    ):
        arguments += ['-p', f'{name}:={value}']
    rclpy.init(args=arguments)
    node = probe = None
    executor = SingleThreadedExecutor()
    try:
        node = FrontendNode()
        probe = rclpy.create_node('overhead_test_probe', namespace=NS)
        executor.add_node(node)
        executor.add_node(probe)
        yield node, probe, executor
    finally:
        executor.shutdown()
        if probe is not None:
            probe.destroy_node()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


@pytest.mark.ros
@requires_ros
def test_diagnostics_carry_consistent_overhead_figures(running_node):
    node, probe, executor = running_node
    statuses = {}
    diagnostics = []
    probe.create_subscription(
        FrontendStatus, 'frontend_status', lambda m: statuses.setdefault(stamp_ns(m), m), RELIABLE
    )
    probe.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, RELIABLE)
    image_pub = probe.create_publisher(Image, 'image_raw', RELIABLE)
    info_pub = probe.create_publisher(CameraInfo, 'camera_info', RELIABLE)
    spin_until(
        executor,
        lambda: image_pub.get_subscription_count() and info_pub.get_subscription_count(),
        TIMEOUT_S,
        'frontend_node subscribing',
    )
    executor.spin_once(timeout_sec=0.3)

    sent = []
    for index, image in enumerate(freiburg_images(FRAMES, SIZE)):
        nanoseconds = BASE_NS + index * PERIOD_NS
        info_pub.publish(camera_info_msg(*SIZE, nanoseconds, 'camera', size=SIZE))
        image_pub.publish(image_msg(image, nanoseconds, 'camera', 'bgr8'))
        spin_until(executor, lambda: nanoseconds in statuses, TIMEOUT_S, f'frame {index}')
        sent.append(nanoseconds)

    def complete():
        values = frontend_diagnostics(diagnostics)
        return values is not None and values.get('frames processed') == str(FRAMES)

    spin_until(executor, complete, 10.0, 'diagnostics of every frame')
    values = frontend_diagnostics(diagnostics)

    # the node's own per-frame record: every step in order, the parts add up exactly
    frames = node.overhead.frames()
    assert len(frames) == FRAMES
    for stamp, frame in zip(sent, frames):
        assert frame['frontend'] > 0 and frame['overhead'] > 0
        assert all(frame[part] >= 0 for part in OVERHEAD_PARTS), frame
        assert sum(frame[part] for part in OVERHEAD_PARTS) == pytest.approx(
            frame['overhead'], abs=1e-6
        )
        # the status is built after the frontend and before the last publish
        latency = statuses[stamp].latency_ms
        assert frame['frontend'] <= latency <= frame['frontend'] + frame['overhead'] + 1e-6

    # what a ROS user sees: medians and p90, the share of the frontend time, the parts
    p50 = float(values['node overhead p50 (ms)'])
    p90 = float(values['node overhead p90 (ms)'])
    assert 0 < p50 <= p90
    overheads = [frame['overhead'] for frame in frames]
    assert p50 == pytest.approx(np.median(overheads), abs=0.001)
    shares = [100 * frame['overhead'] / frame['frontend'] for frame in frames]
    assert float(values['node overhead share p50 (%)']) == pytest.approx(
        np.median(shares), abs=0.01
    )
    assert float(values['node overhead share p50 (%)']) <= float(
        values['node overhead share p90 (%)']
    )
    assert float(values['frontend time p50 (ms)']) == pytest.approx(
        np.median([frame['frontend'] for frame in frames]), abs=0.01
    )
    for part in OVERHEAD_PARTS:
        low, high = (float(v) for v in values[f'node overhead {part} p50/p90 (ms)'].split(' / '))
        assert 0 <= low <= high, part
    last = LAST_FRAME.fullmatch(values['node overhead last frame (ms)'])
    assert last is not None, values['node overhead last frame (ms)']
    parts = [float(last[part]) for part in OVERHEAD_PARTS]
    assert sum(parts) == pytest.approx(float(last['total']), abs=0.0025)  # 3 decimals each
    assert float(last['total']) == pytest.approx(frames[-1]['overhead'], abs=0.0005)
    assert float(last['frontend']) > 0
