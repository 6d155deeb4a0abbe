"""``spsg-ros bench``: stages, statistics, baseline speed-ups, memory, agreement, JSON.

Runs a tiny configuration (small image, small K, two timed runs) so that the
test checks the mechanics, not the machine's speed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from spsg_ros.evaluation import benchmark as bm  # noqa: E402


def test_bench_cli_table_and_json(tmp_path, generated_weights, capsys):
    from spsg_ros.cli.main import main

    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "--sizes",
            "64x80",
            "--ks",
            "24",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--superpoint-weights",
            str(generated_weights["superpoint"]),
            "--superglue-weights",
            str(generated_weights["superglue"]),
            "--sinkhorn-iterations",
            "10",
            "--model-cache",
            str(tmp_path / "cache"),
            "--backends",
            "onnxruntime",
            "onnxruntime:num_slots=32,threads=1",
            "--probe-size",
            "256",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    text, limit_text = capsys.readouterr().out.split("== against the limit", 1)
    assert "== 64x80 (HxW), K=24" in text
    for title in (
        "pre-proc",
        "SP net",
        "post-proc",
        "SuperGlue",
        "total pair",
        "x image",
        "x SG",
        "x pair",
        "peak MB",
    ):
        assert title in text
    rows = {
        line.split()[0]: line
        for line in text.splitlines()
        if line.startswith(("torch-ref", "onnx"))
    }
    assert set(rows) >= {"torch-ref", "onnxruntime", "onnxruntime:num_slots=32,threads=1"}
    assert "1.00x" in rows["torch-ref"]
    body = json.loads(out.read_text())
    assert body["settings"]["sizes"] == [[64, 80]] and body["settings"]["ks"] == [24]
    assert "cpus" in body["environment"] and "onnxruntime" in body["environment"]
    results = {r["runner"]: r for r in body["results"]}
    assert set(results) == {"torch-ref", "onnxruntime", "onnxruntime:num_slots=32,threads=1"}
    for r in results.values():
        assert r["size"] == [64, 80] and r["k"] == 24
        assert set(r["stages_ms"]) == set(bm.STAGES)
        for st in r["stages_ms"].values():
            assert st["n"] == 2 and 0 <= st["median"] <= st["p90"] <= st["max"]
        # the pair total contains a SuperGlue run (halved: 2 timed runs on a loaded CI machine)
        assert r["stages_ms"]["total"]["median"] >= 0.5 * r["stages_ms"]["superglue"]["median"]
        assert set(r["speedup"]) == {"image", "superpoint", "post", "superglue", "total"}
        assert r["peak_rss_mb"] is None or r["peak_rss_mb"] > 0
        assert r["keypoints"] == [24, 24]  # topped up to exactly K
    assert results["torch-ref"]["speedup"]["total"] == pytest.approx(1.0)
    onnx = results["onnxruntime"]
    assert onnx["agreement"]["kp_agree"] == 1.0  # identical keypoints (fp32)
    assert 0.0 <= onnx["agreement"]["match_agree"] <= 1.0
    assert onnx["description"]["backend"] == "onnxruntime"
    assert results["onnxruntime:num_slots=32,threads=1"]["description"]["num_slots"] == 32
    # against the limit: the probe ran first, FLOPs counted per runner's network
    probe = body["gemm_probe"]
    assert probe["n"] == 256 and probe["runs"] == len(probe["times_ms"]) >= 1
    assert np.isfinite(probe["gflop_per_s"]) and probe["gflop_per_s"] > 0
    assert body["settings"]["probe_size"] == 256
    for r in results.values():
        assert set(r["flops"]) == set(bm.STAGES)
        assert r["flops"]["pre"] is None and r["flops"]["post"] is None
        assert r["probe_share"]["pre"] is None and r["gflop_per_s"]["post"] is None
        assert r["probe_gflop_per_s"] == pytest.approx(probe["gflop_per_s"], rel=1e-6)
        for stage in ("superpoint", "superglue", "total"):
            count = r["flops"][stage]
            assert count["gflop"] > 0
            assert count["gflop"] == pytest.approx(
                count["conv_gflop"] + count["matmul_gflop"], abs=1e-5
            )
            rate = count["gflop"] / (r["stages_ms"][stage]["median"] / 1000.0)
            assert r["gflop_per_s"][stage] == pytest.approx(rate, rel=1e-4)
            assert r["probe_share"][stage] == pytest.approx(
                r["gflop_per_s"][stage] / probe["gflop_per_s"], rel=1e-4
            )
        assert r["flops"]["superpoint"]["matmul_gflop"] == 0.0  # convolutions only
        sg = r["flops"]["superglue"]
        assert sg["sinkhorn_exp_m"] > 0 and sg["exp_m"] > sg["sinkhorn_exp_m"]
        assert r["flops"]["total"]["gflop"] == pytest.approx(
            2 * r["flops"]["superpoint"]["gflop"] + sg["gflop"], abs=1e-5
        )
    # same image size: the same SuperPoint network everywhere
    sp = {r["flops"]["superpoint"]["gflop"] for r in results.values()}
    assert len(sp) == 1
    # the exported model folds the attention's merge projection: fewer FLOPs than upstream
    upstream, exported = (results[n]["flops"]["superglue"] for n in ("torch-ref", "onnxruntime"))
    assert exported["conv_gflop"] < upstream["conv_gflop"]
    # the network's matrix products (attention, scores) agree; the Sinkhorn's are its own
    assert exported["matmul_gflop"] - exported["sinkhorn_matmul_gflop"] == pytest.approx(
        upstream["matmul_gflop"] - upstream["sinkhorn_matmul_gflop"], abs=2e-6
    )
    # a static model runs its 32 slots, not the 24 keypoints
    static = results["onnxruntime:num_slots=32,threads=1"]["flops"]["superglue"]
    assert static["conv_gflop"] == pytest.approx(exported["conv_gflop"] * 32 / 24, rel=1e-6)
    # the terminal block: probe and CPU in the header, a row per runner with three stages
    assert "GEMM probe" in limit_text and "GFLOP/s" in limit_text
    limit_table = limit_text.split("\nGFLOP: ", 1)[0]  # the runners' descriptions follow
    limit_rows = [ln for ln in limit_table.splitlines() if ln.startswith(("torch-ref", "onnx"))]
    assert len(limit_rows) == 3 and all(ln.count("%") == 3 for ln in limit_rows)


def test_baseline_is_the_torch_backend_and_one_loop_times_every_stage(
    tmp_path, generated_weights, monkeypatch, capsys
):
    from spsg_ros.backends.base import Backend
    from spsg_ros.backends.torch_backend import TorchBackend
    from spsg_ros.cli.main import main

    calls: list[tuple[str, tuple[str, ...], int]] = []
    runners: list = []
    loop, run_benchmark = bm.time_stage, bm.run_benchmark

    def counting_loop(stage, fns, *args, **kwargs):
        calls.append((stage, tuple(fns), len(fns)))
        return loop(stage, fns, *args, **kwargs)

    def spy(rs, *args, **kwargs):
        runners.extend(rs)
        return run_benchmark(rs, *args, **kwargs)

    monkeypatch.setattr(bm, "time_stage", counting_loop)
    monkeypatch.setattr(bm, "run_benchmark", spy)
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "--sizes",
            "64x80",
            "--ks",
            "24",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--gap-ms",
            "0",
            "--superpoint-weights",
            str(generated_weights["superpoint"]),
            "--superglue-weights",
            str(generated_weights["superglue"]),
            "--sinkhorn-iterations",
            "10",
            "--backends",
            "torch:host_postprocess=true",
            "--probe-size",
            "0",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    assert "no GEMM probe (shares n/a)" in capsys.readouterr().out
    base, host = runners
    assert base.name == bm.BASELINE and isinstance(base.backend, Backend)
    assert isinstance(base.backend, TorchBackend) and not base.backend.host_postprocess
    assert str(base.backend.device) == "cpu" and bm.upstream_mode(base.backend)
    assert isinstance(host.backend, TorchBackend) and host.backend.host_postprocess
    assert not bm.upstream_mode(host.backend)
    # one call of the loop per stage, each timing every runner
    names = (bm.BASELINE, "torch:host_postprocess=true")
    assert calls == [(stage, names, 2) for stage in bm.STAGES]
    body = json.loads(out.read_text())
    assert body["gemm_probe"] is None  # --probe-size 0: FLOPs and rates, no shares
    results = {r["runner"]: r for r in body["results"]}
    for r in results.values():
        assert r["gflop_per_s"]["superglue"] > 0 and r["probe_gflop_per_s"] is None
        assert set(r["probe_share"].values()) == {None}
    assert results[bm.BASELINE]["description"]["postprocess"] == "upstream torch"
    assert results[names[1]]["description"]["postprocess"] == "numpy host"
    assert results[names[1]]["agreement"]["kp_agree"] == 1.0


def test_time_stage_interleaves_runners_and_scales_per_item():
    order = []
    calls = {"a": lambda: order.append("a") or 1, "b": lambda: order.append("b") or 2}
    timed = bm.time_stage("pre", calls, runs=3, warmup=1, per=2)
    assert order == ["a", "b"] * 4
    assert set(timed) == {"a", "b"} and timed["b"].output == 2
    for t in timed.values():
        assert t.stats["n"] == 3 and 0 <= t.stats["median"] <= t.stats["p90"] <= t.stats["max"]


def test_parse_backend_spec():
    from spsg_ros.cli.bench import parse_backend_spec

    assert parse_backend_spec("onnxruntime") == ("onnxruntime", "onnxruntime", {})
    label, name, opts = parse_backend_spec(
        "onnxruntime:num_slots=512,fp16=true,threads=2,providers=cuda+cpu"
    )
    assert name == "onnxruntime" and label.startswith("onnxruntime:")
    assert opts == {
        "num_slots": 512,
        "fp16": True,
        "num_threads": 2,
        "providers": ["cuda", "cpu"],
    }
    assert parse_backend_spec("onnxruntime:providers=cpu")[2] == {"providers": ["cpu"]}
    # the accelerator options' names map as on the command line; other keys pass through
    assert parse_backend_spec("onnxruntime:model-cache=/c,fp16=false")[2] == {
        "cache_dir": "/c",
        "fp16": False,
    }
    assert parse_backend_spec("torch:host_postprocess=true")[2] == {"host_postprocess": True}
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_backend_spec("onnxruntime:fp16")


def test_stats_and_speedup_helpers():
    st = bm.stats_ms([0.001, 0.002, 0.003, 0.010])
    assert st["median"] == pytest.approx(2.5) and st["max"] == pytest.approx(10.0)
    assert st["p90"] == pytest.approx(np.percentile([1, 2, 3, 10], 90))
    stages = {s: {"median": 1.0} for s in bm.STAGES}
    assert bm.image_stage_ms(stages) == 3.0


def test_agreement_counts_keypoints_and_matches():
    from spsg_ros.features.types import Features
    from spsg_ros.matching.types import Matches

    def out(kp0, kp1, m0):
        f0 = Features(
            np.asarray(kp0, np.float32),
            np.ones(len(kp0), np.float32),
            np.zeros((4, len(kp0)), np.float32),
            (10, 10),
        )
        f1 = Features(
            np.asarray(kp1, np.float32),
            np.ones(len(kp1), np.float32),
            np.zeros((4, len(kp1)), np.float32),
            (10, 10),
        )
        m = Matches(
            np.asarray(m0),
            np.full(len(kp1), -1),
            np.zeros(len(kp0), np.float32),
            np.zeros(len(kp1), np.float32),
        )
        return bm.PairOutput((f0, f1), m)

    ref = out([[1, 1], [2, 2]], [[5, 5], [6, 6]], [0, 1])
    same_reordered = out([[2, 2], [1, 1]], [[6, 6], [5, 5]], [0, 1])
    ag = bm.agreement(ref, same_reordered)
    assert ag["kp_agree"] == 1.0 and ag["match_agree"] == 1.0
    one_off = out([[1, 1], [3, 3]], [[5, 5], [6, 6]], [0, -1])
    ag = bm.agreement(ref, one_off)
    assert ag["kp_agree"] == 0.75 and ag["match_agree"] == 0.5


def test_fill_features_tops_up_to_k():
    from spsg_ros.features.types import Features

    raw = np.random.default_rng(0).standard_normal((8, 6, 8)).astype(np.float32)
    f = Features(
        np.array([[10, 10]], np.float32),
        np.array([0.5], np.float32),
        np.ones((8, 1), np.float32) / np.sqrt(8),
        (64, 48),
    )
    g = bm.fill_features(f, 12, raw)
    assert len(g) == 12 and g.descriptors.shape == (8, 12)
    assert len({tuple(k) for k in g.keypoints}) == 12
    np.testing.assert_allclose(np.linalg.norm(g.descriptors, axis=0), 1, atol=1e-5)
    assert bm.fill_features(g, 5, raw) is g


def test_peak_memory_probe():
    before = bm.peak_rss_mb()
    if before is None:
        pytest.skip("no /proc on this system")
    assert bm.reset_peak_rss() in (True, False)
    block = np.ones((64, 1024, 1024), np.uint8)  # 64 MB touched
    assert bm.peak_rss_mb() >= (bm.rss_mb() or 0) - 1
    del block
