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
Measure frontend_node's own overhead per frame under the real ROS 2.

The node runs in this process (rclpy, a MultiThreadedExecutor) next to a probe
node that publishes the shared image sequence (resized to --width x --height)
with camera_info over the real DDS, one frame at a time: each image is sent
after the previous one's FrontendStatus came back, so the keep-latest worker
never waits behind another frame. The node times every frame itself (see
``spsg_ros.ros.worker.OverheadStats``): from the image's arrival in its
subscription callback to the end of its last publish, minus the frontend's
processing, split into queueing, conversion (image decoding), message building
and publishing. Printed: median and p90 of each part, and the overhead as a
share of the frontend time (target: under 5 % on CPU).

Run it in a sourced workspace with a private ``ROS_DOMAIN_ID``::

    source ws/install/setup.bash
    ROS_DOMAIN_ID=17 python3 scripts/measure_node_overhead.py --frames 30 --json
"""

import argparse
import json
import os
from pathlib import Path
import sys
import threading
import time

import cv2
import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from spsg_ros.ros.frontend_node import FrontendNode
from spsg_ros.ros.worker import OVERHEAD_PARTS
from spsg_ros_msgs.msg import FrontendStatus

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = '/overhead_measurement'
# TUM freiburg1 intrinsics of the shared sequence (640 x 480)
FREIBURG_K = (517.3, 516.5, 318.6, 255.3)
BASE_NS = 1_700_000_000_000_000_000
PERIOD_NS = 33_000_000
TARGET_SHARE = 5.0


def shared_dir():
    """Return the shared data folder (SPSG_SHARED_DIR, else ../shared)."""
    env = os.environ.get('SPSG_SHARED_DIR')
    for candidate in ([Path(env)] if env else []) + [REPO_ROOT.parent / 'shared']:
        if (candidate / 'weights').is_dir() and (candidate / 'data').is_dir():
            return candidate
    raise SystemExit('shared data not found: set SPSG_SHARED_DIR to the folder with data/')


def load_images(folder, size):
    """Return the sequence's images (BGR) resized to ``size``."""
    paths = sorted(Path(folder).glob('*.png'))
    if not paths:
        raise SystemExit(f'no PNG images in {folder}')
    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f'cannot read {path}')
        images.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return images


def stamp(header, nanoseconds):
    header.stamp.sec, header.stamp.nanosec = divmod(int(nanoseconds), 1_000_000_000)
    header.frame_id = 'camera_optical'


def image_msg(image, nanoseconds, encoding):
    """Build a sensor_msgs/Image of a BGR ``image`` in ``encoding`` (mono8 or bgr8)."""
    if encoding == 'mono8':
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    msg = Image()
    stamp(msg.header, nanoseconds)
    msg.height, msg.width = image.shape[:2]
    msg.encoding = encoding
    msg.step = image.shape[1] * (1 if image.ndim == 2 else image.shape[2])
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def camera_info_msg(width, height, nanoseconds):
    """Build the freiburg pinhole camera_info scaled to ``width`` x ``height``."""
    fx, fy, cx, cy = FREIBURG_K
    sx, sy = width / 640.0, height / 480.0
    fx, fy, cx, cy = fx * sx, fy * sy, cx * sx, cy * sy
    msg = CameraInfo()
    stamp(msg.header, nanoseconds)
    msg.width, msg.height = width, height
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class Probe:
    """Publishes images with camera_info, waits for each frame's FrontendStatus."""

    def __init__(self):
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node = rclpy.create_node('overhead_probe', namespace=NAMESPACE)
        self.images = self.node.create_publisher(Image, 'image_raw', qos)
        self.infos = self.node.create_publisher(CameraInfo, 'camera_info', qos)
        self._statuses = {}
        self._arrived = threading.Condition()
        self.node.create_subscription(FrontendStatus, 'frontend_status', self._on_status, qos)

    def _on_status(self, msg):
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._arrived:
            self._statuses[key] = msg
            self._arrived.notify_all()

    def wait_until_connected(self, timeout_s):
        """Wait until the frontend subscribes to the images and publishes its status."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (
                self.images.get_subscription_count() > 0
                and self.infos.get_subscription_count() > 0
                and self.node.count_publishers(f'{NAMESPACE}/frontend_status') > 0
            ):
                time.sleep(0.5)  # the other side sees the match a moment later
                return
            time.sleep(0.05)
        raise SystemExit(f'the frontend did not connect within {timeout_s} s')

    def send(self, image, info, stamp_ns, timeout_s):
        """Publish one frame and return its FrontendStatus; SystemExit on timeout."""
        self.infos.publish(info)
        self.images.publish(image)
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while stamp_ns not in self._statuses:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SystemExit(f'no frontend_status for frame {stamp_ns} in {timeout_s} s')
                self._arrived.wait(remaining)
            return self._statuses.pop(stamp_ns)


def percentiles(values):
    """Return median and p90 of ``values``."""
    array_ = np.asarray(values, np.float64)
    return {'median': float(np.median(array_)), 'p90': float(np.percentile(array_, 90))}


def summarize(frames):
    """Return median/p90 per part, of the frontend and of the overhead's share."""
    names = ('frontend', 'overhead') + OVERHEAD_PARTS
    summary = {name: percentiles([frame[name] for frame in frames]) for name in names}
    shares = [100.0 * frame['overhead'] / frame['frontend'] for frame in frames]
    summary['share_percent'] = percentiles(shares)
    summary['share_of_medians_percent'] = (
        100.0 * summary['overhead']['median'] / summary['frontend']['median']
    )
    return summary


