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
Start frontend_node (mono or stereo), optionally with RViz.

Examples::

    ros2 launch spsg_ros frontend.launch.py image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info
    ros2 launch spsg_ros frontend.launch.py mode:=stereo use_sim_time:=true rviz:=true

``params_file`` defaults to ``config/<mode>.yaml`` of the installed package. The
backend and topic arguments override the params file only when given (empty:
keep the file's value).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'spsg_ros'

# Launch arguments passed to the node as parameters of the same name when not empty.
OVERRIDE_ARGUMENTS = (
    (
        'backend',
        'inference backend (auto, torch, onnxruntime, openvino, ascend); empty: params file',
    ),
    ('image_topic', 'mono image topic; empty: params file'),
    ('camera_info_topic', 'mono camera_info topic; empty: params file'),
    ('left_image_topic', 'stereo left image topic; empty: params file'),
    ('left_camera_info_topic', 'stereo left camera_info topic; empty: params file'),
    ('right_image_topic', 'stereo right image topic; empty: params file'),
    ('right_camera_info_topic', 'stereo right camera_info topic; empty: params file'),
)


def _is_true(text):
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def _frontend_node(context):
    # resolved here, not with substitutions: the default file name depends on 'mode'
    mode = LaunchConfiguration('mode').perform(context)
    params_file = LaunchConfiguration('params_file').perform(context)
    if not params_file:
        params_file = os.path.join(get_package_share_directory(PACKAGE), 'config', f'{mode}.yaml')
    overrides = {
        'mode': mode,
        'use_sim_time': _is_true(LaunchConfiguration('use_sim_time').perform(context)),
    }
    for name, _ in OVERRIDE_ARGUMENTS:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    return [
        Node(
            package=PACKAGE,
            executable='frontend_node',
            name='frontend_node',
            namespace=LaunchConfiguration('namespace'),
            output='screen',
            emulate_tty=True,
            parameters=[params_file, overrides],
        )
    ]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            'mode',
            default_value='mono',
            choices=['mono', 'stereo'],
            description='mono: one camera; stereo: synchronised left/right pairs',
        ),
        DeclareLaunchArgument(
            'params_file',
            default_value='',
            description='ROS 2 parameters file of frontend_node (empty: config/<mode>.yaml)',
        ),
        DeclareLaunchArgument(
            'namespace',
            default_value='',
            description='namespace of the node: relative topic names resolve in it',
        ),
        DeclareLaunchArgument(
            'use_sim_time',
            default_value='false',
            choices=['true', 'false'],
            description='use /clock (true when replaying a bag with ros2 bag play --clock)',
        ),
        DeclareLaunchArgument(
            'rviz',
            default_value='false',
            choices=['true', 'false'],
            description='start RViz with the matches image and the trajectory',
        ),
    ]
    arguments += [
        DeclareLaunchArgument(name, default_value='', description=text)
        for name, text in OVERRIDE_ARGUMENTS
    ]
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=[
            '-d',
            PathJoinSubstitution([FindPackageShare(PACKAGE), 'rviz', 'frontend.rviz']),
        ],
        parameters=[
            {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}
        ],
        condition=IfCondition(LaunchConfiguration('rviz')),
    )
    return LaunchDescription(arguments + [OpaqueFunction(function=_frontend_node), rviz])
