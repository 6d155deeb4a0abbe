"""Thread counts and idle-wait policy of the backends (issue #13: shared machines).

One ``num_threads`` parameter (0: the cores available to the process) reaches
every backend; no runtime spin-waits between frames. CPU-time figures under
contention are measured by ``scripts/measure_contention.py``, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spsg_ros import parameters as schema
from spsg_ros.backends import create_backend
from spsg_ros.backends.base import available_cores, cgroup_cpu_limit, resolve_num_threads
from spsg_ros.config import ConfigError
from spsg_ros.frontend.config import load_config

AFFINITY = len(os.sched_getaffinity(0))


def _python(code: str, env: dict | None = None) -> str:
    """Run ``code`` in a fresh interpreter (OpenMP and thread pools start anew)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------------------- schema, config, CLI
def test_schema_parameter():
    spec = schema.PARAMETERS_BY_NAME["num_threads"]
    assert spec.default == 0 and spec.kind == "integer"
    assert (spec.min_value, spec.max_value) == (0, 256)
    assert spec.read_only and spec.config_path == ("backend", "num_threads")
    assert "cgroup" in spec.description and "never more" in spec.description
    for mode in schema.MODES:
        assert "    num_threads: 0\n" in schema.params_file_text(mode)
    assert schema.validate_value(spec, 257) is not None
    assert schema.validate_value(spec, -1) is not None


def test_config_hands_nonzero_count_to_backend():
    cfg = load_config({"backend": {"num_threads": 3}})
    assert cfg["backend"]["num_threads"] == 3
    assert cfg["backend"]["options"]["num_threads"] == 3
    default = load_config(None)
    assert default["backend"]["num_threads"] == 0
    assert "num_threads" not in default["backend"]["options"]  # auto: the backend's default
    # a second pass (replay re-validates after its overrides) takes the new value
    cfg["backend"]["num_threads"] = 2
    assert load_config(cfg)["backend"]["options"]["num_threads"] == 2
    with pytest.raises(ConfigError, match="frontend.backend.num_threads"):
        load_config({"backend": {"num_threads": 300}})
    with pytest.raises(ConfigError, match="num_threads"):
        load_config({"backend": {"num_threads": "2"}})


def test_node_parameter_file_reaches_config(tmp_path):
    params = tmp_path / "node.yaml"
    params.write_text("/**/frontend_node:\n  ros__parameters:\n    num_threads: 1\n")
    assert load_config(params)["backend"]["options"] == {"num_threads": 1}


def test_cli_option_and_alias(capsys):
    from spsg_ros.cli.common import backend_options
    from spsg_ros.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["match-pair", "a", "b", "--num-threads", "2"])
    assert args.num_threads == 2 and backend_options(args)["num_threads"] == 2
    args = parser.parse_args(["match-pair", "a", "b", "--threads", "1"])
    assert backend_options(args)["num_threads"] == 1
    args = parser.parse_args(["match-pair", "a", "b"])
    assert args.num_threads == 0 and "num_threads" not in backend_options(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["match-pair", "a", "b", "--num-threads", "257"])
    assert "outside the range [0, 256] of parameter num_threads" in capsys.readouterr().err


# ---------------------------------------------------------------------------- core count
def test_cgroup_quota(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    missing = (str(tmp_path / "quota"), str(tmp_path / "period"))
    cpu_max.write_text("150000 100000\n")
    assert cgroup_cpu_limit(str(cpu_max), missing) == 2  # 1.5 CPUs: 2 threads
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpu_limit(str(cpu_max), missing) is None
    (tmp_path / "quota").write_text("50000\n")
    (tmp_path / "period").write_text("100000\n")
    v1 = (str(tmp_path / "quota"), str(tmp_path / "period"))
    assert cgroup_cpu_limit(str(tmp_path / "absent"), v1) == 1
    (tmp_path / "quota").write_text("-1\n")  # v1: no quota
    assert cgroup_cpu_limit(str(tmp_path / "absent"), v1) is None


def test_auto_count_is_at_most_the_affinity():
    assert 1 <= available_cores() <= AFFINITY
    assert resolve_num_threads(0) == resolve_num_threads(None) == available_cores()
    assert resolve_num_threads(3) == 3
    with pytest.raises(ValueError, match="num_threads"):
        resolve_num_threads(-1)


def test_auto_follows_a_restricted_affinity(generated_weights):
    """A process pinned to one core: auto gives 1 thread to torch and onnxruntime."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    code = f"""
import json, os
os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}})
from spsg_ros.backends import create_backend
from spsg_ros.backends.base import available_cores
t = create_backend("torch", superpoint_weights={str(generated_weights["superpoint"])!r},
                   load_superglue=False)
