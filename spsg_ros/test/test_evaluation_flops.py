"""FLOP counts of the networks against arithmetic from their architecture; the GEMM probe."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")

from spsg_ros.evaluation import flops as fl  # noqa: E402
from spsg_ros.networks.config import superglue_config  # noqa: E402
from spsg_ros.networks.superpoint import ENCODER  # noqa: E402


def superpoint_macs(height: int, width: int, dim: int = 256) -> int:
    """Sum over the convolutions of H_l * W_l * Cin * Cout * k * k (pooling after
    conv1b, conv2b, conv3b; heads at H/8 x W/8)."""
    macs, h, w = 0, height, width
    for i, (_, c_in, c_out) in enumerate(ENCODER):
        macs += h * w * c_in * c_out * 9
        if i in (1, 3, 5):
            h, w = h // 2, w // 2
    macs += h * w * (128 * 256 * 9 + 256 * 65)  # convPa, convPb
    macs += h * w * (128 * 256 * 9 + 256 * dim)  # convDa, convDb
    return macs


def superglue_macs(n0: int, n1: int, config, folded: bool) -> tuple[int, int]:
    """(conv, matmul) multiply-adds of SuperGlue's network (not the Sinkhorn): keypoint
    encoder MLP, per GNN layer and image q/k/v projections, merge (folded into the MLP
    in the exported model), MLP 2D->2D->D, attention N x M x D twice; final projection;
    scores n0 x n1 x D."""
    d = config["descriptor_dim"]
    enc = [3, *config["keypoint_encoder"], d]
    conv = sum(a * b for a, b in zip(enc[:-1], enc[1:])) * (n0 + n1)
    matmul = 0
    per_point = (3 + (0 if folded else 1) + 4 + 2) * d * d
    for name in config["GNN_layers"]:
        for n, m in ((n0, n1 if name == "cross" else n0), (n1, n0 if name == "cross" else n1)):
            conv += per_point * n
            matmul += 2 * n * m * d
    conv += d * d * (n0 + n1)  # final projection
    matmul += n0 * n1 * d
    return conv, matmul


def test_superpoint_count_is_the_architecture_and_the_reference_figure():
    for h, w in ((64, 80), (120, 160)):
        count = fl.superpoint_flops(h, w)
        assert count.conv == pytest.approx(2 * superpoint_macs(h, w), rel=1e-3)
        assert count.matmul == 0 and count.exp == 0
    # 480x640 counted on the meta device (no arithmetic): 26.0 G multiply-adds
    full = fl.superpoint_flops(480, 640)
    assert full.conv / 2e9 == pytest.approx(26.05, abs=0.01)
    assert full.conv == pytest.approx(2 * superpoint_macs(480, 640), rel=1e-3)
    assert full.to_json()["gflop"] == pytest.approx(52.1, abs=0.05)
    with pytest.raises(ValueError, match="at least 8x8"):
        fl.superpoint_flops(4, 80)


@pytest.mark.parametrize("kind", [fl.MODEL_TORCH, fl.MODEL_EXPORTED])
@pytest.mark.parametrize("n0, n1", [(16, 16), (32, 24)])
def test_superglue_count_is_the_architecture(kind, n0, n1):
    config = superglue_config({"sinkhorn_iterations": 10})
    count = fl.superglue_flops(n0, n1, config, kind)
    conv, matmul = superglue_macs(n0, n1, config, folded=kind == fl.MODEL_EXPORTED)
    assert count.conv == pytest.approx(2 * conv, rel=0.01)
    assert count.matmul - count.sinkhorn_matmul == pytest.approx(2 * matmul, rel=0.01)
    # attention softmaxes: every layer, both images, N x M per head
    heads = 4
    attention = sum(
        heads * 2 * n0 * n1 if name == "cross" else heads * (n0 * n0 + n1 * n1)
        for name in config["GNN_layers"]
    )
    assert count.exp - count.sinkhorn_exp == pytest.approx(attention, rel=0.01)
    assert count.sinkhorn_exp > 0


def test_superglue_reference_figure_at_512():
    config = superglue_config({"sinkhorn_iterations": 100})
    count = fl.superglue_flops(512, 512, config, fl.MODEL_TORCH)
    assert count.flops / 2e9 == pytest.approx(17.16, abs=0.02)  # G multiply-adds
    # upstream log-domain Sinkhorn: two log-sum-exps over 513 x 513 per iteration
    assert count.sinkhorn_exp == 100 * 2 * 513 * 513
    assert count.to_json()["sinkhorn_exp_m"] == pytest.approx(52.63, abs=0.01)


@pytest.mark.parametrize("kind", [fl.MODEL_TORCH, fl.MODEL_EXPORTED])
def test_sinkhorn_exponentials_grow_with_iterations(kind):
    counts = [
        fl.superglue_flops(16, 16, superglue_config({"sinkhorn_iterations": it}), kind)
        for it in (10, 40)
    ]
    assert 0 < counts[0].sinkhorn_exp < counts[1].sinkhorn_exp
    # the network part does not depend on the iterations
    assert counts[0].conv == counts[1].conv
    assert counts[0].exp - counts[0].sinkhorn_exp == counts[1].exp - counts[1].sinkhorn_exp
    if kind == fl.MODEL_TORCH:
        assert counts[1].sinkhorn_exp == 4 * counts[0].sinkhorn_exp


def test_counting_follows_the_function_the_model_calls(monkeypatch):
    """The exported model's optimal transport is whatever function it calls now."""
    from spsg_ros.networks import superglue as sg

    config = superglue_config({"sinkhorn_iterations": 3})
    plain = fl.superglue_flops(16, 12, config, fl.MODEL_EXPORTED)
    fl._superglue_flops.cache_clear()
    original = sg.log_optimal_transport_masked

    def with_extra_exponentials(scores, *args, **kwargs):
        scores.exp()  # (B, 16, 12): 192 more exponentials
        return original(scores, *args, **kwargs)

    monkeypatch.setattr(sg, "log_optimal_transport_masked", with_extra_exponentials)
    try:
        patched = fl.superglue_flops(16, 12, config, fl.MODEL_EXPORTED)
    finally:
        fl._superglue_flops.cache_clear()
    assert patched.sinkhorn_exp == plain.sinkhorn_exp + 16 * 12
    assert patched.exp == plain.exp + 16 * 12 and patched.conv == plain.conv


