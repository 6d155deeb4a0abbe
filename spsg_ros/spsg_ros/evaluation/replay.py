"""Offline replay: a sequence through the frontend, with every output a person
or a tool looks at afterwards.

``OUT/results/``      ROS 2 bag folder (``results_0.mcap`` + metadata.yaml): our
                      messages, match pictures, trajectory
``OUT/metrics.csv``   one row per frame (flushed per row)
``OUT/summary.json``  means, latency, accuracy against ground truth (matcher
                      lightglue: layers run and points pruned, means)
``OUT/plots/*.png``   metrics.png, latency.png, trajectory.png, errors.png

A frame the reader could not load, or the frontend flagged, gets a row with
``ok = 0`` and its status; the replay goes on. A frame without a valid pose
publishes no pose and is left out of ATE/RPE. A stop signal (Ctrl-C, SIGTERM,
SIGHUP, with a :class:`~spsg_ros.stop_signals.StopSignals` given), or a failure
of the source half-way, ends the loop early but still closes the bag, flushes
the CSV and writes the summary (with ``"interrupted": true`` or ``"error"``)
and plots; a signal during a frame's writes waits for them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from ..datasets.base import DatasetError, Sequence, SequenceFrame
from ..frontend.types import FrameResult
from ..stop_signals import holding, StopSignals
from .pose import SequenceAccuracy

log = logging.getLogger(__name__)

STAGES = ("preprocess", "superpoint", "match", "pose", "metrics")
CSV_COLUMNS = (
    [
        "index",
        "stamp_ns",
        "stamp_s",
        "ok",
        "status",
        "ref_stamp_ns",
        "is_keyframe",
        "num_kp",
        "num_matches",
        "match_prec",
        "outlier_prec",
        "inliers",
        "pose_valid",
        "pose_published",
        "pose_status",
        "tx",
        "ty",
        "tz",
        "rot_deg",
    ]
    + [f"ms_{s}" for s in STAGES]
    + [
        "frontend_ms",
        "total_ms",
        "rot_err_deg",
        "t_dir_err_deg",
        "t_err_m",
        "t_rel_err",
        "pose_err_deg",
        "gt_motion_m",
        "gt_rot_deg",
        "source",
    ]
)
BAG_NAME = "results"  # a rosbag2 folder holding results_0.mcap, as ros2 bag record names it
OUTPUT_NAMES = (BAG_NAME, "metrics.csv", "summary.json", "plots")
MAX_CONSECUTIVE_ERRORS = 5


class OutputError(ValueError):
    """The output folder cannot be used; the message says why."""


class OutputExistsError(OutputError):
    """The output folder already holds replay outputs (and --overwrite was not given)."""


def prepare_output_folder(out: Path) -> None:
    """Create ``out`` (and parents) or say in one line why it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"output folder {out} is a file, not a folder") from None
    except NotADirectoryError:
        raise OutputError(f"output folder {out}: a part of its path is a file") from None
    except PermissionError:
        raise OutputError(f"output folder {out}: no permission to create it") from None
    except OSError as exc:
        raise OutputError(f"output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {out} is not writable")


def _fmt(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return "" if not math.isfinite(float(value)) else f"{float(value):.6g}"
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def flagged_result(frame: SequenceFrame, status: str) -> FrameResult:
    """A FrameResult for a frame that never reached the frontend (:meth:`FrameResult.flagged`)."""
    return FrameResult.flagged(frame, status)


def lightglue_summary(infos: list) -> dict[str, Any]:
    """Means over the pairs LightGlue matched (``MatcherInfo``): layers run, points pruned
    and their share of the pair's keypoints."""
    points = [sum(i.num_keypoints) for i in infos]
    pruned = [sum(i.num_pruned) for i in infos]
    return {
        "pairs": len(infos),
        "n_layers": max(i.n_layers for i in infos),
        "stop_layer_mean": float(np.mean([i.stop_layer for i in infos])),
        "stop_layer_min": int(min(i.stop_layer for i in infos)),
        "stop_layer_max": int(max(i.stop_layer for i in infos)),
        "pruned_mean": float(np.mean(pruned)),
        "pruned_share_mean": float(np.mean([p / n if n else 0.0 for p, n in zip(pruned, points)])),
    }


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return {}
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "max": float(v.max()),
    }


