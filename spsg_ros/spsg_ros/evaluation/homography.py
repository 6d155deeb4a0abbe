"""HPatches-protocol evaluation of SuperPoint (and a matcher) on homography pairs.

A set is HPatches-layout: sequence folders ``i_*`` (illumination) and ``v_*``
(viewpoint), each with ``1.ppm`` .. ``6.ppm`` and ``H_1_2`` .. ``H_1_6`` (3x3
text, image-1 pixel coordinates to image-k pixel coordinates). Pairs are
(1, k), k = 2..6. The protocol follows the SuperPoint paper's evaluation code
(rpautrat/SuperPoint, as ported by pytorch-superpoint), with the choices below.

Images are read grey and resized to ``resize`` (default 320x240, the paper's
240 x 320); the ground-truth homography is carried into the resized pixel grids
as ``H' = A_k H A_1^-1``, ``A`` mapping original to resized pixel centres
(``x' = (x + 0.5) / s - 0.5``, as ``cv2.resize`` samples). All figures use the
keypoints of the *shared view*: keypoints of image 1 whose warp by H lands
inside image k, and keypoints of image k whose warp by H^-1 lands inside image 1
(``0 <= x < W``, ``0 <= y < H``, as rpautrat's ``keep_true_keypoints``).

- Repeatability: distances are measured in image k between the warped shared
  keypoints of image 1 and the shared keypoints of image k; a keypoint is
  repeated when its nearest counterpart is within 3 px;
  ``(repeated in 1 + repeated in k) / (shared in 1 + shared in k)`` (0 when
  neither has a shared keypoint).
- MLE: the mean distance of those repeated keypoints (both directions); pairs
  without a repeated keypoint have none and are left out of the mean.
- NN mAP: each shared keypoint of image 1 and its descriptor nearest neighbour
  among the shared keypoints of image k; correct when the warped keypoint is
  within 3 px of it; the average precision (no interpolation, as scikit-learn's
  ``average_precision_score``) of the negative descriptor distance as a score of
  correctness; 0 for a pair without a correct nearest neighbour.
- Matching score: correct matches (warped keypoint within 3 px of its match)
  over the mean number of shared keypoints, ``2 c / (n1 + nk)``.
- Homography correctness at e px: ``cv2.findHomography`` (RANSAC, reprojection
  threshold 3 px) on the matches; the four image-1 corners (0, 0), (W-1, 0),
  (W-1, H-1), (0, H-1) warped by the estimate and by the ground truth; correct
  when their mean distance is <= e. Fewer than 4 matches or no estimate: wrong.

Matches come from mutual nearest neighbours of the descriptors (no ratio test,
as OpenCV's cross-checked brute-force matcher of the reference code) and, when
SuperGlue is loaded, from SuperGlue as a second matcher row.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)

CORRECT_DISTANCE_PX = 3.0  # repeatability, NN mAP and matching score
RANSAC_THRESHOLD_PX = 3.0  # cv2.findHomography reprojection threshold
HOMOGRAPHY_THRESHOLDS = (1, 3, 5)  # correctness columns of the table
CURVE_THRESHOLDS = tuple(range(1, 11))  # the accuracy curve (PNG, JSON)
PAIR_INDICES = (2, 3, 4, 5, 6)
DEFAULT_RESIZE = (320, 240)  # W H: the protocol's 240 x 320 (rows x columns)
SPLIT_NAMES = {"i": "illumination", "v": "viewpoint"}


# ----------------------------------------------------------------------------- geometry


def warp_points(points: np.ndarray, H: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by the 3x3 homography ``H`` (points at infinity: inf)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    h = np.hstack([p, np.ones((len(p), 1))]) @ np.asarray(H, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        out = h[:, :2] / h[:, 2:]
    return np.where(np.isfinite(out), out, np.inf)


def inside(points: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Mask of (N, 2) points with ``0 <= x < width`` and ``0 <= y < height``."""
    width, height = size
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return (p[:, 0] >= 0) & (p[:, 0] < width) & (p[:, 1] >= 0) & (p[:, 1] < height)


def resize_matrix(scales: Sequence[float]) -> np.ndarray:
    """Original -> resized pixel coordinates; ``scales`` = (orig_w / new_w, orig_h / new_h)
    (pixel centres kept: ``x' = (x + 0.5) / s - 0.5``)."""
    sx, sy = float(scales[0]), float(scales[1])
    return np.array([[1 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1.0]])


