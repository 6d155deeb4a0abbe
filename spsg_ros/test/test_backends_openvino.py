"""The openvino backend: the seed OpenVINO IR SuperPoint, exported ONNX models
(SuperPoint static/dynamic, masked SuperGlue static/dynamic), precision and
device options, and the errors."""

from __future__ import annotations

import ast

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ov = pytest.importorskip("openvino")

from spsg_ros.backends import BackendUnavailable, create_backend  # noqa: E402
from spsg_ros.backends.openvino_backend import OpenVINOBackend, _Network, openvino_device  # noqa: E402
from spsg_ros.networks import contract  # noqa: E402
from spsg_ros.backends.static_superglue import select_slots  # noqa: E402
from spsg_ros.features.extractor import SuperPointExtractor  # noqa: E402
from spsg_ros.features.types import Features  # noqa: E402

from conftest import textured_image  # noqa: E402

SG_CONFIG = {"sinkhorn_iterations": 20}
THRESHOLD = 0.2


def unit(desc: np.ndarray) -> np.ndarray:
    return desc / np.linalg.norm(desc, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def seed_ir(shared_dir):
    xml = shared_dir / "weights" / "seed_openvino_ir" / "superpoint.xml"
    if not xml.is_file():
        pytest.skip(f"seed OpenVINO IR missing: {xml}")
    return xml


@pytest.fixture(scope="module")
def weights(comparable_weights):
    return comparable_weights


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory):
    from spsg_ros.networks.onnx_export import export_superglue, export_superpoint

    folder = tmp_path_factory.mktemp("openvino_models")
    return {
        "sp_static": export_superpoint(
            folder / "superpoint_240x320.onnx", weights["superpoint"], height=240, width=320
        ).path,
        "sp_dynamic": export_superpoint(
            folder / "superpoint_dynamic.onnx", weights["superpoint"]
        ).path,
        "sg_static": export_superglue(
            folder / "superglue_k128.onnx", weights["superglue"], SG_CONFIG, num_slots=128
        ).path,
        "sg_dynamic": export_superglue(
            folder / "superglue_dynamic.onnx", weights["superglue"], SG_CONFIG, num_slots=None
        ).path,
    }


@pytest.fixture(scope="module")
def torch_backend(weights):
    return create_backend(
        "torch",
        superpoint_weights=weights["superpoint"],
        superglue_weights=weights["superglue"],
        superpoint_config={"max_keypoints": 200},
        superglue_config=SG_CONFIG,
        host_postprocess=True,
    )


def assert_same_keypoints(ours: Features, ref: Features, trained: bool) -> None:
    if trained:
        np.testing.assert_array_equal(ours.keypoints, ref.keypoints)
    else:  # random weights: near-tied scores may swap places in the top-k
        common = {tuple(k) for k in ours.keypoints} & {tuple(k) for k in ref.keypoints}
        assert len(common) >= 0.95 * len(ref)


def test_seed_ir_dense_outputs_and_keypoints(seed_ir, shared_weights, fixture_files):
    backend = create_backend("openvino", superpoint_model=seed_ir, load_superglue=False)
    reference = create_backend(
        "torch",
        superpoint_weights=shared_weights["superpoint"],
        superglue_weights=shared_weights["superglue"],
    )
    image = np.random.default_rng(0).random((1, 1, 240, 320), dtype=np.float32)
    semi, desc = backend.superpoint_dense(image)
    assert backend.describe()["inference_precision"] == "f32"
    assert "float32" in backend.describe()["compiled_precision"]  # what the plugin actually runs
    ref_semi, ref_desc = reference.superpoint_dense(image)
    np.testing.assert_allclose(semi, ref_semi, atol=1e-4)
    # this IR divides the descriptor map by its norm; the host post-processing normalises anyway
    np.testing.assert_allclose(unit(desc), unit(ref_desc), atol=1e-4)
    for name, path in fixture_files.items():
        data = np.load(path)
        config = ast.literal_eval(str(data["sp_config"]))
        for i in (0, 1):
            ours = SuperPointExtractor(backend, config)(data[f"image{i}"])
            np.testing.assert_array_equal(ours.keypoints, data[f"keypoints{i}"], err_msg=name)
            np.testing.assert_allclose(ours.scores, data[f"scores{i}"], atol=1e-5)
            np.testing.assert_allclose(ours.descriptors, data[f"descriptors{i}"], atol=1e-4)


