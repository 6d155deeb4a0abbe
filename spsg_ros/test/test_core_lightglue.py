"""LightGlue: parity with upstream on the shared fixtures, checkpoint accounting,
weight names and download, the matcher and the match-features command."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spsg_ros.cli.main import main  # noqa: E402
from spsg_ros.cli.match_features import FeatureFileError, match_features  # noqa: E402
from spsg_ros.config import ConfigError  # noqa: E402
from spsg_ros.features.types import Features  # noqa: E402
from spsg_ros.matching.lightglue_matcher import LightGlueMatcher  # noqa: E402
from spsg_ros.networks import weights as W  # noqa: E402
from spsg_ros.networks.lightglue import (  # noqa: E402
    DEFAULT_CONFIG,
    LightGlue,
    confidence_threshold,
    lightglue_config,
)
from spsg_ros.networks.weights import WeightError, load_lightglue  # noqa: E402

CONFIGS = {
    "default": {"depth_confidence": 0.95, "width_confidence": 0.99, "filter_threshold": 0.1},
    "noadapt": {"depth_confidence": -1, "width_confidence": -1, "filter_threshold": 0.1},
    "depthonly": {"depth_confidence": 0.95, "width_confidence": -1, "filter_threshold": 0.1},
    "lowth": {"depth_confidence": -1, "width_confidence": -1, "filter_threshold": 0.004},
}
DISK_FILES = (
    "disk_freiburg_f01_f02",
    "disk_freiburg_f01_f05",
    "disk_freiburg_f09_f11_1024v512",
    "disk_small_intermediates",
)
SUPERPOINT_FILE = "superpoint_random_seed0_freiburg_max1024"
CASES = [
    (name, prefix)
    for name, prefixes in [
        *((n, ("default", "noadapt", "depthonly")) for n in DISK_FILES),
        (SUPERPOINT_FILE, ("default", "noadapt", "depthonly", "lowth")),
    ]
    for prefix in prefixes
    if not (name == "disk_small_intermediates" and prefix == "depthonly")  # not in the file
]


@pytest.fixture(scope="module")
def lightglue_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "fixtures" / "lightglue"
    weights = [shared_dir / "weights" / f for f in ("lightglue_disk.pth",)]
    if not folder.is_dir() or not all(w.is_file() for w in weights):
        pytest.skip(f"LightGlue fixtures or weights missing under {shared_dir}")
    return folder


@pytest.fixture(scope="module")
def disk_weights(shared_dir: Path, lightglue_dir) -> Path:
    return shared_dir / "weights" / "lightglue_disk.pth"


@pytest.fixture(scope="module")
def superpoint_random_weights(shared_dir: Path, lightglue_dir) -> Path:
    path = shared_dir / "weights" / "lightglue_superpoint_random_seed0.pth"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="module")
def nets(disk_weights, superpoint_random_weights) -> dict[str, LightGlue]:
    return {
        "disk": load_lightglue(disk_weights),
        "superpoint": load_lightglue(superpoint_random_weights),
    }


def fixture_inputs(shared_dir: Path, name: str) -> dict[str, np.ndarray]:
    """The fixture arrays, with the matcher inputs (descriptors N x D) of the
    SuperPoint case taken from the file it names."""
    data = dict(np.load(shared_dir / "fixtures" / "lightglue" / f"{name}.npz"))
    if name == SUPERPOINT_FILE:
        source = np.load(shared_dir / "fixtures" / "freiburg_pair_max1024.npz")
        for i in (0, 1):
            data[f"keypoints{i}"] = source[f"keypoints{i}"]
            data[f"descriptors{i}"] = source[f"descriptors{i}"].T  # stored 256 x N
    return data


def run_net(net: LightGlue, data, config, record=None) -> dict:
    net.config.update(config)
    try:
        with torch.inference_mode():
            return net(
                torch.from_numpy(data["keypoints0"]),
                torch.from_numpy(np.ascontiguousarray(data["descriptors0"])),
                tuple(data["image_size0"]),
                torch.from_numpy(data["keypoints1"]),
                torch.from_numpy(np.ascontiguousarray(data["descriptors1"])),
                tuple(data["image_size1"]),
                record=record,
            )
    finally:
        net.config.update({k: DEFAULT_CONFIG[k] for k in config})


@pytest.mark.parametrize("name, prefix", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_parity_with_upstream(shared_dir, nets, name, prefix):
    """Identical matches, stop layer, pruning (per point and per layer) and exit
    fractions; matching scores within 1e-4; the log assignment within 5e-3."""
    data = fixture_inputs(shared_dir, name)
    net = nets["superpoint" if name == SUPERPOINT_FILE else "disk"]
    record: dict = {}
    out = run_net(net, data, CONFIGS[prefix], record)
    ref = {k[len(prefix) + 1 :]: v for k, v in data.items() if k.startswith(prefix + "_")}
    assert out["stop"] == ref["stop"]
    for i in (0, 1):
        np.testing.assert_array_equal(out[f"matches{i}"].numpy(), ref[f"matches{i}"])
        np.testing.assert_allclose(
            out[f"matching_scores{i}"].numpy(), ref[f"matching_scores{i}"], rtol=0, atol=1e-4
        )
        np.testing.assert_array_equal(out[f"prune{i}"].numpy(), ref[f"prune{i}"])
        assert out[f"num_pruned{i}"] == ref[f"num_pruned{i}"]
        if f"alive{i}_per_layer" in ref:
            assert record[f"alive{i}_per_layer"] == ref[f"alive{i}_per_layer"].tolist()
    # the exit fractions are counts over N0 + N1: equal, not close
    np.testing.assert_array_equal(
        np.float32(record["confident_fraction"]), ref["confident_fraction"]
    )
    if "scores" in ref:
        np.testing.assert_allclose(
            record["log_assignment"].numpy(), ref["scores"], rtol=0, atol=5e-3
        )


def test_intermediates(shared_dir, nets):
    """Every intermediate tensor of the small case at the README's tolerance."""
    data = fixture_inputs(shared_dir, "disk_small_intermediates")
    record: dict = {}
    run_net(nets["disk"], data, CONFIGS["noadapt"], record)
    keys = [k for k in data if k.startswith(("input_proj", "posenc", "layer", "sim"))]
    assert len(keys) == 2 * (1 + 1 + 1 + 9 + 8 + 9) + 1  # ..., sim
    for key in keys:
        tol = 1e-5 if key.startswith(("input_proj", "posenc")) else 5e-3
        np.testing.assert_allclose(record[key].numpy(), data[key], rtol=0, atol=tol, err_msg=key)


