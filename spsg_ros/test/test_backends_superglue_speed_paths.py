"""The exported SuperGlue's faster optimal transport and static-K model against the reference.

- The scaling-domain Sinkhorn with log-domain stabilisation
  (``log_optimal_transport_masked``) against the upstream log-domain
  ``log_optimal_transport`` run in float64 (the exact answer to compare float32
  results with), on random and adversarial score matrices: scores spanning
  +-50 and +-200, all-equal rows, K = 1, masks with very few valid slots,
  a common offset of 47000 (as the shared random SuperGlue gives), 0 / 1 / 11
  iterations (edges of the absorption schedule). Tolerance on valid entries and
  dustbins: 1e-4 + 2e-5 * |value| + 1e-6 * max |score| (the float32 log-domain
  loop is off by up to 4e-4 at +-200 and 0.04 on the fixtures); identical mutual
  matches; padded rows/columns -inf, everything else finite.
- The static K = 512 export run by onnxruntime against the torch reference
  SuperGlue on a well-conditioned generated SuperGlue: identical matches.
- The static K = 1024 export (the default slot count) on the shared fixtures'
  features: >= 99.5 % identical matches with onnxruntime (measured: all), >= 99 %
  with OpenVINO (measured: 5 of 626 differ on one fixture, as before this
  transport); the shared SuperGlue is random and chaotic, see
  test_backends_onnxruntime.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends_helpers import (  # noqa: E402
    conditioned_weights,
    export_folder,
    export_superglue_cached,
    feature_pair,
    reference_log_assignment,
)
from spsg_ros.matching.superglue_post import matches_from_log_assignment  # noqa: E402
from spsg_ros.networks.superglue import (  # noqa: E402
    SINKHORN_ABSORB_EVERY,
    SuperGlue,
    log_optimal_transport,
    log_optimal_transport_masked,
    mutual_matches,
)

RTOL, ATOL = 2e-5, 1e-4


def _scores(kind: str, m: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "randn":
        return torch.randn(1, m, n, generator=g, dtype=torch.float64) * 3
    if kind == "span50":
        return torch.rand(1, m, n, generator=g, dtype=torch.float64) * 100 - 50
    if kind == "span200":
        return torch.rand(1, m, n, generator=g, dtype=torch.float64) * 400 - 200
    if kind == "equal_rows":
        return torch.full((1, m, n), 7.0, dtype=torch.float64)
    if kind == "planted":  # clear matches on a random permutation, as a trained model gives
        s = torch.randn(1, m, n, generator=g, dtype=torch.float64) * 2
        k = min(m, n) * 3 // 4
        s[0, torch.arange(k), torch.randperm(n, generator=g)[:k]] += 30
        return s
    if kind == "offset":  # large common offset, as the shared random SuperGlue's ~47000
        return 47000 + torch.randn(1, m, n, generator=g, dtype=torch.float64) * 100
    raise ValueError(kind)


def _check(scores64, alpha, iters, mask0=None, mask1=None, absorb_every=SINKHORN_ABSORB_EVERY):
    """New float32 transport on padded scores vs the float64 reference on the valid part."""
    _, m, n = scores64.shape
    mask0 = torch.ones(1, m) if mask0 is None else mask0
    mask1 = torch.ones(1, n) if mask1 is None else mask1
    valid0, valid1 = mask0[0] > 0.5, mask1[0] > 0.5
    truth = log_optimal_transport(
        scores64[:, valid0][:, :, valid1], torch.tensor(alpha, dtype=torch.float64), iters
    )
    got_full = log_optimal_transport_masked(
        scores64.float(), torch.tensor(alpha), iters, mask0, mask1, absorb_every
    )
    rows = torch.cat([torch.nonzero(valid0)[:, 0], torch.tensor([m])])
    cols = torch.cat([torch.nonzero(valid1)[:, 0], torch.tensor([n])])
    got = got_full[:, rows][:, :, cols]
    assert torch.isfinite(got).all(), "valid entries and dustbins must be finite"
    # plus the float32 resolution of the scores themselves (8 ulps of the largest), which
    # only matters for the large common offset (the log-domain float32 loop is off by
    # 0.04 on the fixtures' ~47000 scores)
    atol = ATOL + 1e-6 * float(scores64.abs().max())
    np.testing.assert_allclose(got.double().numpy(), truth.numpy(), rtol=RTOL, atol=atol)
    want = mutual_matches(truth, 0.2)
    have = mutual_matches(got.double(), 0.2)
    for key in ("matches0", "matches1"):
        np.testing.assert_array_equal(have[key].numpy(), want[key].numpy())
    if iters > 0:  # padded slots carry no mass
        pad_rows = torch.cat([~valid0, torch.tensor([False])])
        pad_cols = torch.cat([~valid1, torch.tensor([False])])
        assert torch.isneginf(got_full[:, pad_rows]).all()
        assert torch.isneginf(got_full[:, :, pad_cols]).all()
    return got


@pytest.mark.parametrize(
    "kind,m,n,alpha",
    [
        ("randn", 120, 150, 1.0),
        ("span50", 100, 130, 1.0),
        ("span50", 100, 130, -20.0),
        ("span200", 48, 40, 3.0),
        ("equal_rows", 30, 45, 1.0),
        ("planted", 160, 140, 2.0),
        ("offset", 90, 80, 1.7),
    ],
)
def test_scaling_sinkhorn_equals_log_domain_reference(kind, m, n, alpha):
    _check(_scores(kind, m, n, seed=m + n), alpha, 100)


@pytest.mark.parametrize("iters", [0, 1, 2, SINKHORN_ABSORB_EVERY, SINKHORN_ABSORB_EVERY + 1, 50])
def test_scaling_sinkhorn_schedule_edges(iters):
    _check(_scores("span50", 40, 60, seed=iters), 1.0, iters)


@pytest.mark.parametrize("absorb_every", [1, 3, 20])
def test_scaling_sinkhorn_other_absorption_periods(absorb_every):
    _check(_scores("planted", 64, 70, seed=5), 2.0, 100, absorb_every=absorb_every)


def test_scaling_sinkhorn_single_keypoint():
    _check(_scores("randn", 1, 1, seed=1) * 10, 1.0, 100)
    _check(_scores("span50", 1, 30, seed=2), 1.0, 100)


def test_scaling_sinkhorn_few_valid_slots_anywhere():
    scores = _scores("randn", 64, 64, seed=3) * 3
    mask0, mask1 = torch.zeros(1, 64), torch.zeros(1, 64)
    mask0[0, [3, 40, 63]] = 1
    mask1[0, :5] = 1
    _check(scores, 2.0, 100, mask0, mask1)
    one0, one1 = torch.zeros(1, 64), torch.zeros(1, 64)
    one0[0, 17], one1[0, 50] = 1, 1
    _check(scores, 2.0, 100, one0, one1)


def test_scaling_sinkhorn_bad_absorption_period_is_a_clear_error():
    scores = _scores("randn", 4, 5, seed=0).float()
    with pytest.raises(ValueError, match="absorb_every = 0"):
        log_optimal_transport_masked(
            scores, torch.tensor(1.0), 10, torch.ones(1, 4), torch.ones(1, 5), 0
        )


def test_scaling_sinkhorn_garbage_in_padded_slots_is_ignored():
    """Huge scores in padded rows/columns (as padded descriptors could give) change nothing."""
    scores = _scores("randn", 50, 60, seed=4)
    mask0, mask1 = torch.ones(1, 50), torch.ones(1, 60)
    mask0[0, 40:], mask1[0, 45:] = 0, 0
    noisy = scores.clone()
    noisy[0, 40:, :] = 1e4
    noisy[0, :, 45:] = -1e4
    a = log_optimal_transport_masked(scores.float(), torch.tensor(1.0), 100, mask0, mask1)
    b = log_optimal_transport_masked(noisy.float(), torch.tensor(1.0), 100, mask0, mask1)
    rows, cols = list(range(40)) + [50], list(range(45)) + [60]
    np.testing.assert_array_equal(
        b[0][np.ix_(rows, cols)].numpy(), a[0][np.ix_(rows, cols)].numpy()
    )


# ---- the static K = 512 export, onnxruntime, well-conditioned SuperGlue ----------
K_BENCH = 512


@pytest.fixture(scope="module")
def conditioned_static_512(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from spsg_ros.backends import create_backend
    from spsg_ros.networks.weights import load_superglue

    folder = export_folder(tmp_path_factory)
    weights = str(conditioned_weights(folder))
    path = export_superglue_cached(folder, weights, K_BENCH)
    backend = create_backend(
        "onnxruntime", superglue_weights=weights, superglue_model=path, export_missing=False
    )
    assert backend.sg_slots == K_BENCH
    model = load_superglue(weights)
    assert isinstance(model, SuperGlue)
    yield backend, model.eval()
    backend.close()


@pytest.mark.parametrize("n0,n1", [(K_BENCH, K_BENCH), (500, 430)])
def test_onnxruntime_static_512_identical_to_reference(conditioned_static_512, n0, n1):
    backend, model = conditioned_static_512
    f0, f1 = feature_pair(n0, n1, seed=n0 + n1)
    ref_la = reference_log_assignment(model, f0, f1)
    want = matches_from_log_assignment(ref_la, 0.2)
    got = backend.superglue(f0, f1, 0.2)
    assert want.num_matches >= 0.5 * min(n0, n1), "the test pair should match well"
    np.testing.assert_array_equal(got.matches0, want.matches0)
    np.testing.assert_array_equal(got.matches1, want.matches1)
    np.testing.assert_allclose(got.scores0, want.scores0, atol=1e-4, rtol=0)
    la = backend.superglue_log_assignment(f0, f1)
    np.testing.assert_allclose(la, ref_la, rtol=1e-5, atol=1e-3)


# ---- the default static K = 1024 export on the shared fixtures ------------------
FIXTURES = ["freiburg_pair_max1024", "freiburg_pair_unlimited_nms3", "freiburg_pair_320x240"]
# The fixtures' log assignments carry the float32 log-domain Sinkhorn's own rounding at
# their ~47000 scores (up to 0.04 from the float64 transport of the same scores), which
# the scaling-domain transport does not share (within 0.003 of float64): the exact
# transport of the masked model's scores is up to 0.058 from the fixture (320x240).
# Measured max differences, previous (log-domain) export / this one: onnxruntime
# 0.028 / 0.057, OpenVINO (its own GEMM kernels) 0.063 / 0.084.
FIXTURE_LOG_ASSIGNMENT_BOUND = {"onnxruntime": 0.08, "openvino": 0.12}
# Share of identical matches. OpenVINO's own GEMM kernels flip 5 of 626 near-tie matches
# of the chaotic shared SuperGlue on freiburg_pair_max1024 (99.2 %), with the log-domain
# transport of the previous export as with this one; onnxruntime reproduces all of them.
MIN_SAME = {"onnxruntime": 0.995, "openvino": 0.99}


@pytest.fixture(scope="module")
def shared_static_models(tmp_path_factory, shared_weights):
    pytest.importorskip("onnx")
    folder = export_folder(tmp_path_factory)
    return {
        iters: export_superglue_cached(
            folder, str(shared_weights["superglue"]), 1024, sinkhorn_iterations=iters
        )
        for iters in (100, 50)  # the fixtures use both
    }


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
def test_static_1024_on_fixtures(
    backend_name, fixture_files, shared_weights, shared_static_models
):
    pytest.importorskip("onnxruntime" if backend_name == "onnxruntime" else "openvino")
    from spsg_ros.backends import create_backend
    from spsg_ros.features.types import Features

    for name in FIXTURES:
        fx = np.load(fixture_files[name])
        sg = ast.literal_eval(str(fx["sg_config"]))
        iters, threshold = sg["sinkhorn_iterations"], sg["match_threshold"]
        h, w = fx["image0"].shape
        f0 = Features(fx["keypoints0"], fx["scores0"], fx["descriptors0"], (w, h))
        f1 = Features(fx["keypoints1"], fx["scores1"], fx["descriptors1"], (w, h))
        with create_backend(
            backend_name,
            superglue_weights=str(shared_weights["superglue"]),
            superglue_model=shared_static_models[iters],
            superglue_config={"sinkhorn_iterations": iters, "match_threshold": threshold},
            export_missing=False,
        ) as backend:
            got = backend.superglue(f0, f1, threshold)
            la = backend.superglue_log_assignment(f0, f1)
        same0 = float(np.mean(got.matches0 == fx["matches0"]))
        same1 = float(np.mean(got.matches1 == fx["matches1"]))
        diff = float(np.abs(la - fx["log_assignment"]).max())
        print(
            f"{backend_name} K=1024 {name}: {int(np.sum(got.matches0 != fx['matches0']))} of "
            f"{len(f0)} matches differ, log_assignment max diff {diff:.4f}"
        )
        assert same0 >= MIN_SAME[backend_name] and same1 >= MIN_SAME[backend_name]
        assert diff < FIXTURE_LOG_ASSIGNMENT_BOUND[backend_name]