def test_bad_counts_are_clear_errors():
    with pytest.raises(ValueError, match="model kind"):
        fl.superglue_flops(8, 8, None, "tensorrt")
    with pytest.raises(ValueError, match="at least one"):
        fl.superglue_flops(0, 8)


def test_flop_count_sums_and_json():
    a = fl.FlopCount(conv=2e9, matmul=1e9, exp=3e6, sinkhorn_exp=1e6, sinkhorn_matmul=0.5e9)
    total = a.times(2) + a
    assert total.gflop == pytest.approx(9.0) and total.exp == pytest.approx(9e6)
    js = total.to_json()
    assert js == {
        "conv_gflop": 6.0,
        "matmul_gflop": 3.0,
        "gflop": 9.0,
        "exp_m": 9.0,
        "sinkhorn_exp_m": 3.0,
        "sinkhorn_matmul_gflop": 1.5,
    }


def test_gemm_probe_rate():
    probe = fl.gemm_probe(128, runs=3, warmup=1)
    assert probe.n == 128 and probe.runs == 3 and len(probe.times_ms) == 3
    assert math.isfinite(probe.gflop_per_s) and probe.gflop_per_s > 0
    median_s = sorted(probe.times_ms)[1] / 1000.0
    assert probe.gflop_per_s == pytest.approx(2 * 128**3 / median_s / 1e9, rel=1e-6)
    assert probe.threads >= 1
    # every GEMM library present is timed; the probe is the fastest
    assert any(k.startswith("torch") for k in probe.rates)
    assert any(k.startswith("onnxruntime") for k in probe.rates)
    assert probe.rates[probe.library] == probe.gflop_per_s == max(probe.rates.values())
    body = probe.to_json()
    assert body["n"] == 128 and set(body["rates"]) == set(probe.rates)
    with pytest.raises(ValueError, match="GEMM probe"):
        fl.gemm_probe(0)


