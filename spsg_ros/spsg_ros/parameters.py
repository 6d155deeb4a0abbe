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
The one parameter schema: name, type, default, range or choices, description,
changeable at runtime or not, mono and/or stereo (no ROS imports).

Everything else is derived from :data:`PARAMETERS`: the node's declarations and
runtime validation (:mod:`spsg_ros.ros.frontend_node`), the frontend
configuration's defaults and ranges (:mod:`spsg_ros.frontend.config`; entries
with a ``config_path``), the shared command-line options and their ``--help``
defaults (:mod:`spsg_ros.cli.common`), and the node parameter files
``config/<mode>.yaml`` (:func:`params_file_text`, ``spsg-ros params``), which the
replay and the Python ``Frontend`` also accept as their configuration.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

NODE_NAME = 'frontend_node'
# the node in any namespace (a plain 'frontend_node:' key misses a namespaced node)
PARAMS_FILE_KEY = '/**/' + NODE_NAME


@dataclass(frozen=True)
class ParameterSpec:
    """
    One node parameter.

    ``min_value``/``max_value`` bound numbers (and every element of an integer
    array); ``choices`` restrict strings; ``read_only`` parameters are fixed
    after start-up (topics, QoS, backend); ``config_path`` is the key path in
    the frontend configuration; ``empty_is_none`` maps ``''`` to ``None`` there;
    ``modes`` are the node modes the parameter applies to.
    """

    name: str
    default: Any
    description: str
    min_value: Optional[float] = None
    max_value: Optional[float] = None
    choices: Tuple[str, ...] = ()
    read_only: bool = False
    config_path: Optional[Tuple[str, ...]] = None
    empty_is_none: bool = False
    modes: Tuple[str, ...] = ('mono', 'stereo')

    @property
    def runtime(self) -> bool:
        """Whether the node applies a change while running."""
        return not self.read_only

    @property
    def kind(self) -> str:
        """One of bool, integer, double, string, integer_array."""
        value = self.default
        if isinstance(value, bool):
            return 'bool'
        if isinstance(value, int):
            return 'integer'
        if isinstance(value, float):
            return 'double'
        if isinstance(value, str):
            return 'string'
        if (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            return 'integer_array'
        raise TypeError(f'parameter {self.name}: unsupported default {value!r}')

    def constraints(self) -> str:
        """Human-readable constraints for the ParameterDescriptor."""
        parts = []
        if self.choices:
            parts.append('one of: ' + ', '.join(self.choices))
        if self.min_value is not None or self.max_value is not None:
            parts.append(f'range [{self.min_value}, {self.max_value}]')
        if self.read_only:
            parts.append('read-only after start-up')
        return '; '.join(parts)


def _p(name, default, description, **kwargs) -> ParameterSpec:
    return ParameterSpec(name, default, description, **kwargs)


MODES = ('mono', 'stereo')
MONO, STEREO = ('mono',), ('stereo',)
INPUT_QOS = ('reliable', 'sensor_data', 'best_effort')
MATCHERS = ('superglue', 'lightglue', 'nn')
OUTPUT_QOS = ('reliable', 'best_effort')

PARAMETERS: Tuple[ParameterSpec, ...] = (
    # --- inputs ---------------------------------------------------------------
    _p(
        'mode',
        'mono',
        'mono: one camera; stereo: synchronised left/right pairs',
        choices=MODES,
        read_only=True,
    ),
    _p(
        'image_topic',
        'image_raw',
        'mono image topic (sensor_msgs/Image)',
        read_only=True,
        modes=MONO,
    ),
    _p(
        'camera_info_topic',
        'camera_info',
        'mono camera info topic (sensor_msgs/CameraInfo)',
        read_only=True,
        modes=MONO,
    ),
    _p(
        'left_image_topic',
        'left/image_raw',
        'stereo left image topic',
        read_only=True,
        modes=STEREO,
    ),
    _p(
        'left_camera_info_topic',
        'left/camera_info',
        'stereo left camera info topic',
        read_only=True,
        modes=STEREO,
    ),
    _p(
        'right_image_topic',
        'right/image_raw',
        'stereo right image topic',
        read_only=True,
        modes=STEREO,
    ),
    _p(
        'right_camera_info_topic',
        'right/camera_info',
        'stereo right camera info topic (its P gives the baseline)',
        read_only=True,
        modes=STEREO,
    ),
    _p(
        'sync_queue_size',
        10,
        'stereo: messages per topic kept by the approximate time synchroniser',
        min_value=1,
        max_value=1000,
        read_only=True,
        modes=STEREO,
    ),
    _p(
        'sync_slop',
        0.02,
        'stereo: largest stamp difference (s) of a left/right pair',
        min_value=0.0,
        max_value=1.0,
        read_only=True,
        modes=STEREO,
    ),
    _p(
        'input_qos',
        'reliable',
        'QoS of the image and camera_info subscriptions: reliable '
        '(keep last input_depth; loses no image from a reliable publisher, receives nothing '
        'from a best-effort one), sensor_data (best effort, depth 5: any publisher, may lose '
        'images in transport) or best_effort (best effort, keep last input_depth)',
        choices=INPUT_QOS,
        read_only=True,
    ),
    _p(
        'input_depth',
        10,
        'history depth of the image subscriptions (reliable and best_effort input_qos)',
        min_value=1,
        max_value=100,
        read_only=True,
    ),
    _p(
        'output_qos',
        'reliable',
        'QoS reliability of the published topics',
        choices=OUTPUT_QOS,
        read_only=True,
    ),
    _p(
        'output_depth',
        10,
        'history depth of the published topics',
        min_value=1,
        max_value=1000,
        read_only=True,
    ),
    # --- outputs --------------------------------------------------------------
    _p(
        'odom_frame_id',
        'odom',
        'frame of the accumulated odometry and path (the first camera pose, optical axes)',
    ),
    _p('odom_child_frame_id', '', 'child frame of the odometry and TF; empty: the image frame id'),
    _p(
        'publish_tf',
        False,
        'broadcast odom_frame_id -> child frame on TF (off when the '
        'camera frame already has a parent in the TF tree)',
    ),
    _p(
        'path_max_length',
        1000,
        'poses kept in the published trajectory path (0: no path)',
        min_value=0,
        max_value=100000,
    ),
    _p(
        'matches_image_max_width',
        1600,
        'matches_image is scaled down to this width '
        '(0: full size); drawn only while someone subscribes',
        min_value=0,
        max_value=16384,
    ),
    _p(
        'latency_window',
        200,
        'frames in the latency percentiles of the diagnostics',
        min_value=10,
        max_value=100000,
        read_only=True,
    ),
    # --- backend (fixed after start-up) -------------------------------------------------
    _p(
        'backend',
        'auto',
        'inference backend: auto (the fastest installed: ascend, then '
        'onnxruntime, openvino, torch), torch (the bit-exact reference), onnxruntime, '
        'openvino or ascend',
        read_only=True,
        config_path=('backend', 'name'),
    ),
    _p(
        'device',
        'cpu',
        'backend device, e.g. cpu, cuda:0, npu:0',
        read_only=True,
        config_path=('backend', 'device'),
    ),
    _p(
        'num_threads',
        0,
        'CPU threads of the inference runtime (torch intra-op threads, onnxruntime '
        'intra_op_num_threads, OpenVINO INFERENCE_NUM_THREADS; ignored by ascend); 0: the '
        'cores available to this process (its CPU affinity, capped by a cgroup CPU quota such '
        'as /sys/fs/cgroup/cpu.max), never more',
        min_value=0,
        max_value=256,
        read_only=True,
        config_path=('backend', 'num_threads'),
    ),
    _p(
        'superpoint_weights',
        'superpoint',
        'SuperPoint weights: a path or the upstream name superpoint',
        read_only=True,
        config_path=('backend', 'superpoint_weights'),
    ),
    _p(
        'superglue_weights',
        'indoor',
        'SuperGlue weights: a path, indoor or outdoor',
        read_only=True,
        config_path=('backend', 'superglue_weights'),
    ),
    _p(
        'lightglue_weights',
        'lightglue',
        'LightGlue weights (matcher lightglue): a path, or lightglue (= superpoint_lightglue, '
        'for SuperPoint features) in weights_dir; get them with spsg-ros models download '
        'lightglue',
        read_only=True,
        config_path=('lightglue', 'weights'),
    ),
    _p(
        'weights_dir',
        '',
        'folder of the upstream weights (empty: spsg_ros/models or $SPSG_ROS_WEIGHTS_DIR)',
        read_only=True,
        config_path=('backend', 'weights_dir'),
        empty_is_none=True,
    ),
    # --- frontend (changeable at runtime; applied from the next frame) --------------
    _p(
        'max_keypoints',
        1024,
        'keep the best N SuperPoint keypoints (N >= 1; -1: all)',
        min_value=-1,
        max_value=100000,
        config_path=('superpoint', 'max_keypoints'),
    ),
    _p(
        'keypoint_threshold',
        0.005,
        'SuperPoint detection threshold',
        min_value=0.0,
        max_value=0.999,
        config_path=('superpoint', 'keypoint_threshold'),
    ),
    _p(
        'nms_radius',
        4,
        'SuperPoint non-maximum suppression radius (px; 0: no suppression, as upstream)',
        min_value=0,
        max_value=64,
        config_path=('superpoint', 'nms_radius'),
    ),
    _p(
        'remove_borders',
        4,
        'SuperPoint: drop keypoints this close to the border (px)',
        min_value=0,
        max_value=256,
        config_path=('superpoint', 'remove_borders'),
    ),
    # read-only: the backend loads SuperGlue only for the superglue matcher
    _p(
        'matcher',
        'superglue',
        'superglue, lightglue (adaptive depth and width), or nn (mutual nearest neighbour '
        'with ratio test)',
        choices=MATCHERS,
        read_only=True,
        config_path=('matcher',),
    ),
    _p(
        'match_threshold',
        0.2,
        'SuperGlue match confidence threshold',
        min_value=0.0,
        max_value=1.0,
        config_path=('superglue', 'match_threshold'),
    ),
    _p(
        'sinkhorn_iterations',
        100,
        'SuperGlue Sinkhorn iterations',
        min_value=0,
        max_value=1000,
        config_path=('superglue', 'sinkhorn_iterations'),
    ),
    _p(
        'depth_confidence',
        0.95,
        'LightGlue adaptive depth: stop after the layer at which this share of the points is '
        'confident (-1 or 0: run every layer)',
        min_value=-1.0,
        max_value=1.0,
        config_path=('lightglue', 'depth_confidence'),
    ),
    _p(
        'width_confidence',
        0.99,
        'LightGlue adaptive width: drop confident points whose matchability is below '
        '1 - width_confidence (-1 or 0: no pruning)',
        min_value=-1.0,
        max_value=1.0,
        config_path=('lightglue', 'width_confidence'),
    ),
    _p(
        'filter_threshold',
        0.1,
        'LightGlue match score threshold',
        min_value=0.0,
        max_value=1.0,
        config_path=('lightglue', 'filter_threshold'),
    ),
    _p(
        'nn_ratio',
        0.7,
        'nn matcher: Lowe ratio (best / second-best distance)',
        min_value=0.01,
        max_value=1.0,
        config_path=('nn', 'ratio'),
    ),
    _p(
        'pair_with',
        'previous',
        'match each frame with the previous frame or the current keyframe',
        choices=('previous', 'keyframe'),
        config_path=('pair_with',),
    ),
    _p(
        'keyframe_min_tracked',
        0.5,
        'keyframe pairing: new keyframe when the matched share of its keypoints falls below this',
        min_value=0.0,
        max_value=1.0,
        config_path=('keyframe_min_tracked',),
    ),
    _p(
        'resize',
        [-1],
        'network input size: [-1] keep, [N] longest side N, [W, H] exact '
        '(N, W, H > 0; results stay in input pixels)',
        min_value=-1,
        max_value=16384,
        config_path=('preprocess', 'resize'),
    ),
    _p(
        'max_image_side',
        1280,
        'with resize [-1]: a longer image side is downscaled to this for the networks '
        '(bounds time and memory; keypoints stay in input pixels); 0: never',
        min_value=0,
        max_value=16384,
        config_path=('preprocess', 'max_side'),
    ),
    _p(
        'clahe',
        False,
        'contrast-limited histogram equalisation before SuperPoint (low-contrast scenes)',
        config_path=('preprocess', 'clahe'),
    ),
    _p(
        'bit_depth',
        0,
        'significant bits of 16-bit images: 0 auto (values never above 4095 are read as '
        '12-bit, else 16-bit), 8..16 fixed (larger values clip)',
        min_value=0,
        max_value=16,
        config_path=('preprocess', 'bit_depth'),
    ),
    _p(
        'undistort',
        'points',
        'use distortion coefficients: none, points (undistort '
        'keypoints) or image (remap the image)',
        choices=('none', 'points', 'image'),
        config_path=('preprocess', 'undistort'),
    ),
    _p(
        'min_matches',
        8,
        'fewer matches: no relative pose (PnP RANSAC needs 6 points)',
        min_value=6,
        max_value=100000,
        config_path=('pose', 'min_matches'),
    ),
    _p(
        'ransac_threshold_px',
        1.0,
        'essential-matrix RANSAC threshold (px)',
        min_value=0.01,
        max_value=100.0,
        config_path=('pose', 'ransac_threshold_px'),
    ),
    _p(
        'pnp_threshold_px',
        2.0,
        'stereo PnP RANSAC reprojection threshold (px)',
        min_value=0.01,
        max_value=100.0,
        config_path=('pose', 'pnp_threshold_px'),
        modes=STEREO,
    ),
    _p(
        'min_parallax_px',
        0.5,
        'median rotation-compensated flow below this: degenerate motion, no mono pose (px)',
        min_value=0.0,
        max_value=100.0,
        config_path=('pose', 'min_parallax_px'),
    ),
    _p(
        'f_rej_th',
        5.0,
        'outlier metric: distance from the epipolar line (px)',
        min_value=0.01,
        max_value=100.0,
        config_path=('f_rej_th',),
    ),
)

PARAMETERS_BY_NAME: Dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}