def test_cuda_pruning_rule_equals_upstream_on_a_gpu(shared_dir, nets):
    """Upstream on CUDA prunes only images of more than 1024 points: on the 1024 vs 512
    pair the default config then equals the depth-only run."""
    data = fixture_inputs(shared_dir, "disk_freiburg_f09_f11_1024v512")
    out = run_net(nets["disk"], data, {**CONFIGS["default"], "pruning_rule": "cuda"})
    assert out["stop"] == data["depthonly_stop"]
    assert out["num_pruned0"] == out["num_pruned1"] == 0
    for i in (0, 1):
        np.testing.assert_array_equal(out[f"matches{i}"].numpy(), data[f"depthonly_matches{i}"])


def test_thresholds_and_config():
    values = [confidence_threshold(i, 9) for i in range(9)]
    expected = [0.9, 0.864118, 0.841111, 0.826360, 0.816901, 0.810837, 0.806948, 0.804455]
    np.testing.assert_allclose(values[:8], expected, atol=1e-6)
    assert DEFAULT_CONFIG["depth_confidence"] == 0.95
    assert DEFAULT_CONFIG["width_confidence"] == 0.99
    assert DEFAULT_CONFIG["filter_threshold"] == 0.1 and DEFAULT_CONFIG["n_layers"] == 9
    assert DEFAULT_CONFIG["pruning_rule"] == "cpu"
    with pytest.raises(ConfigError, match="unknown parameter 'depth'"):
        lightglue_config({"depth": 1})
    with pytest.raises(ConfigError, match="pruning_rule"):
        lightglue_config({"pruning_rule": "gpu"})
    with pytest.raises(ConfigError, match="filter_threshold"):
        lightglue_config({"filter_threshold": 2})


