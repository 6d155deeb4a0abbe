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

"""ament_flake8 over the ROS-facing files (needs a ROS 2 installation).

See test_copyright.py for why only the ROS node shell, the launch files and
the ROS tests are checked.
"""

from pathlib import Path

import pytest

ament_flake8_main = pytest.importorskip(
    'ament_flake8.main',
    reason='ament_flake8 not installed: it comes with a ROS 2 installation '
           '(source /opt/ros/<distro>/setup.bash)')

PACKAGE = Path(__file__).resolve().parents[1]
ROS_FILES = [PACKAGE / 'spsg_ros' / 'ros', PACKAGE / 'launch'] + sorted(
    PACKAGE / 'test' / name for name in (
        'test_copyright.py', 'test_flake8.py', 'test_pep257.py',
        'test_ros_launch_integration.py'))


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = ament_flake8_main.main_with_errors(argv=[str(p) for p in ROS_FILES])
    assert rc == 0, \
        'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