def node_arguments(options):
    """Return the --ros-args of the in-process frontend_node."""
    values = {
        'backend': options.backend,
        'weights_dir': str(options.weights_dir),
        'matcher': options.matcher,
        'max_keypoints': options.max_keypoints,
    }
    arguments = ['--ros-args', '-r', f'__ns:={NAMESPACE}']
    for name, value in values.items():
        arguments += ['-p', f'{name}:={value}']
    return arguments


def measure(options):
    """Run the node and the probe; return the per-frame times and the setup."""
    size = (options.width, options.height)
    images = load_images(options.data_dir, size)
    rclpy.init(args=node_arguments(options))
    executor = MultiThreadedExecutor(num_threads=2)
    frontend = probe = spinner = None
    try:
        frontend = FrontendNode()
        probe = Probe()
        executor.add_node(frontend)
        executor.add_node(probe.node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        probe.wait_until_connected(options.timeout)
        total = options.warmup + options.frames
        for index in range(total):
            if index == options.warmup:
                frontend.overhead.clear()  # warm-up frames load and compile lazily
            stamp_ns = BASE_NS + index * PERIOD_NS
            image = images[index % len(images)]
            status = probe.send(
                image_msg(image, stamp_ns, options.encoding),
                camera_info_msg(*size, stamp_ns),
                stamp_ns,
                options.timeout,
            )
            last = frontend.overhead.last()
            print(
                f'frame {index + 1}/{total}{" (warm-up)" if index < options.warmup else ""}: '
                f'frontend {last["frontend"]:.1f} ms, node overhead {last["overhead"]:.2f} ms '
                f'({status.num_keypoints} keypoints)',
                file=sys.stderr,
            )
        frames = frontend.overhead.frames()
        backend = frontend.backend_description
    finally:
        executor.shutdown()
        if probe is not None:
            probe.node.destroy_node()
        if frontend is not None:
            frontend.destroy_node()
        rclpy.try_shutdown()
        if spinner is not None:
            spinner.join(5.0)
    setup = {
        'size': list(size),
        'encoding': options.encoding,
        'frames': len(frames),
        'warmup': options.warmup,
        'matcher': options.matcher,
        'max_keypoints': options.max_keypoints,
        'backend': backend,
        'rmw': os.environ.get('RMW_IMPLEMENTATION', ''),
    }
    return frames, setup


def report(summary, setup):
    """Return the human-readable table."""
    lines = [
        f'frontend_node overhead, {setup["size"][0]}x{setup["size"][1]} {setup["encoding"]}, '
        f'{setup["frames"]} frames after {setup["warmup"]} warm-up, backend '
        f'{setup["backend"].get("backend", "?")}, matcher {setup["matcher"]}',
        f'{"time (ms)":<22}{"median":>10}{"p90":>10}',
    ]
    for name in ('frontend', 'overhead') + OVERHEAD_PARTS:
        label = name if name in ('frontend', 'overhead') else f'  {name}'
        lines.append(f'{label:<22}{summary[name]["median"]:>10.3f}{summary[name]["p90"]:>10.3f}')
    share = summary['share_percent']
    verdict = 'under' if share['median'] < TARGET_SHARE else 'OVER'
    lines.append(
        f'overhead / frontend: median {share["median"]:.2f} %, p90 {share["p90"]:.2f} % '
        f'({verdict} the {TARGET_SHARE:.0f} % target)'
    )
    return '\n'.join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=30, help='frames measured')
    parser.add_argument('--warmup', type=int, default=2, help='frames before measuring')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--encoding', choices=('bgr8', 'mono8'), default='bgr8')
    parser.add_argument('--backend', default='onnxruntime', help='frontend_node backend')
    parser.add_argument('--matcher', default='superglue', help='frontend_node matcher')
    parser.add_argument('--max-keypoints', type=int, default=1024)
    parser.add_argument('--weights-dir', type=Path, help='default: <shared>/weights')
    parser.add_argument('--data-dir', type=Path, help='default: <shared>/data/freiburg_sequence')
    parser.add_argument('--timeout', type=float, default=120.0, help='seconds per frame')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    options = parser.parse_args(argv)
    if options.frames < 1 or options.warmup < 0:
        parser.error('--frames must be at least 1 and --warmup at least 0')
    if options.weights_dir is None or options.data_dir is None:
        shared = shared_dir()
        options.weights_dir = options.weights_dir or shared / 'weights'
        options.data_dir = options.data_dir or shared / 'data' / 'freiburg_sequence'
    return options


def main(argv=None):
    """Measure and print the node's overhead; return the exit code."""
    options = parse_args(argv)
    frames, setup = measure(options)
    summary = summarize(frames)
    if options.json:
        print(json.dumps({'setup': setup, 'summary': summary, 'frames': frames}, indent=2))
    else:
        print(report(summary, setup))
    return 0


if __name__ == '__main__':
    sys.exit(main())
