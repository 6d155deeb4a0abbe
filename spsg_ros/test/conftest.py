"""Shared test fixtures: the ../shared folder, generated weights, synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makemodule(module_path, parent):
    """Keep a module-level skip local to its module.

    launch_testing's pytest plugin (registered in every ROS 2 installation)
    imports each test module in this hook; a ``pytest.importorskip`` at module
    level raised there skips the whole directory, and ``colcon test`` then
    reports success with no test run (an import error there fails the whole
    directory's collection). Handing the module to pytest's own collector
    instead records the skip or the error for that module alone.
    """
    try:
        return (yield)
    except (pytest.skip.Exception, Exception):  # an import error too: report it for this module
        return pytest.Module.from_parent(parent, path=module_path)


@pytest.fixture(autouse=True)
def _spsg_loggers_propagate():
    """Let caplog see the package's log records under ROS 2 too.

    ROS 2's launch (imported during collection by launch_testing's plugin) makes
    every logger created afterwards a LaunchLogger that does not propagate to the
    root logger, where caplog listens.
    """
    import logging

    previous = logging.getLoggerClass()
    logging.setLoggerClass(logging.Logger)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("spsg_ros") and isinstance(logger, logging.Logger):
            logger.propagate = True
    yield
    logging.setLoggerClass(previous)


def ros_available() -> bool:
    """True inside a sourced ROS 2 environment with this workspace built."""
    try:
        import launch_ros  # noqa: F401
        import launch_testing  # noqa: F401
        import rclpy  # noqa: F401
        from spsg_ros_msgs.msg import Keypoints  # noqa: F401
    except ImportError:
        return False
    return True


def ros_style_files() -> list[Path]:
    """Files in the ROS 2 style (ament copyright, flake8 at 99 columns, pep257): the node
    shell, the launch file, the ROS test modules and the ROS scripts."""
    package = REPO_ROOT / "spsg_ros"
    tests = sorted(
        p
        for p in (package / "test").glob("*.py")
        if p.name.startswith(
            (
                "test_ros_launch",
                "test_ros_live",
                "test_ros_node",
                "test_ros_overhead",
                "ros_testing",
                "test_ros_collection",
                "test_copyright",
                "test_flake8",
                "test_pep257",
            )
        )
    )
    return (
        [package / "spsg_ros" / "ros", package / "launch"]
        + tests
        + sorted((REPO_ROOT / "scripts").glob("*.py"))
    )


ROS_REASON = (
    "needs a ROS 2 environment: source /opt/ros/<distro>/setup.bash (or the one "
    "scripts/ros_env.sh builds) and the colcon workspace's install/setup.bash"
)


def _shared_dir() -> Path | None:
    env = os.environ.get("SPSG_SHARED_DIR")
    for candidate in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared"]:
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared_dir()
    if path is None:
        pytest.skip(
            "shared test data not found: set SPSG_SHARED_DIR to the folder holding "
            "fixtures/, weights/ and data/ (.ci/run sets it to ../shared)"
        )
    return path


@pytest.fixture(scope="session")
def shared_weights(shared_dir: Path) -> dict[str, Path]:
    paths = {
        "superpoint": shared_dir / "weights" / "superpoint_seed_ir.pth",
        "superglue": shared_dir / "weights" / "superglue_random_seed0.pth",
    }
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"shared weights missing: {', '.join(missing)}")
    return paths


@pytest.fixture(scope="session")
def shared_lightglue_weights(shared_dir: Path) -> Path:
    """The SuperPoint variant of LightGlue (256-D descriptors), randomly initialised: for
    plumbing; its match scores are low (a filter threshold near 0 gives matches)."""
    path = shared_dir / "weights" / "lightglue_superpoint_random_seed0.pth"
    if not path.is_file():
        pytest.skip(f"shared weights missing: {path}")
    return path


@pytest.fixture(scope="session")
def fixture_files(shared_dir: Path) -> dict[str, Path]:
    names = ["freiburg_pair_max1024", "freiburg_pair_unlimited_nms3", "freiburg_pair_320x240"]
    paths = {n: shared_dir / "fixtures" / f"{n}.npz" for n in names}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"reference fixtures missing: {', '.join(missing)}")
    return paths


@pytest.fixture(scope="session")
def freiburg_frames(shared_dir: Path) -> list[Path]:
    frames = sorted((shared_dir / "data" / "freiburg_sequence").glob("*.png"))
    if len(frames) < 2:
        pytest.skip("shared freiburg_sequence frames missing")
    return frames


@pytest.fixture(scope="session")
def generated_weights(tmp_path_factory) -> dict[str, Path]:
    """Randomly initialised SuperPoint and SuperGlue state dicts (seeded), saved as .pth."""
    torch = pytest.importorskip("torch")
    from spsg_ros.networks.superglue import SuperGlue
    from spsg_ros.networks.superpoint import SuperPoint

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    sp, sg = SuperPoint(), SuperGlue()
    with torch.no_grad():  # make the random SuperGlue's dustbin and norms non-trivial
        sg.bin_score.fill_(1.0)
    paths = {
        "superpoint": folder / "superpoint_random.pth",
        "superglue": folder / "superglue_random.pth",
    }
    torch.save(sp.state_dict(), paths["superpoint"])
    torch.save(sg.state_dict(), paths["superglue"])
    return paths


@pytest.fixture(scope="session")
def decisive_superglue_weights(tmp_path_factory) -> Path:
    """A random SuperGlue whose final projection is scaled by 20 so that it makes
    clear-cut assignments (log-assignment ranges ~ -20..0, top-2 margins > 1e-2):
    matches can then be compared exactly across runtimes, unlike the plain random
    SuperGlue (near-uniform scores, near-ties) or the shared seed-0 one (raw
    scores ~4.7e4, so float32 summation order moves the log assignment by ~1e-2)."""
    torch = pytest.importorskip("torch")
    from spsg_ros.networks.superglue import SuperGlue

    torch.manual_seed(0)
    sg = SuperGlue()
    with torch.no_grad():
        sg.bin_score.fill_(1.0)
        sg.final_proj.weight.mul_(20.0)
        sg.final_proj.bias.mul_(20.0)
    path = tmp_path_factory.mktemp("weights_decisive") / "superglue_decisive.pth"
    torch.save(sg.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def comparable_weights(request) -> dict:
    """Weights whose outputs compare exactly across runtimes: the trained SuperPoint
    where the shared folder has it (no near-ties in the top-k; else the generated
    random one) and the decisive random SuperGlue; ``trained`` says which SuperPoint."""
    superglue = request.getfixturevalue("decisive_superglue_weights")
    try:
        superpoint = request.getfixturevalue("shared_weights")["superpoint"]
        trained = True
    except pytest.skip.Exception:
        superpoint = request.getfixturevalue("generated_weights")["superpoint"]
        trained = False
    return {"superpoint": superpoint, "superglue": superglue, "trained": trained}


def textured_image(height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """A uint8 grayscale image with blobs, edges and corners (many keypoints)."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((height, width), 90, np.uint8)
    for _ in range(max(4, height * width // 1500)):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(3, 20))
        color = int(rng.integers(0, 256))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + size, y + size), color, -1)
        else:
            cv2.circle(image, (x, y), size // 2 + 1, color, -1)
    return image


@pytest.fixture
def textured():
    return textured_image
