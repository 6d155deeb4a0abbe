"""``spsg-ros models import``: SuperPoint weights from a pytorch-superpoint training
checkpoint (BatchNorm folded) and from an OpenVINO IR, checked by the dense
outputs of the source model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from spsg_ros.cli.main import main  # noqa: E402
from spsg_ros.networks.convert import (
    convert_checkpoint,
    convert_openvino_ir,
    fold_batchnorm,  # noqa: E402
    import_superpoint,
    save_state_dict,
)
from spsg_ros.networks.superpoint import SuperPoint  # noqa: E402
from spsg_ros.networks.weights import WeightError, load_superpoint  # noqa: E402

TOL = 1e-4


# ---------------------------------------------------------------------------
# a pytorch-superpoint style network with BatchNorm (SuperPointNet_gauss2 layout)
# ---------------------------------------------------------------------------


class DoubleConv(nn.Module):
    """(conv => BN => ReLU) * 2, as models/unet_parts.py double_conv."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.conv(x)


class InConv(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = DoubleConv(c_in, c_out)

    def forward(self, x):
        return self.conv(x)


class Down(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.mpconv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(c_in, c_out))

    def forward(self, x):
        return self.mpconv(x)


class Gauss2(nn.Module):
    """Key names and forward of SuperPointNet_gauss2 (eric-yyjau/pytorch-superpoint)."""

    def __init__(self, desc_dim=256):
        super().__init__()
        self.inc = InConv(1, 64)
        self.down1, self.down2, self.down3 = Down(64, 64), Down(64, 128), Down(128, 128)
        self.relu = nn.ReLU(inplace=True)
        self.convPa, self.bnPa = nn.Conv2d(128, 256, 3, padding=1), nn.BatchNorm2d(256)
        self.convPb, self.bnPb = nn.Conv2d(256, 65, 1), nn.BatchNorm2d(65)
        self.convDa, self.bnDa = nn.Conv2d(128, 256, 3, padding=1), nn.BatchNorm2d(256)
        self.convDb, self.bnDb = nn.Conv2d(256, desc_dim, 1), nn.BatchNorm2d(desc_dim)

    def forward(self, x):
        x = self.down3(self.down2(self.down1(self.inc(x))))
        semi = self.bnPb(self.convPb(self.relu(self.bnPa(self.convPa(x)))))
        desc = self.bnDb(self.convDb(self.relu(self.bnDa(self.convDa(x)))))
        return semi, desc / torch.norm(desc, p=2, dim=1, keepdim=True)


class FlatBN(nn.Module):
    """conv1a + bn1a ... convDb + bnDb (another common fine-tuning layout), BN before ReLU."""

    NAMES = ("1a", "1b", "2a", "2b", "3a", "3b", "4a", "4b")

    def __init__(self):
        super().__init__()
        chans = [1, 64, 64, 64, 64, 128, 128, 128, 128]
        for i, n in enumerate(self.NAMES):
            setattr(self, f"conv{n}", nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))
            setattr(self, f"bn{n}", nn.BatchNorm2d(chans[i + 1]))
        self.convPa, self.bnPa = nn.Conv2d(128, 256, 3, padding=1), nn.BatchNorm2d(256)
        self.convPb, self.bnPb = nn.Conv2d(256, 65, 1), nn.BatchNorm2d(65)
        self.convDa, self.bnDa = nn.Conv2d(128, 256, 3, padding=1), nn.BatchNorm2d(256)
        self.convDb, self.bnDb = nn.Conv2d(256, 256, 1), nn.BatchNorm2d(256)

    def forward(self, x):
        for i, n in enumerate(self.NAMES):
            x = torch.relu(getattr(self, f"bn{n}")(getattr(self, f"conv{n}")(x)))
            if i in (1, 3, 5):
                x = nn.functional.max_pool2d(x, 2)
        semi = self.bnPb(self.convPb(torch.relu(self.bnPa(self.convPa(x)))))
        desc = self.bnDb(self.convDb(torch.relu(self.bnDa(self.convDa(x)))))
        return semi, desc


def randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(1000)
    return model.eval()