@pytest.mark.parametrize("model", ["sp_static", "sp_dynamic"])
def test_exported_superpoint(exported, torch_backend, weights, model):
    backend = create_backend(
        "openvino",
        superpoint_model=exported[model],
        load_superglue=False,
        superpoint_config={"max_keypoints": 200},
    )
    image = textured_image(240, 320, seed=3)
    x = image[None, None].astype(np.float32) / 255
    semi, desc = backend.superpoint_dense(np.concatenate([x, x[..., ::-1, :]]))  # a batch of two
    ref_semi, ref_desc = torch_backend.superpoint_dense(np.concatenate([x, x[..., ::-1, :]]))
    np.testing.assert_allclose(semi, ref_semi, atol=1e-4)
    np.testing.assert_allclose(desc, ref_desc, atol=1e-4)
    ours = SuperPointExtractor(backend, {"max_keypoints": 200})(image)
    ref = SuperPointExtractor(torch_backend, {"max_keypoints": 200})(image)
    assert_same_keypoints(ours, ref, weights["trained"])
    if model == "sp_dynamic":  # another size: compiled once more for it
        small = image[:120, :160]
        assert_same_keypoints(
            SuperPointExtractor(backend)(small),
            SuperPointExtractor(torch_backend)(small),
            weights["trained"],
        )
    else:
        with pytest.raises(ValueError, match="static SuperPoint for 320x240"):
            backend.superpoint_dense(np.zeros((1, 1, 120, 160), np.float32))


def features_pair(torch_backend):
    image = textured_image(240, 320, seed=11)
    f0 = SuperPointExtractor(torch_backend, {"max_keypoints": 200})(image)
    f1 = SuperPointExtractor(torch_backend, {"max_keypoints": 200})(
        np.roll(image, (2, 3), axis=(0, 1))
    )
    return f0, f1


@pytest.mark.parametrize("model", ["sg_static", "sg_dynamic"])
def test_superglue_parity(exported, torch_backend, model):
    backend = create_backend(
        "openvino",
        superglue_model=exported[model],
        superpoint_model=exported["sp_static"],
        superglue_config=SG_CONFIG,
    )
    f0, f1 = features_pair(torch_backend)
    for n0, n1 in [(1, 1), (17, 40), (127, 128), (128, 128)]:
        a, b = f0.subset(np.arange(n0)), f1.subset(np.arange(n1))
        la = backend.superglue_log_assignment(a, b)
        ref = torch_backend.superglue_log_assignment(a, b)
        np.testing.assert_allclose(la, ref, atol=1e-4, err_msg=f"{n0}x{n1}")
        ours, expected = (
            backend.superglue(a, b, THRESHOLD),
            torch_backend.superglue(a, b, THRESHOLD),
        )
        np.testing.assert_array_equal(ours.matches0, expected.matches0)
        np.testing.assert_allclose(ours.scores0, expected.scores0, atol=1e-4)
    assert (ours.matches0 >= 0).sum() > 50
    # more keypoints than slots (static K = 128): the 128 best by score, the others unmatched
    ours = backend.superglue(f0, f1, THRESHOLD)
    if model == "sg_static":
        keep0, keep1 = select_slots(f0.scores, 128), select_slots(f1.scores, 128)
        sub = torch_backend.superglue(f0.subset(keep0), f1.subset(keep1), THRESHOLD)
        expected = np.full(len(f0), -1)
        expected[keep0] = np.where(sub.matches0 >= 0, keep1[np.maximum(sub.matches0, 0)], -1)
        np.testing.assert_array_equal(ours.matches0, expected)
        assert backend.describe()["num_slots"] == 128
    else:
        np.testing.assert_array_equal(
            ours.matches0, torch_backend.superglue(f0, f1, THRESHOLD).matches0
        )


def test_static_shape_buckets_for_a_dynamic_superglue(exported, torch_backend):
    """GPU/NPU path: a dynamic-K model compiled per padded bucket size."""
    backend = OpenVINOBackend(
        superglue_model=exported["sg_dynamic"],
        superpoint_model=exported["sp_static"],
        superglue_config=SG_CONFIG,
    )
    net = backend.superglue_net
    backend.superglue_net = _Network(
        backend.core, net.path, "CPU", backend.compile_config, backend.ov, static_shapes=True
    )
    assert (
        backend.superglue_slots(17, 40) == 64
        and backend.superglue_slots(100, 3) == 128
        and backend.superglue_slots(0, 0) == 64
    )
    f0, f1 = features_pair(torch_backend)
    a, b = f0.subset(np.arange(30)), f1.subset(np.arange(45))
    np.testing.assert_array_equal(
        backend.superglue(a, b, THRESHOLD).matches0,
        torch_backend.superglue(a, b, THRESHOLD).matches0,
    )
    assert list(backend.superglue_net._compiled)[0][0][1] == (1, 64, 2)  # keypoints0 padded to 64


