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
Measure the frontend's wall and CPU time per frame alone and on a busy machine.

On a robot the frontend shares its cores with other nodes: thread pools whose
idle workers spin (busy-wait) burn cores the other nodes need, and far more of
them once those cores are contended. For each backend and idle-wait setting
this runs the real mono Frontend (SuperPoint + SuperGlue + relative pose) on
the shared image sequence, in a fresh Python process (OpenMP reads its wait
policy once, at start-up):

1. a few warm-up frames (model export/compilation, first allocations);
2. frames alone ("idle"), then frames while one competing process per
   available core spins a pure-Python loop ("busy"); alternated ``--rounds``
   times so that drift on a shared machine hits both phases alike.

Per frame it takes the wall time and the CPU time of the frontend process
(user + system of all its threads, ``getrusage(RUSAGE_SELF)``; the competing
processes are not counted). The table gives the mean per frame and the CPU
ratio busy / idle; the target for the default settings (no spinning) is at
most 1.3. The rows with spinning show what the default buys:

- torch, ``OMP_WAIT_POLICY=PASSIVE`` (what ``import spsg_ros`` sets), GNU
  OpenMP's own default (spin 300000 rounds, then sleep; emulated with
  ``GOMP_SPINCOUNT=300000``) and ``ACTIVE`` (spin);
- onnxruntime with intra-/inter-op spinning off (the default) and on.

The default rows (no spinning) take 2 x 3 frames per phase after 2 warm-up
frames; the spinning rows, whose contended frames are slow, one round of
``--spinning-frames`` (2). Run it from the repository root (a few minutes on an
otherwise quiet 2-core machine; ``--default-only`` skips the spinning rows)::

    .venv/bin/python scripts/measure_contention.py --json contention.json

(``SPSG_SHARED_DIR`` names the shared folder of weights and data, default
../shared.)
"""

import argparse
import json
import multiprocessing
import os
from pathlib import Path
import resource
import statistics
import subprocess
import sys
import time

# (label, backend, idle waiting, environment, backend options)
SETTINGS = {
    'torch': [
        ('torch', 'passive (default)', {'OMP_WAIT_POLICY': 'PASSIVE'}, {}),
        (
            'torch',
            'GNU OpenMP default (spin 300k, then sleep)',
            {'OMP_WAIT_POLICY': 'PASSIVE', 'GOMP_SPINCOUNT': '300000'},
            {},
        ),
        ('torch', 'active (spin)', {'OMP_WAIT_POLICY': 'ACTIVE'}, {}),
    ],
    'onnxruntime': [
        ('onnxruntime', 'spinning off (default)', {}, {'spinning': False}),
        ('onnxruntime', 'spinning on', {}, {'spinning': True}),
    ],
    'openvino': [
        ('openvino', 'oneTBB (not configurable)', {}, {}),
    ],
}
# freiburg3 colour camera (TUM RGB-D calibration): the shared sequence's camera
CAMERA = {'fx': 535.4, 'fy': 539.2, 'cx': 320.1, 'cy': 247.6}
FRAME_SIZE = (640, 480)  # width, height
TARGET_RATIO = 1.3


def log(message):
    print(f'[measure_contention] {message}', file=sys.stderr, flush=True)


def cpu_seconds():
    """User + system CPU time of this process, all its threads (not its children)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def burn():
    """Keep one core busy until terminated (a competing node)."""
    count = 0
    while True:
        count += 1


class Competitors:
    """One spinning process per core while in the ``with`` block."""

    def __init__(self, count):
        self.count = count
        self.processes = []

    def __enter__(self):
        context = multiprocessing.get_context('spawn')  # no copy of the frontend's threads
        self.processes = [context.Process(target=burn, daemon=True) for _ in range(self.count)]
        for process in self.processes:
            process.start()
        time.sleep(1.0)  # interpreters up and spinning
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join()


def load_frames(data_dir):
    import cv2
    import numpy as np

    paths = sorted(Path(data_dir).glob('*.png'))
    if len(paths) < 2:
        raise SystemExit(f'{data_dir}: needs at least two .png frames')
    frames = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SystemExit(f'{path}: not a readable image')
        if image.shape[::-1] != FRAME_SIZE:
            image = cv2.resize(image, FRAME_SIZE, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(image))
    return frames


