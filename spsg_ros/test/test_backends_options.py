"""Strict backend options: an option a backend does not take is an error naming
it (with a close match) and the valid ones; ``auto`` hands each candidate only
the options it takes; matcher nn loads no SuperGlue on any backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spsg_ros.backends import (
    Backend,
    BackendOptionError,
    BackendUnavailable,
    backend_option_names,
    create_backend,
)
from spsg_ros.backends import base
from spsg_ros.features.types import Features

from conftest import textured_image

H, W = 240, 320
BUILTIN = ("torch", "onnxruntime", "openvino", "ascend")


# ---------------------------------------------------------------------------
# an ais_bench InferSession stand-in: declares a SuperPoint OM's inputs/outputs
# ---------------------------------------------------------------------------


class _Desc:
    def __init__(self, name, shape):
        self.name, self.shape, self.datatype = name, shape, "float32"
        self.size = int(np.prod(shape)) * 4


class _SuperPointSession:
    def __init__(self, device_id, model_path):
        self.model_path = model_path

    def get_inputs(self):
        return [_Desc("image", [1, 1, H, W])]

    def get_outputs(self):
        return [_Desc("semi", [1, 65, H // 8, W // 8]), _Desc("desc", [1, 256, H // 8, W // 8])]


def session_factory():
    """Records the OM files loaded; only SuperPoint OMs load."""
    loaded: list[str] = []

    def make(device_id, model_path):
        loaded.append(Path(model_path).name)
        if "superglue" in Path(model_path).name:
            raise AssertionError("the stand-in has no SuperGlue session")
        return _SuperPointSession(device_id, model_path)

    make.loaded = loaded
    return make


@pytest.fixture
def superpoint_om(tmp_path):
    om = tmp_path / "superpoint_240x320.om"
    om.write_bytes(b"placeholder")
    return om


def _valid_options(name, weights, tmp_path, om):
    """Options with which backend ``name`` builds here (no SuperGlue, nothing exported)."""
    if name == "ascend":
        return {"superpoint_model": om, "session_factory": session_factory()}
    common = {
        "superpoint_weights": weights["superpoint"],
        "superglue_weights": weights["superglue"],
        "load_superglue": False,
    }
    if name in ("onnxruntime", "openvino"):
        common["cache_dir"] = tmp_path / "cache"
    return common


def _importorskip(name):
    if name != "ascend":  # the ascend backend runs on the stand-in session
        pytest.importorskip(name)


# ---------------------------------------------------------------------------
# a misspelled option on each backend
# ---------------------------------------------------------------------------

MISSPELLED = {  # backend -> (misspelled option, the option meant, another valid option)
    "torch": ("load_superglu", "load_superglue", "host_postprocess"),
    "onnxruntime": ("num_slot", "num_slots", "providers"),
    "openvino": ("inference_precison", "inference_precision", "performance_hint"),
    "ascend": ("superglue_gear", "superglue_gears", "session_factory"),
}


@pytest.mark.parametrize("name", BUILTIN)
def test_misspelled_option_names_it_and_the_valid_ones(
    name, generated_weights, tmp_path, superpoint_om
):
    _importorskip(name)
    wrong, meant, other = MISSPELLED[name]
    options = _valid_options(name, generated_weights, tmp_path, superpoint_om)
    create_backend(name, **options).close()  # the options themselves are fine
    value = [64] if name == "ascend" else 1
    with pytest.raises(BackendOptionError) as info:
        create_backend(name, **options, **{wrong: value})
    error = info.value
    assert isinstance(error, ValueError)
    assert error.backend == name and error.unknown == [wrong]
    assert error.valid == sorted(backend_option_names(name))
    assert {meant, other, "load_superglue"} <= set(error.valid)
    message = str(error)
    assert message.startswith(
        f"backend '{name}' has no option '{wrong}' (did you mean '{meant}'?); valid options: "
    )
    assert message.endswith(", ".join(sorted(backend_option_names(name))))
    if name == "ascend":
        assert options["session_factory"].loaded == [superpoint_om.name]  # no session for it


def test_unknown_options_without_close_match(generated_weights):
    pytest.importorskip("torch")
    with pytest.raises(BackendOptionError) as info:
        create_backend(
            "torch",
            superpoint_weights=generated_weights["superpoint"],
            load_superglue=False,
            frobnicate=1,
            onnx_dir="models",
        )
    message = str(info.value)
    assert message.startswith("backend 'torch' has no options 'frobnicate', 'onnx_dir'; ")
    assert "did you mean" not in message and "superpoint_weights" in message


@pytest.mark.parametrize("name", BUILTIN)
def test_backends_have_no_catch_all(name):
    names = backend_option_names(name)
    assert names is not None, f"{name} takes any option (**kwargs)"
    assert {"device", "superpoint_config", "superglue_config", "load_superglue"} <= names


# ---------------------------------------------------------------------------
# auto: each candidate gets what it takes
# ---------------------------------------------------------------------------


class _Stub(Backend):
    name = "stub"

    # the option tests build backends only; running a network here is a test bug
    def superpoint_dense(self, images):
        raise AssertionError("the option tests never run SuperPoint")

    def superglue_log_assignment(self, features0, features1):
        raise AssertionError("the option tests never run SuperGlue")


@pytest.fixture
def fake_backends(monkeypatch):
    """Two registered backends that record their options: ``fake_a`` is unavailable."""
    calls: list[tuple[str, dict]] = []

    def fake_a(device="cpu", alpha=None, shared=None, load_superglue=True):
        calls.append(
            (
                "fake_a",
                dict(device=device, alpha=alpha, shared=shared, load_superglue=load_superglue),
            )
        )
        raise BackendUnavailable("fake_a: no device")

    def fake_b(device="cpu", beta=None, shared=None):
        calls.append(("fake_b", dict(device=device, beta=beta, shared=shared)))
        return _Stub()

    monkeypatch.setitem(base._REGISTRY, "fake_a", fake_a)
    monkeypatch.setitem(base._REGISTRY, "fake_b", fake_b)
    return calls


def test_auto_passes_each_candidate_only_its_options(fake_backends):
    backend = create_backend(
        "auto",
        backend_preference="fake_a,fake_b",
        device="npu:1",
        alpha=1,
        beta=2,
        shared=3,
        load_superglue=False,
    )
    assert isinstance(backend, _Stub)
    assert fake_backends == [
        ("fake_a", {"device": "npu:1", "alpha": 1, "shared": 3, "load_superglue": False}),
        ("fake_b", {"device": "npu:1", "beta": 2, "shared": 3}),
    ]
    assert [n for n, _ in backend.auto_attempts] == ["fake_a", "fake_b"]
    assert backend.auto_attempts[-1] == ("fake_b", "selected")


def test_auto_rejects_an_option_no_candidate_takes(fake_backends):
    with pytest.raises(BackendOptionError) as info:
        create_backend("auto", backend_preference="fake_a,fake_b", alpah=1, beta=2, gamma=3)
    assert fake_backends == []  # before any backend is tried
    error = info.value
    assert error.backend == "auto" and error.unknown == ["alpah", "gamma"]
    assert error.valid == [
        "alpha",
        "backend_preference",
        "beta",
        "device",
        "load_superglue",
        "shared",
    ]
    assert str(error) == (
        "backend 'auto' has no options 'alpah' (did you mean 'alpha'?), 'gamma' "
        "(no backend of fake_a, fake_b takes them); valid options: alpha, "
        "backend_preference, beta, device, load_superglue, shared"
    )


def test_auto_real_candidates(generated_weights, tmp_path):
    """onnxruntime is unavailable (TensorRT asked for); torch then runs without
    the onnxruntime-only options, which would be an error for it."""
    pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    options = {"superpoint_weights": generated_weights["superpoint"], "load_superglue": False}
    backend = create_backend(
        "auto",
        backend_preference="onnxruntime,torch",
        providers=["tensorrt"],
        cache_dir=tmp_path / "cache",
        intra_op_threads=1,
        **options,
    )
    assert backend.name == "torch"
    tried, reason = backend.auto_attempts[0]
    assert tried == "onnxruntime" and "Tensorrt" in reason
    with pytest.raises(BackendOptionError, match="'onnx_dir' .*no backend of torch takes it"):
        create_backend("auto", backend_preference="torch", onnx_dir=tmp_path, **options)


# ---------------------------------------------------------------------------
# matcher nn: no SuperGlue on any backend
# ---------------------------------------------------------------------------


def _no_superglue_loaded(backend, cache: Path | None):
    info = backend.describe()
    assert info.get("superglue_model") is None
    if backend.name == "onnxruntime":
        assert backend.sg_session is None and backend.sg_path is None
    elif backend.name == "openvino":
        assert backend.superglue_net is None
    elif backend.name == "ascend":
        assert backend.superglue_om is None
    else:
        assert backend.superglue_net is None
    if cache is not None:  # SuperPoint was exported, SuperGlue was not
        exported = sorted(p.name.split("-")[0] for p in cache.iterdir())
        assert exported == ["superpoint"]
    features = Features(
        np.array([[1.0, 2.0]], np.float32),
        np.array([0.5], np.float32),
        np.ones((256, 1), np.float32) / 16,
        (W, H),
    )
    with pytest.raises(BackendUnavailable, match="SuperGlue.*load_superglue=False"):
        backend.superglue(features, features, 0.2)


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "auto", "torch"])
def test_nn_frontend_loads_no_superglue(name, generated_weights, tmp_path):
    from spsg_ros.frontend import Frame, Frontend

    pytest.importorskip("torch")
    pytest.importorskip("openvino" if name == "openvino" else "onnxruntime")
    cache = tmp_path / "cache"
    options = {"cache_dir": str(cache)} if name != "torch" else {}
    if name == "auto":
        options["backend_preference"] = "onnxruntime"
    cfg = {
        "backend": {
            "name": name,
            "superpoint_weights": str(generated_weights["superpoint"]),
            "superglue_weights": str(generated_weights["superglue"]),
            "options": options,
        },
        "superpoint": {"max_keypoints": 64},
        "matcher": "nn",
    }
    with Frontend(cfg) as frontend:
        for i in range(2):
            result = frontend.process(Frame(textured_image(H, W, seed=i), stamp_ns=1000 + i))
            assert "internal error" not in result.status, result.status
        assert frontend.backend.name == ("onnxruntime" if name == "auto" else name)
        _no_superglue_loaded(frontend.backend, None if name == "torch" else cache)


def test_nn_frontend_on_ascend_loads_no_superglue(tmp_path, superpoint_om):
    from spsg_ros.frontend import Frontend

    factory = session_factory()
    cfg = {
        "backend": {
            "name": "ascend",
            "superpoint_weights": str(superpoint_om),
            "superglue_weights": str(tmp_path / "superglue_k256.om"),  # absent
            "options": {"session_factory": factory, "device_id": 0},
        },
        "matcher": "nn",
    }
    with Frontend(cfg) as frontend:
        assert factory.loaded == [superpoint_om.name]
        _no_superglue_loaded(frontend.backend, None)
