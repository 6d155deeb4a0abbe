"""Per-stage latency of the backends against the torch backend in upstream mode.

Every runner is a backend from :func:`~spsg_ros.backends.create_backend`,
driven by the objects the frontend uses: a
:class:`~spsg_ros.features.extractor.SuperPointExtractor` and a
:class:`~spsg_ros.matching.superglue_matcher.SuperGlueMatcher`. For every
image size and keypoint budget K each runner gets the same frame pair; each
stage is a callable, timed on its own by :func:`time_stage`:

- ``pre``: uint8 -> float32 network input (the extractor's
  :func:`~spsg_ros.features.extractor.to_network_input`), per image;
- ``superpoint``: the backend's dense network (``superpoint_dense``), per image;
- ``post``: the post-processing the backend's ``superpoint`` runs after the
  network (the numpy host post-processing; for the torch backend in upstream
  mode the upstream torch post-processing on its device), per image;
- ``superglue``: the matcher on the pair (network + match extraction);
- ``total``: the pair as the frontend runs it (extractor on each image, then
  the matcher), end to end.

The **baseline** (``torch-ref``, :func:`torch_baseline`) is the torch backend
in upstream mode (``host_postprocess=False``: the reference networks with the
upstream torch post-processing) on the CPU.

:func:`time_stage` is the one timing loop: ``warmup`` untimed then ``runs``
timed calls of one stage for every runner, interleaved (call i of every runner
before call i + 1 of any), so load changes on a shared machine hit all runners
alike and the speed-ups, ratios within one invocation, stay meaningful; a short
idle gap before each call keeps one runner's still-spinning worker threads from
slowing the next one. Statistics are median, p90 and max over the timed calls.

SuperGlue gets the top-K keypoints of each image; with ``fill_k`` (default)
images with fewer detections are topped up with extra keypoints at random
free pixels (descriptors sampled from the same map; drawn once, untimed) so
that SuperGlue always runs on exactly K x K, the size the K columns name.

Peak memory: before each timed call the process's peak RSS is reset
(``/proc/self/clear_refs``) and read after; ``peak_rss_mb`` is the largest
value seen while that runner ran (the whole process: every loaded runner's
models are in it) and ``model_mb`` the RSS growth when the runner was built.

Agreement with the baseline, from the last ``total`` call: ``kp_agree`` the
share of the baseline's keypoints found at the same pixel, ``match_agree`` the
share of the baseline's keypoints (of the kept K) whose match (or non-match)
is identical. fp16 runners report it as their agreement rate.

**LightGlue** (:func:`run_lightglue_benchmark`): for every image size and K, one
pair of feature sets (SuperPoint of the first runner, topped up to K as above)
goes through each :class:`LightGlueRunner`, timed by :func:`time_stage` as the
``lightglue`` stage: every backend's ``lightglue`` (``Backend.lightglue``), the
reference ``lightglue-ref`` (:mod:`spsg_ros.networks.lightglue` in PyTorch on
the CPU, ``pruning_rule`` cpu, adaptive depth and width as configured: what
upstream runs on a CPU) and ``lightglue-ref-full`` (the same network with
``depth_confidence = width_confidence = -1``: all layers, no pruning). Each row
reports the layers run (``stop_layer``), the points pruned per image, the
matches, the speed-up over ``lightglue-ref`` and the share of keypoints whose
match equals the reference's.

**Against the machine's limit**: before the timed runs the CLI runs a GEMM
probe (:func:`~spsg_ros.evaluation.flops.gemm_probe`: the fp32 GFLOP/s an
n x n matrix product reaches here), and every result carries the FLOPs of each
stage counted from the network its runner executes
(:func:`~spsg_ros.evaluation.flops.runner_stage_flops`; LightGlue: counted on a
call for the runners whose PyTorch network runs in this process), the achieved
rate and its share of the probe's (:class:`AgainstLimit`).

JSON (:func:`write_json`): top level ``environment``, ``settings`` (with
``probe_size``), ``gemm_probe`` (``gflop_per_s``, ``n``, ``threads``,
``library``, ``runs``, ``times_ms``; null with ``--probe-size 0``),
``results`` and, with LightGlue, ``lightglue_results``. Every result has
``runner``, ``size`` [H, W], ``k``, ``keypoints``, ``stages_ms`` {stage:
{median, p90, max, n}}, ``speedup`` (SuperGlue rows: {image, superpoint, post,
superglue, total}; LightGlue rows: one number), ``peak_rss_mb``, ``model_mb``,
``description`` and

- ``flops``: {stage: {``conv_gflop``, ``matmul_gflop``, ``gflop`` (conv +
  matmul; FLOPs = 2 x multiply-adds), ``exp_m`` (millions of exponentials),
  ``sinkhorn_exp_m`` (of which in the optimal transport),
  ``sinkhorn_matmul_gflop`` (matmul FLOPs in the optimal transport, part of
  ``matmul_gflop``)} or null}: ``superpoint`` per image, ``superglue`` per
  pair, ``total`` = 2 x superpoint + superglue, ``pre`` / ``post`` null;
- ``gflop_per_s``: {stage: ``gflop`` / median seconds, or null};
- ``probe_share``: {stage: ``gflop_per_s`` / the probe's ``gflop_per_s``, or
  null without a probe or a count};
- ``probe_gflop_per_s``: the probe's rate (null without one);

SuperGlue rows add ``agreement``; LightGlue rows ``stop_layer``, ``n_layers``,
``num_pruned``, ``matches``, ``match_agree`` (their stage is ``lightglue``).
Rates and shares are rounded to six significant digits.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .flops import FlopCount, GemmProbe, count_call, runner_stage_flops

log = logging.getLogger(__name__)

SIZES = ((240, 320), (480, 640), (1200, 1600))
KS = (256, 512, 1024, 2048)
STAGES = ("pre", "superpoint", "post", "superglue", "total")
IMAGE_STAGES = ("pre", "superpoint", "post")  # timed per image
STAGE_TITLES = {
    "pre": "pre-proc",
    "superpoint": "SP net",
    "post": "post-proc",
    "superglue": "SuperGlue",
    "total": "total pair",
}
BASELINE = "torch-ref"
LIGHTGLUE_REFERENCE = "lightglue-ref"  # networks.lightglue, pruning_rule cpu, adaptive
LIGHTGLUE_FULL = "lightglue-ref-full"  # the same with depth/width_confidence -1
LIGHTGLUE_STAGE = "lightglue"


# ---- memory ----------------------------------------------------------------
def _status_kb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    kb = _status_kb("VmHWM")
    if kb is None:
        try:
            import resource

            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        except Exception:
            return None
    return kb / 1024.0


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


# ---- inputs ----------------------------------------------------------------
def load_pair(
    size: tuple[int, int], frames: Sequence[str | os.PathLike] | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 grayscale images of ``size`` (H, W): the given frames resized
    (cv2.INTER_AREA), else synthetic textured images."""
    import cv2

    from ..features.image_io import read_gray

    h, w = size
    if frames and len(frames) >= 2:
        out = []
        for path in frames[:2]:
            img = read_gray(path)[0]
            if img.shape != (h, w):
                interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
                img = cv2.resize(img, (w, h), interpolation=interp)
            out.append(img)
        return out[0], out[1]
    rng = np.random.default_rng(seed)
    base = np.full((h + 16, w + 16), 90, np.uint8)
    for _ in range(max(8, h * w // 900)):
        x, y = int(rng.integers(0, w + 16)), int(rng.integers(0, h + 16))
        s = int(rng.integers(3, 24))
        color = int(rng.integers(0, 256))
        if rng.random() < 0.5:
            cv2.rectangle(base, (x, y), (x + s, y + s), color, -1)
        else:
            cv2.circle(base, (x, y), s // 2 + 1, color, -1)
    return base[:h, :w].copy(), base[7 : h + 7, 5 : w + 5].copy()


def fill_features(features, k: int, raw_desc: np.ndarray, seed: int = 0):
    """Top ``features`` up to ``k`` keypoints at random free pixels, with low scores
    and descriptors sampled from the raw map (timing only)."""
    from ..features.superpoint_post import sample_descriptors
    from ..features.types import Features

    n = len(features)
    if n >= k:
        return features
    w, h = features.image_size
    rng = np.random.default_rng(seed)
    taken = {(int(x), int(y)) for x, y in features.keypoints}
    extra: list[tuple[int, int]] = []
    while len(extra) < k - n:
        x, y = int(rng.integers(4, max(5, w - 4))), int(rng.integers(4, max(5, h - 4)))
        if (x, y) not in taken:
            taken.add((x, y))
            extra.append((x, y))
    kp = np.asarray(extra, np.float32).reshape(-1, 2)
    desc = sample_descriptors(kp, raw_desc)
    scores = rng.uniform(0.005, 0.01, len(extra)).astype(np.float32)
    return concat_features(features, Features(kp, scores, desc, features.image_size))


def concat_features(a, b):
    """``a``'s keypoints followed by ``b``'s (same image)."""
    from ..features.types import Features

    if len(b) == 0:
        return a
    return Features(
        np.concatenate([a.keypoints, b.keypoints]),
        np.concatenate([a.scores, b.scores]),
        np.concatenate([a.descriptors, b.descriptors], axis=1),
        a.image_size,
    )


# ---- the timing loop ---------------------------------------------------------
@dataclass
class StageTiming:
    """What :func:`time_stage` measured for one runner."""

    stats: dict[str, float]
    peak_rss_mb: float | None
    output: Any


def time_stage(
    stage: str,
    calls: Mapping[str, Callable[[], Any]],
    runs: int = 10,
    warmup: int = 2,
    gap: float = 0.0,
    per: int = 1,
) -> dict[str, StageTiming]:
    """Time one stage: ``calls`` maps runner name -> the stage's callable; ``warmup``
    untimed then ``runs`` timed calls each, interleaved, ``gap`` s idle before each.
    Milliseconds per item (``per`` items a call): median, p90, max, n."""
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    peaks: dict[str, float] = {}
    last: dict[str, Any] = {}
    for i in range(warmup + runs):
        for name, fn in calls.items():
            gc.collect()
            if gap > 0:
                time.sleep(gap)
            reset_peak_rss()
            start = time.perf_counter()
            last[name] = fn()
            elapsed = time.perf_counter() - start
            peak = peak_rss_mb()
            if peak is not None:
                peaks[name] = max(peaks.get(name, 0.0), peak)
            if i >= warmup:
                seconds[name].append(elapsed / per)
    log.debug("bench: %s timed for %s", stage, ", ".join(calls))
    return {
        name: StageTiming(stats_ms(seconds[name]), peaks.get(name), last.get(name))
        for name in calls
    }


def stats_ms(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64) * 1000.0
    if a.size == 0:
        return {"median": float("nan"), "p90": float("nan"), "max": float("nan"), "n": 0}
    return {
        "median": float(np.median(a)),
        "p90": float(np.percentile(a, 90)),
        "max": float(a.max()),
        "n": int(a.size),
    }


# ---- runners ---------------------------------------------------------------
@dataclass
class PairOutput:
    features: tuple[Any, Any]
    matches: Any


def upstream_mode(backend) -> bool:
    """True for the torch backend with the upstream torch post-processing."""
    from ..backends.torch_backend import TorchBackend

    return isinstance(backend, TorchBackend) and not backend.host_postprocess


class BackendRunner:
    """A backend as the frontend drives it (extractor + matcher), cut into the
    stage callables that :func:`time_stage` times."""

    def __init__(self, name: str, backend_name: str, options: Mapping[str, Any]):
        from ..backends import create_backend

        self.name = name
        before = rss_mb()
        self.backend = create_backend(backend_name, **options)
        after = rss_mb()
        self.model_mb = None if before is None or after is None else after - before
        self.description = dict(self.backend.describe())
        self.description["postprocess"] = (
            "upstream torch" if upstream_mode(self.backend) else "numpy host"
        )
        if getattr(self.backend, "torch", None) is not None:
            self.description["threads"] = self.backend.torch.get_num_threads()

    def stages(
        self, images, sp_config, sg_config, k: int, fill_k: bool
    ) -> dict[str, Callable[[], Any]]:
        """Stage name -> callable, for this frame pair and configuration."""
        from ..features.extractor import SuperPointExtractor, to_network_input
        from ..matching.superglue_matcher import SuperGlueMatcher

        backend = self.backend
        extractor = SuperPointExtractor(backend, sp_config)
        matcher = SuperGlueMatcher(backend, sg_config)
        inputs = [to_network_input([img]) for img in images]
        dense = [backend.superpoint_dense(x) for x in inputs]
        features = [extractor(img) for img in images]
        filled = [
            fill_features(f, k if fill_k else 0, d[1][0], seed=i)
            for i, (f, d) in enumerate(zip(features, dense))
        ]
        # the top-up is drawn once here; the timed pair only appends it
        fillers = [g.subset(np.arange(len(f), len(g))) for f, g in zip(features, filled)]

        def total() -> PairOutput:
            f0, f1 = (concat_features(extractor(img), e) for img, e in zip(images, fillers))
            return PairOutput((f0, f1), matcher(f0, f1))

        return {
            "pre": lambda: [to_network_input([img]) for img in images],
            "superpoint": lambda: [backend.superpoint_dense(x) for x in inputs],
            "post": self._postprocess(extractor.config, dense, [img.shape for img in images]),
            "superglue": lambda: matcher(*filled),
            "total": total,
        }

    def _postprocess(self, config, dense, shapes) -> Callable[[], Any]:
        """What the backend's ``superpoint`` runs after the network, on ``dense``."""
        if not upstream_mode(self.backend):
            from ..features.superpoint_post import postprocess

            return lambda: [
                postprocess(semi[0], desc[0], config, (w, h))
                for (semi, desc), (h, w) in zip(dense, shapes)
            ]
        from ..features.types import Features
        from ..networks.superpoint import reference_postprocess

        torch, device = self.backend.torch, self.backend.device
        tensors = [
            (torch.from_numpy(s).to(device), torch.from_numpy(d).to(device)) for s, d in dense
        ]

        def upstream() -> list:
            out = []
            with torch.inference_mode():
                for (semi, desc), (h, w) in zip(tensors, shapes):
                    r = reference_postprocess(semi, desc, config)
                    out.append(
                        Features(
                            r["keypoints"][0].cpu().numpy(),
                            r["scores"][0].cpu().numpy(),
                            r["descriptors"][0].cpu().numpy(),
                            (w, h),
                        )
                    )
            return out

        return upstream

    def close(self) -> None:
        self.backend.close()


def torch_baseline(
    options: Mapping[str, Any], threads: int | None = None, name: str = BASELINE
) -> BackendRunner:
    """The baseline: the torch backend in upstream mode (``host_postprocess=False``),
    on the CPU unless ``options`` name a device; ``threads`` sets torch's threads."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return BackendRunner(name, "torch", {"device": "cpu", **options, "host_postprocess": False})


# ---- results -----------------------------------------------------------------
def agreement(reference: PairOutput, other: PairOutput) -> dict[str, float]:
    """Keypoint and match agreement of ``other`` with ``reference``."""
    kp_total = kp_same = 0
    for fr, fo in zip(reference.features, other.features):
        ref = {(float(x), float(y)) for x, y in fr.keypoints}
        oth = {(float(x), float(y)) for x, y in fo.keypoints}
        kp_total += len(ref)
        kp_same += len(ref & oth)
    out = {"kp_agree": kp_same / kp_total if kp_total else 1.0}

    # matches compared by keypoint coordinates (orders may differ between runners)
    def as_pairs(po: PairOutput) -> dict[tuple[float, float], tuple[float, float] | None]:
        f0, f1 = po.features
        m0 = po.matches.matches0
        return {
            (float(f0.keypoints[i, 0]), float(f0.keypoints[i, 1])): (
                None
                if m0[i] < 0
                else (float(f1.keypoints[m0[i], 0]), float(f1.keypoints[m0[i], 1]))
            )
            for i in range(len(f0))
        }

    ref_pairs, oth_pairs = as_pairs(reference), as_pairs(other)
    same = sum(
        1 for key, value in ref_pairs.items() if key in oth_pairs and oth_pairs[key] == value
    )
    out["match_agree"] = same / len(ref_pairs) if ref_pairs else 1.0
    out["matches_ref"] = int(reference.matches.num_matches)
    out["matches"] = int(other.matches.num_matches)
    return out


@dataclass
class AgainstLimit:
    """FLOPs per stage (None: not counted) and, with the timings, the achieved rate
    and its share of the GEMM probe's rate (None without a count or a probe)."""

    flops: dict[str, FlopCount | None] = field(default_factory=dict)
    gflop_per_s: dict[str, float | None] = field(default_factory=dict)
    probe_share: dict[str, float | None] = field(default_factory=dict)
    probe_gflop_per_s: float | None = None

    @classmethod
    def measure(
        cls,
        flops: Mapping[str, FlopCount | None],
        stages_ms: Mapping[str, Mapping[str, float]],
        probe: GemmProbe | None,
    ) -> "AgainstLimit":
        rates: dict[str, float | None] = {}
        shares: dict[str, float | None] = {}
        for stage, count in flops.items():
            median_ms = stages_ms.get(stage, {}).get("median", float("nan"))
            rate = None
            if count is not None and median_ms == median_ms and median_ms > 0:
                rate = count.gflop / (median_ms / 1000.0)
            rates[stage] = rate
            shares[stage] = (
                rate / probe.gflop_per_s if rate is not None and probe is not None else None
            )
        return cls(dict(flops), rates, shares, probe.gflop_per_s if probe else None)

    def to_json(self) -> dict[str, Any]:
        return {
            "flops": {s: (c.to_json() if c is not None else None) for s, c in self.flops.items()},
            "gflop_per_s": {s: _rounded(v) for s, v in self.gflop_per_s.items()},
            "probe_share": {s: _rounded(v) for s, v in self.probe_share.items()},
            "probe_gflop_per_s": _rounded(self.probe_gflop_per_s),
        }


def _rounded(v: float | None) -> float | None:
    """Six significant digits (rates and shares span orders of magnitude)."""
    return None if v is None else float(f"{float(v):.6g}")


def _result_json(r, stages_ms: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every bench result carries (SuperGlue and LightGlue rows)."""
    return {
        "runner": r.runner,
        "size": list(r.size),
        "k": r.k,
        "keypoints": list(r.keypoints),
        "stages_ms": dict(stages_ms),
        "speedup": r.speedup,
        "peak_rss_mb": r.peak_rss_mb,
        "model_mb": r.model_mb,
        **(r.limit or AgainstLimit()).to_json(),
        "description": _jsonable(r.description),
    }


@dataclass
class BenchResult:
    runner: str
    size: tuple[int, int]
    k: int
    keypoints: tuple[int, int]
    stages: dict[str, dict[str, float]]
    speedup: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    model_mb: float | None = None
    agreement: dict[str, float] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)
    limit: AgainstLimit | None = None  # FLOPs, GFLOP/s, share of the GEMM probe

    def to_json(self) -> dict[str, Any]:
        return {**_result_json(self, self.stages), "agreement": self.agreement}


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def image_stage_ms(stages: Mapping[str, Mapping[str, float]]) -> float:
    """SuperPoint image -> keypoints + descriptors (median pre + net + post)."""
    return sum(stages[s]["median"] for s in IMAGE_STAGES)


def run_benchmark(
    runners: Sequence[BackendRunner],
    sizes: Sequence[tuple[int, int]] = SIZES,
    ks: Sequence[int] = KS,
    runs: int = 10,
    warmup: int = 2,
    sp_config: Mapping[str, Any] | None = None,
    sg_config: Mapping[str, Any] | None = None,
    frames: Sequence[str | os.PathLike] | None = None,
    fill_k: bool = True,
    baseline: str | None = BASELINE,
    gap: float = 0.1,
    progress: Callable[[str], None] | None = None,
    probe: GemmProbe | None = None,
    count_flops: bool = True,
) -> list[BenchResult]:
    """Time every stage of every runner on every (size, K) with :func:`time_stage`;
    speed-ups against ``baseline`` (a runner name) within the same (size, K);
    with ``count_flops`` each runner's FLOPs per stage (:func:`stage_flops`), the
    achieved GFLOP/s and their share of ``probe``'s rate (:class:`AgainstLimit`).
    ``gap`` seconds of idle before each call let the previous runner's worker
    threads, which busy-wait for a while after their work (OpenMP, ONNX
    Runtime), go to sleep so that they do not slow the next runner down.
    SuperGlue's network settings are the backends' own (given when built)."""
    from ..features.superpoint_post import superpoint_config
    from ..matching.superglue_post import superglue_config

    results: list[BenchResult] = []
    for size in sizes:
        images = load_pair(size, frames)
        for k in ks:
            spc = superpoint_config({**(sp_config or {}), "max_keypoints": int(k)})
            sgc = superglue_config(sg_config)
            staged = {r.name: r.stages(images, spc, sgc, int(k), fill_k) for r in runners}
            timed: dict[str, dict[str, StageTiming]] = {}
            for stage in STAGES:
                if progress is not None:
                    progress(
                        f"{size[0]}x{size[1]} K={k}: {STAGE_TITLES[stage]}, "
                        f"{warmup} warm-up + {runs} runs"
                    )
                per = len(images) if stage in IMAGE_STAGES else 1
                timed[stage] = time_stage(
                    stage, {n: s[stage] for n, s in staged.items()}, runs, warmup, gap, per
                )
            outputs = {r.name: timed["total"][r.name].output for r in runners}
            ref_out = outputs.get(baseline) if baseline else None
            block = []
            for runner in runners:
                out = outputs[runner.name]
                peaks = [t[runner.name].peak_rss_mb for t in timed.values()]
                peaks = [p for p in peaks if p is not None]
                res = BenchResult(
                    runner.name,
                    tuple(size),
                    int(k),
                    (len(out.features[0]), len(out.features[1])),
                    {s: timed[s][runner.name].stats for s in STAGES},
                    peak_rss_mb=max(peaks) if peaks else None,
                    model_mb=runner.model_mb,
                    description=runner.description,
                )
                if ref_out is not None and runner.name != baseline:
                    res.agreement = agreement(ref_out, out)
                if count_flops:
                    counts = stage_flops(runner, tuple(size), res.keypoints)
                    res.limit = AgainstLimit.measure(counts, res.stages, probe)
                block.append(res)
            ref = next((r for r in block if r.runner == baseline), None)
            if ref is not None:
                for res in block:
                    res.speedup = {
                        "image": image_stage_ms(ref.stages) / max(image_stage_ms(res.stages), 1e-9)
                    }
                    for stage in ("superpoint", "post", "superglue", "total"):
                        res.speedup[stage] = ref.stages[stage]["median"] / max(
                            res.stages[stage]["median"], 1e-9
                        )
            results.extend(block)
    return results


def stage_flops(
    runner: BackendRunner, size: tuple[int, int], keypoints: tuple[int, int]
) -> dict[str, FlopCount | None]:
    """The FLOPs of each stage for ``runner`` (see :func:`.flops.runner_stage_flops`);
    every stage None, with a warning, when counting fails: the timings stand alone."""
    try:
        return runner_stage_flops(runner.backend, size, keypoints)
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("bench: no FLOP count for %s: %s", runner.name, exc)
        return dict.fromkeys(STAGES)


# ---- LightGlue ----------------------------------------------------------------
class LightGlueRunner:
    """One LightGlue row: ``match(features0, features1) -> LightGlueResult``."""

    def __init__(
        self,
        name: str,
        match: Callable[[Any, Any], Any],
        description: Mapping[str, Any],
        model_mb: float | None = None,
        torch_in_process: bool = False,
    ):
        self.name = name
        self.match = match
        self.description = dict(description)
        self.model_mb = model_mb
        # the PyTorch network runs in this process: its FLOPs can be counted on a call
        self.torch_in_process = torch_in_process


def lightglue_reference(
    config: Mapping[str, Any], name: str = LIGHTGLUE_REFERENCE, adaptive: bool = True
) -> LightGlueRunner:
    """The PyTorch network on the CPU with ``pruning_rule`` cpu (upstream's CPU
    behaviour); ``adaptive=False``: ``depth_confidence = width_confidence = -1``."""
    from ..matching.lightglue_matcher import (
        LIGHTGLUE_NETWORK_KEYS,
        LightGlueMatcher,
        lightglue_match_config,
    )

    cfg = lightglue_match_config({**config, "pruning_rule": "cpu"})
    if not adaptive:
        cfg.update(depth_confidence=-1.0, width_confidence=-1.0)
    before = rss_mb()
    matcher = LightGlueMatcher(
        {k: cfg[k] for k in LIGHTGLUE_NETWORK_KEYS}, cfg["weights"], "cpu", cfg["weights_dir"]
    )
    after = rss_mb()
    description = {
        "backend": "torch (networks.lightglue)",
        "device": "cpu",
        "weights": str(cfg["weights"]),
        **{k: cfg[k] for k in LIGHTGLUE_NETWORK_KEYS},
    }
    return LightGlueRunner(
        name,
        matcher.match,
        description,
        None if before is None or after is None else after - before,
        torch_in_process=True,
    )


def backend_lightglue(runner: BackendRunner, config: Mapping[str, Any]) -> LightGlueRunner | None:
    """``runner``'s backend driven through its ``lightglue`` (None when it has none); its
    network is loaded here (an empty pair), so that no timed call includes the loading."""
    from ..features.types import Features
    from ..matching.lightglue_matcher import lightglue_match_config

    match = getattr(runner.backend, "lightglue", None)
    if not callable(match):
        return None
    cfg = lightglue_match_config(config)
    before = rss_mb()
    empty = Features.empty((1, 1))
    match(empty, empty, cfg)
    after = rss_mb()
    description = dict(runner.description, weights=str(cfg["weights"]))
    description.update((k, v) for k, v in cfg.items() if k not in ("weights", "weights_dir"))
    from ..backends.base import Backend

    return LightGlueRunner(
        runner.name,
        lambda f0, f1: match(f0, f1, cfg),
        description,
        None if before is None or after is None else after - before,
        # the base class's lightglue is the PyTorch network (the exported ones override it)
        torch_in_process=getattr(type(runner.backend), "lightglue", None) is Backend.lightglue,
    )


def lightglue_runners(
    backends: Sequence[BackendRunner], config: Mapping[str, Any], skip: Sequence[str] = ()
) -> list[LightGlueRunner]:
    """The reference, the non-adaptive reference, then every backend with ``lightglue``
    (``skip``: runner names left out, such as the SuperGlue baseline, whose torch
    backend runs exactly the reference)."""
    runners = [
        lightglue_reference(config),
        lightglue_reference(config, LIGHTGLUE_FULL, adaptive=False),
    ]
    for backend in backends:
        if backend.name in skip:
            continue
        runner = backend_lightglue(backend, config)
        if runner is None:
            log.info("bench: %s has no lightglue", backend.name)
        else:
            runners.append(runner)
    return runners


@dataclass
class LightGlueBenchResult:
    runner: str
    size: tuple[int, int]
    k: int
    keypoints: tuple[int, int]
    stage: dict[str, float]  # lightglue call, ms: median, p90, max, n
    stop_layer: int
    n_layers: int
    num_pruned: tuple[int, int]
    matches: int
    speedup: float | None = None
    match_agree: float | None = None  # share of keypoints matched as the reference does
    peak_rss_mb: float | None = None
    model_mb: float | None = None
    description: dict[str, Any] = field(default_factory=dict)
    limit: AgainstLimit | None = None  # FLOPs, GFLOP/s, share of the GEMM probe

    def to_json(self) -> dict[str, Any]:
        return {
            **_result_json(self, {LIGHTGLUE_STAGE: self.stage}),
            "stop_layer": self.stop_layer,
            "n_layers": self.n_layers,
            "num_pruned": list(self.num_pruned),
            "matches": self.matches,
            "match_agree": self.match_agree,
        }


def lightglue_inputs(runner: BackendRunner, images, sp_config, k: int, fill_k: bool):
    """The two feature sets every LightGlue runner gets: ``runner``'s SuperPoint, topped
    up to ``k`` keypoints (``fill_k``) as for SuperGlue."""
    from ..features.extractor import SuperPointExtractor, to_network_input

    extractor = SuperPointExtractor(runner.backend, sp_config)
    out = []
    for i, img in enumerate(images):
        features = extractor(img)
        if fill_k:
            raw = runner.backend.superpoint_dense(to_network_input([img]))[1][0]
            features = fill_features(features, k, raw, seed=i)
        out.append(features)
    return out[0], out[1]


def run_lightglue_benchmark(
    runners: Sequence[LightGlueRunner],
    features_from: BackendRunner,
    sizes: Sequence[tuple[int, int]] = SIZES,
    ks: Sequence[int] = KS,
    runs: int = 10,
    warmup: int = 2,
    sp_config: Mapping[str, Any] | None = None,
    frames: Sequence[str | os.PathLike] | None = None,
    fill_k: bool = True,
    reference: str | None = LIGHTGLUE_REFERENCE,
    gap: float = 0.1,
    progress: Callable[[str], None] | None = None,
    probe: GemmProbe | None = None,
    count_flops: bool = True,
) -> list[LightGlueBenchResult]:
    """Time every LightGlue runner on the same pair of feature sets (from
    ``features_from``) per (size, K); speed-ups and match agreement against ``reference``.
    With ``count_flops``, runners whose PyTorch network runs in this process get
    their FLOPs counted on one more (untimed) call (:func:`.flops.count_call`: what
    that call ran, adaptive depth and width included); the exported runners' stay
    None (their work is outside torch)."""
    from ..features.superpoint_post import superpoint_config

    results: list[LightGlueBenchResult] = []
    for size in sizes:
        images = load_pair(size, frames)
        for k in ks:
            spc = superpoint_config({**(sp_config or {}), "max_keypoints": int(k)})
            f0, f1 = lightglue_inputs(features_from, images, spc, int(k), fill_k)
            if progress is not None:
                progress(f"{size[0]}x{size[1]} K={k}: LightGlue, {warmup} warm-up + {runs} runs")
            timed = time_stage(
                LIGHTGLUE_STAGE,
                {r.name: (lambda r=r: r.match(f0, f1)) for r in runners},
                runs,
                warmup,
                gap,
            )
            ref = timed.get(reference) if reference else None
            for runner in runners:
                t = timed[runner.name]
                out = t.output
                res = LightGlueBenchResult(
                    runner.name,
                    tuple(size),
                    int(k),
                    (len(f0), len(f1)),
                    t.stats,
                    int(out.stop_layer),
                    int(out.n_layers),
                    (int(out.num_pruned[0]), int(out.num_pruned[1])),
                    int(out.matches.num_matches),
                    peak_rss_mb=t.peak_rss_mb,
                    model_mb=runner.model_mb,
                    description=runner.description,
                )
                if ref is not None:
                    res.speedup = ref.stats["median"] / max(t.stats["median"], 1e-9)
                    m_ref = ref.output.matches
                    same = np.concatenate(
                        [
                            m_ref.matches0 == out.matches.matches0,
                            m_ref.matches1 == out.matches.matches1,
                        ]
                    )
                    res.match_agree = float(same.mean()) if same.size else 1.0
                if count_flops:
                    count = (
                        count_call(lambda r=runner: r.match(f0, f1))
                        if runner.torch_in_process
                        else None
                    )
                    res.limit = AgainstLimit.measure(
                        {LIGHTGLUE_STAGE: count}, {LIGHTGLUE_STAGE: t.stats}, probe
                    )
                results.append(res)
    return results


def format_lightglue_table(
    results: Sequence[LightGlueBenchResult], reference: str | None = LIGHTGLUE_REFERENCE
) -> str:
    """Terminal table of :func:`run_lightglue_benchmark`: per (size, K) a row per runner
    with the LightGlue call's median/p90/max (ms), layers run, points pruned, matches,
    speed-up over the reference and match agreement."""
    lines = []
    blocks: dict[tuple, list[LightGlueBenchResult]] = {}
    for r in results:
        blocks.setdefault((r.size, r.k), []).append(r)
    name_w = max([len(r.runner) for r in results] + [8])
    for (size, k), rows in blocks.items():
        lines.append(
            f"== LightGlue {size[0]}x{size[1]} (HxW), K={k}  [keypoints: "
            f"{rows[0].keypoints[0]}/{rows[0].keypoints[1]}]  times in ms: median / p90 / max"
        )
        lines.append(
            f"{'runner':<{name_w}} {'LightGlue':>20} {'layers':>7} {'pruned':>11} "
            f"{'matches':>8} {'x LG':>7} {'peak MB':>8} {'m agr':>7} {'GFLOP GFLOP/s %probe':>22}"
        )
        for r in rows:
            st = r.stage
            row = f"{r.runner:<{name_w}} " + (
                f"{_fmt(st['median'])}/{_fmt(st['p90'])}/{_fmt(st['max'])}".rjust(20)
            )
            row += f" {f'{r.stop_layer}/{r.n_layers}':>7}"
            row += f" {f'{r.num_pruned[0]}/{r.num_pruned[1]}':>11} {r.matches:>8}"
            row += f" {_x(r.speedup, 7)}"
            row += f" {r.peak_rss_mb:8.0f}" if r.peak_rss_mb is not None else f" {'n/a':>8}"
            if r.runner == reference:
                row += f" {'(ref)':>7}"
            elif r.match_agree is not None:
                row += f" {100 * r.match_agree:6.1f}%"
            else:
                row += f" {'':>7}"
            row += f" {_limit_cell(r.limit, LIGHTGLUE_STAGE, 22)}"
            lines.append(row)
        lines.append("")
    lines.append(
        f"layers: layers run / of the network; pruned: points pruned in image 0 / 1; x LG: "
        f"speed-up over '{reference}' (networks.lightglue, CPU, pruning_rule cpu, adaptive) "
        f"in the same run; '{LIGHTGLUE_FULL}': all layers, no pruning; m agr: share of the "
        "keypoints matched as the reference matches them. GFLOP: counted on the call for the "
        "runners whose PyTorch network runs in this process (n/a: exported models); GFLOP/s: "
        "GFLOP / median time; %probe: of the GEMM probe."
    )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for mod in ("torch", "onnxruntime", "openvino"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            pass
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def format_table(results: Sequence[BenchResult], baseline: str | None = BASELINE) -> str:
    """Terminal table: per (size, K) block, a row per runner with median/p90/max per
    stage (ms), speed-ups over the baseline, peak memory and agreement."""
    lines = []
    blocks: dict[tuple, list[BenchResult]] = {}
    for r in results:
        blocks.setdefault((r.size, r.k), []).append(r)
    name_w = max([len(r.runner) for r in results] + [8])
    for (size, k), rows in blocks.items():
        kp = ", ".join(f"{r.runner} {r.keypoints[0]}/{r.keypoints[1]}" for r in rows[:1])
        lines.append(
            f"== {size[0]}x{size[1]} (HxW), K={k}  [keypoints: {kp}]  "
            "times in ms: median / p90 / max"
        )
        head = f"{'runner':<{name_w}} " + " ".join(f"{STAGE_TITLES[s]:>20}" for s in STAGES)
        head += (
            f" {'x image':>8} {'x SG':>6} {'x pair':>7} {'peak MB':>8} {'kp agr':>7} {'m agr':>7}"
        )
        lines.append(head)
        for r in rows:
            cells = []
            for s in STAGES:
                st = r.stages[s]
                cells.append(f"{_fmt(st['median'])}/{_fmt(st['p90'])}/{_fmt(st['max'])}".rjust(20))
            sp = r.speedup
            row = f"{r.runner:<{name_w}} " + " ".join(cells)
            row += f" {_x(sp.get('image'))} {_x(sp.get('superglue'), 6)} {_x(sp.get('total'), 7)}"
            row += f" {r.peak_rss_mb:8.0f}" if r.peak_rss_mb is not None else f" {'n/a':>8}"
            ag = r.agreement
            row += (
                f" {100 * ag['kp_agree']:6.1f}% {100 * ag['match_agree']:6.1f}%"
                if ag
                else f" {'(ref)' if r.runner == baseline else '':>7} {'':>7}"
            )
            lines.append(row)
        lines.append("")
    lines.append(
        "x image: SuperPoint image -> keypoints + descriptors (pre + net + post); "
        f"x SG: SuperGlue; x pair: total; speed-ups over '{baseline}' in the same run. "
        "kp agr / m agr: share of the baseline's keypoints / matches reproduced "
        "(fp16 agreement rate)."
    )
    return "\n".join(lines)


LIMIT_STAGES = ("superpoint", "superglue", "total")


def format_limit_table(
    results: Sequence[BenchResult],
    probe: GemmProbe | None,
    machine: Mapping[str, Any] | None = None,
) -> str:
    """The runs against the machine's limit: the GEMM probe's rate and the CPU in
    the header, then per (size, K) a row per runner with, for the SuperPoint
    network (per image), SuperGlue (per pair) and the pair total, the counted
    GFLOP, the achieved GFLOP/s and its share of the probe's rate."""
    machine = environment() if machine is None else machine
    cpu = machine.get("cpu", machine.get("machine", "unknown CPU"))
    if probe is not None:
        threads = f", {probe.threads} threads" if probe.threads else ""
        head = (
            f"== against the limit: GEMM probe {probe.gflop_per_s:.1f} GFLOP/s (fp32 "
            f"{probe.n}^3, {probe.library}{threads}) on {cpu} ({machine.get('cpus')} CPUs)"
        )
    else:
        head = f"== against the limit: no GEMM probe (shares n/a) on {cpu}"
    lines = [head]
    blocks: dict[tuple, list[BenchResult]] = {}
    for r in results:
        blocks.setdefault((r.size, r.k), []).append(r)
    name_w = max([len(r.runner) for r in results] + [8])
    for (size, k), rows in blocks.items():
        lines.append(f"-- {size[0]}x{size[1]} (HxW), K={k}: GFLOP, GFLOP/s, % of probe")
        lines.append(
            f"{'runner':<{name_w}} " + " ".join(f"{STAGE_TITLES[s]:>24}" for s in LIMIT_STAGES)
        )
        for r in rows:
            cells = [_limit_cell(r.limit, s, 24) for s in LIMIT_STAGES]
            lines.append(f"{r.runner:<{name_w}} " + " ".join(cells))
        lines.append("")
    lines.append(
        "GFLOP: 2 x multiply-adds of convolutions and matrix products, counted on the network "
        "each runner executes (SP net per image, SuperGlue per pair, total = 2 SP + SG; "
        "exponentials in the JSON); GFLOP/s: GFLOP / median time; %: of the GEMM probe."
    )
    return "\n".join(lines)


def _limit_cell(limit: AgainstLimit | None, stage: str, width: int) -> str:
    """``GFLOP GFLOP/s share%`` of one stage, n/a where not known."""
    limit = limit or AgainstLimit()
    count = limit.flops.get(stage)
    share = limit.probe_share.get(stage)
    return (
        f"{_num(count.gflop if count else None)} {_num(limit.gflop_per_s.get(stage))} "
        f"{_num(None if share is None else 100 * share)}%"
    ).rjust(width)


def _num(v: float | None) -> str:
    if v is None or v != v:
        return "n/a"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def _fmt(v: float) -> str:
    if v != v:  # nan
        return "n/a"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _x(v: float | None, width: int = 8) -> str:
    return (f"{v:.2f}x" if v is not None else "").rjust(width)


def write_json(
    path: str | os.PathLike,
    results: Sequence[BenchResult],
    settings: Mapping[str, Any],
    lightglue_results: Sequence[LightGlueBenchResult] | None = None,
    probe: GemmProbe | None = None,
) -> Path:
    """All results as JSON: ``environment``, ``settings``, ``gemm_probe`` (None when
    no probe ran), ``results`` and, with LightGlue, ``lightglue_results``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "environment": environment(),
        "settings": _jsonable(dict(settings)),
        "gemm_probe": probe.to_json() if probe is not None else None,
        "results": [r.to_json() for r in results],
    }
    if lightglue_results is not None:
        body["lightglue_results"] = [r.to_json() for r in lightglue_results]
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path