# Headings of the parameter file, before the parameter they precede.
SECTIONS = {
    'mode': 'inputs',
    'odom_frame_id': 'outputs',
    'backend': 'backend (fixed after start-up)',
    'max_keypoints': 'frontend (changeable at runtime with ros2 param set; applied from '
    'the next frame)',
}
_FILE_TITLES = {
    'mono': [
        'Parameters of frontend_node for one camera (ros2 launch spsg_ros frontend.launch.py).'
    ],
    'stereo': [
        'Parameters of frontend_node for a rectified stereo pair',
        '(ros2 launch spsg_ros frontend.launch.py mode:=stereo).',
    ],
}


def defaults() -> Dict[str, Any]:
    """Name -> default value of every parameter."""
    return {
        spec.name: (list(spec.default) if isinstance(spec.default, list) else spec.default)
        for spec in PARAMETERS
    }


def plain_value(value: Any) -> Any:
    """Return ``value`` with arrays as lists (rclpy gives array.array for integer arrays)."""
    if isinstance(value, (array.array, tuple)):
        return list(value)
    return value


def validate_value(spec: ParameterSpec, value: Any) -> Optional[str]:
    """None when ``value`` suits ``spec``, else the reason it does not."""
    value = plain_value(value)
    kind = spec.kind
    if kind == 'bool':
        ok = isinstance(value, bool)
    elif kind == 'integer':
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == 'double':
        ok = isinstance(value, float)
    elif kind == 'string':
        ok = isinstance(value, str)
    else:
        ok = (
            isinstance(value, (list, tuple))
            and len(value) > 0
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
    if not ok:
        return f'{spec.name} = {value!r}: expected a {kind.replace("_", " ")} value'
    numbers = list(value) if kind == 'integer_array' else [value]
    if kind in ('integer', 'double', 'integer_array'):
        for number in numbers:
            if spec.min_value is not None and number < spec.min_value:
                return f'{spec.name} = {value!r}: below the minimum {spec.min_value}'
            if spec.max_value is not None and number > spec.max_value:
                return f'{spec.name} = {value!r}: above the maximum {spec.max_value}'
    if spec.choices and value not in spec.choices:
        return f'{spec.name} = {value!r}: expected one of {", ".join(spec.choices)}'
    return None


def frontend_config(values: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Build the (unvalidated) frontend configuration dict of parameter ``values``.

    Missing names take their defaults; parameters without a config path are ignored.
    """
    config: Dict[str, Any] = {}
    for spec in PARAMETERS:
        if spec.config_path is None:
            continue
        value = values.get(spec.name, spec.default)
        value = plain_value(value)
        if spec.empty_is_none and value == '':
            value = None
        section = config
        for key in spec.config_path[:-1]:
            section = section.setdefault(key, {})
        section[spec.config_path[-1]] = value
    return config


def for_mode(mode: str) -> Tuple[ParameterSpec, ...]:
    """The parameters of a node in ``mode`` (mono or stereo)."""
    if mode not in MODES:
        raise ValueError(f'mode {mode!r}: expected one of {", ".join(MODES)}')
    return tuple(spec for spec in PARAMETERS if mode in spec.modes)


def validate_values(values: Mapping[str, Any]) -> Optional[str]:
    """Check every known parameter in ``values`` against its type and range."""
    for name, value in values.items():
        spec = PARAMETERS_BY_NAME.get(name)
        if spec is None:
            continue
        reason = validate_value(spec, value)
        if reason:
            return reason
    return None


def frontend_defaults() -> Dict[str, Any]:
    """Nested frontend configuration of every parameter's default (its ``config_path``)."""
    return frontend_config({})


def flatten(tree: Mapping[str, Any], prefix: str = '') -> Dict[str, Any]:
    """ROS 2 parameter names (dot-joined) of a nested ``ros__parameters`` mapping."""
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def is_params_file_data(data: Any) -> bool:
    """Whether parsed YAML ``data`` is a ROS 2 parameter file (``node: ros__parameters:``)."""
    return isinstance(data, Mapping) and any(
        isinstance(section, Mapping) and 'ros__parameters' in section for section in data.values()
    )


def frontend_config_from_params(values: Mapping[str, Any], source: str = '') -> Dict[str, Any]:
    """Frontend configuration of node parameter ``values`` (node-only ones are skipped).

    Unknown names and bad values raise ValueError naming the parameter.
    """
    unknown = sorted(set(values) - set(PARAMETERS_BY_NAME))
    if unknown:
        raise ValueError(
            f'{source}: unknown parameter(s) {", ".join(unknown)} (known: '
            f'{", ".join(spec.name for spec in PARAMETERS)})'
        )
    reason = validate_values(values)
    if reason:
        raise ValueError(f'{source}: {reason}')
    return frontend_config(values)


def read_params_file(path: Union[str, Path], node_name: str = NODE_NAME) -> Dict[str, Any]:
    """Parameters of ``node_name`` in a ROS 2 params file (``node: ros__parameters: ...``).

    Also accepts the wildcards ``/**`` and ``/**/<node>``; raises ValueError when the
    file holds no parameters for the node.
    """
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding='utf-8')) or {}
    return params_of_node(data, str(path), node_name)