def resized_homography(H: np.ndarray, scales1: Sequence[float], scales_k: Sequence[float]):
    """``H`` between the original images carried to the resized ones."""
    out = (
        resize_matrix(scales_k) @ np.asarray(H, np.float64) @ np.linalg.inv(resize_matrix(scales1))
    )
    return out / out[2, 2]


def corner_error(H_estimate: np.ndarray | None, H_true: np.ndarray, size: Sequence[int]) -> float:
    """Mean distance of image-1 corners warped by the estimate and by the truth
    (inf without an estimate)."""
    if H_estimate is None:
        return math.inf
    width, height = size
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], float)
    distance = np.linalg.norm(
        warp_points(corners, H_estimate) - warp_points(corners, H_true), axis=1
    )
    value = float(np.mean(distance))
    return value if math.isfinite(value) else math.inf


def estimate_homography(points1: np.ndarray, points_k: np.ndarray) -> np.ndarray | None:
    """RANSAC homography (3 px) of matched points, or None (under 4 matches, or none found)."""
    if len(points1) < 4:
        return None
    H, _ = cv2.findHomography(
        np.asarray(points1, np.float64).reshape(-1, 1, 2),
        np.asarray(points_k, np.float64).reshape(-1, 1, 2),
        cv2.RANSAC,
        RANSAC_THRESHOLD_PX,
    )
    if H is None or not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return None
    return H / H[2, 2]


# ----------------------------------------------------------------------------- metrics


