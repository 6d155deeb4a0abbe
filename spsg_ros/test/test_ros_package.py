"""ROS package files checked without ROS 2: modules compile, parameters agree with the
config files and the launch file, RViz shows topics the node publishes, imports are
declared in package.xml."""

from __future__ import annotations

import ast
import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from spsg_ros import parameters as params
from spsg_ros.frontend.config import check_parameters

PKG = Path(__file__).resolve().parents[1]
ROS_MODULES = sorted((PKG / "spsg_ros" / "ros").glob("*.py"))
LAUNCH_FILES = sorted((PKG / "launch").glob("*.launch.py"))
NODE_FILE = PKG / "spsg_ros" / "ros" / "frontend_node.py"
LAUNCH_FILE = PKG / "launch" / "frontend.launch.py"


@pytest.mark.parametrize("path", ROS_MODULES + LAUNCH_FILES, ids=lambda p: p.name)
def test_modules_compile(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


def test_ros_free_modules_do_not_import_ros():
    """Only the node imports rclpy and friends; the worker stays ROS-free."""
    ros_modules = {
        "rclpy",
        "rcl_interfaces",
        "message_filters",
        "cv_bridge",
        "tf2_ros",
        "diagnostic_updater",
        "sensor_msgs",
        "diagnostic_msgs",
    }
    for path in ROS_MODULES:
        if path.name == "frontend_node.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                assert name.split(".")[0] not in ros_modules, f"{path.name} imports {name}"


# --- parameter table ------------------------------------------------------------


def test_parameter_table_is_consistent():
    names = [spec.name for spec in params.PARAMETERS]
    assert len(names) == len(set(names))
    for spec in params.PARAMETERS:
        assert re.match(r"^[a-z][a-z0-9_]*$", spec.name), spec.name
        assert spec.description.strip(), f"{spec.name} has no description"
        assert params.validate_value(spec, spec.default) is None, spec.name
        if spec.kind in ("integer", "double"):
            assert spec.min_value is not None and spec.max_value is not None, (
                f"{spec.name}: numeric parameters need a range"
            )
        if spec.choices:
            assert spec.default in spec.choices
    assert check_parameters(params.defaults()) is None


def test_parameter_defaults_match_frontend_defaults():
    from spsg_ros.frontend.config import load_config

    frontend_defaults = load_config(None)
    for spec in params.PARAMETERS:
        if spec.config_path is None:
            continue
        value = frontend_defaults
        for key in spec.config_path:
            value = value[key]
        expected = "" if (spec.empty_is_none and value is None) else value
        assert spec.default == expected, f"{spec.name}: {spec.default!r} != frontend {expected!r}"


def test_validate_value_rejects_bad_values():
    spec = params.PARAMETERS_BY_NAME
    assert "expected a integer" in params.validate_value(spec["max_keypoints"], 1.5)
    assert "expected a integer" in params.validate_value(spec["max_keypoints"], True)
    assert "below the minimum" in params.validate_value(spec["max_keypoints"], -2)
    assert "above the maximum" in params.validate_value(spec["match_threshold"], 1.5)
    assert "expected a double" in params.validate_value(spec["match_threshold"], 1)
    assert "one of mono, stereo" in params.validate_value(spec["mode"], "trinocular")
    assert "expected a bool" in params.validate_value(spec["publish_tf"], "yes")
    assert "below the minimum" in params.validate_value(spec["resize"], [640, -5])
    assert "expected a integer array" in params.validate_value(spec["resize"], [])
    assert params.validate_value(spec["resize"], [640, 480]) is None
    # rclpy hands integer arrays over as array.array('q')
    import array

    assert params.validate_value(spec["resize"], array.array("q", [640, 480])) is None
    assert params.frontend_config({"resize": array.array("q", [320])})["preprocess"]["resize"] == [
        320
    ]
    # the frontend's own rules apply on top of the ranges
    assert "resize" in check_parameters({"resize": [0]})
    assert check_parameters({"resize": [640]}) is None


def test_frontend_config_mapping():
    values = params.defaults()
    values.update(
        max_keypoints=500, weights_dir="", superglue_weights="outdoor", resize=[640, 480]
    )
    config = params.frontend_config(values)
    assert config["superpoint"]["max_keypoints"] == 500
    assert config["backend"]["weights_dir"] is None and config["backend"]["name"] == "auto"
    assert config["backend"]["superglue_weights"] == "outdoor"
    assert config["preprocess"]["resize"] == [640, 480]
    assert "mode" not in config and "odom_frame_id" not in config


# --- config files -----------------------------------------------------------------


@pytest.mark.parametrize("mode", params.MODES)
def test_config_files_hold_every_parameter(mode):
    path = PKG / "config" / f"{mode}.yaml"
    values = params.read_params_file(path)
    names = {spec.name for spec in params.for_mode(mode)}
    assert set(values) == names, (
        f"{path.name}: missing {names - set(values)}, unknown {set(values) - names}"
    )
    for name, value in values.items():
        spec = params.PARAMETERS_BY_NAME[name]
        assert params.validate_value(spec, value) is None, f"{path.name}: {name}"
        expected = mode if name == "mode" else spec.default
        assert value == expected, f"{path.name}: {name} = {value!r}, node default {expected!r}"
    assert check_parameters(values) is None


@pytest.mark.parametrize("mode", params.MODES)
def test_config_files_are_generated_from_the_table(mode):
    """config/<mode>.yaml is params_file_text(mode), byte for byte (regenerate on change)."""
    path = PKG / "config" / f"{mode}.yaml"
    assert path.read_text(encoding="utf-8") == params.params_file_text(mode), (
        f"{path.name} is out of date: regenerate it with parameters.params_file_text"
    )


def test_read_params_file_errors(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("other_node:\n  ros__parameters:\n    mode: mono\n")
    with pytest.raises(ValueError, match="no \"/\\*\\*/frontend_node: ros__parameters:\" section"):
        params.read_params_file(path)
    path.write_text("/**:\n  ros__parameters:\n    frontend:\n      depth: 3\n")
    assert params.read_params_file(path) == {"frontend.depth": 3}


# --- launch file (parsed, not imported) ---------------------------------------------


def _launch_arguments():
    tree = ast.parse(LAUNCH_FILE.read_text())
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            if isinstance(node.args[0], ast.Constant):
                kwargs = {k.arg: k.value for k in node.keywords}
                default = kwargs.get("default_value")
                declared[node.args[0].value] = (
                    default.value if isinstance(default, ast.Constant) else default,
                    ast.literal_eval(kwargs["choices"]) if "choices" in kwargs else None,
                )
    overrides = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "OVERRIDE_ARGUMENTS":
            overrides = [name for name, _ in ast.literal_eval(node.value)]
    return declared, overrides


def test_launch_arguments_match_parameters():
    declared, overrides = _launch_arguments()
    assert overrides, "OVERRIDE_ARGUMENTS not found"
    required = {
        "params_file",
        "mode",
        "backend",
        "use_sim_time",
        "rviz",
        "image_topic",
        "camera_info_topic",
        "left_image_topic",
        "left_camera_info_topic",
        "right_image_topic",
        "right_camera_info_topic",
    }
    assert required <= set(declared) | set(overrides)
    for name in overrides:
        assert name in params.PARAMETERS_BY_NAME, f"launch argument {name} is no node parameter"
    # mode is a declared argument with the node's default and choices
    default, choices = declared["mode"]
    assert default == params.PARAMETERS_BY_NAME["mode"].default
    assert tuple(choices) == params.MODES
    for mode in choices:  # params_file defaults to config/<mode>.yaml
        assert (PKG / "config" / f"{mode}.yaml").is_file()
    assert declared["use_sim_time"][0] == "false" and declared["rviz"][0] == "false"
    assert "'config'" in LAUNCH_FILE.read_text() and "frontend.rviz" in LAUNCH_FILE.read_text()
    assert (PKG / "rviz" / "frontend.rviz").is_file()


def test_node_declares_the_table():
    """The node declares exactly the table (one loop) and reads only names from it."""
    text = NODE_FILE.read_text()
    assert text.count("declare_parameter(") == 2  # mode first, then the mode's table
    assert "for spec in self._specs:" in text and "parameters.for_mode(mode)" in text
    used = set(re.findall(r"(?:values|settings|proposed)\[['\"](\w+)['\"]\]", text))
    used |= set(re.findall(r"'(\w+)'", text.split("_OUTPUT_SETTINGS = (")[1].split(")")[0]))
    assert used, "no parameter reads found"
    unknown = used - set(params.PARAMETERS_BY_NAME)
    assert not unknown, f"node reads undeclared parameters {unknown}"


# --- RViz and package.xml -------------------------------------------------------------


def _published_topics():
    """The mono outputs: the node creates one publisher per entry of the topic table."""
    from spsg_ros.messages.topics import output_topics

    assert "for topic in output_topics(self._mode)" in NODE_FILE.read_text()
    return {topic.name for topic in output_topics("mono")}


def test_rviz_shows_published_topics():
    import yaml

    config = yaml.safe_load((PKG / "rviz" / "frontend.rviz").read_text())
    manager = config["Visualization Manager"]
    shown = {d["Class"]: d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert shown["rviz_default_plugins/Image"] == "/matches_image"
    assert shown["rviz_default_plugins/Path"] == "/trajectory"
    assert shown["rviz_default_plugins/Odometry"] == "/odometry"
    published = _published_topics()
    for topic in shown.values():
        assert topic.lstrip("/") in published
    assert (
        manager["Global Options"]["Fixed Frame"]
        == params.PARAMETERS_BY_NAME["odom_frame_id"].default
    )


def test_ros_imports_are_declared_in_package_xml():
    xml = ET.parse(PKG / "package.xml").getroot()
    declared = {e.text for e in xml if e.tag in ("depend", "exec_depend")}
    imported = set()
    for path in [NODE_FILE] + LAUNCH_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported.add(node.module.split(".")[0])
    import sys

    ros_packages = imported - set(sys.stdlib_module_names) - {"numpy", "cv2", "spsg_ros"}
    assert {"rclpy", "message_filters", "diagnostic_updater", "launch_ros"} <= ros_packages
    missing = ros_packages - declared
    assert not missing, f"package.xml lacks exec_depend on {missing}"
    # lazily imported in the node
    for lazy in ("tf2_ros", "cv_bridge"):
        assert lazy in NODE_FILE.read_text() and lazy in declared


def test_ros_workflow_builds_both_distributions():
    import yaml

    workflow = yaml.safe_load((PKG.parent / ".github" / "workflows" / "ros.yml").read_text())
    job = workflow["jobs"]["colcon"]
    pairs = {(m["distro"], m["os"]) for m in job["strategy"]["matrix"]["include"]}
    assert pairs == {("humble", "ubuntu-22.04"), ("jazzy", "ubuntu-24.04")}
    uses = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
    assert (
        uses["ros-tooling/setup-ros"]["with"]["required-ros-distributions"]
        == "${{ matrix.distro }}"
    )
    ci = uses["ros-tooling/action-ros-ci"]["with"]
    assert ci["package-name"].split() == ["spsg_ros_msgs", "spsg_ros"]
    assert ci["target-ros2-distro"] == "${{ matrix.distro }}"
