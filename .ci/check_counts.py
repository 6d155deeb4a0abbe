"""Fail CI when fewer tests ran than expected (read from pytest / colcon JUnit XML files).

- the ROS-free run must have run tests, none failed;
- the colcon run must have run every test that pytest collects with ``-m ros`` in the
  same environment (listed in --ros-tests), none of them skipped, none failed.
"""

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MIN_ROS_FREE = 300  # the ROS-free suite had 406 tests when this floor was set
MIN_ROS = 8  # launch tests count one each (their unittest cases run inside)


def cases(path):
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                break
        yield case.get("classname", ""), case.get("name", ""), outcome


def totals(path):
    counts = {"passed": 0, "failure": 0, "error": 0, "skipped": 0}
    for _, _, outcome in cases(path):
        counts[outcome] += 1
    return counts


def key_of_nodeid(nodeid):
    """'test/test_a.py::TestB::test_c[x]' -> ('test_a', 'test_c[x]')."""
    parts = nodeid.strip().split("::")
    return Path(parts[0]).stem, parts[-1]


def key_of_case(classname, name):
    modules = [p for p in classname.split(".") if p.startswith("test_")]
    return (modules[0] if modules else classname), name


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ros-free", type=Path, required=True)
    parser.add_argument("--colcon", type=Path, required=True)
    parser.add_argument("--ros-tests", type=Path, required=True)
    args = parser.parse_args()
    problems = []

    free = totals(args.ros_free)
    print(
        f"ROS-free pytest (.venv): {free['passed']} passed, {free['failure']} failed, "
        f"{free['error']} errors, {free['skipped']} skipped"
    )
    if free["passed"] < MIN_ROS_FREE:
        problems.append(f"ROS-free suite ran {free['passed']} tests, expected >= {MIN_ROS_FREE}")
    if free["failure"] or free["error"]:
        problems.append("ROS-free suite has failures")

    colcon = totals(args.colcon)
    print(
        f"colcon test (ROS 2 Jazzy): {sum(colcon.values())} tests, {colcon['passed']} passed, "
        f"{colcon['failure']} failed, {colcon['error']} errors, {colcon['skipped']} skipped"
    )
    if colcon["failure"] or colcon["error"]:
        problems.append("colcon test has failures")
    expected = [line for line in args.ros_tests.read_text().splitlines() if "::" in line]
    outcomes = {key_of_case(c, n): o for c, n, o in cases(args.colcon)}
    ran = 0
    for nodeid in expected:
        outcome = outcomes.get(key_of_nodeid(nodeid))
        if outcome is None:
            problems.append(f"ROS test did not run under colcon: {nodeid}")
        elif outcome != "passed":
            problems.append(f"ROS test {outcome} under colcon: {nodeid}")
        else:
            ran += 1
    print(f"ROS tests (-m ros): {len(expected)} collected, {ran} passed under colcon")
    if len(expected) < MIN_ROS:
        problems.append(f"only {len(expected)} ROS tests collected, expected >= {MIN_ROS}")
    for problem in problems:
        print("FAIL:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