# ---- small random networks: checkpoints, names, downloads ---------------------------

SMALL = {"input_dim": 16, "descriptor_dim": 32, "n_layers": 2, "num_heads": 2}


def small_release_state(seed: int = 0) -> dict:
    """A random LightGlue state dict in release naming, with the unused ``r`` scalars."""
    torch.manual_seed(seed)
    state = LightGlue(SMALL).state_dict()
    for i in range(SMALL["n_layers"]):
        state[f"log_assignment.{i}.r"] = torch.ones(1)
    return state


def save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def test_both_namings_load_to_the_same_network(tmp_path):
    release = small_release_state()
    module = {}
    for key, value in release.items():
        if key.endswith(".r"):
            continue
        for block in ("self_attn", "cross_attn"):
            if key.startswith(block + "."):
                _, i, rest = key.split(".", 2)
                key = f"transformers.{i}.{block}.{rest}"
        module[key] = value
    module["confidence_thresholds"] = torch.tensor([0.9, 0.85])
    a = load_lightglue(save(release, tmp_path / "release.pth"))
    b = load_lightglue(save(module, tmp_path / "module.pth"))
    assert a.config["input_dim"] == 16 and a.config["n_layers"] == 2
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert torch.equal(b.confidence_thresholds, torch.tensor([0.9, 0.85]))  # as upstream


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("cross_attn.1.to_v.bias"), "missing keys cross_attn.1.to_v.bias"),
        (lambda s: s.update(extra=torch.zeros(1)), "unexpected keys extra"),
        (
            lambda s: s.update({"self_attn.0.out_proj.bias": torch.zeros(3)}),
            r"wrong shapes \(self_attn.0.out_proj.bias: file \(3,\)",
        ),
        (
            lambda s: s.update({"transformers.1.self_attn.Wqkv.bias": torch.zeros(96)}),
            r"unexpected keys transformers\.1\.self_attn\.Wqkv\.bias",
        ),
        (lambda s: s.update({"log_assignment.0.r": torch.ones(2)}), "log_assignment.0.r"),
        (lambda s: s.update(confidence_thresholds=torch.ones(5)), "confidence_thresholds"),
    ],
)
def test_every_tensor_is_accounted_for(tmp_path, change, message):
    state = small_release_state()
    change(state)
    with pytest.raises(WeightError, match=message):
        load_lightglue(save(state, tmp_path / "lg.pth"))


def test_checkpoint_errors_name_the_cause(tmp_path, generated_weights):
    path = save(small_release_state(), tmp_path / "lg.pth")
    with pytest.raises(WeightError, match=r"input_dim 256 \(the file has 16\).*16-D"):
        load_lightglue(path, {"input_dim": 256})
    with pytest.raises(WeightError, match="holds superglue weights.*--superglue-weights"):
        load_lightglue(generated_weights["superglue"])
    with pytest.raises(WeightError, match="holds lightglue weights.*--lightglue-weights"):
        W.load_superglue(path)
    model = load_lightglue(path, {"depth_confidence": -1, "filter_threshold": 0.3})
    assert model.config["filter_threshold"] == 0.3 and not model.training


def test_short_names_resolve_in_the_weights_dir(tmp_path):
    path = save(small_release_state(), tmp_path / "superpoint_lightglue.pth")
    for name in ("lightglue", "superpoint_lightglue"):
        assert W.resolve_weights(name, "lightglue", tmp_path) == path
        assert load_lightglue(name, weights_dir=tmp_path).config["n_layers"] == 2
    with pytest.raises(WeightError, match="spsg-ros models download disk_lightglue"):
        load_lightglue("disk_lightglue", weights_dir=tmp_path)
    with pytest.raises(WeightError, match="'indoor' names superglue weights, not lightglue"):
        load_lightglue("indoor", weights_dir=tmp_path)
    with pytest.raises(WeightError, match="names lightglue weights, not superpoint"):
        W.resolve_weights("lightglue", "superpoint", tmp_path)
    # superpoint_lightglue.pth is not taken for SuperPoint weights
    with pytest.raises(WeightError, match="superpoint weights 'superpoint' not found"):
        W.resolve_weights("superpoint", "superpoint", tmp_path)
    with pytest.raises(WeightError, match="short names: lightglue"):
        load_lightglue(tmp_path / "nothing")