def shared_view(
    keypoints1: np.ndarray,
    keypoints_k: np.ndarray,
    H: np.ndarray,
    size1: Sequence[int],
    size_k: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the keypoints of image 1 and of image k inside the other image's view."""
    keep1 = inside(warp_points(keypoints1, H), size_k)
    keep_k = inside(warp_points(keypoints_k, np.linalg.inv(H)), size1)
    return np.flatnonzero(keep1), np.flatnonzero(keep_k)


def repeatability(
    warped1: np.ndarray, keypoints_k: np.ndarray, threshold: float = CORRECT_DISTANCE_PX
) -> tuple[float, float | None, int]:
    """(repeatability, mean localisation error or None, repeated count) of the shared
    keypoints of image 1 warped into image k and the shared keypoints of image k."""
    n1, nk = len(warped1), len(keypoints_k)
    if n1 == 0 or nk == 0:  # nothing to repeat (the reference code's 0)
        return 0.0, None, 0
    distance = np.linalg.norm(
        np.asarray(warped1, np.float64)[:, None] - np.asarray(keypoints_k, np.float64)[None],
        axis=2,
    )
    nearest = np.concatenate([distance.min(axis=1), distance.min(axis=0)])
    repeated = nearest[nearest <= threshold]
    mle = float(repeated.mean()) if len(repeated) else None
    return len(repeated) / (n1 + nk), mle, int(len(repeated))


def average_precision(correct: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ``scores`` (higher: more confident) for binary ``correct``:
    ``sum_n (R_n - R_n-1) P_n`` over the distinct score thresholds (ties share one
    threshold), as scikit-learn; 0 without a positive."""
    correct = np.asarray(correct, bool).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    positives = int(correct.sum())
    if positives == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, c = scores[order], correct[order]
    # the last index of each run of equal scores closes a threshold
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(c)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def nn_average_precision(
    descriptors1: np.ndarray,
    descriptors_k: np.ndarray,
    warped1: np.ndarray,
    keypoints_k: np.ndarray,
    threshold: float = CORRECT_DISTANCE_PX,
) -> float:
    """AP of each image-1 keypoint's descriptor nearest neighbour in image k, scored by
    the negative descriptor distance, correct within ``threshold`` px (shared view)."""
    from ..matching.nearest_neighbor import l2_distances

    if descriptors1.shape[1] == 0 or descriptors_k.shape[1] == 0:
        return 0.0
    distance = l2_distances(descriptors1, descriptors_k)
    nearest = np.argmin(distance, axis=1)
    rows = np.arange(len(nearest))
    correct = np.linalg.norm(warped1 - keypoints_k[nearest], axis=1) <= threshold
    return average_precision(correct, -distance[rows, nearest])


def mutual_nearest_neighbours(descriptors1: np.ndarray, descriptors_k: np.ndarray) -> np.ndarray:
    """``matches0`` (-1: none) of the mutual descriptor nearest neighbours, no ratio test."""
    from ..matching.nearest_neighbor import match_nearest_neighbor

    # ratio 1 keeps every mutual nearest neighbour except an exact distance tie
    return match_nearest_neighbor(descriptors1, descriptors_k, ratio=1.0, mutual=True).matches0


# ----------------------------------------------------------------------------- one pair


MatchFunction = Callable[[Any, Any], np.ndarray]  # (features1, features_k) -> matches0


@dataclass
class MatcherFigures:
    matches: int
    correct: int
    matching_score: float
    corner_error: float  # px; inf: no homography


@dataclass
class PairFigures:
    """The protocol's figures of one (model, pair)."""

    sequence: str
    index: int
    split: str
    keypoints: tuple[int, int]
    shared: tuple[int, int]
    repeatability: float
    mle: float | None
    repeated: int
    nn_ap: float
    matchers: dict[str, MatcherFigures] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "sequence": self.sequence,
            "pair": f"1-{self.index}",
            "split": self.split,
            "keypoints": list(self.keypoints),
            "shared_keypoints": list(self.shared),
            "repeatability": self.repeatability,
            "mle": self.mle,
            "repeated": self.repeated,
            "nn_ap": self.nn_ap,
        }
        for name, m in self.matchers.items():
            out[name] = {
                "matches": m.matches,
                "correct": m.correct,
                "matching_score": m.matching_score,
                "corner_error_px": m.corner_error if math.isfinite(m.corner_error) else None,
            }
        return out


def evaluate_pair(
    features1,
    features_k,
    H: np.ndarray,
    matchers: Mapping[str, MatchFunction],
    *,
    sequence: str = "",
    index: int = 0,
    threshold: float = CORRECT_DISTANCE_PX,
) -> PairFigures:
    """The protocol's figures of SuperPoint ``Features`` of image 1 and image k with
    ground truth ``H`` (resized pixel grids); ``matchers`` run on the shared keypoints."""
    size1, size_k = features1.image_size, features_k.image_size
    keep1, keep_k = shared_view(features1.keypoints, features_k.keypoints, H, size1, size_k)
    shared1, shared_k = features1.subset(keep1), features_k.subset(keep_k)
    warped1 = warp_points(shared1.keypoints, H)
    points_k = np.asarray(shared_k.keypoints, np.float64)
    rep, mle, repeated = repeatability(warped1, points_k, threshold)
    figures = PairFigures(
        sequence,
        index,
        sequence.split("_", 1)[0],
        (len(features1), len(features_k)),
        (len(shared1), len(shared_k)),
        rep,
        mle,
        repeated,
        nn_average_precision(
            shared1.descriptors, shared_k.descriptors, warped1, points_k, threshold
        ),
    )
    n_shared = len(shared1) + len(shared_k)
    for name, match in matchers.items():
        if len(shared1) and len(shared_k):
            matches0 = np.asarray(match(shared1, shared_k)).reshape(-1)
        else:
            matches0 = np.full(len(shared1), -1)
        valid = np.flatnonzero(matches0 > -1)
        p1, pk = np.asarray(shared1.keypoints, np.float64)[valid], points_k[matches0[valid]]
        correct = int(np.sum(np.linalg.norm(warped1[valid] - pk, axis=1) <= threshold))
        figures.matchers[name] = MatcherFigures(
            int(len(valid)),
            correct,
            2.0 * correct / n_shared if n_shared else 0.0,
            corner_error(estimate_homography(p1, pk), H, size1),
        )
    return figures


# ----------------------------------------------------------------------------- the set


class SequenceProblem(ValueError):
    """A file of a sequence cannot be used; the message says which and why."""


@dataclass
class Skipped:
    sequence: str
    pair: str | None  # "1-k", or None for the whole sequence
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "pair": self.pair, "reason": self.reason}


@dataclass
class LoadedPair:
    index: int
    image: np.ndarray  # resized grey uint8
    H: np.ndarray  # resized grids of image 1 -> image k


@dataclass
class LoadedSequence:
    name: str
    image1: np.ndarray
    pairs: list[LoadedPair]


