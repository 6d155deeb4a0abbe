#!/usr/bin/env python3
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
Measure how many camera images the real frontend_node receives over the real DDS.

For every subscriber setting (the node's ``input_qos`` / ``input_depth``) this
starts ``ros2 run spsg_ros frontend_node`` as a subprocess, once in mono and
once in stereo mode, waits until it subscribes, publishes streams of textured
images (with camera_info and increasing stamps) at fixed rates with a reliable
and a best-effort publisher, and compares the number published with the
node's ``frames received`` diagnostic (images, or synchronised stereo pairs,
handed to its worker). The node's keep-latest worker drops frames by design;
that is not counted here, only what reaches its subscription callbacks.

A reliable subscription and a best-effort publisher are incompatible in DDS:
nothing is delivered, and the table says ``incompatible``.

Run it in a sourced workspace with a private ``ROS_DOMAIN_ID``::

    source ws/install/setup.bash
    ROS_DOMAIN_ID=17 python3 scripts/measure_transport.py --out table.md
"""

import argparse
import array
import datetime
import glob
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_check_compatible
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSCompatibility
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.utilities import get_rmw_implementation_identifier
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMESPACE = '/transport_probe'
NODE_NAME = 'frontend_node'
DIAGNOSTIC_NAME = f'{NODE_NAME}: frontend'
PUBLISHER_DEPTH = 10
PUBLISHER_RELIABILITIES = ('reliable', 'best_effort')

SENSOR_DATA = ('sensor_data (best effort, depth 5)', 'sensor_data', 5)


def subscribers(depths):
    """(label, input_qos, input_depth) per node setting; sensor_data has a fixed depth of 5."""
    return tuple((f'reliable, depth {d}', 'reliable', d) for d in depths) + (SENSOR_DATA,)


class Stream:
    """One image stream: size, encoding, rate, number of frames, mono or stereo."""

    def __init__(self, width, height, encoding, rate, frames, stereo=False):
        self.width = width
        self.height = height
        self.encoding = encoding
        self.rate = rate
        self.frames = frames
        self.stereo = stereo

    @property
    def mode(self):
        """Node mode that receives this stream."""
        return 'stereo' if self.stereo else 'mono'

    def label(self, reliability):
        """Row label of the table."""
        kind = 'stereo ' if self.stereo else ''
        return (
            f'{self.width}x{self.height} {kind}{self.encoding} {self.rate:g} Hz, {reliability} pub'
        )


def make_streams(scale, quick, modes=('mono', 'stereo')):
    """Streams to measure (of the node ``modes``); ``scale`` multiplies the frame counts."""

    def count(n):
        return max(2, int(round(n * scale)))

    if quick:
        streams = [
            Stream(640, 480, 'mono8', 15, count(45)),
            Stream(1280, 720, 'bgr8', 5, count(20), stereo=True),
        ]
    else:
        streams = [
            Stream(640, 480, encoding, rate, count(frames))
            for encoding in ('mono8', 'bgr8')
            for rate, frames in ((1, 10), (5, 30), (15, 45))
        ]
        streams.append(Stream(1280, 720, 'bgr8', 5, count(20), stereo=True))
    return [stream for stream in streams if stream.mode in modes]


def publisher_qos(reliability):
    """Return the QoS of the probe's image and camera_info publishers."""
    policy = (
        ReliabilityPolicy.RELIABLE if reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(depth=PUBLISHER_DEPTH, reliability=policy)


def subscriber_qos(input_qos, input_depth):
    """Return the QoS the node subscribes with (mirrors FrontendNode._input_qos)."""
    if input_qos == 'sensor_data':
        return qos_profile_sensor_data
    policy = (
        ReliabilityPolicy.RELIABLE if input_qos == 'reliable' else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(depth=input_depth, reliability=policy)


def compatible(reliability, input_qos, input_depth):
    """Whether DDS connects this publisher and subscription."""
    result, _ = qos_check_compatible(
        publisher_qos(reliability), subscriber_qos(input_qos, input_depth)
    )
    return result != QoSCompatibility.ERROR


# --- images ------------------------------------------------------------------


def load_pictures(image_dir, count=8):
    """Up to ``count`` BGR pictures from ``image_dir``, or random noise when there are none."""
    pictures = []
    try:
        import cv2

        for path in sorted(glob.glob(os.path.join(image_dir, '*.png')))[:count]:
            picture = cv2.imread(path, cv2.IMREAD_COLOR)
            if picture is not None:
                pictures.append(picture)
    except ImportError:
        pass
    if not pictures:
        rng = np.random.default_rng(0)
        pictures = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(count)]
    return pictures


def convert(picture, width, height, encoding, shift=0):
    """Resize a BGR picture, shift it left by ``shift`` pixels, convert to ``encoding``."""
    import cv2

    picture = cv2.resize(picture, (width + shift, height), interpolation=cv2.INTER_AREA)
    picture = np.ascontiguousarray(picture[:, shift:])
    if encoding == 'mono8':
        picture = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
    return picture


def image_msg(picture, encoding, frame_id):
    """Build a sensor_msgs/Image (stamp set at publication)."""
    msg = Image()
    msg.header.frame_id = frame_id
    msg.height, msg.width = picture.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(picture.strides[0])
    msg.data = array.array('B', picture.tobytes())
    return msg


def camera_info_msg(width, height, frame_id, baseline_m=0.0):
    """Pinhole camera_info of a rectified camera (right camera: P[3] = -fx * baseline)."""
    f = 525.0 * width / 640.0
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = width, height
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, cx, -f * baseline_m, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class StreamMessages:
    """Pre-built messages of one stream (converting 2.7 MB images is slow in Python)."""

    def __init__(self, stream, pictures):
        self.stream = stream
        w, h, enc = stream.width, stream.height, stream.encoding
        if stream.stereo:
            self.images = [
                (
                    image_msg(convert(p, w, h, enc), enc, 'left_camera'),
                    image_msg(convert(p, w, h, enc, shift=24), enc, 'right_camera'),
                )
                for p in pictures
            ]
            self.infos = (
                camera_info_msg(w, h, 'left_camera'),
                camera_info_msg(w, h, 'right_camera', baseline_m=0.1),
            )
        else:
            self.images = [(image_msg(convert(p, w, h, enc), enc, 'camera'),) for p in pictures]
            self.infos = (camera_info_msg(w, h, 'camera'),)


# --- the probe node ----------------------------------------------------------


class Probe:
    """A node that publishes the streams and reads the frontend's diagnostics."""

    def __init__(self):
        self.node = rclpy.create_node('transport_probe')
        self._lock = threading.Condition()
        self._diagnostics = None
        self._diagnostics_time = 0.0
        self.incompatible_events = 0
        self.node.create_subscription(
            DiagnosticArray, '/diagnostics', self._on_diagnostics, QoSProfile(depth=10)
        )
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self._executor.spin()
        except Exception:  # noqa: B902 - the executor stops at shutdown
            pass

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name == DIAGNOSTIC_NAME:
                with self._lock:
                    self._diagnostics = {item.key: item.value for item in status.values}
                    self._diagnostics_time = time.monotonic()
                    self._lock.notify_all()

    def fresh_diagnostics(self, timeout=10.0):
        """Wait for diagnostics of the frontend received after this call."""
        start = time.monotonic()
        with self._lock:
            while self._diagnostics_time <= start:
                left = start + timeout - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f'no {DIAGNOSTIC_NAME!r} diagnostics for {timeout:g} s')
                self._lock.wait(left)
            return dict(self._diagnostics)

    def _on_incompatible(self, event):
        with self._lock:
            self.incompatible_events += 1

    def publishers(self, topics, reliability):
        """Create (image, camera_info) publishers for each (image, info) topic pair."""
        qos = publisher_qos(reliability)
        callbacks = PublisherEventCallbacks(incompatible_qos=self._on_incompatible)
        return [
            (
                self.node.create_publisher(Image, image, qos, event_callbacks=callbacks),
                self.node.create_publisher(CameraInfo, info, qos, event_callbacks=callbacks),
            )
            for image, info in topics
        ]

    def destroy_publishers(self, publishers):
        """Destroy publishers made by :meth:`publishers`."""
        for pair in publishers:
            for publisher in pair:
                self.node.destroy_publisher(publisher)

    def has_subscriber(self, topic):
        """Whether the frontend node subscribes ``topic`` (any QoS)."""
        return any(
            info.node_name == NODE_NAME
            for info in self.node.get_subscriptions_info_by_topic(topic)
        )

    def publish(self, publishers, messages, stream):
        """Publish ``stream.frames`` images (pairs) at ``stream.rate``; return the count."""
        period = 1.0 / stream.rate
        start = time.monotonic()
        for i in range(stream.frames):
            delay = start + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = self.node.get_clock().now().to_msg()
            images = messages.images[i % len(messages.images)]
            for (image_pub, info_pub), image, info in zip(publishers, images, messages.infos):
                info.header.stamp = stamp
                image.header.stamp = stamp
                info_pub.publish(info)
                image_pub.publish(image)
        return stream.frames

    def close(self):
        """Stop spinning and destroy the node."""
        self._executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()