def mirror_with(tmp_path: Path, content: bytes) -> Path:
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    (mirror / "superpoint_lightglue.pth").write_bytes(content)
    return mirror


def test_download_trusts_the_first_file_and_then_checks(tmp_path):
    first = tmp_path / "first.pth"
    save(small_release_state(0), first)
    content = first.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    mirror = mirror_with(tmp_path, content)
    target = tmp_path / "models"
    got = W.download_lightglue(["lightglue"], target, mirror.as_uri(), progress=False)
    entry = got["lightglue"]
    assert entry.path == target / "superpoint_lightglue.pth"
    assert entry.path.read_bytes() == content
    assert entry.sha256 == digest and entry.first_use
    assert entry.record.read_text().split() == [digest, "superpoint_lightglue.pth"]
    again = W.download_lightglue(["superpoint_lightglue"], target, mirror.as_uri(), force=True)
    assert not again["superpoint_lightglue"].first_use
    assert load_lightglue("lightglue", weights_dir=target).config["input_dim"] == 16
    # the mirror now serves another (valid) file: refused, the trusted one kept
    other = save(small_release_state(1), tmp_path / "other.pth").read_bytes()
    mirror_with(tmp_path, other)
    with pytest.raises(WeightError, match=f"but {digest} was recorded"):
        W.download_lightglue(["lightglue"], target, mirror.as_uri(), force=True, progress=False)
    assert (target / "superpoint_lightglue.pth").read_bytes() == content
    assert not list(target.glob("*.part"))
    # a file changed in place is reported without downloading
    (target / "superpoint_lightglue.pth").write_bytes(other)
    with pytest.raises(WeightError, match="the file changed"):
        W.download_lightglue(["lightglue"], target, mirror.as_uri(), progress=False)


def test_download_rejects_what_is_not_lightglue(tmp_path, generated_weights):
    target = tmp_path / "models"
    mirror = mirror_with(tmp_path, b"<html>Not Found</html>")
    with pytest.raises(WeightError, match="not a LightGlue checkpoint"):
        W.download_lightglue(["lightglue"], target, mirror.as_uri(), progress=False)
    mirror_with(tmp_path, generated_weights["superglue"].read_bytes())
    with pytest.raises(WeightError, match="superglue weights"):
        W.download_lightglue(["lightglue"], target, mirror.as_uri(), progress=False)
    assert not list(target.iterdir())  # nothing kept, nothing recorded
    with pytest.raises(WeightError, match="could not download"):
        W.download_lightglue(["lightglue"], target, (tmp_path / "absent").as_uri())


def test_models_download_lightglue_command(tmp_path, capsys):
    content = save(small_release_state(), tmp_path / "lg.pth").read_bytes()
    mirror = mirror_with(tmp_path, content)
    target = tmp_path / "models"
    argv = ["models", "download", "lightglue", "--weights-dir", str(target)]
    code = main([*argv, "--base-url", mirror.as_uri()])
    out = capsys.readouterr().out
    assert code == 0
    assert "Apache-2.0" in out and "Magic Leap" in out and "noncommercial" in out
    assert hashlib.sha256(content).hexdigest() in out and "first use" in out
    assert "Academic or Non-Profit" not in out  # no Magic Leap weights were fetched
    assert W.LIGHTGLUE_BASE_URL == (
        "https://github.com/cvg/LightGlue/releases/download/v0.1_arxiv"
    )
    code = main(
        ["models", "check", "--lightglue-weights", "lightglue", "--weights-dir", str(target)]
    )
    assert code == 0 and "16-D descriptors" in capsys.readouterr().out
    assert main(["models", "download", "lightglu", "--weights-dir", str(target)]) == 2
    assert "unknown weights lightglu" in capsys.readouterr().err


