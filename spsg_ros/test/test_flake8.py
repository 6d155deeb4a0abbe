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

"""ament_flake8 over the ROS 2 style files (runs under ROS 2, see conftest.ros_style_files)."""

from conftest import ros_style_files
import pytest

try:
    from ament_flake8.main import main_with_errors
except ImportError:
    main_with_errors = None

pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(
        main_with_errors is None, reason='ament_flake8 not installed: it comes with ROS 2'
    ),
]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[str(p) for p in ros_style_files()])
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