# --- the frontend node subprocess ---------------------------------------------


def topics_of(mode):
    """(image, camera_info) topics the node subscribes in ``mode``."""
    if mode == 'stereo':
        return [
            (f'{NAMESPACE}/left/image_raw', f'{NAMESPACE}/left/camera_info'),
            (f'{NAMESPACE}/right/image_raw', f'{NAMESPACE}/right/camera_info'),
        ]
    return [(f'{NAMESPACE}/image_raw', f'{NAMESPACE}/camera_info')]


class FrontendProcess:
    """``ros2 run spsg_ros frontend_node`` in its own process group."""

    def __init__(self, mode, input_qos, input_depth, weights_dir, log_file):
        topics = topics_of(mode)
        args = [
            '-p',
            f'mode:={mode}',
            '-p',
            f'input_qos:={input_qos}',
            '-p',
            f'input_depth:={input_depth}',
            '-p',
            f'weights_dir:={weights_dir}',
        ]
        if mode == 'stereo':
            args += [
                '-p',
                f'left_image_topic:={topics[0][0]}',
                '-p',
                f'left_camera_info_topic:={topics[0][1]}',
                '-p',
                f'right_image_topic:={topics[1][0]}',
                '-p',
                f'right_camera_info_topic:={topics[1][1]}',
            ]
        else:
            args += [
                '-p',
                f'image_topic:={topics[0][0]}',
                '-p',
                f'camera_info_topic:={topics[0][1]}',
            ]
        self.command = ['ros2', 'run', 'spsg_ros', 'frontend_node', '--ros-args'] + args
        log_file.write(f'\n===== {" ".join(self.command)}\n')
        log_file.flush()
        self.process = subprocess.Popen(
            self.command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def running(self):
        """Whether the process is still alive."""
        return self.process.poll() is None

    def stop(self, timeout=15.0):
        """SIGINT to the process group, then SIGTERM and SIGKILL if needed; return the code."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                print(f'  frontend_node did not stop after {sig.name}', flush=True)
        try:  # the node itself may outlive ros2 run: clean its group too
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.process.poll()


def wait_for_node(probe, frontend, mode, timeout):
    """Wait until the node subscribes its image topics and publishes diagnostics."""
    deadline = time.monotonic() + timeout
    images = [image for image, _ in topics_of(mode)]
    while not all(probe.has_subscriber(topic) for topic in images):
        if not frontend.running():
            raise RuntimeError('frontend_node exited during start-up (see the node log)')
        if time.monotonic() > deadline:
            raise TimeoutError(f'frontend_node did not subscribe {images} in {timeout:g} s')
        time.sleep(0.2)
    probe.fresh_diagnostics(timeout=max(5.0, deadline - time.monotonic()))


def wait_for_match(publishers, expect, timeout=5.0):
    """Wait until every publisher matches the node (compatible QoS only)."""
    if not expect:
        time.sleep(1.0)  # give the incompatible_qos events time to arrive
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() >= 1 for pair in publishers for p in pair):
            return True
        time.sleep(0.05)
    return False


# --- measurement --------------------------------------------------------------


class Result:
    """Published and received counts of one stream with one subscriber setting."""

    def __init__(
        self, published, received, compatible, incompatible_events, unpaired=None, matched=True
    ):
        self.published = published
        self.received = received
        self.compatible = compatible
        self.incompatible_events = incompatible_events
        self.unpaired = unpaired
        self.matched = matched

    def cell(self):
        """Table cell."""
        if not self.compatible and self.received == 0:
            return 'incompatible'
        text = f'{self.received}/{self.published}'
        if not self.compatible:
            text += ' (incompatible QoS, yet received)'
        if self.unpaired and any(self.unpaired):
            text += f' (unpaired L {self.unpaired[0]}, R {self.unpaired[1]})'
        if not self.matched:
            text += ' (no match before publishing)'
        return text


def counts(diagnostics, stereo):
    """'frames received' and, in stereo, the unpaired (left, right) counts."""
    received = int(diagnostics['frames received'])
    if not stereo:
        return received, None
    return received, (
        int(diagnostics.get('unpaired left images', 0)),
        int(diagnostics.get('unpaired right images', 0)),
    )


def measure_node(probe, subscriber, mode, streams, prepared, args, log_file, results):
    """Start the node for one subscriber setting and mode, measure its streams, stop it."""
    label, input_qos, input_depth = subscriber
    print(
        f'[{elapsed()}] start frontend_node: {mode}, input_qos {input_qos}, '
        f'input_depth {input_depth}',
        flush=True,
    )
    frontend = FrontendProcess(mode, input_qos, input_depth, args.weights_dir, log_file)
    try:
        started = time.monotonic()
        wait_for_node(probe, frontend, mode, args.startup_timeout)
        print(f'[{elapsed()}]   node ready after {time.monotonic() - started:.1f} s', flush=True)
        for reliability in PUBLISHER_RELIABILITIES:
            expect = compatible(reliability, input_qos, input_depth)
            publishers = probe.publishers(topics_of(mode), reliability)
            try:
                matched = wait_for_match(publishers, expect)
                for stream in streams:
                    results[(stream.label(reliability), label)] = measure_stream(
                        probe, publishers, prepared[id(stream)], expect, matched, args
                    )
            finally:
                probe.destroy_publishers(publishers)
    finally:
        code = frontend.stop()
        print(f'[{elapsed()}]   node stopped (exit code {code})', flush=True)


def measure_stream(probe, publishers, messages, expect, matched, args):
    """Publish one stream and count what the node received."""
    stream = messages.stream
    with probe._lock:
        events_before = probe.incompatible_events
    before, unpaired_before = counts(probe.fresh_diagnostics(), stream.stereo)
    published = probe.publish(publishers, messages, stream)
    time.sleep(args.settle)
    after, unpaired_after = counts(probe.fresh_diagnostics(), stream.stereo)
    unpaired = None
    if stream.stereo:
        unpaired = tuple(a - b for a, b in zip(unpaired_after, unpaired_before))
    with probe._lock:
        events = probe.incompatible_events - events_before
    result = Result(published, after - before, expect, events, unpaired, matched)
    print(
        f'[{elapsed()}]   {stream.label(publishers_reliability(publishers))}: {result.cell()}',
        flush=True,
    )
    return result


def publishers_reliability(publishers):
    """'reliable' or 'best_effort', from the first publisher's QoS."""
    qos = publishers[0][0].qos_profile
    return 'reliable' if qos.reliability == ReliabilityPolicy.RELIABLE else 'best_effort'


_START = time.monotonic()


def elapsed():
    """Time since the start, as m:ss."""
    seconds = int(time.monotonic() - _START)
    return f'{seconds // 60}:{seconds % 60:02d}'


def table(streams, results, settings):
    """Markdown table: one row per stream and publisher, one column per subscriber."""
    header = ['stream (size, encoding, rate, publisher)'] + [s[0] for s in settings]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for stream in streams:
        for reliability in PUBLISHER_RELIABILITIES:
            row = stream.label(reliability)
            cells = [
                results[(row, s[0])].cell() if (row, s[0]) in results else 'not run'
                for s in settings
            ]
            lines.append('| ' + ' | '.join([row] + cells) + ' |')
    return '\n'.join(lines)


def parse_args(argv):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--weights-dir',
        default=os.path.normpath(os.path.join(REPO, '..', 'shared', 'weights')),
        help='weights_dir of the node (default: ../shared/weights of the repo)',
    )
    parser.add_argument(
        '--image-dir',
        default=os.path.normpath(os.path.join(REPO, '..', 'shared', 'data', 'freiburg_sequence')),
        help='PNG pictures to publish (random noise when there are none)',
    )
    parser.add_argument(
        '--frames-scale',
        type=float,
        default=1.0,
        help='multiply the number of frames per stream (at least 2)',
    )
    parser.add_argument(
        '--settle',
        type=float,
        default=3.0,
        help='seconds to wait after each stream before reading diagnostics',
    )
    parser.add_argument(
        '--startup-timeout',
        type=float,
        default=180.0,
        help='seconds to wait for the node to subscribe',
    )
    parser.add_argument(
        '--quick',
        action='store_true',
        help='smoke run: one mono and the stereo stream, few frames',
    )
    parser.add_argument(
        '--modes', default='mono,stereo', help='node modes to measure (default: mono,stereo)'
    )
    parser.add_argument(
        '--reliable-depths',
        default='10,1',
        help='input_depth values of the reliable node settings (default: 10,1)',
    )
    parser.add_argument('--out', help='also write the markdown table to this file')
    parser.add_argument('--node-log', help='node output (default: a temporary file)')
    args = parser.parse_args(argv)
    if args.quick:
        args.frames_scale = min(args.frames_scale, 0.2)
        args.settle = min(args.settle, 2.0)
    return args


