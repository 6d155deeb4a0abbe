"""Mutual nearest neighbour + Lowe ratio matcher on hand-made descriptors."""

from __future__ import annotations

import numpy as np
import pytest

from spsg_ros.config import ConfigError
from spsg_ros.features.types import Features
from spsg_ros.matching.nearest_neighbor import (
    NearestNeighborMatcher,
    l2_distances,
    match_nearest_neighbor,
)


def _unit(*vectors):
    d = np.array(vectors, np.float32).T
    return d / np.linalg.norm(d, axis=0, keepdims=True)


def test_l2_distances_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 5)), rng.normal(size=(8, 7))
    expected = np.linalg.norm(a[:, :, None] - b[:, None, :], axis=0)
    np.testing.assert_allclose(l2_distances(a, b), expected, atol=1e-9)


def test_ratio_and_mutual_checks():
    # image 0: a (clear match to x), b (ambiguous between y and z), c (nearest x, not mutual)
    d0 = _unit([1, 0, 0], [0, 1, 0.0], [0.9, 0.44, 0])
    d1 = _unit([1, 0.02, 0], [0, 1, 0.05], [0, 1, -0.06])
    m = match_nearest_neighbor(d0, d1, ratio=0.7, mutual=True)
    assert m.matches0.tolist() == [0, -1, -1]  # b fails the ratio test, c is not mutual
    assert m.matches1.tolist() == [0, -1, -1]
    assert m.scores0[0] == pytest.approx(float(d0[:, 0] @ d1[:, 0]), abs=1e-6)
    assert m.scores0[1] == 0 and m.scores1[1] == 0
    # without the mutual check, c competes with a for x: the closer one (a) keeps it
    m2 = match_nearest_neighbor(d0, d1, ratio=0.7, mutual=False)
    assert m2.matches0.tolist() == [0, -1, -1]
    # a looser ratio accepts b's nearest neighbour y (distance ratio about 0.83)
    m3 = match_nearest_neighbor(d0, d1, ratio=0.9, mutual=True)
    assert m3.matches0.tolist() == [0, 1, -1] and m3.matches1.tolist() == [0, 1, -1]


def test_ratio_threshold_is_strict_on_distances():
    d0 = _unit([1, 0, 0])
    # distances to the two candidates: |(1,0,0) - (cos, sin, 0)|
    d1 = _unit([np.cos(0.3), np.sin(0.3), 0], [np.cos(0.5), -np.sin(0.5), 0])
    dist = l2_distances(d0, d1)[0]
    ratio = dist[0] / dist[1]
    assert match_nearest_neighbor(d0, d1, ratio=ratio * 1.001).matches0[0] == 0
    assert match_nearest_neighbor(d0, d1, ratio=ratio * 0.999).matches0[0] == -1


def test_edge_cases_and_matcher_config():
    d = _unit([1, 0, 0], [0, 1, 0])
    empty = np.zeros((3, 0), np.float32)
    assert match_nearest_neighbor(d, empty).matches0.tolist() == [-1, -1]
    assert match_nearest_neighbor(empty, d).matches1.tolist() == [-1, -1]
    single = match_nearest_neighbor(d, _unit([0.1, 1, 0]))  # no second neighbour: ratio passes
    assert single.matches0.tolist() == [-1, 0] and single.matches1.tolist() == [1]
    f0 = Features(np.zeros((2, 2), np.float32), np.ones(2, np.float32), d, (64, 64))
    assert NearestNeighborMatcher()(f0, f0).matches0.tolist() == [0, 1]
    with pytest.raises(ConfigError, match="nn.ratio"):
        NearestNeighborMatcher({"ratio": 1.5})
    with pytest.raises(ConfigError, match="unknown parameter 'k'"):
        NearestNeighborMatcher({"k": 2})
