"""LightGlue exported for static engines: K slots with masks, stage models with the
adaptive depth and width decided on the host, the single non-adaptive graph, fp16,
the backends that serve them (onnxruntime, OpenVINO, Ascend with a stand-in
session), the export command and the ATC commands.

Parity is checked against the upstream fixtures of ``shared/fixtures/lightglue``
(real DISK-LightGlue weights): identical matches, stop layer, pruned counts, alive
points per layer and exit fractions; scores within 1e-4.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from spsg_ros.backends import create_backend  # noqa: E402
from spsg_ros.backends.lightglue_staged import (  # noqa: E402
    ExportedLightGlue,
    adaptive_config,
)
from spsg_ros.cli.main import main  # noqa: E402
from spsg_ros.export import atc  # noqa: E402
from spsg_ros.features.types import Features  # noqa: E402
from spsg_ros.matching.lightglue_matcher import LightGlueMatcher  # noqa: E402
from spsg_ros.networks import contract  # noqa: E402
from spsg_ros.networks import lightglue_contract as lc  # noqa: E402
from spsg_ros.networks.lightglue import LightGlue  # noqa: E402
from spsg_ros.networks.lightglue_export import export_lightglue  # noqa: E402

#: K larger than every fixture's point count: every run has padded slots
K_PADDED = 1040
CONFIGS = {
    "default": {"depth_confidence": 0.95, "width_confidence": 0.99, "filter_threshold": 0.1},
    "noadapt": {"depth_confidence": -1, "width_confidence": -1, "filter_threshold": 0.1},
    "depthonly": {"depth_confidence": 0.95, "width_confidence": -1, "filter_threshold": 0.1},
}
FILES = (
    "disk_freiburg_f01_f02",
    "disk_freiburg_f01_f05",
    "disk_freiburg_f09_f11_1024v512",
    "disk_small_intermediates",
)
CASES = [
    (name, prefix)
    for name in FILES
    for prefix in CONFIGS
    if not (name == "disk_small_intermediates" and prefix == "depthonly")  # not in the file
]
#: fp16 stages vs fp32 on the fixtures (ORT CPU): at least 99.8% of the fp32 matches
#: kept, every stop layer equal, pruned counts within 2 points (measured); the floors
#: below leave room for other CPUs and runtimes
FP16_KEPT_FLOOR = 0.99
FP16_PRUNED_SLACK = 3
#: operators whose output shape or count depends on the data
DATA_DEPENDENT = {"NonZero", "Unique", "Compress", "TopK", "NonMaxSuppression", "Loop", "If"}


# ---- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disk_weights(shared_dir: Path) -> Path:
    path = shared_dir / "weights" / "lightglue_disk.pth"
    if not path.is_file() or not (shared_dir / "fixtures" / "lightglue").is_dir():
        pytest.skip(f"LightGlue fixtures or {path} missing")
    return path


def load_case(shared_dir: Path, name: str):
    data = dict(np.load(shared_dir / "fixtures" / "lightglue" / f"{name}.npz"))
    feats = [
        Features(
            data[f"keypoints{i}"],
            data[f"keypoint_scores{i}"],
            np.ascontiguousarray(data[f"descriptors{i}"].T),
            tuple(float(v) for v in data[f"image_size{i}"]),
        )
        for i in (0, 1)
    ]
    return data, feats


def open_ort(path: Path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return lambda feeds: dict(zip(names, sess.run(names, dict(feeds))))


@pytest.fixture(scope="module")
def static_export(disk_weights, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lg_export") / lc.folder_name(K_PADDED)
    export_lightglue(folder, disk_weights, num_slots=K_PADDED)
    return folder


@pytest.fixture(scope="module")
def static_models(static_export) -> ExportedLightGlue:
    return ExportedLightGlue(static_export, open_ort)


@pytest.fixture(scope="module")
def ort_backend(tmp_path_factory):
    """The onnxruntime backend as a frontend makes it: no model given, so the dynamic-K
    stages are exported once into its cache."""
    cache = tmp_path_factory.mktemp("lg_cache")
    backend = create_backend(
        "onnxruntime", cache_dir=cache, load_superglue=False, intra_op_threads=2
    )
    yield backend
    backend.close()


def assert_parity(result, data, prefix, trace=None):
    ref = {k[len(prefix) + 1 :]: v for k, v in data.items() if k.startswith(prefix + "_")}
    assert result.stop_layer == ref["stop"]
    assert result.num_pruned == (ref["num_pruned0"], ref["num_pruned1"])
    for i, (m, s) in enumerate(
        (
            (result.matches.matches0, result.matches.scores0),
            (result.matches.matches1, result.matches.scores1),
        )
    ):
        np.testing.assert_array_equal(m, ref[f"matches{i}"])
        np.testing.assert_allclose(s, ref[f"matching_scores{i}"], rtol=0, atol=1e-4)
    if trace is not None:
        np.testing.assert_array_equal(
            np.float32(trace["confident_fraction"]), ref["confident_fraction"]
        )
        for i in (0, 1):
            if f"alive{i}_per_layer" in ref:
                assert trace[f"alive{i}"] == ref[f"alive{i}_per_layer"].tolist()


# ---- the graphs ----------------------------------------------------------------------


def test_static_graphs_have_fixed_shapes_and_no_data_dependent_ops(static_export):
    meta = lc.read_manifest(static_export)
    assert meta["num_slots"] == K_PADDED and meta["static"] is True
    assert meta["single"] == "single.onnx" and len(meta["stages"]) == 1 + 9 + 9
    assert meta["config"] == {
        "input_dim": 128,
        "descriptor_dim": 256,
        "n_layers": 9,
        "num_heads": 4,
    }
    for name in [*meta["stages"].values(), meta["single"]]:
        model = onnx.load(str(static_export / name))
        ops = {n.op_type for n in model.graph.node}
        assert not ops & (DATA_DEPENDENT | {"Shape", "ConstantOfShape", "Range"}), (name, ops)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
        for value in values:
            dims = value.type.tensor_type.shape.dim
            assert all(d.HasField("dim_value") for d in dims), (name, value.name)
        sidecar = contract.read_sidecar(static_export / name, "lightglue")
        assert [i["name"] for i in sidecar["inputs"]] == [i.name for i in model.graph.input]
        assert [o["name"] for o in sidecar["outputs"]] == [o.name for o in model.graph.output]
        for entry, value in zip(sidecar["inputs"], model.graph.input):
            dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
            assert dims == entry["shape"], (name, entry)


@pytest.mark.parametrize("name, prefix", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_static_stages_equal_upstream_with_padding(shared_dir, static_models, name, prefix):
    """K slots > N points: padding and pruning by masks, the exit rule counting over
    the valid points; identical to the upstream run."""
    data, (f0, f1) = load_case(shared_dir, name)
    result = static_models.staged.match(f0, f1, adaptive_config(CONFIGS[prefix]))
    assert_parity(result, data, prefix, static_models.staged.last_trace)


@pytest.mark.parametrize("name", FILES)
def test_single_graph_equals_upstream_without_adaptivity(shared_dir, static_models, name):
    data, (f0, f1) = load_case(shared_dir, name)
    result = static_models.match(f0, f1, adaptive_config(CONFIGS["noadapt"]))
    assert_parity(result, data, "noadapt")
    from spsg_ros.backends.lightglue_staged import single_feeds

    feeds, _ = single_feeds(f0, f1, K_PADDED, 128)
    la = static_models.single(feeds)[lc.LOG_ASSIGNMENT][0]
    n0, n1 = len(f0), len(f1)
    rows, cols = np.r_[np.arange(n0), K_PADDED], np.r_[np.arange(n1), K_PADDED]
    np.testing.assert_allclose(la[np.ix_(rows, cols)], data["noadapt_scores"], atol=5e-3)
    assert np.isneginf(la[n0:K_PADDED]).all() and np.isneginf(la[:, n1:K_PADDED]).all()


def test_single_only_export_refuses_adaptive_configs(shared_dir, static_export, tmp_path):
    folder = tmp_path / "single_only"
    folder.mkdir()
    meta = json.loads((static_export / lc.MANIFEST).read_text())
    meta["stages"] = {}
    (folder / lc.MANIFEST).write_text(json.dumps(meta))
    for name in ("single.onnx", "single.json"):
        shutil.copy(static_export / name, folder / name)
    models = ExportedLightGlue(folder, open_ort)
    data, (f0, f1) = load_case(shared_dir, "disk_small_intermediates")
    with pytest.raises(lc.LightGlueModelError, match="non-adaptive single model"):
        models.match(f0, f1, adaptive_config(CONFIGS["default"]))
    assert_parity(models.match(f0, f1, adaptive_config(CONFIGS["noadapt"])), data, "noadapt")


# ---- the onnxruntime backend (dynamic K from its cache: exact sizes, pruned rows removed)


@pytest.mark.parametrize("name, prefix", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_onnxruntime_backend_equals_upstream(shared_dir, disk_weights, ort_backend, name, prefix):
    data, (f0, f1) = load_case(shared_dir, name)
    result = ort_backend.lightglue(f0, f1, {"weights": str(disk_weights), **CONFIGS[prefix]})
    assert_parity(result, data, prefix)
    assert result.n_layers == 9


def test_onnxruntime_backend_export_is_cached(disk_weights, ort_backend, tmp_path):
    (folder,) = ort_backend.describe()["lightglue_models"]
    folder = Path(folder)
    assert folder.name == lc.folder_name(None) and folder.parent.name.startswith("lightglue-")
    meta = lc.read_manifest(folder)
    assert meta["num_slots"] is None and meta["single"] is None
    from spsg_ros.networks.weights import sha256

    assert meta["source_weights"]["sha256"] == sha256(disk_weights)
    mtime = (folder / lc.MANIFEST).stat().st_mtime_ns
    other = create_backend(
        "onnxruntime", cache_dir=folder.parent.parent, load_superglue=False, intra_op_threads=1
    )
    f = Features(
        np.zeros((3, 2), np.float32),
        np.ones(3, np.float32),
        np.eye(128, 3, dtype=np.float32),
        (640, 480),
    )
    result = other.lightglue(f, f, {"weights": str(disk_weights)})
    assert other.describe()["lightglue_models"] == [str(folder)]  # reused, not re-exported
    assert (folder / lc.MANIFEST).stat().st_mtime_ns == mtime
    assert result.matches.matches0.shape == (3,)
    empty = Features.empty((640, 480), 128)
    none = other.lightglue(f, empty, {"weights": str(disk_weights)})
    assert none.stop_layer == 0 and none.matches.matches0.tolist() == [-1, -1, -1]
    other.close()


def test_onnxruntime_backend_static_slots_and_onnx_dir(
    shared_dir, disk_weights, static_export, shared_lightglue_weights
):
    """num_slots K: the static export from onnx_dir (padding and pruning by masks); an
    export made from other weights is refused."""
    backend = create_backend(
        "onnxruntime",
        onnx_dir=static_export.parent,
        num_slots=K_PADDED,
        load_superglue=False,
        export_missing=False,
        intra_op_threads=2,
    )
    data, (f0, f1) = load_case(shared_dir, "disk_freiburg_f09_f11_1024v512")
    result = backend.lightglue(f0, f1, {"weights": str(disk_weights)})
    assert_parity(result, data, "default")
    assert backend.describe()["lightglue_models"] == [str(static_export)]
    with pytest.raises(lc.LightGlueModelError, match="other weights"):
        backend.lightglue(f0, f1, {"weights": str(shared_lightglue_weights)})
    backend.close()
    missing = create_backend(
        "onnxruntime",
        onnx_dir=static_export.parent,
        num_slots=512,
        load_superglue=False,
        export_missing=False,
    )
    from spsg_ros.backends.base import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="lightglue_k512"):
        missing.lightglue(f0, f1, {"weights": str(disk_weights)})


@pytest.mark.parametrize("prefix", ["default", "lowth"])
def test_superpoint_variant_without_input_projection(
    shared_dir, shared_lightglue_weights, ort_backend, prefix
):
    """256-D SuperPoint weights (no input projection; random, so the exit never fires and
    only a near-zero threshold gives matches): identical to upstream's runs."""
    data = dict(
        np.load(
            shared_dir / "fixtures" / "lightglue" / "superpoint_random_seed0_freiburg_max1024.npz"
        )
    )
    source = np.load(shared_dir / "fixtures" / "freiburg_pair_max1024.npz")
    f0, f1 = (
        Features(
            source[f"keypoints{i}"],
            source[f"scores{i}"],
            source[f"descriptors{i}"],
            tuple(float(v) for v in data[f"image_size{i}"]),
        )
        for i in (0, 1)
    )
    config = {"depth_confidence": 0.95, "width_confidence": 0.99, "filter_threshold": 0.1}
    if prefix == "lowth":
        config = {"depth_confidence": -1, "width_confidence": -1, "filter_threshold": 0.004}
    result = ort_backend.lightglue(f0, f1, {"weights": str(shared_lightglue_weights), **config})
    assert_parity(result, data, prefix)
    assert (result.matches.matches0 >= 0).sum() == (30 if prefix == "lowth" else 0)


