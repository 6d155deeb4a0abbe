"""The export cache: keyed by weights, architecture and export revision; shared by backends."""

from __future__ import annotations

import pytest

from spsg_ros.backends import model_cache
from spsg_ros.networks import contract
from spsg_ros.matching.superglue_post import superglue_config


def test_cache_key_follows_weights_architecture_and_revision(
    tmp_path, monkeypatch, generated_weights
):
    sg = generated_weights["superglue"]
    base = model_cache.cache_folder(tmp_path, "superglue", sg, None, superglue_config())
    assert base.is_dir() and base.name.startswith("superglue-")
    assert model_cache.cache_folder(tmp_path, "superglue", sg, None, superglue_config()) == base
    other_arch = model_cache.cache_folder(
        tmp_path, "superglue", sg, None, superglue_config({"sinkhorn_iterations": 7})
    )
    assert other_arch != base
    copy = tmp_path / "superglue_copy.pth"
    copy.write_bytes(sg.read_bytes() + b"\0")  # different bytes -> different sha256
    assert model_cache.cache_folder(tmp_path, "superglue", copy, None, superglue_config()) != base
    monkeypatch.setattr(contract, "EXPORT_REVISION", f"{contract.EXPORT_REVISION}-next")
    assert model_cache.cache_folder(tmp_path, "superglue", sg, None, superglue_config()) != base


def test_export_once_reuses_and_cleans_up(tmp_path):
    calls = []

    def fake_export(path):
        calls.append(path)
        path.write_bytes(b"onnx")
        contract.sidecar_path(path).write_text("{}")

    first = model_cache.export_once(tmp_path, "superglue_k64", "superglue", fake_export)
    second = model_cache.export_once(tmp_path, "superglue_k64", "superglue", fake_export)
    assert first == second == tmp_path / "superglue_k64.onnx" and len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.name, contract.sidecar_path(first).name]
    )


def test_export_failure_is_a_clear_backend_error(tmp_path):
    from spsg_ros.backends import BackendUnavailable
    from spsg_ros.networks.onnx_export import ExportError

    def failing_export(path):
        raise ExportError("onnx is not installed")

    with pytest.raises(
        BackendUnavailable, match="cannot be exported here: onnx is not installed.*--onnx-dir"
    ):
        model_cache.export_once(tmp_path, "superpoint_dynamic", "superpoint", failing_export)
    assert list(tmp_path.iterdir()) == []


def test_superglue_stems_find_static_models_in_a_folder(tmp_path):
    for name in (
        "superglue_k512.onnx",
        "superglue_k1024.onnx",
        "superglue_k256_fp16.onnx",
        "notes.txt",
    ):
        (tmp_path / name).write_text("x")
    assert contract.superglue_stems(tmp_path, None) == [
        "superglue_dynamic",
        "superglue_k1024",
        "superglue_k512",
    ]
    assert contract.superglue_stems(tmp_path, None, fp16=True) == [
        "superglue_dynamic_fp16",
        "superglue_k256_fp16",
    ]
    assert contract.superglue_stems(tmp_path, 512) == ["superglue_k512"]
    assert contract.superglue_stems(None, None) == ["superglue_dynamic"]


def test_core_and_accelerator_paths_import_without_torch():
    """The runtime core needs only numpy, opencv, onnxruntime and pyyaml."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import spsg_ros.features.extractor, spsg_ros.features.superpoint_post\n"
        "import spsg_ros.matching.superglue_matcher, spsg_ros.matching.nearest_neighbor\n"
        "import spsg_ros.backends.onnxruntime_backend, spsg_ros.backends.ascend\n"
        "import spsg_ros.frontend.pipeline, spsg_ros.geometry, spsg_ros.messages.conversions\n"
        "from spsg_ros.backends import create_backend, BackendUnavailable\n"
        "try:\n"
        "    create_backend('torch', superpoint_weights='x.pth')\n"
        "except BackendUnavailable as exc:\n"
        "    assert 'pip install torch==2.13.0' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('torch backend built without torch')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
