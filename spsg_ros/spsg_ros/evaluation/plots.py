"""PNG plots of a replay: metrics and latency over time, trajectory seen from
above, error histograms (matplotlib with the Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _column(rows: Sequence[Mapping], key: str) -> np.ndarray:
    out = []
    for r in rows:
        v = r.get(key)
        try:
            out.append(float(v) if v not in (None, "") else np.nan)
        except (TypeError, ValueError):
            out.append(np.nan)
    return np.asarray(out, float)


def _time_axis(rows: Sequence[Mapping]) -> np.ndarray:
    stamps = _column(rows, "stamp_ns")
    if len(stamps) and np.all(np.isfinite(stamps)):
        return (stamps - stamps[0]) / 1e9
    return np.arange(len(rows), dtype=float)


def plot_metrics(rows: Sequence[Mapping], path: Path, title: str = "") -> Path:
    """Keypoints / matches / inliers and match / outlier precision over time."""
    plt = _pyplot()
    t = _time_axis(rows)
    # frames without a reference (the first, or after a reset) have no pairing figures
    paired = np.array([r.get("ref_stamp_ns") not in ("", None) for r in rows])
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for key, label in (
        ("num_kp", "keypoints"),
        ("num_matches", "matches"),
        ("inliers", "pose inliers"),
    ):
        values = _column(rows, key)
        if key != "num_kp":
            values[~paired] = np.nan
        ax0.plot(t, values, ".-", label=label, lw=1.2, ms=3)
    ax0.set_ylabel("count")
    ax0.legend(loc="upper right")
    ax0.grid(alpha=0.3)
    for key, label in (
        ("match_prec", "match_prec (matches / keypoints)"),
        ("outlier_prec", "outlier_prec (outliers / matches)"),
    ):
        values = _column(rows, key)
        values[~paired] = np.nan
        ax1.plot(t, values, ".-", label=label, lw=1.2, ms=3)
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("time [s]")
    ax1.set_ylabel("ratio")
    ax1.legend(loc="upper right")
    ax1.grid(alpha=0.3)
    flagged = np.array([str(r.get("ok", "1")) in ("0", "False", "false") for r in rows])
    for x in t[flagged]:
        ax0.axvline(x, color="red", alpha=0.4, lw=0.8)
        ax1.axvline(x, color="red", alpha=0.4, lw=0.8)
    fig.suptitle(title or "frontend metrics per frame (red: flagged frames)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latency(
    rows: Sequence[Mapping], stages: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Per-stage time (stacked) and the total per frame."""
    plt = _pyplot()
    t = _time_axis(rows)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    values = [np.nan_to_num(_column(rows, f"ms_{s}")) for s in stages]
    if values:
        ax.stackplot(t, *values, labels=list(stages), alpha=0.8)
    total = _column(rows, "total_ms")
    ax.plot(t, total, color="black", lw=1.0, label="total (wall)")
    finite = total[np.isfinite(total)]
    if finite.size:
        ax.set_title(
            title
            or f"latency per frame: median {np.median(finite):.1f} ms, "
            f"p95 {np.percentile(finite, 95):.1f} ms"
        )
    ax.set_xlabel("time [s]")
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def top_view_axes(world_frame: str) -> tuple[int, int, str, str]:
    """(horizontal axis index, vertical axis index, labels) of the view from above:
    x-z for optical worlds (y down), x-y for z-up worlds."""
    if world_frame == "optical":
        return 0, 2, "x [m] (right)", "z [m] (forward)"
    return 0, 1, "x [m]", "y [m]"


def plot_trajectory(
    estimated: np.ndarray,
    ground_truth: Optional[np.ndarray],
    world_frame: str,
    path: Path,
    title: str = "",
    note: str = "",
) -> Path:
    """Estimated trajectory against ground truth, seen from above, equal axes."""
    plt = _pyplot()
    a, b, la, lb = top_view_axes(world_frame)
    fig, ax = plt.subplots(figsize=(7, 7))
    if ground_truth is not None and np.isfinite(ground_truth).any():
        gt = ground_truth
        ax.plot(gt[:, a], gt[:, b], "-", color="black", lw=1.5, label="ground truth")
        first = np.flatnonzero(np.isfinite(gt[:, a]))[0]
        ax.plot(gt[first, a], gt[first, b], "ko", ms=6)
    if len(estimated):
        ax.plot(estimated[:, a], estimated[:, b], "-", color="tab:red", lw=1.2, label="estimated")
        ax.plot(estimated[0, a], estimated[0, b], "o", color="tab:red", ms=4, label="start")
    ax.set_xlabel(la)
    ax.set_ylabel(lb)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title or "trajectory seen from above")
    if note:
        fig.text(0.01, 0.01, note, fontsize=8, color="dimgray")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_error_histograms(
    errors: Mapping[str, Sequence[float]], path: Path, title: str = ""
) -> Path:
    """One histogram per error series (non-finite values counted in the title)."""
    plt = _pyplot()
    names = list(errors)
    fig, axes = plt.subplots(
        1, max(1, len(names)), figsize=(4.2 * max(1, len(names)), 3.8), squeeze=False
    )
    for ax, name in zip(axes[0], names):
        values = np.asarray(errors[name], float)
        finite = values[np.isfinite(values)]
        if finite.size:
            ax.hist(finite, bins=min(40, max(5, finite.size // 2)), color="tab:blue", alpha=0.8)
            ax.axvline(
                np.median(finite),
                color="black",
                ls="--",
                lw=1,
                label=f"median {np.median(finite):.3g}",
            )
            ax.legend(fontsize=8)
        missing = int(values.size - finite.size)
        ax.set_title(f"{name}" + (f" ({missing} without pose)" if missing else ""), fontsize=9)
        ax.set_ylabel("pairs")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "pose errors against ground truth")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pairs_recall(errors: Sequence[float], path: Path, thresholds=(5, 10, 20)) -> Path:
    """Recall of pose error (pairs evaluation) with the AUC thresholds marked."""
    plt = _pyplot()
    e = np.sort(np.asarray(errors, float))
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = e[np.isfinite(e)]
    if e.size:
        ax.step(np.concatenate([[0], finite]), np.arange(finite.size + 1) / e.size, where="post")
    for t in thresholds:
        ax.axvline(t, color="gray", ls=":", lw=1)
    ax.set_xlim(0, max(thresholds) * 1.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("pose error [deg]")
    ax.set_ylabel("recall")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
