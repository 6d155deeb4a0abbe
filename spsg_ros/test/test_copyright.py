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

"""ament_copyright over the ROS 2 style files (runs under ROS 2, see conftest.ros_style_files)."""

from conftest import ros_style_files
import pytest

try:
    from ament_copyright.main import main as copyright_main
except ImportError:
    copyright_main = None

pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(
        copyright_main is None, reason='ament_copyright not installed: it comes with ROS 2'
    ),
]


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    rc = copyright_main(argv=[str(p) for p in ros_style_files()])
    assert rc == 0, 'Found errors'