# ---- fp16 ----------------------------------------------------------------------------


def test_fp16_agreement(shared_dir, disk_weights, ort_backend, tmp_path):
    """fp16 stages (float32 I/O, double softmax float32) against fp32: the stop layer
    everywhere, the fp32 matches kept above the floor, pruned counts close."""
    half = create_backend(
        "onnxruntime", cache_dir=tmp_path, fp16=True, load_superglue=False, intra_op_threads=2
    )
    worst = 1.0
    for name, prefix in CASES:
        data, (f0, f1) = load_case(shared_dir, name)
        config = {"weights": str(disk_weights), **CONFIGS[prefix]}
        r32 = ort_backend.lightglue(f0, f1, config)
        r16 = half.lightglue(f0, f1, config)
        assert r16.stop_layer == r32.stop_layer, (name, prefix)
        for a, b in zip(r16.num_pruned, r32.num_pruned):
            assert abs(a - b) <= FP16_PRUNED_SLACK, (name, prefix)
        m32, m16 = r32.matches.matches0, r16.matches.matches0
        kept = ((m32 == m16) & (m32 >= 0)).sum() / max(1, (m32 >= 0).sum())
        worst = min(worst, kept)
    assert worst >= FP16_KEPT_FLOOR
    (exported,) = half.describe()["lightglue_models"]
    meta = lc.read_manifest(exported)
    assert meta["fp16"] is True and Path(exported).name == lc.folder_name(None, fp16=True)
    model = onnx.load(str(Path(exported) / "layer0.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in model.graph.input)
    half.close()


# ---- OpenVINO and Ascend serve the same export --------------------------------------


def test_openvino_backend_serves_the_export(shared_dir, disk_weights, static_export):
    pytest.importorskip("openvino")
    backend = create_backend("openvino", load_superglue=False, num_threads=2)
    data, (f0, f1) = load_case(shared_dir, "disk_freiburg_f01_f02")
    result = backend.lightglue(f0, f1, {"weights": str(static_export)})
    assert_parity(result, data, "default")
    backend.close()


def test_ascend_backend_runs_the_stage_oms(shared_dir, static_export, generated_weights, tmp_path):
    """OMs planned by the ATC step beside the manifest, run by a stand-in session
    (onnxruntime on the ONNX each OM stands for)."""
    from backends_helpers import export_superpoint_cached
    from test_backends_ascend import factory, om_for

    oms = tmp_path / "om" / static_export.name
    oms.mkdir(parents=True)
    shutil.copy(static_export / lc.MANIFEST, oms / lc.MANIFEST)
    meta = lc.read_manifest(static_export)
    for name in meta["stages"].values():
        onnx_path = static_export / name
        plan = atc.atc_plans(onnx_path, None, ["Ascend310P3"], output_dir=oms)[0]
        assert plan.mode == "static" and plan.om_path == oms / f"{onnx_path.stem}_Ascend310P3.om"
        atc.write_om_sidecars([plan], contract.read_sidecar(onnx_path))
        plan.om_path.write_bytes(b"placeholder")
        (oms / f"{plan.om_path.stem}.source").write_text(str(onnx_path))
    sp_onnx = export_superpoint_cached(
        str(tmp_path / "sp"), str(generated_weights["superpoint"]), 64, 80
    )
    sp_om = om_for(sp_onnx, tmp_path / "sp_om")
    backend = create_backend(
        "ascend", superpoint_model=sp_om, load_superglue=False, session_factory=factory()
    )
    data, (f0, f1) = load_case(shared_dir, "disk_small_intermediates")
    result = backend.lightglue(f0, f1, {"weights": str(oms)})
    assert_parity(result, data, "default")
    assert backend.describe()["lightglue_models"] == [str(oms.resolve())]
    with pytest.raises(Exception, match="OM stage models"):
        backend.lightglue(f0, f1, {"weights": "lightglue"})
    backend.close()


# ---- a tiny network: slot policy, export command, ATC text ---------------------------

TINY = {"input_dim": 16, "descriptor_dim": 32, "n_layers": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "lightglue_tiny.pth"
    torch.save(LightGlue(TINY).state_dict(), path)
    return path


def tiny_features(n: int, seed: int) -> Features:
    rng = np.random.default_rng(seed)
    desc = rng.standard_normal((16, n)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=0, keepdims=True)
    kpts = np.stack([rng.integers(0, 320, n), rng.integers(0, 240, n)], 1).astype(np.float32)
    return Features(kpts, rng.random(n).astype(np.float32), desc, (320, 240))


def test_more_points_than_slots_keeps_the_best_by_score(tiny_weights, tmp_path):
    folder = tmp_path / lc.folder_name(8)
    export_lightglue(folder, tiny_weights, num_slots=8, single=False)
    models = ExportedLightGlue(folder, open_ort)
    f0, f1 = tiny_features(12, 1), tiny_features(10, 2)
    config = {"depth_confidence": -1, "width_confidence": -1, "filter_threshold": 0.0}
    result = models.match(f0, f1, adaptive_config(config))
    keep0 = np.sort(np.argsort(-f0.scores, kind="stable")[:8])
    keep1 = np.sort(np.argsort(-f1.scores, kind="stable")[:8])
    ref = LightGlueMatcher(config, tiny_weights).match(f0.subset(keep0), f1.subset(keep1))
    expected0 = np.full(12, -1)
    expected0[keep0] = np.where(ref.matches.matches0 >= 0, keep1[ref.matches.matches0], -1)
    np.testing.assert_array_equal(result.matches.matches0, expected0)
    assert (result.matches.matches0 >= 0).sum() > 0
    others = np.setdiff1d(np.arange(12), keep0)
    assert (result.matches.scores0[others] == 0).all()


def test_export_command_writes_manifest_and_atc_commands(tiny_weights, tmp_path, capsys):
    out = tmp_path / "exported"
    code = main(
        [
            "export",
            "--only",
            "lightglue",
            "--lightglue-weights",
            str(tiny_weights),
            "--ks",
            "32",
            "--dynamic-k",
            "--out",
            str(out),
            "--atc",
            "--soc-versions",
            "Ascend310",
            "--om-dir",
            str(tmp_path / "om"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    static, dynamic = out / "lightglue_k32", out / "lightglue_dynamic"
    meta = lc.read_manifest(static)
    assert meta["num_slots"] == 32 and meta["config"] == TINY and meta["fp16"] is False
    assert list(meta["stages"]) == ["input", "layer0", "layer1", "assign0", "assign1"]
    assert meta["single"] == "single.onnx" and len(meta["confidence_thresholds"]) == 2
    assert lc.read_manifest(dynamic)["static"] is False
    assert f"wrote {static}/" in text and "manifest.json" in text
    # one static ATC command per stage of the static export, none for the dynamic one
    commands = [line for line in text.splitlines() if line.startswith("atc ")]
    assert len(commands) == 6
    layer = next(c for c in commands if "layer0.onnx" in c)
    assert (
        '--input_shape="desc0:1,32,32;encoding0:1,2,32,16;mask0:1,32;desc1:1,32,32;'
        'encoding1:1,2,32,16;mask1:1,32"' in layer
    )
    assert "--input_format=ND" in layer and "--soc_version=Ascend310" in layer
    assert f"--output={tmp_path / 'om' / 'lightglue_k32' / 'layer0_Ascend310'}" in layer
    assert (tmp_path / "om" / "lightglue_k32" / lc.MANIFEST).is_file()
    om_meta = json.loads((tmp_path / "om" / "lightglue_k32" / "layer0_Ascend310.json").read_text())
    assert om_meta["network"] == "lightglue" and om_meta["om"]["mode"] == "static"
    assert "dynamic-K LightGlue has no ATC plan" in text
    with pytest.raises(atc.AtcError, match="static shapes"):
        atc.atc_plans(dynamic / "layer0.onnx", soc_versions=["Ascend310"])


def test_export_command_refuses_wrong_weights(tmp_path, generated_weights, capsys):
    code = main(
        [
            "export",
            "--only",
            "lightglue",
            "--lightglue-weights",
            str(generated_weights["superglue"]),
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code != 0
    assert "--lightglue-weights" in capsys.readouterr().err
    assert not (tmp_path / "x" / lc.folder_name(1024)).exists()
