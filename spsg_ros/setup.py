"""spsg_ros: ament_python package, also pip-installable without ROS 2."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "spsg_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/models", ["models/README.md"]),
    ],
    python_requires=">=3.8",
    install_requires=[
        "numpy>=1.21",
        "opencv-python-headless>=4.5",
        "onnxruntime>=1.14",
        "pyyaml>=5.4",
        "tqdm>=4.60",
    ],
    extras_require={
        # torch is pinned by the installer (see README): a bare 'torch' requirement
        # would pull several GB of CUDA wheels on a CPU machine.
        "torch": ["torch>=2.0"],
        "export": ["onnx>=1.14", "onnxscript>=0.1", "onnxslim>=0.1"],
        "openvino": ["openvino>=2024.0"],
        # mcap: Writer.flush (chunks closed by age) appeared in 1.5
        "bags": ["rosbags>=0.11", "mcap>=1.5"],
        "plots": ["matplotlib>=3.5"],
        # evo: the trajectory metrics are checked against it
        "test": ["pytest>=7", "pytest-timeout>=2", "ruff>=0.5", "evo>=1.20"],
    },
    zip_safe=True,
    maintainer="spsg_ros developers",
    maintainer_email="spsg-ros@example.org",
    description="SuperPoint + SuperGlue visual SLAM frontend for ROS 2 (Ascend, TensorRT, ONNX "
    "Runtime, PyTorch)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "spsg-ros = spsg_ros.cli.main:main",
            "frontend_node = spsg_ros.ros.frontend_node:main",
        ],
    },
)
