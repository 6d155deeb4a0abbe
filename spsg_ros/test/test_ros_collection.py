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
Collection under ROS 2: a module-level skip must not hide the other test modules.

launch_testing's pytest plugin, active in every ROS 2 installation, imports each
test module while collecting; a ``pytest.importorskip`` at module level then
skipped the whole directory and ``colcon test`` reported success with zero
tests. This runs pytest, with the plugin, on a directory holding this package's
conftest.py, a module that skips at import and a module with one test.
"""

from pathlib import Path
import shutil
import subprocess
import sys

from conftest import ros_available
from conftest import ROS_REASON
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not ros_available(), reason=ROS_REASON)]

SKIPPING_MODULE = """import pytest
pytest.importorskip('no_such_module_anywhere')


def test_never_runs():
    pass
"""
PLAIN_MODULE = """def test_runs():
    assert 1 + 1 == 2
"""


def _run_pytest(folder):
    return subprocess.run(
        [sys.executable, '-m', 'pytest', str(folder), '-q', '-rs'],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
    )


def test_module_level_skip_stays_in_its_module(tmp_path):
    shutil.copy(Path(__file__).with_name('conftest.py'), tmp_path / 'conftest.py')
    (tmp_path / 'test_a_skips.py').write_text(SKIPPING_MODULE)
    (tmp_path / 'test_b_plain.py').write_text(PLAIN_MODULE)
    result = _run_pytest(tmp_path)
    assert '1 passed, 1 skipped' in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0


def test_plugin_is_what_hides_modules_without_the_guard(tmp_path):
    """Without this package's conftest the plugin skips everything (why the guard exists)."""
    (tmp_path / 'test_a_skips.py').write_text(SKIPPING_MODULE)
    (tmp_path / 'test_b_plain.py').write_text(PLAIN_MODULE)
    result = _run_pytest(tmp_path)
    assert 'passed' not in result.stdout, result.stdout