def run_worker(spec):
    """Measure one setting in this process; print its result as one JSON line."""
    # spsg_ros is imported before torch: it sets OMP_WAIT_POLICY unless the environment has it
    from spsg_ros.backends.base import available_cores
    from spsg_ros.frontend.pipeline import Frontend
    from spsg_ros.frontend.types import Frame

    frames = load_frames(spec['data_dir'])
    options = dict(spec['options'])
    config = {
        'backend': {
            'name': spec['backend'],
            'num_threads': spec['num_threads'],
            'superpoint_weights': spec['superpoint_weights'],
            'superglue_weights': spec['superglue_weights'],
            'options': options,
        },
        'superpoint': {'max_keypoints': spec['max_keypoints']},
        'camera': CAMERA,
    }
    label = f"{spec['backend']}, {spec['waiting']}"
    index = 0

    def run_frames(count, phase):
        nonlocal index
        walls, cpus = [], []
        for _ in range(count):
            frame = Frame(frames[index % len(frames)], stamp_ns=(index + 1) * 10**8)
            index += 1
            wall0, cpu0 = time.perf_counter(), cpu_seconds()
            result = frontend.process(frame)
            walls.append(time.perf_counter() - wall0)
            cpus.append(cpu_seconds() - cpu0)
            if not result.ok and index > 1:
                log(f'{label}: frame {index}: {result.status}')
        log(
            f'{label}: {phase}: {count} frames, wall {1e3 * statistics.mean(walls):.0f} ms, '
            f'CPU {1e3 * statistics.mean(cpus):.0f} ms per frame'
        )
        return walls, cpus

    with Frontend(config) as frontend:
        describe = frontend.backend.describe()
        log(f'{label}: backend {json.dumps(describe.get("threads"))}')
        run_frames(spec['warmup'], 'warm-up')
        phases = {'idle': ([], []), 'busy': ([], [])}
        cores = available_cores()
        for round_index in range(spec['rounds']):
            walls, cpus = run_frames(spec['frames'], f'round {round_index + 1} idle')
            phases['idle'][0].extend(walls)
            phases['idle'][1].extend(cpus)
            with Competitors(cores):
                walls, cpus = run_frames(
                    spec['frames'], f'round {round_index + 1} busy ({cores} spinning processes)'
                )
            phases['busy'][0].extend(walls)
            phases['busy'][1].extend(cpus)
    threads = describe.get('threads') or {}
    result = {
        'backend': spec['backend'],
        'waiting': spec['waiting'],
        'environment': spec['environment'],
        'options': spec['options'],
        'threads': threads.get('intra_op', threads.get('inference_num_threads')),
        'describe_threads': threads,
        'cores': cores,
    }
    for phase, (walls, cpus) in phases.items():
        result[phase] = {
            'frames': len(walls),
            'wall_ms_mean': 1e3 * statistics.mean(walls),
            'wall_ms_median': 1e3 * statistics.median(walls),
            'cpu_ms_mean': 1e3 * statistics.mean(cpus),
            'cpu_ms_median': 1e3 * statistics.median(cpus),
        }
    result['cpu_ratio'] = result['busy']['cpu_ms_mean'] / result['idle']['cpu_ms_mean']
    print(json.dumps(result), flush=True)


def table(results):
    lines = [
        '| backend | idle waiting | threads | wall ms/frame alone | CPU ms/frame alone '
        '| wall ms/frame busy | CPU ms/frame busy | CPU busy / alone |',
        '|---|---|---:|---:|---:|---:|---:|---:|',
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['waiting']} | {r['threads']} "
            f"| {r['idle']['wall_ms_mean']:.0f} | {r['idle']['cpu_ms_mean']:.0f} "
            f"| {r['busy']['wall_ms_mean']:.0f} | {r['busy']['cpu_ms_mean']:.0f} "
            f"| {r['cpu_ratio']:.2f} |"
        )
    return '\n'.join(lines)