def find_sequences(root: Path) -> list[Path]:
    """The ``i_*`` / ``v_*`` folders of an HPatches-layout ``root`` (or of its
    ``hpatches-sequences-release`` folder), sorted by name."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"HPatches folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"HPatches folder {root} is not a folder")
    release = root / "hpatches-sequences-release"
    base = release if release.is_dir() else root
    folders = sorted(p for p in base.iterdir() if p.is_dir() and p.name[:2] in ("i_", "v_"))
    if not folders:
        raise FileNotFoundError(
            f"no HPatches sequences (folders i_* or v_*) in {base}; make a set with "
            "spsg-ros make-homography-set IMAGES OUT"
        )
    return folders


def read_homography(path: Path) -> np.ndarray:
    """A 3x3 homography from text (9 numbers, any whitespace), or SequenceProblem."""
    if not path.is_file():
        raise SequenceProblem(f"{path.name} missing")
    try:
        values = [float(v) for v in path.read_text(errors="replace").split()]
    except ValueError:
        raise SequenceProblem(f"{path.name}: not 9 numbers (3x3 homography)") from None
    if len(values) != 9 or not all(math.isfinite(v) for v in values):
        raise SequenceProblem(
            f"{path.name}: expected 9 finite numbers (3x3 homography), got {len(values)} values"
        )
    H = np.array(values).reshape(3, 3)
    if abs(H[2, 2]) < 1e-12 or np.linalg.cond(H) > 1e12:
        raise SequenceProblem(f"{path.name}: homography is singular (not invertible)")
    return H / H[2, 2]


def read_image(path: Path, resize: Sequence[int]) -> tuple[np.ndarray, tuple[float, float]]:
    """The grey resized image and its scales (project reader: truncated files are
    errors), or SequenceProblem."""
    from ..features.image_io import read_gray
    from ..images import ImageDecodeError

    if not path.is_file():
        raise SequenceProblem(f"{path.name} missing")
    try:
        return read_gray(path, resize)
    except (ImageDecodeError, OSError) as exc:
        raise SequenceProblem(f"{path.name}: {exc}") from None


def load_sequence(
    folder: Path, resize: Sequence[int], skipped: list[Skipped], min_side: int = 1
) -> LoadedSequence | None:
    """Image 1 and the usable pairs of a sequence; what cannot be used goes into
    ``skipped`` with the reason (the whole sequence without a usable image 1)."""
    try:
        image1, scales1 = read_image(folder / "1.ppm", resize)
        check_size(image1, "1.ppm", min_side)
    except SequenceProblem as exc:
        skipped.append(Skipped(folder.name, None, f"no usable reference image: {exc}"))
        log.warning("skipped sequence %s: no usable reference image: %s", folder.name, exc)
        return None
    pairs = []
    for k in PAIR_INDICES:
        try:
            H = read_homography(folder / f"H_1_{k}")
            image, scales = read_image(folder / f"{k}.ppm", resize)
            check_size(image, f"{k}.ppm", min_side)
        except SequenceProblem as exc:
            skipped.append(Skipped(folder.name, f"1-{k}", str(exc)))
            log.warning("skipped pair %s 1-%d: %s", folder.name, k, exc)
            continue
        pairs.append(LoadedPair(k, image, resized_homography(H, scales1, scales)))
    return LoadedSequence(folder.name, image1, pairs)


def check_size(image: np.ndarray, name: str, min_side: int) -> None:
    height, width = image.shape[:2]
    if min(height, width) < min_side:
        raise SequenceProblem(
            f"{name}: {width}x{height} after the resize; SuperPoint needs at least "
            f"{min_side} px a side"
        )


# ----------------------------------------------------------------------------- summaries


def summarise(pairs: Sequence[PairFigures], matcher_names: Sequence[str]) -> dict[str, Any]:
    """Per split (``i``, ``v``, ``all``) and matcher: mean figures over the pairs."""
    out: dict[str, Any] = {}
    for split in ("i", "v", "all"):
        chosen = [p for p in pairs if split == "all" or p.split == split]
        mles = [p.mle for p in chosen if p.mle is not None]
        entry: dict[str, Any] = {
            "pairs": len(chosen),
            "repeatability": _mean([p.repeatability for p in chosen]),
            "mle": _mean(mles),
            "nn_map": _mean([p.nn_ap for p in chosen]),
            "mean_keypoints": _mean([sum(p.keypoints) / 2 for p in chosen]),
        }
        for name in matcher_names:
            errors = np.array([p.matchers[name].corner_error for p in chosen], float)
            entry[name] = {
                "matching_score": _mean([p.matchers[name].matching_score for p in chosen]),
                "mean_matches": _mean([p.matchers[name].matches for p in chosen]),
                "homography_correctness": {
                    str(e): _share(errors, e)
                    for e in sorted({*HOMOGRAPHY_THRESHOLDS, *CURVE_THRESHOLDS})
                },
            }
        out[split] = entry
    return out


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _share(errors: np.ndarray, threshold: float) -> float | None:
    return float(np.mean(errors <= threshold)) if len(errors) else None


def accuracy_curve(errors: Sequence[float], thresholds: np.ndarray) -> np.ndarray:
    """Share of pairs whose corner error is <= each threshold."""
    e = np.asarray(errors, float)
    return np.array([np.mean(e <= t) if len(e) else np.nan for t in thresholds])


def format_table(models: Sequence[Mapping[str, Any]]) -> str:
    """The printed table: one row per model, matcher and split."""
    header = (
        f"{'model':<36} {'matcher':<9} {'split':<5} {'pairs':>5} {'rep':>6} {'MLE':>6} "
        f"{'NN mAP':>7} {'M.score':>7} "
        + " ".join(f"{'H@' + str(e):>6}" for e in HOMOGRAPHY_THRESHOLDS)
    )
    lines = [header, "-" * len(header)]

    def num(value, digits=3):
        return f"{value:.{digits}f}" if value is not None else "-"

    for model in models:
        for matcher in model["matchers"]:
            for split in ("i", "v", "all"):
                s = model["summary"][split]
                if not s["pairs"]:
                    continue
                m = s[matcher]
                lines.append(
                    f"{model['name'][:36]:<36} {matcher:<9} {split:<5} {s['pairs']:>5} "
                    f"{num(s['repeatability']):>6} {num(s['mle'], 2):>6} {num(s['nn_map']):>7} "
                    f"{num(m['matching_score']):>7} "
                    + " ".join(
                        f"{num(m['homography_correctness'][str(e)]):>6}"
                        for e in HOMOGRAPHY_THRESHOLDS
                    )
                )
    return "\n".join(lines)


def plot_homography_accuracy(models: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Homography accuracy (share of pairs with corner error <= e) for e in 1..10 px,
    one curve per model and matcher (all pairs)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    thresholds = np.linspace(CURVE_THRESHOLDS[0], CURVE_THRESHOLDS[-1], 91)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model in models:
        for matcher in model["matchers"]:
            errors = [
                math.inf
                if p[matcher]["corner_error_px"] is None
                else p[matcher]["corner_error_px"]
                for p in model["pairs"]
            ]
            ax.plot(
                thresholds,
                accuracy_curve(errors, thresholds),
                label=f"{model['name']} / {matcher}",
            )
    ax.set_xlim(CURVE_THRESHOLDS[0], CURVE_THRESHOLDS[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("corner error threshold [px]")
    ax.set_ylabel("homography accuracy (share of pairs)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("HPatches-protocol homography estimation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- running


@dataclass
class ModelRunner:
    """One evaluated model: SuperPoint features of images and the matchers on them."""

    name: str
    extract: Callable[[Sequence[np.ndarray]], list]  # grey images -> Features each
    matchers: dict[str, MatchFunction]
    pairs: list[PairFigures] = field(default_factory=list)


def evaluate_homography_set(
    root: Path,
    runners: Sequence[ModelRunner],
    resize: Sequence[int] = DEFAULT_RESIZE,
    *,
    min_side: int = 1,
    progress: bool = True,
) -> tuple[int, list[Skipped]]:
    """Evaluate every runner on every usable pair of the set at ``root`` (figures go
    into ``runner.pairs``); returns the number of sequences and the skipped files."""
    from tqdm import tqdm

    folders = find_sequences(root)
    skipped: list[Skipped] = []
    bar = tqdm(
        total=len(folders) * len(PAIR_INDICES) * len(runners),
        desc="pairs",
        unit="pair",
        disable=not progress,
    )
    try:
        for folder in folders:
            bar.set_postfix_str(folder.name)
            sequence = load_sequence(folder, resize, skipped, min_side)
            pairs = sequence.pairs if sequence is not None else []
            bar.update((len(PAIR_INDICES) - len(pairs)) * len(runners))
            if not pairs:
                continue
            images = [sequence.image1] + [p.image for p in pairs]
            for runner in runners:
                features = extract_all(runner, images)
                for pair, features_k in zip(pairs, features[1:]):
                    runner.pairs.append(
                        evaluate_pair(
                            features[0],
                            features_k,
                            pair.H,
                            runner.matchers,
                            sequence=sequence.name,
                            index=pair.index,
                        )
                    )
                    bar.update(1)
    finally:
        bar.close()
    return len(folders), skipped


def extract_all(runner: ModelRunner, images: Sequence[np.ndarray]) -> list:
    """Features of ``images``: one batch when they share a size."""
    if len({im.shape for im in images}) == 1:
        return list(runner.extract(images))
    return [runner.extract([im])[0] for im in images]
