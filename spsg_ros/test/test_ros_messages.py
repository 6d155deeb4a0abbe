"""spsg_ros_msgs: every .msg file follows the rosidl rules and parses with rosbags."""

from __future__ import annotations

import keyword
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from spsg_ros.bagio import typestore as ts_module

REPO = Path(__file__).resolve().parents[2]
MSG_PKG = REPO / "spsg_ros_msgs"
MSG_FILES = sorted((MSG_PKG / "msg").glob("*.msg"))

# rosidl_adapter/parser.py naming rules (ROS 2 Humble and Jazzy)
FIELD_NAME = re.compile(r"^(?!.*__)(?!.*_$)[a-z][a-z0-9_]*$")
CONSTANT_NAME = re.compile(r"^[A-Z]([A-Z0-9_]?[A-Z0-9]+)*$")
MESSAGE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
PRIMITIVES = {
    "bool",
    "byte",
    "char",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "string",
    "wstring",
}
# names the generated C++ / Python code cannot use as members
RESERVED = set(keyword.kwlist) | {
    "class",
    "struct",
    "union",
    "namespace",
    "template",
    "this",
    "operator",
    "new",
    "delete",
    "default",
    "switch",
    "case",
    "public",
    "private",
    "protected",
    "virtual",
    "const",
    "int",
    "float",
    "double",
    "char",
    "bool",
    "auto",
    "register",
}
EXPECTED = {"Keypoints", "Matches", "RelativePose", "FrontendStatus"}


def parse_msg(text: str):
    """(constants, fields, referenced packages) of a .msg text, as rosidl reads it."""
    constants, fields, packages = [], [], set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        type_token, rest = line.split(None, 1)
        base = re.sub(r"\[.*\]$", "", type_token)
        base = re.sub(r"<=\d+$", "", base)
        if "/" in base:
            package, name = base.split("/")
            packages.add(package)
            assert MESSAGE_NAME.match(name), f"line {number}: bad type name {base}"
        else:
            assert base in PRIMITIVES, f"line {number}: unknown primitive type {base}"
        if "=" in rest:
            name, value = (part.strip() for part in rest.split("=", 1))
            assert "/" not in base and "[" not in type_token, (
                f"line {number}: constant of {type_token}"
            )
            constants.append((name, value))
        else:
            fields.append(rest.split()[0])
    return constants, fields, packages


def test_message_set_is_complete():
    assert {p.stem for p in MSG_FILES} == EXPECTED


@pytest.mark.parametrize("path", MSG_FILES, ids=lambda p: p.stem)
def test_names_follow_rosidl_rules(path):
    assert MESSAGE_NAME.match(path.stem)
    constants, fields, _ = parse_msg(path.read_text())
    assert fields, "a message needs fields"
    assert fields[0] == "header", "every message starts with the input image's header"
    for name in fields:
        assert FIELD_NAME.match(name), f"{path.name}: field '{name}' is not lowercase snake_case"
        assert name not in RESERVED, f"{path.name}: field '{name}' is a C++/Python keyword"
    for name, _ in constants:
        assert CONSTANT_NAME.match(name), f"{path.name}: constant '{name}' is not UPPER_CASE"
    names = fields + [c[0] for c in constants]
    assert len(names) == len(set(names)), f"{path.name}: duplicate names"


def test_rule_checker_rejects_bad_names():
    """The checks above catch what rosidl rejects."""
    for bad in ("Score", "scores_", "key__points", "2d", "xY"):
        assert not FIELD_NAME.match(bad)
    for bad in ("Kind", "KIND_", "KIND__A", "_KIND"):
        assert not CONSTANT_NAME.match(bad)
    with pytest.raises(AssertionError, match="unknown primitive"):
        parse_msg("float16 x\n")


def test_dependencies_are_declared():
    """Every package the messages use is a build dependency of spsg_ros_msgs."""
    used = set()
    for path in MSG_FILES:
        used |= parse_msg(path.read_text())[2]
    assert used, "the messages use std_msgs / geometry_msgs"
    xml = ET.parse(MSG_PKG / "package.xml").getroot()
    depends = {e.text for e in xml if e.tag in ("depend", "build_depend")}
    cmake = (MSG_PKG / "CMakeLists.txt").read_text()
    dependencies = re.search(r"DEPENDENCIES([^)]*)\)", cmake).group(1).split()
    for package in used:
        assert package in depends, f"package.xml lacks <depend>{package}</depend>"
        assert package in dependencies, f"CMakeLists.txt DEPENDENCIES lacks {package}"
        assert f"find_package({package} REQUIRED)" in cmake
    assert xml.find("member_of_group").text == "rosidl_interface_packages"


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_messages_register_in_typestores(distro):
    pytest.importorskip("rosbags")
    store = ts_module.get_spsg_typestore(distro)
    for stem in EXPECTED:
        cls = store.types[f"spsg_ros_msgs/msg/{stem}"]
        _, fields, _ = parse_msg((MSG_PKG / "msg" / f"{stem}.msg").read_text())
        assert [
            f for f in cls.__dataclass_fields__ if not f.startswith("__") and f.islower()
        ] == fields
    matches = store.types["spsg_ros_msgs/msg/Matches"]
    assert (matches.KIND_TEMPORAL, matches.KIND_STEREO) == (0, 1)


def test_typestore_finds_definitions_from_env(tmp_path, monkeypatch):
    pytest.importorskip("rosbags")
    copy = tmp_path / "share" / "spsg_ros_msgs" / "msg"
    copy.mkdir(parents=True)
    for path in MSG_FILES:
        (copy / path.name).write_text(path.read_text())
    monkeypatch.setenv(ts_module.MSG_DIR_ENV, str(copy))
    assert ts_module.find_msg_dir() == copy
    monkeypatch.delenv(ts_module.MSG_DIR_ENV)
    # an ament prefix is searched too
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert copy in ts_module.candidate_msg_dirs()
    assert "spsg_ros_msgs/msg/Keypoints" in ts_module.message_definitions(copy)


def test_typestore_reports_missing_definitions(tmp_path, monkeypatch):
    monkeypatch.setenv(ts_module.MSG_DIR_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setattr(ts_module, "__file__", str(tmp_path / "a" / "b" / "c" / "typestore.py"))
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    monkeypatch.setattr(ts_module.sys, "prefix", str(tmp_path))
    with pytest.raises(ts_module.MessageDefinitionsNotFound) as info:
        ts_module.find_msg_dir()
    text = str(info.value)
    assert "nowhere" in text and ts_module.MSG_DIR_ENV in text
    with pytest.raises(ts_module.MessageDefinitionsNotFound, match="no \\*.msg files"):
        ts_module.message_definitions(tmp_path)
    with pytest.raises(ValueError, match="unknown ROS distribution 'rolling-x'"):
        ts_module._store_enum("rolling-x")
