"""Weight files: every mistake gets an actionable error; downloads are verified."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spsg_ros.networks import weights as W  # noqa: E402
from spsg_ros.networks.weights import WeightError, load_superglue, load_superpoint  # noqa: E402


def test_loads_generated_weights_strictly(generated_weights):
    sp = load_superpoint(generated_weights["superpoint"])
    sg = load_superglue(generated_weights["superglue"], {"sinkhorn_iterations": 5})
    assert not sp.training and not sg.training
    state = torch.load(generated_weights["superpoint"], weights_only=True)
    assert torch.equal(sp.conv1a.weight, state["conv1a.weight"])


def test_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(WeightError, match="not found.*spsg-ros models download"):
        load_superpoint(tmp_path / "nope.pth")
    with pytest.raises(WeightError) as err:
        load_superglue("outdoor", weights_dir=tmp_path)
    assert str(tmp_path / "superglue_outdoor.pth") in str(err.value)
    assert "spsg-ros models download" in str(err.value)


def test_short_name_of_the_wrong_network(tmp_path):
    with pytest.raises(WeightError, match="superglue weights, not superpoint"):
        load_superpoint("indoor", weights_dir=tmp_path)


def test_not_a_weight_file(tmp_path):
    bogus = tmp_path / "image.pth"
    bogus.write_bytes(b"\x89PNG not a checkpoint at all")
    with pytest.raises(
        WeightError, match="is not a PyTorch checkpoint.*damaged or the wrong file"
    ):
        load_superpoint(bogus)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"PK\x03\x04" + bytes(200), "damaged PyTorch checkpoint: its zip archive"),
        (b"\x80\x02" + bytes(range(256)) * 4, "not a readable PyTorch checkpoint"),
    ],
)
def test_damaged_files_never_suggest_weights_only_false(tmp_path, content, message):
    """torch's hint to re-run with weights_only=False is wrong for a damaged file."""
    path = tmp_path / "damaged.pth"
    path.write_bytes(content)
    with pytest.raises(WeightError, match=message) as err:
        W.load_state_dict(path)
    assert "weights_only" not in str(err.value)


def test_pickled_objects_get_a_safe_explanation(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"conv1a.weight": torch.zeros(1), "payload": subprocess.Popen}, path)
    with pytest.raises(WeightError, match="Python objects besides tensors") as err:
        W.load_state_dict(path)
    assert "weights_only" not in str(err.value) and "Popen" in str(err.value)


