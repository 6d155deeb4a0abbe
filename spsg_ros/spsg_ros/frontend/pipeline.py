"""The ROS-free frontend: features, matching with a reference frame, relative pose, metrics.

Each image goes through SuperPoint exactly once; the reference frame's features
(and, for stereo, its triangulated points) are cached for the next pairing.
``process`` never raises: unusable input gives a FrameResult with ``ok=False``
and ``status`` saying why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..backends.base import Backend, create_backend
from ..features.extractor import SuperPointExtractor
from ..features.types import Features
from ..matching.lightglue_matcher import BackendLightGlueMatcher
from ..matching.nearest_neighbor import NearestNeighborMatcher
from ..matching.superglue_matcher import SuperGlueMatcher
from ..matching.types import Matches
from . import camera as cam
from .config import ConfigSource, load_config
from .metrics import frame_metrics
from .pose import mono_pose, stereo_pose, triangulate_stereo
from .preprocess import FrameError, Prepared, Preprocessor, normalized_points, to_original
from .types import CameraInfo, Frame, FrameResult, MatcherInfo

log = logging.getLogger(__name__)

#: frames in a row without a valid pose against one reference before it is given up and
#: the next frame becomes the reference (the trajectory then goes on from the last valid
#: pose): short dropouts keep their chain, a lost track recovers within a few frames
REFERENCE_MAX_MISSES = 5


@dataclass
class View:
    """One processed image, kept as reference for the next frames."""

    stamp_ns: int
    frame_id: str
    size: tuple[int, int]  # (W, H) original
    features: Features  # network-image coordinates (what the matcher sees)
    keypoints: np.ndarray  # (N, 2) original-image pixels
    intrinsics: Optional[cam.Intrinsics]
    normalized: Optional[np.ndarray]  # (N, 2) K^-1 p undistorted, None without intrinsics
    points3d: Optional[np.ndarray] = None  # (N, 3) left-camera points (NaN: none), stereo only

    def reported_features(self) -> Features:
        return Features(self.keypoints, self.features.scores, self.features.descriptors, self.size)


class Frontend:
    """SuperPoint + SuperGlue (or LightGlue, or NN) frontend for a mono or stereo stream.

    ``config``: a YAML path, a dict or None (see :data:`.config.DEFAULT_CONFIG`);
    ``backend``: an existing :class:`Backend` (then the config's backend section
    is ignored but for ``weights_dir``, which LightGlue's weights are looked up in,
    the network-side SuperGlue settings are the backend's own, and the caller
    closes it).

    With ``matcher: lightglue`` the pairs go through ``backend.lightglue`` (its network
    is loaded on construction, so that missing or unsuitable weights fail here), and
    ``FrameResult.matcher_info`` / ``stereo_matcher_info`` hold the layers run and the
    points pruned.

    ``FrameResult.is_keyframe`` is True when the frame becomes the reference for
    the frames after it (every good frame with ``pair_with: previous``).
    """

    def __init__(self, config: ConfigSource = None, backend: Optional[Backend] = None):
        self.config = load_config(config)
        self._owns_backend = backend is None
        self.backend = backend if backend is not None else self._create_backend()
        self.extractor = SuperPointExtractor(self.backend, self.config["superpoint"])
        self.matcher: Any
        if self.config["matcher"] == "superglue":
            self.matcher = SuperGlueMatcher(self.backend, self.config["superglue"])
        elif self.config["matcher"] == "lightglue":
            self.matcher = BackendLightGlueMatcher(self.backend, self._lightglue_config())
            # load the network now: missing weights or another descriptor size fail here
            empty = Features.empty((1, 1))
            self.matcher.match(empty, empty)
        else:
            self.matcher = NearestNeighborMatcher(self.config["nn"])
        self.preprocessor = Preprocessor(self.config["preprocess"])
        self._ref: Optional[View] = None
        self._ref_misses = 0
        self._mode: Optional[str] = None
        self._last_stamp_ns: Optional[int] = None  # newest frame seen, to notice time going back

    def _create_backend(self) -> Backend:
        from ..backends.base import backend_option_names

        b = self.config["backend"]
        options = dict(b["options"])
        takes = backend_option_names(b["name"])  # None: any (auto hands it on to its candidates)
        if self.config["matcher"] != "superglue" and (takes is None or "load_superglue" in takes):
            options.setdefault("load_superglue", False)  # NN and LightGlue need no SuperGlue
        return create_backend(
            b["name"],
            superpoint_weights=b["superpoint_weights"],
            superglue_weights=b["superglue_weights"],
            superpoint_config=self.config["superpoint"],
            superglue_config=self.config["superglue"],
            weights_dir=b["weights_dir"],
            device=b["device"],
            **options,
        )

    def _lightglue_config(self) -> dict[str, Any]:
        """``Backend.lightglue``'s config: the lightglue section and the weights folder."""
        return {**self.config["lightglue"], "weights_dir": self.config["backend"]["weights_dir"]}

    # ------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Forget the reference frame: the next frame starts a new pairing."""
        self._ref = None
        self._ref_misses = 0
        self._mode = None

    @property
    def reference(self) -> Optional[View]:
        return self._ref

    def process(self, frame: Frame) -> FrameResult:
        """Mono: features of ``frame``, matches and relative pose against the reference."""
        return self._guarded(frame, lambda timings: self._process_mono(frame, timings))

    def process_stereo(self, left: Frame, right: Frame) -> FrameResult:
        """Stereo: left and right in one batched SuperPoint call, left-right matches
        triangulated, metric pose of the left camera by PnP against the reference."""
        return self._guarded(left, lambda timings: self._process_stereo(left, right, timings))

    def close(self) -> None:
        if self._owns_backend:
            self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ internals

    def _guarded(self, frame: Any, run) -> FrameResult:
        start = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            result = run(timings)
        except (FrameError, cam.CalibrationError) as exc:
            result = FrameResult.flagged(frame, str(exc))
        except Exception as exc:  # never let one bad frame stop a stream
            log.exception("frontend failed on frame %s", getattr(frame, "stamp_ns", "?"))
            result = FrameResult.flagged(frame, f"internal error: {type(exc).__name__}: {exc}")
        timings["total"] = (time.perf_counter() - start) * 1e3
        result.timings_ms = timings
        if not result.ok:
            log.warning("frame %s flagged: %s", result.stamp_ns, result.status)
        return result

    def _prepare(self, frame: Frame) -> tuple[np.ndarray, Optional[cam.Intrinsics]]:
        """Grayscale image and intrinsics (CameraInfo, else the config's camera, else None)."""
        if not isinstance(frame, Frame):
            raise FrameError(f"expected a Frame, got {type(frame).__name__}")
        gray = self.preprocessor.gray(frame.image, frame.encoding, frame.frame_id)
        height, width = gray.shape
        info = self._camera_info(frame, width, height)
        return gray, cam.intrinsics(info, width, height)

    def _camera_info(self, frame: Frame, width: int, height: int) -> Optional[CameraInfo]:
        if frame.camera_info is not None:
            return frame.camera_info
        return cam.camera_info_from_config(self.config["camera"], width, height)

    def _view(
        self, frame: Frame, prepared: Prepared, features: Features, intr: Optional[cam.Intrinsics]
    ) -> View:
        keypoints = to_original(features.keypoints, prepared)
        normalized = None
        if intr is not None:
            normalized = normalized_points(
                features.keypoints,
                prepared,
                intr.K,
                intr.D,
                self.config["preprocess"]["undistort"],
            )
        return View(
            int(frame.stamp_ns),
            str(frame.frame_id),
            prepared.original_size,
            features,
            keypoints,
            intr,
            normalized,
        )

    def _process_mono(self, frame: Frame, timings: dict[str, float]) -> FrameResult:
        # 1. Image to the network's grey input (resize, CLAHE, undistortion); intrinsics.
        t = time.perf_counter()
        gray, intr = self._prepare(frame)
        prepared = self._preprocess(gray, intr)
        timings["preprocess"] = _ms(t)
        # 2. SuperPoint: keypoints, scores, descriptors (in input pixels for the outputs).
        t = time.perf_counter()
        (features,) = self.extractor.extract_batch([prepared.image])
        timings["superpoint"] = _ms(t)
        view = self._view(frame, prepared, features, intr)
        # 3. The reference to pair with (none after a reset: size, mode or time changed).
        ref, warnings, reset = self._reference_for(view, "mono")
        # 4. Matches with the reference (SuperGlue, LightGlue or mutual nearest neighbour).
        t = time.perf_counter()
        matches, info = (
            self._match(view.features, ref.features) if ref is not None else (None, None)
        )
        timings["match"] = _ms(t)
        # 5. Relative pose from the essential matrix (translation up to scale).
        t = time.perf_counter()
        result = self._result(view, warnings, reset)
        result.matcher_info = info
        self._pose(
            result, ref, matches, lambda: mono_pose(ref, view, matches, self.config["pose"])
        )
        timings["pose"] = _ms(t)
        # 6. Metrics, and whether this frame becomes the next reference.
        return self._finish(result, view, ref, matches, "mono", reset, timings)

    def _process_stereo(self, left: Frame, right: Frame, timings: dict[str, float]) -> FrameResult:
        # 1. Both images to grey network inputs of one size; the stereo calibration.
        t = time.perf_counter()
        warnings: list[str] = []
        gray, intr = self._prepare(left)
        gray_r, _ = self._prepare(right)
        if gray_r.shape != gray.shape:
            raise FrameError(
                f"left {gray.shape[1]}x{gray.shape[0]} and right "
                f"{gray_r.shape[1]}x{gray_r.shape[0]} images differ in size"
            )
        height, width = gray.shape
        left_info = self._camera_info(left, width, height)
        calib = cam.stereo_calibration(left_info, right.camera_info or left_info, width, height)
        if calib is not None:
            intr = calib.left
        else:
            warnings.append(
                "no stereo calibration (T_right_left, rectified P or baseline): "
                "no triangulation, no metric pose"
            )
        prepared = self._preprocess(gray, intr)
        prepared_r = self._preprocess(gray_r, calib.right if calib else None)
        timings["preprocess"] = _ms(t)
        # 2. SuperPoint on the left and right image in one batch.
        t = time.perf_counter()
        features = self.extractor.extract_batch([prepared.image, prepared_r.image])
        timings["superpoint"] = _ms(t)
        view = self._view(left, prepared, features[0], intr)
        right_view = self._view(right, prepared_r, features[1], calib.right if calib else None)
        # 3. The reference to pair with (none after a reset: size, mode or time changed).
        ref, reset_warnings, reset = self._reference_for(view, "stereo")
        warnings += reset_warnings
        # 4. Left-right matches, and left matches with the reference's left image.
        t = time.perf_counter()
        stereo_matches, stereo_info = self._match(view.features, right_view.features)
        matches, info = (
            self._match(view.features, ref.features) if ref is not None else (None, None)
        )
        timings["match"] = _ms(t)
        # 5. Triangulated left-right points; metric pose by PnP against the reference's.
        t = time.perf_counter()
        if calib is not None:
            view.points3d = triangulate_stereo(
                view, right_view, stereo_matches, calib, self.config["pose"]
            )
        result = self._result(view, warnings, reset)
        result.right_features = right_view.reported_features()
        result.stereo_matches = stereo_matches
        result.matcher_info, result.stereo_matcher_info = info, stereo_info
        self._pose(
            result,
            ref,
            matches,
            lambda: stereo_pose(ref, view, matches, self.config["pose"], calib is not None),
        )
        timings["pose"] = _ms(t)
        # 6. Metrics, and whether this frame becomes the next reference.
        return self._finish(result, view, ref, matches, "stereo", reset, timings)

    # ------------------------------------------------------------------ shared steps

    def _match(
        self, features0: Features, features1: Features
    ) -> tuple[Matches, Optional[MatcherInfo]]:
        """Matches of a pair, and what LightGlue did (None for the other matchers)."""
        if not isinstance(self.matcher, BackendLightGlueMatcher):
            return self.matcher(features0, features1), None
        out = self.matcher.match(features0, features1)
        info = MatcherInfo(
            "lightglue",
            int(out.stop_layer),
            int(out.n_layers),
            (int(out.num_pruned[0]), int(out.num_pruned[1])),
            (len(features0), len(features1)),
        )
        return out.matches, info

    def _preprocess(self, gray: np.ndarray, intr: Optional[cam.Intrinsics]) -> Prepared:
        return self.preprocessor(gray, *(intr.K, intr.D) if intr else (None, None))

    def _reference_for(
        self, view: View, mode: str
    ) -> tuple[Optional[View], list[str], Optional[str]]:
        """(reference, warnings, reset reason): the reference is dropped when ``view``
        cannot pair with it."""
        reason = self._reset_reason(view, mode)
        self._last_stamp_ns = view.stamp_ns
        if reason is None:
            return self._ref, [], None
        log.warning("%s", reason)
        self.reset()
        return None, [reason], reason

    @staticmethod
    def _result(view: View, warnings: list[str], reset: Optional[str]) -> FrameResult:
        return FrameResult(
            stamp_ns=view.stamp_ns,
            frame_id=view.frame_id,
            image_size=view.size,
            features=view.reported_features(),
            warnings=warnings,
            pairing_reset=reset is not None,
        )

    @staticmethod
    def _pose(
        result: FrameResult, ref: Optional[View], matches: Optional[Matches], estimate
    ) -> None:
        if ref is None:
            result.pose.status = "no reference frame (first frame or after a reset)"
            return
        result.ref_stamp_ns, result.ref_frame_id, result.matches = (
            ref.stamp_ns,
            ref.frame_id,
            matches,
        )
        result.pose = estimate()

    def _finish(
        self,
        result: FrameResult,
        view: View,
        ref: Optional[View],
        matches: Optional[Matches],
        mode: str,
        reset: Optional[str],
        timings: dict[str, float],
    ) -> FrameResult:
        t = time.perf_counter()
        idx_cur, idx_ref = (
            matches.pairs()[:2]
            if matches is not None
            else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        )
        result.metrics, _ = frame_metrics(
            len(view.features),
            ref.keypoints[idx_ref] if ref is not None else np.zeros((0, 2)),
            view.keypoints[idx_cur],
            self.config["f_rej_th"],
            self.config["f_ransac_confidence"],
            result.pose.num_inliers,
        )
        timings["metrics"] = _ms(t)
        self._update_reference(view, ref, matches, mode, result)
        if len(view.features) == 0:
            result.ok, result.status = False, "no keypoints (blank or featureless image)"
        elif reset is not None:
            result.ok, result.status = False, reset
        return result

    def _reset_reason(self, view: View, mode: str) -> Optional[str]:
        """Why the reference cannot pair with ``view`` (None: it can).

        A stamp older than the reference's means the source restarted or looped
        (a replayed bag): pairing across it would chain two runs together.
        """
        ref = self._ref
        if ref is None:
            return None
        if ref.size != view.size:
            return (
                f"resolution changed from {ref.size[0]}x{ref.size[1]} to "
                f"{view.size[0]}x{view.size[1]}: pairing reset"
            )
        if self._mode != mode:
            return f"stream changed from {self._mode} to {mode}: pairing reset"
        last = self._last_stamp_ns
        if last is not None and view.stamp_ns < last:
            return (
                f"stamp went back by {(last - view.stamp_ns) / 1e9:.3f} s "
                "(source restarted or looped): reference, keyframe and trajectory reset"
            )
        return None

    def _update_reference(
        self,
        view: View,
        ref: Optional[View],
        matches: Optional[Matches],
        mode: str,
        result: FrameResult,
    ) -> None:
        """Previous mode: every frame with keypoints and a valid pose becomes the
        reference. Keyframe mode: only when the share of the keyframe's keypoints
        still matched falls under ``keyframe_min_tracked``. A frame without keypoints
        never does. A frame without a valid pose does not replace the reference (its
        world pose is unknown, so nothing could chain from it) unless the reference
        has failed :data:`REFERENCE_MAX_MISSES` frames in a row."""
        if len(view.features) == 0:
            return
        if ref is not None and not result.pose.valid:
            self._ref_misses += 1
            if self._ref_misses < REFERENCE_MAX_MISSES:
                return
        elif ref is not None and self.config["pair_with"] == "keyframe":
            self._ref_misses = 0
            tracked = matches.num_matches / max(len(ref.features), 1)
            if tracked >= self.config["keyframe_min_tracked"]:
                return
        self._ref = view
        self._ref_misses = 0
        self._mode = mode
        result.is_keyframe = True


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3
