"""ONNX export round trips, sidecars and the model checks of the runtime.

Exports use generated weights (seeded random init) so the tests need no
downloaded files; onnxruntime runs the exported graphs and the outputs are
compared with the torch networks.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from backends_helpers import (
    K_SMALL,
    conditioned_weights,
    export_folder,  # noqa: E402
    export_superglue_cached,
    export_superpoint_cached,
)
from spsg_ros.networks import contract  # noqa: E402
from spsg_ros.networks.contract import ModelContractError  # noqa: E402
from spsg_ros.networks.superglue import MaskedSuperGlue  # noqa: E402
from spsg_ros.networks.weights import load_superglue, load_superpoint, sha256  # noqa: E402


def run_ort(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess, sess.run(None, feeds)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return export_folder(tmp_path_factory)


def test_superpoint_static_round_trip(folder, generated_weights):
    path = export_superpoint_cached(folder, str(generated_weights["superpoint"]), 64, 80)
    meta = json.loads(contract.sidecar_path(path).read_text())
    assert meta["format"] == contract.SIDECAR_FORMAT and meta["network"] == "superpoint"
    assert meta["image_size"] == [80, 64] and meta["static"] is True
    assert meta["inputs"] == [{"name": "image", "shape": [1, 1, 64, 80], "dtype": "float32"}]
    assert [o["name"] for o in meta["outputs"]] == ["semi", "desc"]
    assert meta["outputs"][1]["shape"] == [1, 256, 8, 10]
    assert meta["opset"] == contract.DEFAULT_OPSET and meta["fp16"] is False
    assert meta["config"] == {"descriptor_dim": 256}
    assert meta["source_weights"]["sha256"] == sha256(generated_weights["superpoint"])
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert any(
        o.version == contract.DEFAULT_OPSET
        for o in model.opset_import
        if o.domain in ("", "ai.onnx")
    )
    image = np.random.default_rng(0).random((1, 1, 64, 80), dtype=np.float32)
    sess, (semi, desc) = run_ort(path, {"image": image})
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert [o.name for o in sess.get_outputs()] == ["semi", "desc"]
    net = load_superpoint(generated_weights["superpoint"])
    with torch.inference_mode():
        ref_semi, ref_desc = net.forward_dense(torch.from_numpy(image))
    np.testing.assert_allclose(semi, ref_semi.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(desc, ref_desc.numpy(), atol=1e-4, rtol=0)


def test_superpoint_dynamic_round_trip(folder, generated_weights):
    path = export_superpoint_cached(folder, str(generated_weights["superpoint"]))
    meta = contract.read_sidecar(path, "superpoint")
    assert meta["static"] is False and meta["image_size"] is None
    assert meta["inputs"][0]["shape"] == [1, 1, "H", "W"]
    net = load_superpoint(generated_weights["superpoint"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in ((48, 64), (120, 160), (61, 83)):  # also sizes that are no multiple of 8
        image = np.random.default_rng(h).random((1, 1, h, w), dtype=np.float32)
        semi, desc = sess.run(None, {"image": image})
        with torch.inference_mode():
            ref_semi, ref_desc = net.forward_dense(torch.from_numpy(image))
        assert semi.shape == (1, 65, h // 8, w // 8)
        np.testing.assert_allclose(semi, ref_semi.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(desc, ref_desc.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("num_slots", [K_SMALL, None])
def test_superglue_round_trip(folder, num_slots):
    weights = conditioned_weights(folder)
    path = export_superglue_cached(folder, str(weights), num_slots)
    meta = contract.read_sidecar(path, "superglue")
    assert meta["num_slots"] == num_slots and meta["static"] is (num_slots is not None)
    assert meta["config"]["sinkhorn_iterations"] == 100 and len(meta["config"]["GNN_layers"]) == 18
    assert "K best by" in meta["slot_policy"]
    assert [i["name"] for i in meta["inputs"]] == list(contract.SUPERGLUE_INPUTS)
    assert meta["source_weights"]["sha256"] == sha256(weights)
    k = num_slots or 24
    if num_slots is not None:
        assert meta["outputs"][0]["shape"] == [1, k + 1, k + 1]
        assert meta["inputs"][2]["shape"] == [1, 256, k]
    from spsg_ros.networks.onnx_export import superglue_example_inputs

    inputs = superglue_example_inputs(k, 256, valid=(k - 5, k - 9))
    feeds = {name: t.numpy() for name, t in zip(contract.SUPERGLUE_INPUTS, inputs)}
    sess, (la,) = run_ort(path, feeds)
    assert [i.name for i in sess.get_inputs()] == list(contract.SUPERGLUE_INPUTS)
    assert [o.name for o in sess.get_outputs()] == [contract.SUPERGLUE_OUTPUT]
    model = MaskedSuperGlue(load_superglue(weights)).eval()
    with torch.inference_mode():
        ref = model(*inputs).numpy()
    assert la.shape == ref.shape == (1, k + 1, k + 1)
    valid = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(la), valid)
    np.testing.assert_allclose(la[valid], ref[valid], rtol=1e-5, atol=1e-3)


def test_dynamic_superglue_runs_other_sizes(folder):
    path = export_superglue_cached(folder, str(conditioned_weights(folder)), None)
    from spsg_ros.networks.onnx_export import superglue_example_inputs

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for k0, k1 in ((5, 9), (40, 3)):
        a = superglue_example_inputs(k0, 256)
        b = superglue_example_inputs(k1, 256)
        feeds = dict(zip(contract.SUPERGLUE_INPUTS, [t.numpy() for t in a[:5] + b[5:]]))
        (la,) = sess.run(None, feeds)
        assert la.shape == (1, k0 + 1, k1 + 1) and np.isfinite(la).all()


def test_fp16_export(folder, generated_weights):
    """fp16 models keep float32 inputs/outputs (same feeds for every backend),
    hold half-precision weights, and stay close to the float32 network."""
    path = export_superpoint_cached(
        folder, str(generated_weights["superpoint"]), 64, 80, fp16=True
    )
    meta = contract.read_sidecar(path, "superpoint")
    assert meta["fp16"] is True and meta["io_dtype"] == "float32"
    model = onnx.load(str(path))
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in model.graph.input)
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    image = np.random.default_rng(0).random((1, 1, 64, 80), dtype=np.float32)
    _, (semi, desc) = run_ort(path, {"image": image})
    ref_path = export_superpoint_cached(folder, str(generated_weights["superpoint"]), 64, 80)
    _, (ref_semi, ref_desc) = run_ort(ref_path, {"image": image})
    assert np.abs(semi - ref_semi).max() < 0.05 * max(1.0, np.abs(ref_semi).max())


def test_fp16_superglue_keeps_optimal_transport_float32(folder):
    weights = conditioned_weights(folder)
    path = export_superglue_cached(folder, str(weights), K_SMALL, fp16=True)
    meta = contract.read_sidecar(path, "superglue")
    assert meta["fp16"] is True and meta["optimal_transport_dtype"] == "float32"
    from backends_helpers import feature_pair
    from spsg_ros.backends.static_superglue import superglue_feeds, unpad_log_assignment
    from spsg_ros.matching.superglue_post import matches_from_log_assignment

    f0, f1 = feature_pair(20, 24, seed=1)
    feeds, _, _ = superglue_feeds(f0, f1, K_SMALL)
    _, (la16,) = run_ort(path, feeds)
    _, (la32,) = run_ort(export_superglue_cached(folder, str(weights), K_SMALL), feeds)
    m16 = matches_from_log_assignment(unpad_log_assignment(la16, 20, 24), 0.2)
    m32 = matches_from_log_assignment(unpad_log_assignment(la32, 20, 24), 0.2)
    assert np.mean(m16.matches0 == m32.matches0) >= 0.9  # agreement rate, reported by the bench


def test_simplify(tmp_path, generated_weights):
    try:
        import onnxslim  # noqa: F401
    except ImportError:
        pytest.importorskip(
            "onnxsim", reason="--simplify needs onnxslim or onnxsim (pip install onnxslim)"
        )
    from spsg_ros.networks.onnx_export import export_superpoint

    out = export_superpoint(
        tmp_path / "sp.onnx", generated_weights["superpoint"], height=32, width=32, simplify=True
    )
    assert out.meta["simplified"] in ("onnxslim", "onnxsim")
    onnx.checker.check_model(onnx.load(str(out.path)))
    image = np.random.default_rng(0).random((1, 1, 32, 32), dtype=np.float32)
    _, (semi, _) = run_ort(out.path, {"image": image})
    with torch.inference_mode():
        ref, _ = load_superpoint(generated_weights["superpoint"]).forward_dense(
            torch.from_numpy(image)
        )
    np.testing.assert_allclose(semi, ref.numpy(), atol=1e-4, rtol=0)


# ---- sidecar checks ---------------------------------------------------------
def test_sidecar_checks_refuse_mismatches(folder, generated_weights):
    sp = export_superpoint_cached(folder, str(generated_weights["superpoint"]), 64, 80)
    meta = contract.read_sidecar(sp, "superpoint")
    contract.check_superpoint_model(meta, {"descriptor_dim": 256}, (80, 64))
    with pytest.raises(
        ModelContractError, match="static SuperPoint for 80x64.*feeds 640x480.*--sizes 480x640"
    ):
        contract.check_superpoint_model(meta, {"descriptor_dim": 256}, (640, 480), sp)
    with pytest.raises(ModelContractError, match="descriptor_dim = 256.*128"):
        contract.check_superpoint_model(meta, {"descriptor_dim": 128}, None, sp)
    with pytest.raises(ModelContractError, match="superpoint model, not a superglue"):
        contract.read_sidecar(sp, "superglue")
    sg = export_superglue_cached(folder, str(conditioned_weights(folder)), K_SMALL)
    sg_meta = contract.read_sidecar(sg)
    contract.check_superglue_model(sg_meta, {"sinkhorn_iterations": 100, "descriptor_dim": 256})
    with pytest.raises(ModelContractError, match="sinkhorn_iterations = 100.*50"):
        contract.check_superglue_model(sg_meta, {"sinkhorn_iterations": 50}, sg)
    with pytest.raises(ModelContractError, match="GNN_layers"):
        contract.check_superglue_model(sg_meta, {"GNN_layers": ["self", "cross"] * 3}, sg)


def test_sidecar_missing_or_foreign(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(ModelContractError, match="sidecar m.json not found.*spsg-ros export"):
        contract.read_sidecar(model)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelContractError, match="not a readable JSON sidecar"):
        contract.read_sidecar(model)
    (tmp_path / "m.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelContractError, match="not an spsg_ros model sidecar"):
        contract.read_sidecar(model)
    (tmp_path / "m.json").write_text(
        json.dumps({"format": contract.SIDECAR_FORMAT, "version": 99})
    )
    with pytest.raises(ModelContractError, match="newer"):
        contract.read_sidecar(model)


def test_backend_refuses_models_that_do_not_fit(folder, generated_weights):
    from spsg_ros.backends import create_backend

    sg = export_superglue_cached(folder, str(conditioned_weights(folder)), K_SMALL)
    with pytest.raises(ModelContractError, match="sinkhorn_iterations"):
        create_backend(
            "onnxruntime", superglue_model=sg, superglue_config={"sinkhorn_iterations": 20}
        )
    sp = export_superpoint_cached(folder, str(generated_weights["superpoint"]), 64, 80)
    backend = create_backend("onnxruntime", superpoint_model=sp, load_superglue=False)
    semi, desc = backend.superpoint_dense(np.zeros((1, 1, 64, 80), np.float32))
    assert semi.shape == (1, 65, 8, 10) and desc.shape == (1, 256, 8, 10)
    with pytest.raises(ModelContractError, match="static SuperPoint for 80x64"):
        backend.superpoint_dense(np.zeros((1, 1, 48, 64), np.float32))
    with pytest.raises(ModelContractError, match="superglue model, not a superpoint"):
        create_backend("onnxruntime", superpoint_model=sg, load_superglue=False)


# ---- the CLI ----------------------------------------------------------------
def test_export_cli(tmp_path, generated_weights, capsys):
    from spsg_ros.cli.main import main

    out = tmp_path / "models"
    rc = main(
        [
            "export",
            "--out",
            str(out),
            "--superpoint-weights",
            str(generated_weights["superpoint"]),
            "--superglue-weights",
            str(generated_weights["superglue"]),
            "--sizes",
            "48x64",
            "--ks",
            "16",
            "--sinkhorn-iterations",
            "20",
            "--atc",
            "--soc-versions",
            "Ascend310",
            "Ascend310P3",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    for stem in ("superpoint_48x64", "superglue_k16"):
        assert (out / f"{stem}.onnx").is_file() and (out / f"{stem}.json").is_file()
        assert f"wrote {out / stem}.onnx" in text
    assert (
        json.loads((out / "superglue_k16.json").read_text())["config"]["sinkhorn_iterations"] == 20
    )
    # atc command lines consistent with the files just written
    atc_lines = [line for line in text.splitlines() if line.startswith("atc ")]
    assert len(atc_lines) == 4
    assert any(
        f"--model={out / 'superglue_k16.onnx'}" in line
        and "--soc_version=Ascend310P3" in line
        and "keypoints0:1,16,2" in line
        for line in atc_lines
    )
    assert any(
        "image:1,1,48,64" in line and "--soc_version=Ascend310 " in line + " "
        for line in atc_lines
    )


def test_export_cli_errors(tmp_path, capsys):
    from spsg_ros.cli.main import main

    rc = main(
        [
            "export",
            "--out",
            str(tmp_path),
            "--superpoint-weights",
            str(tmp_path / "missing.pth"),
            "--only",
            "superpoint",
        ]
    )
    assert rc == 2
    assert "missing.pth" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--sizes", "480by640"])