def test_models_from_onnx_dir_and_export_cache(exported, weights, tmp_path, torch_backend):
    folder = exported["sp_static"].parent
    backend = create_backend(
        "openvino",
        onnx_dir=folder,
        num_slots=128,
        superglue_config=SG_CONFIG,
        superpoint_weights=weights["superpoint"],
        superglue_weights=weights["superglue"],
    )
    assert backend.describe()["superglue_model"].endswith("superglue_k128.onnx")
    backend.superpoint_dense(np.zeros((1, 1, 240, 320), np.float32))
    assert "dynamic" in backend.describe()["superpoint_models"]
    # nothing given: exported from the weights into the cache once
    cached = create_backend(
        "openvino",
        cache_dir=tmp_path,
        superglue_config=SG_CONFIG,
        superpoint_weights=weights["superpoint"],
        superglue_weights=weights["superglue"],
    )
    f0, f1 = features_pair(torch_backend)
    np.testing.assert_array_equal(
        cached.superglue(f0, f1, THRESHOLD).matches0,
        torch_backend.superglue(f0, f1, THRESHOLD).matches0,
    )
    assert str(tmp_path) in cached.describe()["superglue_model"]


def test_options_and_errors(exported, seed_ir, tmp_path):
    assert openvino_device("cpu") == "CPU" and openvino_device("gpu:1") == "GPU.1"
    assert openvino_device("npu") == "NPU" and openvino_device(None) == "CPU"
    with pytest.raises(BackendUnavailable, match="CUDA"):
        openvino_device("cuda:0")
    if "NPU" not in ov.Core().available_devices:
        with pytest.raises(BackendUnavailable, match="available: .*CPU"):
            create_backend(
                "openvino", superpoint_model=seed_ir, device="npu", load_superglue=False
            )
    with pytest.raises(ValueError, match="inference_precision"):
        create_backend(
            "openvino", superpoint_model=seed_ir, inference_precision="int4", load_superglue=False
        )
    f16 = create_backend(
        "openvino", superpoint_model=seed_ir, inference_precision="f16", load_superglue=False
    )
    assert f16.compile_config["INFERENCE_PRECISION_HINT"] == "f16"
    default = create_backend(
        "openvino", superpoint_model=seed_ir, load_superglue=False, num_threads=1
    )
    assert default.compile_config["INFERENCE_PRECISION_HINT"] == "f32"
    assert default.compile_config["INFERENCE_NUM_THREADS"] == 1
    om = tmp_path / "superpoint.om"
    om.write_bytes(b"x")
    with pytest.raises(BackendUnavailable, match="not .om"):
        create_backend("openvino", superpoint_model=om, load_superglue=False)
    with pytest.raises(FileNotFoundError):
        create_backend(
            "openvino", superpoint_model=tmp_path / "missing.onnx", load_superglue=False
        )
    # the sidecar is checked against the configuration
    with pytest.raises(contract.ModelContractError, match="descriptor_dim"):
        create_backend(
            "openvino",
            superpoint_model=exported["sp_static"],
            load_superglue=False,
            superpoint_config={"descriptor_dim": 128},
        )
    with pytest.raises(contract.ModelContractError, match="sinkhorn_iterations"):
        create_backend(
            "openvino",
            superglue_model=exported["sg_static"],
            superpoint_model=seed_ir,
            superglue_config={"sinkhorn_iterations": 50},
        )
    with pytest.raises(contract.ModelContractError, match="not a superpoint model"):
        create_backend("openvino", superpoint_model=exported["sg_static"], load_superglue=False)
    # SuperGlue given empty features: no matches, no inference
    backend = create_backend(
        "openvino",
        superglue_model=exported["sg_static"],
        superpoint_model=seed_ir,
        superglue_config=SG_CONFIG,
    )
    empty = Features.empty((320, 240))
    assert backend.superglue(empty, empty, 0.2).matches0.shape == (0,)
    backend.close()


@pytest.mark.hardware
def test_accelerator_devices(seed_ir, shared_weights, fixture_files):
    """Intel GPU / NPU where OpenVINO sees one: the seed IR's keypoints stay close to CPU f32."""
    devices = [d for d in ov.Core().available_devices if not d.startswith("CPU")]
    if not devices:
        pytest.skip("OpenVINO sees no GPU or NPU here (available: CPU only)")
    data = np.load(fixture_files["freiburg_pair_max1024"])
    config = ast.literal_eval(str(data["sp_config"]))
    for device in devices:
        backend = create_backend(
            "openvino",
            superpoint_model=seed_ir,
            load_superglue=False,
            device=device,
            inference_precision=None,
        )
        ours = SuperPointExtractor(backend, config)(data["image0"])
        common = {tuple(k) for k in ours.keypoints} & {tuple(k) for k in data["keypoints0"]}
        assert len(common) >= 0.9 * len(data["keypoints0"]), device