def params_of_node(data: Any, source: str, node_name: str = NODE_NAME) -> Dict[str, Any]:
    """Flat parameters of ``node_name`` in parsed params-file ``data`` (later keys win)."""
    if not isinstance(data, Mapping):
        raise ValueError(f'{source}: expected a mapping of node names')
    merged: Dict[str, Any] = {}
    found = False
    for key in ('/**', '/**/' + node_name, node_name, '/' + node_name):
        section = data.get(key)
        if isinstance(section, Mapping) and isinstance(section.get('ros__parameters'), Mapping):
            merged.update(flatten(section['ros__parameters']))
            found = True
    if not found:
        raise ValueError(f'{source}: no "{PARAMS_FILE_KEY}: ros__parameters:" section')
    return merged


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_yaml_scalar(v) for v in value) + ']'
    return repr(value)


def _comment(text: str, indent: str, width: int = 92) -> List[str]:
    import textwrap

    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent + '# ',
        subsequent_indent=indent + '# ',
        break_on_hyphens=False,
    )


def params_file_text(mode: str) -> str:
    """Build the ROS 2 parameter file of ``mode`` (config/<mode>.yaml) from the table."""
    specs = for_mode(mode)  # raises for an unknown mode
    lines = ['# ' + line for line in _FILE_TITLES[mode]]
    lines += [
        '# Every parameter, its default and meaning; ranges are checked at start-up and '
        'on change.',
        '# Topic names are relative: they resolve in the node namespace (remap them or',
        '# set them here). The /**/ key applies the file to the node in any namespace.',
        f'{PARAMS_FILE_KEY}:',
        '  ros__parameters:',
    ]
    for spec in specs:
        if spec.name in SECTIONS:
            lines.append(f'    # --- {SECTIONS[spec.name]}')
        constraints = spec.constraints()
        text = spec.description + (f' ({constraints})' if constraints else '')
        lines += _comment(text, '    ')
        value = mode if spec.name == 'mode' else spec.default
        lines.append(f'    {spec.name}: {_yaml_scalar(value)}')
    return '\n'.join(lines) + '\n'