def main(argv=None):
    """Run all configurations, print the table, return the exit code."""
    args = parse_args(argv)
    streams = make_streams(args.frames_scale, args.quick, args.modes.split(','))
    settings = subscribers([int(d) for d in args.reliable_depths.split(',')])
    domain = os.environ.get('ROS_DOMAIN_ID', '0')
    if log_path := args.node_log:
        log_file = open(log_path, 'w')
    else:
        log_file = tempfile.NamedTemporaryFile(
            'w', prefix='measure_transport_', suffix='.log', delete=False
        )
        log_path = log_file.name
    load_before = os.getloadavg()
    print(f'ROS_DOMAIN_ID {domain}, node log {log_path}', flush=True)
    pictures = load_pictures(args.image_dir)
    prepared = {id(s): StreamMessages(s, pictures) for s in streams}
    rclpy.init(args=['--ros-args', '--disable-external-lib-logs'])
    probe = Probe()
    results = {}
    interrupted = False
    rmw = get_rmw_implementation_identifier()
    try:
        for subscriber in settings:
            for mode in ('mono', 'stereo'):
                selected = [s for s in streams if s.mode == mode]
                if selected:
                    measure_node(
                        probe, subscriber, mode, selected, prepared, args, log_file, results
                    )
    except KeyboardInterrupt:
        interrupted = True
        print('interrupted: partial table', flush=True)
    finally:
        probe.close()
        rclpy.try_shutdown()
        log_file.close()
    total = time.monotonic() - _START
    load_after = os.getloadavg()
    text = '\n'.join(
        [
            f'Transport of camera images to frontend_node ({rmw}, ROS_DOMAIN_ID {domain}, '
            f'{datetime.datetime.now().isoformat(timespec="seconds")}).',
            '',
            'Cells: frames received by the node (its `frames received` diagnostic: images, or '
            'synchronised stereo pairs, reaching its subscription callbacks) / frames published; '
            f'publishers keep last {PUBLISHER_DEPTH}; `incompatible`: best-effort publisher and '
            'reliable subscription, DDS delivers nothing.',
            '',
            table(streams, results, settings),
            '',
            f'Run time {total / 60:.1f} min on {os.cpu_count()} CPUs; load average '
            f'{load_before[0]:.2f} before, {load_after[0]:.2f} after. Command: '
            f'`{" ".join([os.path.basename(sys.argv[0])] + (argv or sys.argv[1:]))}`',
        ]
    )
    print()
    print(text, flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 130 if interrupted else 0


if __name__ == '__main__':
    sys.exit(main())