def test_against_limit_rates_and_shares():
    from spsg_ros.evaluation.benchmark import AgainstLimit

    count = fl.FlopCount(conv=4e9)
    probe = fl.GemmProbe(100.0, 64, 1, "torch", 1, [1.0])
    stages = {"superpoint": {"median": 50.0}, "pre": {"median": 1.0}}
    limit = AgainstLimit.measure({"superpoint": count, "pre": None}, stages, probe)
    assert limit.gflop_per_s == {"superpoint": pytest.approx(80.0), "pre": None}
    assert limit.probe_share == {"superpoint": pytest.approx(0.8), "pre": None}
    none = AgainstLimit.measure({"superpoint": count}, stages, None)
    assert none.probe_share == {"superpoint": None} and none.to_json()["probe_gflop_per_s"] is None


def test_lightglue_rows_count_the_pytorch_network(
    shared_weights, shared_lightglue_weights, monkeypatch
):
    """The in-process PyTorch LightGlue is counted on a call; other runners stay n/a."""
    from spsg_ros.evaluation import benchmark as bm

    config = {"weights": str(shared_lightglue_weights), "filter_threshold": 0.0}
    features = bm.BackendRunner(
        "torch",
        "torch",
        {"superpoint_weights": str(shared_weights["superpoint"]), "load_superglue": False},
    )
    ref = bm.lightglue_reference(config)
    full = bm.lightglue_reference(config, bm.LIGHTGLUE_FULL, adaptive=False)
    outside = bm.LightGlueRunner("outside-torch", ref.match, {"backend": "elsewhere"})
    probe = fl.GemmProbe(50.0, 64, 1, "torch", 1, [1.0])
    results = bm.run_lightglue_benchmark(
        [ref, full, outside], features, [(64, 80)], [24], runs=1, warmup=0, gap=0, probe=probe
    )
    rows = {r.runner: r.to_json() for r in results}
    for name in (bm.LIGHTGLUE_REFERENCE, bm.LIGHTGLUE_FULL):
        row = rows[name]
        count = row["flops"][bm.LIGHTGLUE_STAGE]
        assert count["matmul_gflop"] > 0 and count["exp_m"] > 0
        rate = count["gflop"] / (row["stages_ms"][bm.LIGHTGLUE_STAGE]["median"] / 1000.0)
        assert row["gflop_per_s"][bm.LIGHTGLUE_STAGE] == pytest.approx(rate, rel=1e-4)
        assert row["probe_share"][bm.LIGHTGLUE_STAGE] == pytest.approx(rate / 50.0, rel=1e-4)
    # the adaptive run adds only its small confidence heads unless it stopped or pruned
    ref_row = rows[bm.LIGHTGLUE_REFERENCE]
    ref_count = ref_row["flops"][bm.LIGHTGLUE_STAGE]["gflop"]
    full_count = rows[bm.LIGHTGLUE_FULL]["flops"][bm.LIGHTGLUE_STAGE]["gflop"]
    if ref_row["stop_layer"] == ref_row["n_layers"] and ref_row["num_pruned"] == [0, 0]:
        assert full_count == pytest.approx(ref_count, rel=0.01)
    else:
        assert full_count > ref_count
    assert rows["outside-torch"]["flops"] == {bm.LIGHTGLUE_STAGE: None}
    assert rows["outside-torch"]["probe_share"] == {bm.LIGHTGLUE_STAGE: None}
    assert "GFLOP GFLOP/s %probe" in bm.format_lightglue_table(results)
    features.close()