def parse_args(argv=None):
    default_shared = Path(__file__).resolve().parents[2] / 'shared'
    shared = Path(os.environ.get('SPSG_SHARED_DIR', default_shared))
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument(
        '--backends',
        default='torch,onnxruntime',
        help='comma-separated, of: ' + ', '.join(SETTINGS) + ' (default: %(default)s)',
    )
    parser.add_argument(
        '--default-only',
        action='store_true',
        help='only the default idle-wait setting of each backend (no spinning rows)',
    )
    parser.add_argument('--frames', type=int, default=3, help='frames per phase and round')
    parser.add_argument('--rounds', type=int, default=2, help='idle/busy alternations')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up frames')
    parser.add_argument(
        '--spinning-frames',
        type=int,
        default=2,
        help='frames per phase of the spinning rows, one round (spinning workers make '
        'contended frames slow; default: %(default)s)',
    )
    parser.add_argument(
        '--num-threads', type=int, default=0, help='backend threads (0: the available cores)'
    )
    parser.add_argument(
        '--max-keypoints', type=int, default=512, help='SuperPoint keypoints (default: 512)'
    )
    parser.add_argument('--data-dir', default=str(shared / 'data' / 'freiburg_sequence'))
    parser.add_argument(
        '--superpoint-weights', default=str(shared / 'weights' / 'superpoint_seed_ir.pth')
    )
    parser.add_argument(
        '--superglue-weights', default=str(shared / 'weights' / 'superglue_random_seed0.pth')
    )
    parser.add_argument('--json', default=None, metavar='PATH', help='also write the results')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ('frames', 'rounds', 'spinning_frames'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.warmup < 0 or args.num_threads < 0:
        parser.error('--warmup and --num-threads must be >= 0')
    unknown = [b for b in args.backends.split(',') if b not in SETTINGS]
    if unknown:
        parser.error(f'unknown backend(s) {", ".join(unknown)}: choose from {", ".join(SETTINGS)}')
    for name in ('data_dir', 'superpoint_weights', 'superglue_weights'):
        if args.worker is None and not Path(getattr(args, name)).exists():
            parser.error(f'{getattr(args, name)} not found (set SPSG_SHARED_DIR or --{name})')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(json.loads(args.worker))
        return 0
    results = []
    for backend in args.backends.split(','):
        settings = SETTINGS[backend][:1] if args.default_only else SETTINGS[backend]
        for position, (name, waiting, environment, options) in enumerate(settings):
            spinning = position > 0  # the first setting of each backend is its default
            spec = {
                'backend': name,
                'waiting': waiting,
                'environment': environment,
                'options': options,
                'num_threads': args.num_threads,
                'frames': args.spinning_frames if spinning else args.frames,
                'rounds': 1 if spinning else args.rounds,
                'warmup': min(args.warmup, 1) if spinning else args.warmup,
                'max_keypoints': args.max_keypoints,
                'data_dir': args.data_dir,
                'superpoint_weights': args.superpoint_weights,
                'superglue_weights': args.superglue_weights,
            }
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')
            }
            env.update(environment)
            log(f'{name}, {waiting}: starting a fresh process')
            started = time.perf_counter()
            worker = subprocess.run(
                [sys.executable, __file__, '--worker', json.dumps(spec)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            if worker.returncode != 0:
                log(f'{name}, {waiting}: failed (exit {worker.returncode}), see above')
                return 1
            results.append(json.loads(worker.stdout.strip().splitlines()[-1]))
            log(f'{name}, {waiting}: done in {time.perf_counter() - started:.0f} s')
    text = table(results)
    print(text)
    defaults = [r for r in results if 'default' in r['waiting'] and 'GNU' not in r['waiting']]
    over = [r for r in defaults if r['cpu_ratio'] > TARGET_RATIO]
    print(
        f'\nDefault settings within {TARGET_RATIO}x: '
        + ('yes' if not over else 'no (' + ', '.join(r['backend'] for r in over) + ')')
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({'target_ratio': TARGET_RATIO, 'results': results}, indent=2) + '\n'
        )
        log(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
