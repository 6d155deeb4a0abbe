"""rosbags typestores holding the standard ROS 2 messages plus ours.

Our message definitions are the ``.msg`` files of the ``spsg_ros_msgs`` package,
read at runtime so bags written without ROS 2 carry exactly the types a ROS 2
build of ``spsg_ros_msgs`` generates. They are looked up, in order, in:

1. ``$SPSG_ROS_MSGS_DIR`` (a folder holding the ``*.msg`` files);
2. the source tree (``<repo>/spsg_ros_msgs/msg`` beside the ``spsg_ros`` package);
3. ``share/spsg_ros_msgs/msg`` under every prefix of ``$AMENT_PREFIX_PATH`` and
   under ``sys.prefix`` (where colcon / apt install them).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Union

MSG_PACKAGE = "spsg_ros_msgs"
MSG_DIR_ENV = "SPSG_ROS_MSGS_DIR"
#: rosbags store names accepted by :func:`get_spsg_typestore` besides ``Stores`` members
DISTROS = ("humble", "jazzy")


class MessageDefinitionsNotFound(FileNotFoundError):
    """No folder with the spsg_ros_msgs ``.msg`` files was found; the message lists
    the places searched and how to point at the files."""


def candidate_msg_dirs() -> list[Path]:
    """Every place :func:`find_msg_dir` looks, in order."""
    candidates: list[Path] = []
    env = os.environ.get(MSG_DIR_ENV)
    if env:
        candidates.append(Path(env))
    # spsg_ros/spsg_ros/bagio/typestore.py -> repository root is parents[3]
    candidates.append(Path(__file__).resolve().parents[3] / MSG_PACKAGE / "msg")
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    for prefix in prefixes:
        candidates.append(Path(prefix) / "share" / MSG_PACKAGE / "msg")
    return candidates


def find_msg_dir() -> Path:
    """The first folder holding ``*.msg`` files of spsg_ros_msgs."""
    searched = candidate_msg_dirs()
    for folder in searched:
        if folder.is_dir() and any(folder.glob("*.msg")):
            return folder
    listing = "\n  ".join(str(p) for p in searched)
    raise MessageDefinitionsNotFound(
        f"spsg_ros_msgs message definitions (*.msg) not found; searched:\n  {listing}\n"
        f"Set {MSG_DIR_ENV} to the spsg_ros_msgs/msg folder of the source tree, or source a "
        f"ROS 2 workspace where spsg_ros_msgs is installed."
    )


def message_definitions(msg_dir: Union[str, Path, None] = None) -> dict[str, str]:
    """``{'spsg_ros_msgs/msg/Name': definition text}`` for every ``.msg`` file."""
    folder = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    files = sorted(folder.glob("*.msg"))
    if not files:
        raise MessageDefinitionsNotFound(f"no *.msg files in {folder}")
    return {f"{MSG_PACKAGE}/msg/{path.stem}": path.read_text(encoding="utf-8") for path in files}


def register_spsg_types(typestore, msg_dir: Union[str, Path, None] = None) -> list[str]:
    """Register our messages in ``typestore``; returns their full type names."""
    from rosbags.typesys import get_types_from_msg

    types: dict = {}
    for name, text in message_definitions(msg_dir).items():
        types.update(get_types_from_msg(text, name))
    typestore.register(types)
    return sorted(types)


def _store_enum(distro):
    from rosbags.typesys import Stores

    if isinstance(distro, Stores):
        return distro
    key = str(distro).lower()
    by_name = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if key in by_name:
        return by_name[key]
    try:
        return Stores(key)
    except ValueError:
        raise ValueError(
            f"unknown ROS distribution '{distro}' (use one of {', '.join(DISTROS)} "
            f"or a rosbags Stores member)"
        ) from None


def get_spsg_typestore(distro="humble", msg_dir: Union[str, Path, None] = None):
    """A fresh rosbags typestore of ``distro`` (``'humble'``, ``'jazzy'`` or a
    ``rosbags.typesys.Stores`` member) with the spsg_ros_msgs types registered."""
    from rosbags.typesys import get_typestore

    typestore = get_typestore(_store_enum(distro))
    register_spsg_types(typestore, msg_dir)
    return typestore