o = create_backend("onnxruntime", load_superglue=False, cache_dir={"/nonexistent"!r})
print(json.dumps([available_cores(), t.describe()["threads"]["intra_op"],
                  o.describe()["threads"]["intra_op"]]))
"""
    assert json.loads(_python(code)) == [1, 1, 1]


# ---------------------------------------------------------------------------- backends
def test_torch_threads(generated_weights):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        backend = create_backend(
            "torch",
            superpoint_weights=generated_weights["superpoint"],
            load_superglue=False,
            num_threads=1,
        )
        assert torch.get_num_threads() == 1 and backend.num_threads == 1
        info = backend.describe()["threads"]
        assert info["intra_op"] == 1 and "omp_wait_policy" in info
        auto = create_backend(
            "torch", superpoint_weights=generated_weights["superpoint"], load_superglue=False
        )
        assert 1 <= auto.num_threads <= AFFINITY
    finally:
        torch.set_num_threads(before)


def test_frontend_passes_the_count(generated_weights):
    torch = pytest.importorskip("torch")
    from spsg_ros.frontend.pipeline import Frontend

    before = torch.get_num_threads()
    config = {
        "backend": {
            "name": "torch",
            "num_threads": 1,
            "superpoint_weights": str(generated_weights["superpoint"]),
            "superglue_weights": str(generated_weights["superglue"]),
        }
    }
    try:
        with Frontend(config) as frontend:
            assert frontend.backend.describe()["threads"]["intra_op"] == 1
    finally:
        torch.set_num_threads(before)


def _identity_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    "options, intra, inter",
    [
        ({"num_threads": 1}, 1, 1),
        ({}, available_cores(), 1),
        # the runtime-specific options keep working and win
        ({"num_threads": 1, "intra_op_threads": 2, "inter_op_threads": 2}, 2, 2),
    ],
)
def test_onnxruntime_sessions(tmp_path, options, intra, inter):
    pytest.importorskip("onnxruntime")
    backend = create_backend("onnxruntime", load_superglue=False, cache_dir=tmp_path, **options)
    session = backend._session(_identity_onnx(tmp_path / "identity.onnx"))
    so = session.get_session_options()
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (intra, inter)
    for pool in ("intra_op", "inter_op"):
        assert so.get_session_config_entry(f"session.{pool}.allow_spinning") == "0"
    threads = backend.describe()["threads"]
    assert threads == {"intra_op": intra, "inter_op": inter, "spinning": False}


def test_onnxruntime_spinning_opt_in():
    ort = pytest.importorskip("onnxruntime")
    from spsg_ros.backends.onnxruntime_backend import session_options

    so = session_options(ort, spinning=True)
    for pool in ("intra_op", "inter_op"):
        assert so.get_session_config_entry(f"session.{pool}.allow_spinning") == "1"


def test_openvino_threads(shared_dir):
    pytest.importorskip("openvino")
    import numpy as np

    seed_ir = shared_dir / "weights" / "seed_openvino_ir" / "superpoint.xml"
    if not seed_ir.is_file():
        pytest.skip(f"seed OpenVINO IR missing: {seed_ir}")
    backend = create_backend(
        "openvino", superpoint_model=seed_ir, load_superglue=False, num_threads=1
    )
    assert backend.compile_config["INFERENCE_NUM_THREADS"] == 1
    backend.superpoint_dense(np.zeros((1, 1, 64, 64), np.float32))  # compiles the model
    net = next(iter(backend._sp_nets.values()))
    assert net.compiled_property("INFERENCE_NUM_THREADS") == 1
    assert backend.describe()["threads"]["inference_num_threads"] == 1
    auto = create_backend("openvino", superpoint_model=seed_ir, load_superglue=False)
    assert auto.compile_config["INFERENCE_NUM_THREADS"] == available_cores()


def test_ascend_accepts_the_option():
    from spsg_ros.backends.base import backend_option_names

    for name in ("torch", "onnxruntime", "openvino", "ascend"):
        assert "num_threads" in backend_option_names(name)


# ---------------------------------------------------------------------------- OpenMP wait policy
def test_omp_wait_policy_passive_by_default():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import spsg_ros, os; print(os.environ['OMP_WAIT_POLICY'])"
    assert _python(code, env) == "PASSIVE"
    assert _python(code, dict(env, OMP_WAIT_POLICY="ACTIVE")) == "ACTIVE"  # the user's wins


def test_torch_reports_policy_and_late_import():
    pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = (
        "import {first}; import {second}; "
        "from spsg_ros.backends.torch_backend import omp_wait_policy; print(omp_wait_policy())"
    )
    assert _python(code.format(first="spsg_ros", second="torch"), env) == "PASSIVE"
    late = _python(code.format(first="torch", second="spsg_ros"), env)
    assert late.startswith("unknown (torch imported before spsg_ros")