def dense(state: dict, image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    model = SuperPoint({"descriptor_dim": int(state["convDb.weight"].shape[0])}).eval()
    model.load_state_dict(
        {k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}, strict=True
    )
    with torch.inference_mode():
        semi, desc = model.forward_dense(image)
    return semi.numpy(), desc.numpy()


def unit(desc: np.ndarray) -> np.ndarray:
    return desc / np.linalg.norm(desc, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def image():
    from conftest import textured_image

    return torch.from_numpy(textured_image(64, 96, seed=2).astype(np.float32) / 255)[None, None]


# ---------------------------------------------------------------------------
# BatchNorm checkpoints
# ---------------------------------------------------------------------------


def test_fold_batchnorm_matches_conv_then_bn():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1), randomize_batchnorm(nn.BatchNorm2d(5), 3)
    x = torch.randn(2, 3, 8, 8)
    w, b = fold_batchnorm(
        conv.weight.detach().numpy(),
        conv.bias.detach().numpy(),
        bn.weight.detach().numpy(),
        bn.bias.detach().numpy(),
        bn.running_mean.numpy(),
        bn.running_var.numpy(),
    )
    with torch.no_grad():
        expected = bn(conv(x))
        folded = nn.functional.conv2d(x, torch.from_numpy(w), torch.from_numpy(b), padding=1)
    np.testing.assert_allclose(folded.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("layout,prefix", [("gauss2", ""), ("gauss2", "module."), ("flat", "")])
def test_batchnorm_checkpoint_import(tmp_path, image, layout, prefix):
    torch.manual_seed(0)
    net = randomize_batchnorm(Gauss2() if layout == "gauss2" else FlatBN(), seed=4)
    state = {prefix + k: v for k, v in net.state_dict().items()}
    path = tmp_path / "superPointNet_100000_checkpoint.pth.tar"
    torch.save(
        {
            "n_iter": 100000,
            "model_state_dict": state,
            "optimizer_state_dict": {
                "state": {},
                "param_groups": [{"lr": 1e-4, "params": [0, 1]}],
            },
            "loss": torch.tensor(0.5),
        },
        path,
    )
    result = import_superpoint(path)
    assert result.kind == "checkpoint" and "folded 12 BatchNorm layers" in result.notes[0]
    semi, desc = dense(result.state_dict, image)
    with torch.inference_mode():
        ref_semi, ref_desc = (t.numpy() for t in net(image))
    scale = max(1.0, float(np.abs(ref_semi).max()))
    np.testing.assert_allclose(semi, ref_semi, atol=TOL * scale)
    np.testing.assert_allclose(unit(desc), unit(ref_desc), atol=TOL)
    # written as an upstream-layout .pth that SuperPoint loads strictly
    out = save_state_dict(result, tmp_path / "converted.pth")
    assert set(torch.load(out, weights_only=True)) == set(SuperPoint().state_dict())
    load_superpoint(out)


def test_plain_state_dict_in_a_checkpoint(tmp_path, generated_weights, image):
    """A checkpoint of the upstream-layout network (no BN) is unwrapped as is."""
    state = torch.load(generated_weights["superpoint"], weights_only=True)
    path = tmp_path / "plain.pth.tar"
    torch.save({"model_state_dict": state, "epoch": 3}, path)
    result = convert_checkpoint(path)
    assert result.kind == "state-dict"
    for k, v in state.items():
        np.testing.assert_array_equal(result.state_dict[k], v.numpy())


def test_checkpoint_errors(tmp_path):
    bogus = tmp_path / "resnet.pth.tar"
    torch.save({"model_state_dict": {"fc.weight": torch.zeros(3, 3)}}, bogus)
    with pytest.raises(WeightError, match="no weights for SuperPoint's conv1a"):
        import_superpoint(bogus)
    # the strict loader points training checkpoints to the importer
    net = randomize_batchnorm(Gauss2(), 1)
    ckpt = tmp_path / "gauss2.pth.tar"
    torch.save({"model_state_dict": net.state_dict()}, ckpt)
    with pytest.raises(WeightError, match="models import"):
        load_superpoint(ckpt)
    # a checkpoint holding arbitrary pickled objects needs an explicit opt-in
    pickled = tmp_path / "pickled.pth.tar"
    torch.save({"model_state_dict": net.state_dict(), "args": Gauss2}, pickled)
    with pytest.raises(WeightError, match="--trust-pickle"):
        import_superpoint(pickled)
    assert import_superpoint(pickled, trust_pickle=True).kind == "checkpoint"
    with pytest.raises(WeightError, match="not found"):
        import_superpoint(tmp_path / "missing.pth.tar")


# ---------------------------------------------------------------------------
# OpenVINO IR
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_ir(generated_weights, tmp_path_factory):
    ov = pytest.importorskip("openvino")
    from spsg_ros.networks.onnx_export import export_superpoint

    folder = tmp_path_factory.mktemp("ir")
    onnx = export_superpoint(
        folder / "superpoint_dynamic.onnx", generated_weights["superpoint"]
    ).path
    model = ov.convert_model(str(onnx))
    paths = {}
    for name, fp16 in (("fp32", False), ("fp16", True)):
        paths[name] = folder / f"superpoint_{name}.xml"
        ov.save_model(model, str(paths[name]), compress_to_fp16=fp16)
    return paths


def run_ir(xml, image: torch.Tensor):
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = compiled({0: image.numpy()})
    values = list(out.values())
    semi = [v for v in values if v.shape[1] == 65][0]
    desc = [v for v in values if v.shape[1] != 65][0]
    return semi, desc


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_openvino_ir_import(random_ir, generated_weights, image, precision):
    result = convert_openvino_ir(random_ir[precision])
    assert result.kind == "openvino-ir" and "read 12 convolutions" in result.notes[-1]
    source = torch.load(generated_weights["superpoint"], weights_only=True)
    for key, value in source.items():
        expected = (
            value.numpy()
            if precision == "fp32"
            else value.numpy().astype(np.float16).astype(np.float32)
        )
        np.testing.assert_array_equal(result.state_dict[key], expected, err_msg=key)
    semi, desc = dense(result.state_dict, image)
    ir_semi, ir_desc = run_ir(random_ir[precision], image)
    np.testing.assert_allclose(semi, ir_semi, atol=TOL)
    np.testing.assert_allclose(unit(desc), unit(ir_desc), atol=TOL)


def test_seed_ir_reproduces_the_shared_weights(shared_dir, shared_weights, image):
    """The IR is read with numpy alone; OpenVINO, where installed, runs it for the dense check."""
    xml = shared_dir / "weights" / "seed_openvino_ir" / "superpoint.xml"
    if not xml.is_file():
        pytest.skip(f"seed IR missing: {xml}")
    result = import_superpoint(xml)  # kind detected from the .xml
    reference = torch.load(shared_weights["superpoint"], weights_only=True)
    assert set(result.state_dict) == set(reference)
    for key, value in reference.items():
        np.testing.assert_array_equal(result.state_dict[key], value.numpy(), err_msg=key)
    pytest.importorskip("openvino")
    semi, desc = dense(result.state_dict, image)
    ir_semi, ir_desc = run_ir(xml, image)
    np.testing.assert_allclose(semi, ir_semi, atol=5e-5)  # OpenVINO f32 vs torch: ~1e-5
    np.testing.assert_allclose(unit(desc), unit(ir_desc), atol=1e-5)


def test_ir_errors(random_ir, tmp_path):
    xml = tmp_path / "alone.xml"
    xml.write_text(random_ir["fp32"].read_text())
    with pytest.raises(WeightError, match="missing"):
        convert_openvino_ir(xml)
    (tmp_path / "bad.xml").write_text("<html></html>")
    (tmp_path / "bad.bin").write_bytes(b"")
    with pytest.raises(WeightError, match="not an OpenVINO IR"):
        convert_openvino_ir(tmp_path / "bad.xml")


def test_ir_of_another_network(tmp_path):
    ov = pytest.importorskip("openvino")
    small = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    onnx = tmp_path / "small.onnx"
    torch.onnx.export(
        small, (torch.zeros(1, 1, 16, 16),), str(onnx), input_names=["image"], dynamo=False
    )
    ov.save_model(ov.convert_model(str(onnx)), str(tmp_path / "small.xml"))
    with pytest.raises(WeightError, match="found 2 convolutions"):
        convert_openvino_ir(tmp_path / "small.xml")


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------


def test_models_import_command(tmp_path, random_ir, capsys):
    net = randomize_batchnorm(Gauss2(), 7)
    ckpt = tmp_path / "superPointNet_checkpoint.pth.tar"
    torch.save({"model_state_dict": net.state_dict(), "n_iter": 1}, ckpt)
    out = tmp_path / "out" / "sp.pth"
    assert main(["models", "import", str(ckpt), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "checkpoint" in text and "folded 12 BatchNorm" in text and str(out) in text
    load_superpoint(out)
    assert main(["models", "import", str(ckpt), "-o", str(out)]) == 2  # exists
    assert "--force" in capsys.readouterr().err
    assert main(["models", "import", str(ckpt), "-o", str(out), "--force"]) == 0
    # default output: <weights-dir>/<source name>.pth
    assert (
        main(["models", "import", str(random_ir["fp16"]), "--weights-dir", str(tmp_path / "w")])
        == 0
    )
    text = capsys.readouterr().out
    assert (tmp_path / "w" / "superpoint_fp16.pth").is_file()
    assert "check against the IR" in text
