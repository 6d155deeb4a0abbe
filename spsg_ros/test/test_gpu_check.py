"""scripts/gpu_check.sh: its CPU dry run, as the GPU machine runs it (working tree on
PYTHONPATH, none of the packages that machine lacks), and its answers to bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from conftest import textured_image  # noqa: E402
from spsg_ros.evaluation import gpu_check  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
# not installed on the GPU machine: importing any of them there would fail
ABSENT_ON_GPU_MACHINE = ("tqdm", "yaml", "matplotlib", "rosbags", "mcap", "onnx", "openvino")
TINY = ["--device", "cpu", "--ks", "64", "--runs", "1", "--size", "120x160"]


def blocked_packages(folder: Path) -> Path:
    """A PYTHONPATH folder whose stand-ins make importing those packages fail."""
    for name in ABSENT_ON_GPU_MACHINE:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed on the GPU machine')\n"
        )
    return folder


@pytest.fixture(scope="module")
def weights(comparable_weights):
    return comparable_weights


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, weights):
    """One tiny CPU dry run through the shell script: (completed process, JSON report)."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    frames = tmp / "data" / "sequence"  # found one level down, as in ../shared/data
    frames.mkdir(parents=True)
    for i in range(2):
        image = textured_image(120, 160, seed=3)[i : 100 + i, i * 3 : 140 + i * 3]
        cv2.imwrite(str(frames / f"{i:02d}.png"), cv2.resize(image, (160, 120)))
    out = tmp / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OUT")}
    env.update(PYTHON=sys.executable, PYTHONPATH=str(blocked_packages(tmp / "blocked")))
    args = TINY + [
        "--variants",
        *gpu_check.VARIANTS,
        "--weights-dir",
        str(weights["superglue"].parent),
        "--superpoint-weights",
        str(weights["superpoint"]),
        "--superglue-weights",
        str(weights["superglue"]),
        "--frames-dir",
        str(tmp / "data"),
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def rows_of(report, variant, stage=None):
    return [
        r
        for r in report["rows"]
        if r["variant"] == variant and (stage is None or r["stage"] == stage)
    ]


def test_dry_run_uses_the_working_tree_and_real_frames(dry_run, weights):
    proc, report = dry_run
    assert report["environment"]["spsg_ros"] == str(REPO / "spsg_ros" / "spsg_ros")
    assert [Path(p).name for p in report["settings"]["frames"]] == ["00.png", "01.png"]
    assert report["settings"]["size"] == [120, 160]
    assert report["settings"]["ks"] == [64]
    detected = report["reference"]["per_k"]["64"]["detected"]
    assert len(detected) == 2 and 0 < min(detected) <= 64
    if weights["trained"]:
        assert report["reference"]["per_k"]["64"]["matches"] > 0
    assert "| variant | stage | K | median ms | p90 ms | kp agree | match agree |" in proc.stdout
    assert "[" in proc.stderr and "reference (cpu, fp32): SuperGlue K=64" in proc.stderr


def test_fp32_on_the_reference_device_agrees_exactly(dry_run, weights):
    proc, report = dry_run
    post = rows_of(report, "fp32-eager", "post")[0]
    assert post["kp_agree"] == 1.0
    assert post["median_ms"] > 0 and post["n"] == 1
    assert rows_of(report, "fp32-eager", "superpoint")[0]["median_ms"] > 0
    superglue = rows_of(report, "fp32-eager", "superglue")[0]
    assert superglue["k"] == 64
    assert superglue["match_agree"] == 1.0
    assert superglue["log_assignment_max_abs_diff"] == 0.0
    if weights["trained"]:
        assert superglue["matches_ref"] > 0
    assert superglue["matches"] == superglue["matches_ref"]
    pair = rows_of(report, "fp32-eager", "pair")[0]
    assert pair["kp_agree"] == 1.0 and pair["match_agree"] == 1.0
    assert "| fp32-eager | superglue | 64 |" in proc.stdout
    assert "100.00%" in proc.stdout


def test_static_superglue_path_runs_on_cpu(dry_run):
    """fp32-static is the graph variants' code without the capture: MaskedSuperGlue on
    K-slot buffers, agreeing with the reference to float rounding."""
    _, report = dry_run
    assert rows_of(report, "fp32-static", "post")[0]["kp_agree"] == 1.0
    superglue = rows_of(report, "fp32-static", "superglue")[0]
    assert superglue["median_ms"] > 0
    assert superglue["log_assignment_max_abs_diff"] < 1e-3
    assert superglue["match_agree"] >= 0.95
    assert not [r for r in report["rows"] if r["note"].startswith("failed")]


def test_fp16_and_graph_variants_are_na_on_cpu_with_the_reason(dry_run):
    proc, report = dry_run
    expected = {
        "fp16-eager": "fp16 autocast",
        "fp32-graph": "CUDA graphs",
        "fp16-graph": "fp16 autocast and CUDA graphs",
        "fp32-eager-notf32": "the TF32 switch",
    }
    for name, needs in expected.items():
        (row,) = rows_of(report, name)
        assert row["stage"] == "all" and row["median_ms"] is None
        assert row["note"] == f"n/a (CUDA only: {needs})"
        assert f"| {name} | all |" in proc.stdout


def test_defaults_on_cpu_list_the_cuda_variants_as_na():
    args = gpu_check.build_parser().parse_args(["--device", "cpu"])
    names = [v.name for v in gpu_check.resolve_variants(args, on_cuda=False)]
    assert names == ["fp32-eager", "fp32-eager-notf32", "fp16-eager", "fp32-graph", "fp16-graph"]
    args = gpu_check.build_parser().parse_args(["--no-graphs"])
    names = [v.name for v in gpu_check.resolve_variants(args, on_cuda=True)]
    assert names == ["fp32-eager", "fp32-eager-notf32", "fp16-eager", "fp32-static"]


def test_tf32_switch_restores_torch_settings():
    before = gpu_check.tf32_settings(torch)
    with gpu_check.float32_precision(torch, tf32=False):
        inside = gpu_check.tf32_settings(torch)
    assert inside["cudnn_conv_fp32_precision"] == "ieee"
    assert inside["cuda_matmul_fp32_precision"] == "ieee"
    assert gpu_check.tf32_settings(torch) == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--device", "cuda:99"], "--device cuda:99"),
        (["--frames-dir", "/nonexistent/frames"], "is not a folder"),
        (["--weights-dir", "/nonexistent/weights"], "is not a folder"),
        (["--superglue-weights", "/nonexistent/sg.pth"], "weight file not found"),
        (["--ks", "100", "--size", "16x16"], "pixels for keypoints"),
    ],
)
def test_bad_options_give_one_clear_error(extra, message, capsys, generated_weights, tmp_path):
    weights = ["--weights-dir", str(generated_weights["superpoint"].parent)]
    weights += ["--superpoint-weights", str(generated_weights["superpoint"])]
    weights += ["--superglue-weights", str(generated_weights["superglue"])]
    # the last value of an option wins: ``extra`` overrides the tiny defaults
    argv = TINY + weights + ["--out", str(tmp_path / "r.json")] + extra
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err
    assert "gpu_check: error:" in err and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("extra", [["--size", "480"], ["--runs", "0"], ["--ks", "x"]])
def test_malformed_values_are_rejected_by_the_parser(extra, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.build_parser().parse_args(extra)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