# ---- matcher and match-features --------------------------------------------------


def features_of(data, i: int) -> Features:
    return Features(
        data[f"keypoints{i}"],
        data[f"keypoint_scores{i}"],
        np.ascontiguousarray(data[f"descriptors{i}"].T),
        tuple(int(v) for v in data[f"image_size{i}"]),
    )


def test_matcher_reproduces_upstream(shared_dir, disk_weights):
    data = fixture_inputs(shared_dir, "disk_small_intermediates")
    matcher = LightGlueMatcher(weights=disk_weights)
    assert matcher.input_dim == 128 and matcher.last_stop_layer is None
    matches = matcher(features_of(data, 0), features_of(data, 1))
    np.testing.assert_array_equal(matches.matches0, data["default_matches0"])
    np.testing.assert_array_equal(matches.matches1, data["default_matches1"])
    np.testing.assert_allclose(matches.scores0, data["default_matching_scores0"], atol=1e-4)
    assert matches.scores0.dtype == np.float32 and matches.matches0.dtype == np.int64
    assert matcher.last_stop_layer == 6 and matcher.last_pruned == (94, 30)
    result = LightGlueMatcher(CONFIGS["noadapt"], weights=disk_weights).match(
        features_of(data, 0), features_of(data, 1)
    )
    np.testing.assert_array_equal(result.matches.matches0, data["noadapt_matches0"])
    assert result.stop_layer == 9 and result.num_pruned == (0, 0)
    empty = matcher(Features.empty((640, 480), 128), features_of(data, 1))
    assert empty.matches0.shape == (0,) and np.all(empty.matches1 == -1)
    assert matcher.last_stop_layer == 0 and matcher.last_pruned == (0, 0)
    with pytest.raises(ValueError, match="256-D, but these LightGlue weights take 128-D"):
        matcher(Features.empty((640, 480), 256), features_of(data, 1))


def write_features(path: Path, data, drop=()) -> Path:
    arrays = {}
    for i in (0, 1):
        arrays[f"keypoints{i}"] = data[f"keypoints{i}"]
        arrays[f"descriptors{i}"] = np.ascontiguousarray(data[f"descriptors{i}"].T)  # D x N
        arrays[f"scores{i}"] = data[f"keypoint_scores{i}"]
        arrays[f"image_size{i}"] = data[f"image_size{i}"]
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


@pytest.mark.parametrize("prefix", ["default", "noadapt"])
def test_match_features_cli_reproduces_upstream(tmp_path, shared_dir, disk_weights, prefix):
    data = fixture_inputs(shared_dir, "disk_freiburg_f09_f11_1024v512")
    features = write_features(tmp_path / "features.npz", data)
    out = tmp_path / "out" / "matches.npz"
    options = ["--lightglue-weights", str(disk_weights), "--out", str(out)]
    if prefix == "noadapt":
        options += ["--depth-confidence", "-1", "--width-confidence", "-1"]
    assert main(["match-features", str(features), "--matcher", "lightglue", *options]) == 0
    result = np.load(out)
    for i in (0, 1):
        np.testing.assert_array_equal(result[f"matches{i}"], data[f"{prefix}_matches{i}"])
        np.testing.assert_allclose(
            result[f"matching_scores{i}"], data[f"{prefix}_matching_scores{i}"], atol=1e-4
        )
        assert result[f"num_pruned{i}"] == data[f"{prefix}_num_pruned{i}"]
        np.testing.assert_array_equal(result[f"keypoints{i}"], data[f"keypoints{i}"])
    assert result["stop_layer"] == data[f"{prefix}_stop"]
    assert result["descriptors0"].shape == (128, 1024)


