"""``matcher: lightglue`` everywhere SuperGlue is: the parameter schema and the frontend
configuration, ``Backend.lightglue`` (exactly LightGlueMatcher), the frontend (mono and
stereo, with the layers run and the points pruned), the status text and match picture,
replay, match-pair and bench.

The SuperPoint LightGlue in the shared folder is randomly initialised: its match scores
are low, so the tests use ``filter_threshold`` 0 (matches) and ``width_confidence`` 0.5
(points pruned).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from spsg_ros import parameters as schema  # noqa: E402
from spsg_ros.backends.base import LIGHTGLUE_CACHE_SIZE, Backend  # noqa: E402
from spsg_ros.config import ConfigError  # noqa: E402
from spsg_ros.features.types import Features  # noqa: E402
from spsg_ros.frontend import Frame, Frontend  # noqa: E402
from spsg_ros.frontend.config import DEFAULT_CONFIG, check_parameters, load_config  # noqa: E402
from spsg_ros.matching.lightglue_matcher import (  # noqa: E402
    LIGHTGLUE_MATCH_DEFAULTS,
    LightGlueMatcher,
    lightglue_match_config,
)

LG = {"filter_threshold": 0.0, "width_confidence": 0.5}
SUMMARY = re.compile(r"^lightglue: \d/9 layers, pruned \d+/\d+$")
PKG = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def backend(shared_weights):
    from spsg_ros.backends import create_backend

    with create_backend(
        "torch", superpoint_weights=shared_weights["superpoint"], load_superglue=False
    ) as backend:
        yield backend


@pytest.fixture(scope="module")
def images(freiburg_frames):
    from spsg_ros.features.image_io import read_gray

    return [read_gray(path, [320])[0] for path in freiburg_frames[:3]]


@pytest.fixture(scope="module")
def features(backend, images):
    from spsg_ros.features.extractor import SuperPointExtractor

    extractor = SuperPointExtractor(backend, {"max_keypoints": 256})
    return [extractor(image) for image in images]


# ---------------------------------------------------------------- schema and configuration


def test_schema_parameters_and_frontend_config():
    from spsg_ros.networks.config import PRUNING_RULES
    from spsg_ros.networks.lightglue import DEFAULT_CONFIG as NETWORK_DEFAULTS

    assert schema.PARAMETERS_BY_NAME["matcher"].choices == ("superglue", "lightglue", "nn")
    expected = {
        "lightglue_weights": ("lightglue", ("lightglue", "weights"), None),
        "depth_confidence": (0.95, ("lightglue", "depth_confidence"), (-1.0, 1.0)),
        "width_confidence": (0.99, ("lightglue", "width_confidence"), (-1.0, 1.0)),
        "filter_threshold": (0.1, ("lightglue", "filter_threshold"), (0.0, 1.0)),
    }
    for name, (default, path, bounds) in expected.items():
        spec = schema.PARAMETERS_BY_NAME[name]
        assert spec.default == default and spec.config_path == path and spec.description
        assert spec.modes == ("mono", "stereo")
        if bounds is not None:
            assert (spec.min_value, spec.max_value) == bounds and spec.runtime
    assert schema.PARAMETERS_BY_NAME["lightglue_weights"].read_only  # like the other weights
    # the defaults are the network's (upstream's)
    for key in ("depth_confidence", "width_confidence", "filter_threshold", "pruning_rule"):
        assert DEFAULT_CONFIG["lightglue"][key] == NETWORK_DEFAULTS[key]
        assert LIGHTGLUE_MATCH_DEFAULTS[key] == NETWORK_DEFAULTS[key]
    assert DEFAULT_CONFIG["lightglue"]["pruning_rule"] in PRUNING_RULES
    # node parameters -> the frontend configuration
    cfg = load_config(
        schema.frontend_config(
            {"matcher": "lightglue", "lightglue_weights": "/w/lg.pth", "depth_confidence": -1.0}
        )
    )
    assert cfg["matcher"] == "lightglue"
    assert cfg["lightglue"] == {
        "weights": "/w/lg.pth",
        "depth_confidence": -1.0,
        "width_confidence": 0.99,
        "filter_threshold": 0.1,
        "pruning_rule": "cpu",
    }
    # the generated node parameter files carry them (and give the same configuration)
    for mode in schema.MODES:
        values = schema.read_params_file(PKG / "config" / f"{mode}.yaml")
        assert values["depth_confidence"] == 0.95 and values["lightglue_weights"] == "lightglue"
        assert (
            load_config(schema.frontend_config(values))["lightglue"] == DEFAULT_CONFIG["lightglue"]
        )
        assert "width_confidence: 0.99" in schema.params_file_text(mode)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"depth_confidence": 1.5}, "depth_confidence.*above the maximum"),
        ({"width_confidence": -2.0}, "width_confidence.*below the minimum"),
        ({"filter_threshold": 1.1}, "filter_threshold.*above the maximum"),
        ({"matcher": "lightgloo"}, "matcher.*one of superglue, lightglue, nn"),
    ],
)
def test_node_parameter_checks(values, message):
    assert re.search(message, check_parameters(values))


@pytest.mark.parametrize(
    "section, message",
    [
        ({"depth_confidence": 2}, r"frontend\.lightglue\.depth_confidence = 2"),
        ({"filter_threshold": -0.1}, r"frontend\.lightglue\.filter_threshold"),
        ({"pruning_rule": "gpu"}, r"frontend\.lightglue\.pruning_rule = 'gpu'"),
        ({"weights": ""}, r"frontend\.lightglue\.weights"),
        ({"weights_dir": "x"}, r"frontend\.lightglue: unknown parameter 'weights_dir'"),
    ],
)
def test_frontend_config_errors_name_the_parameter(section, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"matcher": "lightglue", "lightglue": section})


def test_lightglue_match_config():
    assert lightglue_match_config(None) == LIGHTGLUE_MATCH_DEFAULTS
    with pytest.raises(ConfigError, match="unknown parameter 'n_layers'"):
        lightglue_match_config({"n_layers": 3})


# ---------------------------------------------------------------- Backend.lightglue


def test_backend_lightglue_is_exactly_the_matcher(backend, features, shared_lightglue_weights):
    f0, f1 = features[0], features[1]
    config = {"weights": shared_lightglue_weights, **LG}
    out = backend.lightglue(f0, f1, config)
    reference = LightGlueMatcher(LG, shared_lightglue_weights).match(f0, f1)
    for key in ("matches0", "matches1", "scores0", "scores1"):
        a, b = getattr(out.matches, key), getattr(reference.matches, key)
        assert a.dtype == b.dtype and np.array_equal(a, b), key
    assert (out.stop_layer, out.num_pruned, out.n_layers) == (
        reference.stop_layer,
        reference.num_pruned,
        9,
    )
    assert out.matches.num_matches > 0 and sum(out.num_pruned) > 0
    # one network per (weights, weights_dir, config), kept on the backend
    cache = backend._lightglue_cache
    net = next(iter(cache.values())).net
    backend.lightglue(f0, f1, dict(config))
    assert len(cache) == 1 and next(iter(cache.values())).net is net
    full = backend.lightglue(f0, f1, {**config, "depth_confidence": -1, "width_confidence": -1})
    assert len(cache) == 2 and full.stop_layer == 9 and full.num_pruned == (0, 0)
    for i in range(LIGHTGLUE_CACHE_SIZE + 1):
        backend.lightglue(f0, f1, {**config, "filter_threshold": 0.01 * (i + 1)})
    assert len(cache) == LIGHTGLUE_CACHE_SIZE
    # empty inputs: no matches, no layer run
    empty = backend.lightglue(Features.empty((320, 240)), f1, config)
    assert empty.stop_layer == 0 and empty.matches.num_matches == 0
    assert len(empty.matches.matches1) == len(f1)
    with pytest.raises(ConfigError, match="unknown parameter 'mp'"):
        backend.lightglue(f0, f1, {**config, "mp": True})


def test_backend_lightglue_runs_on_the_cpu_without_a_torch_device(
    features, shared_lightglue_weights
):
    class NotTorch(Backend):
        name = "not-torch"
        device = "cuda:0"  # a runtime's device string: LightGlue stays on the CPU

        # the abstract networks: this test runs LightGlue only, so reaching them is a failure
        def superpoint_dense(self, images):
            raise AssertionError("SuperPoint must not run in a LightGlue-only test")

        def superglue_log_assignment(self, features0, features1):
            raise AssertionError("SuperGlue must not run in a LightGlue-only test")

    backend = NotTorch()
    out = backend.lightglue(*features[:2], {"weights": str(shared_lightglue_weights), **LG})
    assert out.matches.num_matches > 0
    (matcher,) = backend._lightglue_cache.values()
    assert str(matcher.device) == "cpu"
    backend.close()
    assert not hasattr(backend, "_lightglue_cache")


# ---------------------------------------------------------------- the frontend


class CountingBackend(Backend):
    """The torch backend, counting LightGlue pairs; SuperGlue must not be used."""

    name = "counting"

    def __init__(self, inner: Backend):
        self.inner = inner
        self.lightglue_configs: list[dict] = []

    def superpoint_dense(self, images):
        return self.inner.superpoint_dense(images)

    def superpoint(self, images, config):
        return self.inner.superpoint(images, config)

    def superglue_log_assignment(self, features0, features1):
        raise AssertionError("matcher lightglue ran SuperGlue")

    def lightglue(self, features0, features1, config):
        self.lightglue_configs.append(dict(config))
        return self.inner.lightglue(features0, features1, config)


def _frame(image, i):
    from spsg_ros.frontend import CameraInfo

    height, width = image.shape
    K = np.array([[260.0, 0, width / 2], [0, 260.0, height / 2], [0, 0, 1]])
    info = CameraInfo(K=K, width=width, height=height, baseline=0.1)
    return Frame(image, stamp_ns=1000 + i, frame_id="cam", camera_info=info)


def test_frontend_lightglue_mono_and_stereo(backend, images, shared_lightglue_weights):
    from spsg_ros.messages.conversions import matches_picture, status_from_text, status_text

    counting = CountingBackend(backend)
    config = {
        "matcher": "lightglue",
        "lightglue": {"weights": str(shared_lightglue_weights), **LG},
        "backend": {"weights_dir": "/nowhere"},  # handed on with the config (a path is given)
        "superpoint": {"max_keypoints": 256},
    }
    frontend = Frontend(config, backend=counting)
    assert len(counting.lightglue_configs) == 1  # loaded on construction (an empty pair)
    assert counting.lightglue_configs[0] == {
        "weights": str(shared_lightglue_weights),
        "weights_dir": "/nowhere",
        "depth_confidence": 0.95,
        "pruning_rule": "cpu",
        **LG,
    }
    results = [frontend.process(_frame(image, i)) for i, image in enumerate(images)]
    assert all(r.ok for r in results), [r.status for r in results]
    assert results[0].matcher_info is None and results[0].matcher_summary() == ""
    for result in results[1:]:
        info = result.matcher_info
        assert result.matches.num_matches > 0
        assert result.metrics.num_matches == result.matches.num_matches
        assert 1 <= info.stop_layer <= 9 and info.n_layers == 9 and sum(info.num_pruned) > 0
        assert info.num_keypoints == (len(result.features), 256)
        assert SUMMARY.match(result.matcher_summary()), result.matcher_summary()
        # FrontendStatus.status text, and back
        text = status_text(result)
        assert text == f"ok; {info.summary()}" and status_from_text(text) == "ok"
    assert len(counting.lightglue_configs) == 1 + 2
    picture = matches_picture(
        results[2], images[2], "mono8", images[1], "mono8", results[1].features.keypoints
    )
    assert picture.shape[0] == images[2].shape[0] and picture.dtype == np.uint8

    # stereo: left-right and temporal pairs through LightGlue
    stereo = [
        frontend.process_stereo(_frame(images[i], 10 + i), _frame(images[i + 1], 10 + i))
        for i in (0, 1)
    ]
    assert stereo[0].stereo_matcher_info is not None and stereo[0].matcher_info is None
    second = stereo[1]
    assert second.stereo_matches.num_matches > 0 and second.matches.num_matches > 0
    assert second.matcher_info.stop_layer >= 1 and second.stereo_matcher_info.stop_layer >= 1
    summary = second.matcher_summary()
    assert summary.startswith("lightglue: ") and "; stereo lightglue: " in summary
    assert status_from_text(status_text(second)) == second.status
    assert len(counting.lightglue_configs) == 1 + 2 + 3


def test_frontend_lightglue_errors_at_construction(backend, tmp_path, shared_dir):
    from spsg_ros.networks.weights import WeightError

    with pytest.raises(WeightError, match="lightglue weight file not found"):
        Frontend(
            {"matcher": "lightglue", "lightglue": {"weights": str(tmp_path / "no.pth")}},
            backend=backend,
        )
    disk = shared_dir / "weights" / "lightglue_disk.pth"
    if disk.is_file():  # DISK LightGlue takes 128-D descriptors, SuperPoint gives 256-D
        with pytest.raises(ValueError, match="128-D descriptors"):
            Frontend(
                {"matcher": "lightglue", "lightglue": {"weights": str(disk)}}, backend=backend
            )


def test_frontend_builds_no_superglue_for_lightglue(shared_weights, shared_lightglue_weights):
    config = {
        "matcher": "lightglue",
        "backend": {"name": "torch", "superpoint_weights": str(shared_weights["superpoint"])},
        "lightglue": {"weights": str(shared_lightglue_weights)},
    }
    with Frontend(config) as frontend:  # superglue_weights 'indoor' is not there: not loaded
        assert frontend.backend.superglue_net is None


# ---------------------------------------------------------------- command line


def _weights(shared_weights, lightglue) -> list[str]:
    return [
        "--superpoint-weights",
        str(shared_weights["superpoint"]),
        "--lightglue-weights",
        str(lightglue),
    ]


def test_replay_lightglue(shared_dir, shared_weights, shared_lightglue_weights, tmp_path):
    pytest.importorskip("rosbags")
    pytest.importorskip("matplotlib")
    from spsg_ros.cli.main import main

    out = tmp_path / "replay"
    code = main(
        [
            "replay",
            str(shared_dir / "data" / "freiburg_sequence"),
            "--out",
            str(out),
            "--matcher",
            "lightglue",
            "--backend",
            "torch",
            "--resize",
            "320",
            "--max-keypoints",
            "256",
            "--max-frames",
            "3",
            "--filter-threshold",
            "0",
            "--width-confidence",
            "0.5",
            "--no-progress",
        ]
        + _weights(shared_weights, shared_lightglue_weights)
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["metrics"]["num_matches_mean"] > 0
    assert summary["run"]["matcher"] == "lightglue"
    assert summary["run"]["lightglue"]["weights"] == str(shared_lightglue_weights)
    assert summary["run"]["lightglue"]["width_confidence"] == 0.5
    lightglue = summary["lightglue"]
    assert lightglue["pairs"] == 2 and lightglue["n_layers"] == 9
    assert 1 <= lightglue["stop_layer_mean"] <= 9 and 0 < lightglue["pruned_share_mean"] < 1

    from rosbags.highlevel import AnyReader

    from spsg_ros.bagio.typestore import get_spsg_typestore

    texts = []
    with AnyReader([out / "results"], default_typestore=get_spsg_typestore()) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic.endswith("frontend_status"):
                texts.append(reader.deserialize(raw, conn.msgtype).status)
    assert texts[0] == "ok" and all(re.match(r"ok; lightglue: \d/9 layers", t) for t in texts[1:])


def test_replay_lightglue_options_override_the_config(tmp_path):
    from spsg_ros.cli.main import build_parser
    from spsg_ros.cli.replay import frontend_config

    cfg_file = tmp_path / "frontend.yaml"
    cfg_file.write_text("matcher: lightglue\nlightglue:\n  filter_threshold: 0.3\n")
    args = build_parser().parse_args(
        ["replay", "src", "--out", "o", "--config", str(cfg_file), "--depth-confidence", "-1"]
    )
    cfg = frontend_config(args)
    assert cfg["matcher"] == "lightglue"
    assert cfg["lightglue"]["depth_confidence"] == -1.0  # given: overrides
    assert cfg["lightglue"]["filter_threshold"] == 0.3  # not given: the file's
    assert cfg["lightglue"]["weights"] == "lightglue"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "s", "--out", "o", "--width-confidence", "2"])


def test_match_pair_lightglue(
    freiburg_frames, shared_weights, shared_lightglue_weights, tmp_path, capsys
):
    from spsg_ros.cli.main import main

    out = tmp_path / "pair.npz"
    code = main(
        [
            "match-pair",
            str(freiburg_frames[0]),
            str(freiburg_frames[1]),
            "--matcher",
            "lightglue",
            "--resize",
            "320",
            "--max-keypoints",
            "256",
            "--filter-threshold",
            "0",
            "--width-confidence",
            "0.5",
            "--out",
            str(out),
            "--viz",
            str(tmp_path / "pair.png"),
        ]
        + _weights(shared_weights, shared_lightglue_weights)
    )
    assert code == 0
    text = capsys.readouterr().out
    assert re.search(r"matches: \d+, layers: \d/9, pruned: \d+ / \d+", text), text
    data = np.load(out)
    assert {"stop_layer", "num_pruned0", "num_pruned1", "matches0", "keypoints0"} <= set(data)
    assert 1 <= int(data["stop_layer"]) <= 9 and int(data["num_pruned0"]) > 0
    assert (data["matches0"] > -1).sum() > 0 and (tmp_path / "pair.png").stat().st_size > 0


def test_bench_lightglue(shared_weights, shared_lightglue_weights, tmp_path, capsys):
    from spsg_ros.cli.main import main
    from spsg_ros.evaluation import benchmark as bm

    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for word in ("--matchers", "lightglue-ref", "lightglue-ref-full", "--depth-confidence"):
        assert word in help_text
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--matchers",
            "lightglue",
            "--backends",
            "torch:host_postprocess=true",
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
            "--filter-threshold",
            "0",
            "--width-confidence",
            "0.5",
            "--json",
            str(out),
        ]
        + _weights(shared_weights, shared_lightglue_weights)
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "== LightGlue 64x80 (HxW), K=24" in text and "SuperGlue" not in text
    body = json.loads(out.read_text())
    assert body["results"] == [] and body["settings"]["matchers"] == ["lightglue"]
    rows = {r["runner"]: r for r in body["lightglue_results"]}
    backend_row = "torch:host_postprocess=true"
    assert set(rows) == {bm.LIGHTGLUE_REFERENCE, bm.LIGHTGLUE_FULL, backend_row}
    for row in rows.values():
        assert row["keypoints"] == [24, 24] and row["n_layers"] == 9
        assert row["stages_ms"]["lightglue"]["n"] == 1
    ref, full, other = rows[bm.LIGHTGLUE_REFERENCE], rows[bm.LIGHTGLUE_FULL], rows[backend_row]
    assert ref["speedup"] == pytest.approx(1.0) and ref["match_agree"] == 1.0
    assert full["stop_layer"] == 9 and full["num_pruned"] == [0, 0]
    assert full["description"]["depth_confidence"] == -1.0
    assert ref["description"]["pruning_rule"] == "cpu" and ref["description"]["device"] == "cpu"
    # the backend's default lightglue is the reference network: the same outcome
    assert (other["stop_layer"], other["num_pruned"], other["matches"]) == (
        ref["stop_layer"],
        ref["num_pruned"],
        ref["matches"],
    )
    assert other["match_agree"] == 1.0 and sum(ref["num_pruned"]) > 0