@dataclass
class _Outputs:
    """The replay's open files: the results bag (or None) and the CSV."""

    bag: Any
    csv_file: Any
    writer: Any

    def close(self) -> None:
        """Flush and close the CSV, close the bag (also when the CSV fails)."""
        try:
            self.csv_file.flush()
            self.csv_file.close()
        finally:
            if self.bag is not None:
                self.bag.close()


class Replay:
    """Runs ``sequence`` through ``frontend`` and writes the outputs into ``out_dir``."""

    def __init__(
        self,
        sequence: Sequence,
        frontend,
        out_dir: str | Path,
        *,
        stereo: bool = False,
        overwrite: bool = False,
        write_bag: bool = True,
        viz_every: int = 1,
        viz_scale: float = 0.5,
        path_every: int = 10,
        progress: bool = True,
        run_info: Optional[dict] = None,
        stop: Optional[StopSignals] = None,
    ):
        self.sequence = sequence
        self.frontend = frontend
        self.out = Path(out_dir)
        self.stereo = bool(stereo)
        if self.stereo and not sequence.stereo:
            raise DatasetError(f"--stereo: the source {sequence.path} was not opened as stereo")
        self.write_bag = write_bag
        self.viz_every = int(viz_every)
        self.viz_scale = float(viz_scale)
        if not 0 < self.viz_scale <= 4:
            raise ValueError(f"viz scale must be in (0, 4], got {viz_scale}")
        self.path_every = path_every
        self.progress = progress
        self.run_info = dict(run_info or {})
        self.stop = stop
        prepare_output_folder(self.out)
        existing = [n for n in OUTPUT_NAMES if (self.out / n).exists()]
        if existing and not overwrite:
            raise OutputExistsError(
                f"{self.out} already holds {', '.join(existing)}: "
                f"choose another --out or pass --overwrite"
            )
        for name in existing:
            self._remove(self.out / name)
        (self.out / "plots").mkdir()

    @staticmethod
    def _remove(path: Path) -> None:
        import shutil

        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict:
        """Replay every frame; the outputs are closed and summarised however the loop ends."""
        accuracy = SequenceAccuracy(
            metric=self.stereo, position_only=self.sequence.ground_truth_kind == "position"
        )
        self.errors: dict[str, list[float]] = {"rot_err_deg": [], "t_dir_err_deg": []}
        if self.stereo:
            self.errors["t_err_m"] = []
        rows: list[dict] = []
        self.matcher_infos: list = []  # matcher lightglue: one MatcherInfo per pair matched
        started = time.perf_counter()
        outputs = self._open_outputs()
        try:
            interrupted, failure = self._process_frames(outputs, accuracy, rows)
        finally:
            with holding(self.stop):  # a second signal must not cut the bag's index short
                outputs.close()
        with holding(self.stop):
            return self._finish(
                rows, accuracy, time.perf_counter() - started, interrupted, failure, outputs.bag
            )

    def _backend_name(self) -> str:
        try:
            return str(self.frontend.backend.describe().get("backend", ""))
        except Exception:  # describe is informative only
            return getattr(self.frontend.backend, "name", "")

    def _open_outputs(self) -> "_Outputs":
        """The results bag (unless disabled) and the CSV with its header written."""
        from ..bagio.writer import ResultsBagWriter

        bag = (
            ResultsBagWriter(
                self.out / BAG_NAME,
                backend_name=self._backend_name(),
                path_every=self.path_every,
            )
            if self.write_bag
            else None
        )
        try:
            csv_file = open(self.out / "metrics.csv", "w", newline="")
        except BaseException:
            if bag is not None:
                bag.close()
            raise
        outputs = _Outputs(bag, csv_file, csv.DictWriter(csv_file, fieldnames=CSV_COLUMNS))
        try:
            outputs.writer.writeheader()
            csv_file.flush()
        except BaseException:
            outputs.close()
            raise
        return outputs

    def _process_frames(
        self, outputs: "_Outputs", accuracy: SequenceAccuracy, rows: list[dict]
    ) -> tuple[Optional[str], Optional[str]]:
        """The loop; returns (stop signal name or None, failure or None): a stop signal or a
        failing source end it early."""
        from tqdm import tqdm

        from ..geometry.trajectory import TrajectoryAccumulator
        from ..messages.references import ReferenceViews

        accumulator = TrajectoryAccumulator(history=4096)
        references = ReferenceViews()
        consecutive_errors = 0
        bar = tqdm(
            total=len(self.sequence) or None,
            desc=f"replay {self.sequence.name}",
            unit="frame",
            disable=not self.progress,
        )
        try:
            for frame in self.sequence:
                if self.stop is not None:
                    self.stop.check()
                t0 = time.perf_counter()
                try:
                    row = self._replay_frame(frame, t0, outputs, accuracy, accumulator, references)
                    consecutive_errors = 0
                except DatasetError:
                    raise
                except Exception as exc:  # a failure on one frame: flag it and go on
                    consecutive_errors += 1
                    log.exception("replay failed on frame %d (%s)", frame.index, frame.source)
                    result = flagged_result(frame, f"replay error: {type(exc).__name__}: {exc}")
                    row = self._row(frame, result, (time.perf_counter() - t0) * 1e3, None)
                    if consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                        rows.append(row)
                        with holding(self.stop):
                            outputs.writer.writerow(row)
                        raise RuntimeError(
                            f"{MAX_CONSECUTIVE_ERRORS} frames in a row failed, last: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                rows.append(row)
                with holding(self.stop):
                    outputs.writer.writerow(row)
                    outputs.csv_file.flush()
                bar.update(1)
                bar.set_postfix(
                    kp=row["num_kp"], matches=row["num_matches"], ok=row["ok"], refresh=False
                )
        except KeyboardInterrupt as exc:
            name = getattr(exc, "signal_name", "SIGINT")
            log.warning("%s after %d frames: closing the outputs", name, len(rows))
            return name, None
        except Exception as exc:  # the source failed half-way (or too many frames did)
            log.error("replay stopped after %d frames: %s", len(rows), exc)
            if isinstance(exc, DatasetError):
                return None, str(exc)
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            bar.close()
        return None, None

    def _replay_frame(self, frame, t0, outputs, accuracy, accumulator, references) -> dict:
        """One frame through the frontend, into the bag; returns its CSV row."""
        result = self._process(frame)
        total_ms = (time.perf_counter() - t0) * 1e3
        self.matcher_infos += [
            info for info in (result.matcher_info, result.stereo_matcher_info) if info is not None
        ]
        T_est = result.pose.matrix() if result.pose.valid else None
        # the published pose: None for a frame without a valid pose (never a stale copy)
        T_world = accumulator.update(
            result.stamp_ns, result.ref_stamp_ns, result.pose, result.is_keyframe
        )
        error = accuracy.add(
            result.stamp_ns,
            result.ref_stamp_ns,
            T_est,
            frame.gt_pose,
            frame.gt_position,
            T_world=T_world,
        )

        picture = None
        if frame.ok and self.viz_every > 0 and frame.index % self.viz_every == 0:
            picture = self._picture(result, frame, references)
        if frame.ok:
            references.remember(result, frame.image, frame.encoding)
        if outputs.bag is not None:
            with holding(self.stop):
                outputs.bag.write_frame(
                    result,
                    T_world,
                    picture,
                    frame.gt_pose,
                    latency_ms=total_ms,
                    right_frame_id=frame.right_frame_id if self.stereo else None,
                )
        row = self._row(frame, result, total_ms, error)
        row["pose_published"] = int(T_world is not None)
        return row

    def _finish(self, rows, accuracy, elapsed, interrupted, failure, bag) -> dict:
        """Write summary.json, then the plots, then the summary again with them."""
        summary = self._summary(rows, accuracy, elapsed, interrupted, failure, bag)
        with open(self.out / "summary.json", "w") as f:
            json.dump(_json_safe(summary), f, indent=2)
        try:
            summary["plots"] = self._plots(rows, accuracy)
        except Exception as exc:  # plots are a convenience: never lose the summary for them
            log.exception("plotting failed")
            summary["plots_error"] = f"{type(exc).__name__}: {exc}"
        with open(self.out / "summary.json", "w") as f:
            json.dump(_json_safe(summary), f, indent=2)
        self.summary = summary
        return summary

    def _process(self, frame: SequenceFrame) -> FrameResult:
        if not frame.ok:
            return flagged_result(frame, frame.error or "no image")
        if self.stereo:
            return self.frontend.process_stereo(frame.frame(), frame.right_frame())
        return self.frontend.process(frame.frame())

    def _picture(self, result: FrameResult, frame: SequenceFrame, references):
        """Matches against the reference image, or the keypoints alone without one."""
        from ..messages.conversions import matches_picture, to_display_bgr

        reference = references.get(result.ref_stamp_ns)
        scale = self.viz_scale
        if reference is not None:
            return matches_picture(
                result,
                frame.image,
                frame.encoding,
                reference.image,
                reference.encoding,
                reference.keypoints,
                scale=scale,
            )
        picture = to_display_bgr(frame.image, frame.encoding)
        if scale != 1.0:
            picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for x, y in np.round(result.features.keypoints * scale).astype(int):
            cv2.circle(picture, (int(x), int(y)), 2, (0, 255, 0), -1, cv2.LINE_AA)
        return np.ascontiguousarray(picture)

    def _row(self, frame: SequenceFrame, result: FrameResult, total_ms: float, error) -> dict:
        m, pose = result.metrics, result.pose
        row = {
            "index": frame.index,
            "stamp_ns": int(result.stamp_ns),
            "stamp_s": f"{result.stamp_ns / 1e9:.9f}",
            "ok": int(bool(result.ok)),
            "status": result.status,
            "ref_stamp_ns": "" if result.ref_stamp_ns is None else int(result.ref_stamp_ns),
            "is_keyframe": int(bool(result.is_keyframe)),
            "num_kp": int(m.num_kp),
            "num_matches": int(m.num_matches),
            "match_prec": _fmt(m.match_prec),
            "outlier_prec": _fmt(m.outlier_prec),
            "inliers": int(m.num_inliers),
            "pose_valid": int(bool(pose.valid)),
            "pose_published": 0,
            "pose_status": pose.status,
            "tx": "",
            "ty": "",
            "tz": "",
            "rot_deg": "",
            "frontend_ms": _fmt(result.timings_ms.get("total")),
            "total_ms": _fmt(total_ms),
            "source": frame.source,
        }
        if pose.valid:
            t = np.asarray(pose.translation, float).ravel()
            row.update(
                tx=_fmt(t[0]),
                ty=_fmt(t[1]),
                tz=_fmt(t[2]),
                rot_deg=_fmt(
                    math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(pose.rotation) - 1) / 2))))
                ),
            )
        for stage in STAGES:
            row[f"ms_{stage}"] = _fmt(result.timings_ms.get(stage))
        for key in (
            "rot_err_deg",
            "t_dir_err_deg",
            "t_err_m",
            "t_rel_err",
            "pose_err_deg",
            "gt_motion_m",
            "gt_rot_deg",
        ):
            row[key] = ""
        if error is not None:
            values = error.as_row()
            for key, value in values.items():
                row[key] = _fmt(value)
            self.errors["rot_err_deg"].append(error.rotation_deg)
            self.errors["t_dir_err_deg"].append(error.translation_dir_deg)
            if "t_err_m" in self.errors:
                self.errors["t_err_m"].append(error.translation_m)
        return row

    # ------------------------------------------------------------------ summary and plots

    def _summary(
        self,
        rows: list[dict],
        accuracy: SequenceAccuracy,
        elapsed: float,
        interrupted: bool,
        failure: Optional[str],
        bag,
    ) -> dict:
        def col(key):
            return [float(r[key]) for r in rows if r.get(key) not in ("", None)]

        processed = [r for r in rows if r["ok"]]
        summary: dict = {
            "source": self.sequence.describe(),
            "mode": "stereo" if self.stereo else "mono",
            "run": dict(self.run_info, host=platform.node(), python=platform.python_version()),
            "frames": len(rows),
            "frames_ok": len(processed),
            "frames_flagged": len(rows) - len(processed),
            "flagged": [
                {"index": r["index"], "stamp_ns": r["stamp_ns"], "status": r["status"]}
                for r in rows
                if not r["ok"]
            ][:50],
            "poses_valid": int(sum(r["pose_valid"] for r in rows)),
            "poses_published": int(sum(r["pose_published"] for r in rows)),
            "frames_without_pose": int(sum(not r["pose_published"] for r in rows)),
            "interrupted": interrupted is not None,
            "elapsed_s": elapsed,
            "fps": len(rows) / elapsed if elapsed > 0 else 0.0,
            "metrics": {
                "num_kp_mean": float(np.mean(col("num_kp"))) if rows else 0.0,
                "num_matches_mean": float(np.mean(col("num_matches"))) if rows else 0.0,
                "inliers_mean": float(np.mean(col("inliers"))) if rows else 0.0,
                "match_prec_mean": float(
                    np.mean([float(r["match_prec"]) for r in processed if r["match_prec"] != ""])
                )
                if processed
                else 0.0,
                "outlier_prec_mean": float(
                    np.mean(
                        [
                            float(r["outlier_prec"])
                            for r in processed
                            if r["ref_stamp_ns"] != "" and r["outlier_prec"] != ""
                        ]
                    )
                )
                if any(r["ref_stamp_ns"] != "" for r in processed)
                else None,
            },
            "latency_ms": {stage: _stats(col(f"ms_{stage}")) for stage in STAGES},
            "outputs": {name: str(self.out / name) for name in OUTPUT_NAMES},
        }
        summary["latency_ms"]["frontend"] = _stats(col("frontend_ms"))
        summary["latency_ms"]["total"] = _stats(col("total_ms"))
        if interrupted is not None:
            summary["signal"] = interrupted
        if failure:
            summary["error"] = failure
        if rows and not processed:
            summary["error"] = summary.get("error") or "every frame was flagged"
        if bag is not None:
            summary["bag_messages"] = dict(bag.bag.counts)
        if not self.write_bag:
            summary["outputs"].pop(BAG_NAME)
        if self.sequence.ground_truth_kind != "none":
            summary["accuracy"] = accuracy.summary()
        if self.matcher_infos:
            summary["lightglue"] = lightglue_summary(self.matcher_infos)
        return summary

    def _plots(self, rows: list[dict], accuracy: SequenceAccuracy) -> list[str]:
        from . import plots

        folder = self.out / "plots"
        made = []
        if rows:
            made.append(
                plots.plot_metrics(
                    rows,
                    folder / "metrics.png",
                    f"{self.sequence.name}: frontend metrics (red: flagged frames)",
                )
            )
            made.append(plots.plot_latency(rows, STAGES, folder / "latency.png"))
        est, gt, alignment = accuracy.aligned_trajectories()
        if len(est):
            note = {
                "sim3": "published poses after Sim(3) alignment to ground truth",
                "se3": "published poses after rigid (SE(3)) alignment to ground truth",
            }.get(alignment, "published poses" + ("" if self.stereo else ", one unit per step"))
            has_gt = np.isfinite(gt).any()
            made.append(
                plots.plot_trajectory(
                    est,
                    gt if has_gt else None,
                    self.sequence.world_frame,
                    folder / "trajectory.png",
                    f"{self.sequence.name}: trajectory seen from above",
                    note,
                )
            )
        if accuracy.errors:
            made.append(
                plots.plot_error_histograms(
                    self.errors,
                    folder / "errors.png",
                    f"{self.sequence.name}: relative pose errors",
                )
            )
        return [str(p) for p in made]