def test_match_features_errors(tmp_path, shared_dir, capsys):
    data = fixture_inputs(shared_dir, "disk_small_intermediates")
    no_scores = write_features(tmp_path / "f.npz", data, drop=("scores0", "scores1"))
    code = main(["match-features", str(no_scores), "--matcher", "superglue"])
    err = capsys.readouterr().err
    assert code == 2 and "missing key(s) scores0" in err and str(no_scores) in err
    assert len(err.strip().splitlines()) == 1
    assert main(["match-features", str(tmp_path / "absent.npz")]) == 2
    assert "absent.npz: no such file" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"nonsense")
    assert main(["match-features", str(tmp_path / "bad.npz")]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
    arrays = {k: data[k] for k in ("keypoints0", "keypoints1", "descriptors0", "descriptors1")}
    with pytest.raises(FeatureFileError, match=r"\(160, 128\), expected \(D, 160\).*transpose"):
        match_features(arrays, "nn")
    with pytest.raises(FeatureFileError, match=r"missing key\(s\) descriptors0$"):
        match_features({"keypoints0": data["keypoints0"]}, "nn")
    with pytest.raises(ValueError, match="unknown option.*depth_confidence"):
        match_features(arrays, "nn", {"depth_confidence": 1})
    with pytest.raises(ValueError, match="unknown matcher"):
        match_features(arrays, "magic")


def test_match_features_nn_and_superglue(tmp_path, shared_dir, generated_weights):
    from spsg_ros.backends import create_backend
    from spsg_ros.matching.nearest_neighbor import match_nearest_neighbor
    from spsg_ros.matching.superglue_matcher import SuperGlueMatcher

    source = np.load(shared_dir / "fixtures" / "freiburg_pair_max1024.npz")
    data = {
        f"{k}{i}": source[f"{k}{i}"][..., :200] if k == "descriptors" else source[f"{k}{i}"][:200]
        for k in ("keypoints", "descriptors", "scores")
        for i in (0, 1)
    }
    data["image_size0"] = data["image_size1"] = np.array([640, 480])
    nn = match_features(data, "nn", {"ratio": 0.8})
    ref = match_nearest_neighbor(data["descriptors0"], data["descriptors1"], 0.8)
    np.testing.assert_array_equal(nn["matches0"], ref.matches0)
    assert "stop_layer" not in nn
    options = {"weights": generated_weights["superglue"], "sinkhorn_iterations": 20}
    sg = match_features(data, "superglue", options)
    backend = create_backend(
        "torch",
        superpoint_weights=generated_weights["superpoint"],
        superglue_weights=generated_weights["superglue"],
        superglue_config={"sinkhorn_iterations": 20},
    )
    f = [
        Features(data[f"keypoints{i}"], data[f"scores{i}"], data[f"descriptors{i}"], (640, 480))
        for i in (0, 1)
    ]
    ref = SuperGlueMatcher(backend, {"sinkhorn_iterations": 20})(f[0], f[1])
    np.testing.assert_array_equal(sg["matches0"], ref.matches0)
    np.testing.assert_array_equal(sg["matching_scores1"], ref.scores1)


def test_pruning_every_point_ends_without_matches(tmp_path):
    """Points pruned down to none in one image: no matches, the layers actually run."""
    torch.manual_seed(0)
    net = LightGlue({**SMALL, "depth_confidence": -1, "width_confidence": 0.99}).eval()
    with torch.no_grad():
        for head in net.log_assignment:
            head.matchability.bias.fill_(-100.0)  # nothing is matchable: all pruned
    rng = np.random.default_rng(0)
    args = []
    for n in (7, 5):
        args += [
            torch.from_numpy(rng.random((n, 2), np.float32) * 100),
            torch.from_numpy(rng.random((n, 16), np.float32)),
            (100, 100),
        ]
    with torch.inference_mode():
        out = net(*args)
    assert out["stop"] == 1 and out["num_pruned0"] == 7 and out["num_pruned1"] == 5
    assert torch.all(out["matches0"] == -1) and torch.all(out["matching_scores1"] == 0)
    assert out["prune0"].tolist() == [1] * 7