def test_non_finite_values_name_the_tensors(tmp_path, generated_weights):
    state = torch.load(generated_weights["superglue"], weights_only=True)
    state["bin_score"] = torch.tensor(float("inf"))
    state["kenc.encoder.0.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(WeightError) as err:
        load_superglue(path)
    text = str(err.value)
    assert str(path) in text and "2 tensor(s)" in text
    assert "bin_score (1 inf)" in text and "kenc.encoder.0.weight (1 NaN)" in text


def test_pickled_code_is_not_executed(tmp_path):
    """weights_only loading refuses arbitrary objects instead of running them."""
    evil = tmp_path / "evil.pth"
    torch.save({"conv1a.weight": torch.zeros(1), "payload": subprocess.Popen}, evil)
    with pytest.raises(WeightError):
        load_superpoint(evil)


def test_training_checkpoint_points_to_import(tmp_path, generated_weights):
    state = torch.load(generated_weights["superpoint"], weights_only=True)
    ckpt = tmp_path / "checkpoint.pth.tar"
    torch.save({"n_iter": 3, "model_state_dict": state}, ckpt)
    with pytest.raises(WeightError, match="spsg-ros models import"):
        load_superpoint(ckpt)


def test_missing_and_unexpected_keys(tmp_path, generated_weights):
    state = torch.load(generated_weights["superpoint"], weights_only=True)
    del state["convDb.bias"]
    state["convDc.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(WeightError) as err:
        load_superpoint(path)
    assert "missing keys convDb.bias" in str(err.value)
    assert "unexpected keys convDc.weight" in str(err.value)


def test_wrong_shapes(tmp_path, generated_weights):
    state = torch.load(generated_weights["superglue"], weights_only=True)
    state["final_proj.weight"] = torch.zeros(128, 256, 1)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(
        WeightError, match=r"wrong shapes \(final_proj.weight: file \(128, 256, 1\)"
    ):
        load_superglue(path)


def test_superglue_file_given_as_superpoint(generated_weights):
    with pytest.raises(WeightError, match="holds superglue weights.*--superglue-weights"):
        load_superpoint(generated_weights["superglue"])
    with pytest.raises(WeightError, match="holds superpoint weights.*--superpoint-weights"):
        load_superglue(generated_weights["superpoint"])


def test_a_tensor_instead_of_a_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(WeightError, match="not a state dict"):
        load_superpoint(path)


def _mirror_with(tmp_path, monkeypatch, content: bytes):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "superpoint_v1.pth").write_bytes(content)
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    return mirror, blob


def test_download_verifies_git_blob_id(tmp_path, monkeypatch, generated_weights):
    content = generated_weights["superpoint"].read_bytes()
    mirror, blob = _mirror_with(tmp_path, monkeypatch, content)
    entry = W.UPSTREAM_WEIGHTS["superpoint"]
    monkeypatch.setitem(
        W.UPSTREAM_WEIGHTS,
        "superpoint",
        W.UpstreamWeights(entry.name, entry.filename, entry.network, blob),
    )
    target = tmp_path / "models"
    paths = W.download_weights(["superpoint"], target, mirror.as_uri(), progress=False)
    assert paths["superpoint"].read_bytes() == content
    assert W.git_blob_sha1(paths["superpoint"]) == blob
    model = load_superpoint("superpoint", weights_dir=target)  # found by its short name
    assert model.conv1a.weight.shape == (64, 1, 3, 3)


def test_download_rejects_a_corrupt_file(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "superglue_indoor.pth").write_bytes(b"truncated")
    target = tmp_path / "models"
    with pytest.raises(WeightError, match="expected 2b54532f"):
        W.download_weights(["indoor"], target, mirror.as_uri(), progress=False)
    assert not (target / "superglue_indoor.pth").exists()
    assert not list(target.glob("*.part"))


def test_download_unreachable_mirror(tmp_path):
    with pytest.raises(WeightError, match="could not download"):
        W.download_weights(["outdoor"], tmp_path, (tmp_path / "absent").as_uri(), progress=False)


def test_upstream_blob_ids_are_spec_values():
    assert (
        W.UPSTREAM_WEIGHTS["superpoint"].git_blob_sha1
        == "107a444ca318d487390137d619d49f2f0a3b1ad8"
    )
    assert W.UPSTREAM_WEIGHTS["indoor"].git_blob_sha1 == "2b54532f1b7321505cac79ee3a2863ef2ab2d163"
    assert (
        W.UPSTREAM_WEIGHTS["outdoor"].git_blob_sha1 == "5ca3392bd5349790d7bc1c246961fc041b88c1e8"
    )
    assert W.UPSTREAM_BASE_URL.endswith(
        "magicleap/SuperGluePretrainedNetwork/raw/master/models/weights"
    )


def test_git_blob_id_matches_git(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(np.arange(1000, dtype=np.int32).tobytes())
    out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("git not available")
    assert W.git_blob_sha1(path) == out.stdout.strip()


def test_weights_dir_with_other_file_names(tmp_path, generated_weights):
    """A folder holding one superpoint*.pth / superglue*.pth (not upstream names) works."""
    import shutil

    shutil.copy(generated_weights["superpoint"], tmp_path / "superpoint_finetuned.pth")
    shutil.copy(generated_weights["superglue"], tmp_path / "superglue_mine.pth")
    assert (
        W.resolve_weights("superpoint", "superpoint", tmp_path).name == "superpoint_finetuned.pth"
    )
    assert W.resolve_weights("outdoor", "superglue", tmp_path).name == "superglue_mine.pth"
    shutil.copy(generated_weights["superglue"], tmp_path / "superglue_other.pth")
    with pytest.raises(WeightError, match="several candidates"):
        W.resolve_weights("indoor", "superglue", tmp_path)
