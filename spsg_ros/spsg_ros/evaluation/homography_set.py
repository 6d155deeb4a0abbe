"""Making an HPatches-layout set of random warps of any images (``make-homography-set``).

Each source image gives one sequence folder: ``1.ppm`` (the image itself) and
``2.ppm`` .. ``6.ppm``, with ``H_1_k`` (3x3, plain text as in HPatches) mapping
pixel coordinates of image 1 to those of image k (the ``cv2.warpPerspective``
convention: pixel centres at integer coordinates).

- ``i_<name>``: illumination sequences: identity homography, photometric changes
  (brightness, contrast, gamma, noise) growing from image 2 to image 6;
- ``v_<name>``: viewpoint sequences: random homographies (scale, rotation,
  perspective, shift) growing from image 2 to image 6, each keeping at least
  ``MIN_OVERLAP`` of image k covered by image 1, plus mild photometric changes.

Warps fill the area outside image 1 by reflection rather than black: a black
border would add strong corners that belong to no scene point.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)

SPLITS = ("both", "i", "v")
WARPS_PER_SEQUENCE = 5  # images 2..6, as HPatches
MIN_OVERLAP = 0.5  # share of image k that image 1 covers after the warp
MAX_TRIES = 200  # random homographies tried before easing the magnitude


@dataclass(frozen=True)
class WarpRanges:
    """Largest magnitudes of the random homography (image 6; image 2 gets 1/5 of them)."""

    scale: float = 0.35  # log-uniform zoom in [1 / (1 + s), 1 + s]
    rotation_deg: float = 30.0
    perspective: float = 0.15  # corner displacement, as a share of the image size
    shift: float = 0.1  # translation, as a share of the image size


def sequence_name(prefix: str, path: Path, taken: set[str]) -> str:
    """``i_<stem>`` / ``v_<stem>`` with characters other than [A-Za-z0-9_.-] as ``_``,
    made unique with a counter."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "image"
    name, n = f"{prefix}_{stem}", 1
    while name in taken:
        n += 1
        name = f"{prefix}_{stem}_{n}"
    taken.add(name)
    return name


def as_bgr8(image: np.ndarray) -> np.ndarray:
    """An 8-bit BGR copy of an image as stored (grey, BGR or BGRA; 8 or 16 bits): PPM
    files hold three 8-bit channels."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image.copy()


def corners_of(width: int, height: int) -> np.ndarray:
    """The four pixel-centre corners of a width x height image, (4, 2) float64."""
    return np.array(
        [[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]]
    )


def overlap_share(H: np.ndarray, width: int, height: int) -> float:
    """Share of the target image (same size) covered by image 1 warped with ``H``;
    0 when the warped outline is not a convex quadrilateral (a fold or a flip)."""
    quad = cv2.perspectiveTransform(corners_of(width, height)[None], H)[0].astype(np.float32)
    if not cv2.isContourConvex(quad.reshape(-1, 1, 2)):
        return 0.0
    frame = corners_of(width, height).astype(np.float32)
    area, _ = cv2.intersectConvexConvex(quad, frame)
    return float(area) / float((width - 1) * (height - 1))


def random_homography(
    rng: np.random.Generator,
    width: int,
    height: int,
    strength: float,
    ranges: WarpRanges = WarpRanges(),
) -> np.ndarray:
    """A random homography of ``strength`` in (0, 1] times ``ranges``, about the image
    centre, keeping ``MIN_OVERLAP`` of the image covered (the magnitude eases off
    after ``MAX_TRIES`` misses, so it always ends)."""
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    corners = corners_of(width, height)
    size = np.array([width, height], float)
    while True:
        for _ in range(MAX_TRIES):
            zoom = np.exp(rng.uniform(-1.0, 1.0) * np.log1p(ranges.scale * strength))
            angle = np.deg2rad(rng.uniform(-1.0, 1.0) * ranges.rotation_deg * strength)
            c, s = np.cos(angle), np.sin(angle)
            similar = (corners - centre) @ (zoom * np.array([[c, s], [-s, c]])) + centre
            moved = (
                similar
                + rng.uniform(-1.0, 1.0, (4, 2)) * ranges.perspective * strength * size
                + rng.uniform(-1.0, 1.0, 2) * ranges.shift * strength * size
            )
            H = cv2.getPerspectiveTransform(
                corners.astype(np.float32), moved.astype(np.float32)
            ).astype(np.float64)
            if overlap_share(H, width, height) >= MIN_OVERLAP:
                return H / H[2, 2]
        strength *= 0.7


def photometric_change(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """``image`` (uint8) with random brightness, contrast, gamma and Gaussian noise
    scaled by ``strength`` in [0, 1]."""
    x = image.astype(np.float32) / 255.0
    gamma = np.exp(rng.uniform(-1.0, 1.0) * 0.8 * strength)
    x = np.power(x, gamma)
    contrast = np.exp(rng.uniform(-1.0, 1.0) * 0.5 * strength)
    brightness = rng.uniform(-1.0, 1.0) * 0.25 * strength
    x = (x - 0.5) * contrast + 0.5 + brightness
    x = x + rng.normal(0.0, 0.02 * strength, x.shape).astype(np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def make_sequence(
    image: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    identity: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image k, H_1_k) for k = 2..6 of one sequence of ``kind`` ``i`` or ``v``;
    ``identity``: exact copies with identity homographies (a check of the evaluation)."""
    height, width = image.shape[:2]
    out = []
    for step in range(1, WARPS_PER_SEQUENCE + 1):
        strength = step / WARPS_PER_SEQUENCE
        if identity:
            out.append((image.copy(), np.eye(3)))
        elif kind == "i":
            out.append((photometric_change(image, rng, strength), np.eye(3)))
        else:
            H = random_homography(rng, width, height, strength)
            warped = cv2.warpPerspective(
                image, H, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            out.append((photometric_change(warped, rng, 0.3 * strength), H))
    return out


def write_homography(path: Path, H: np.ndarray) -> None:
    """3x3 as three lines of space-separated numbers (HPatches ``H_1_k``)."""
    path.write_text("".join(" ".join(f"{v:.12g}" for v in row) + "\n" for row in H))


def kinds_for(split: str, count: int) -> list[str]:
    """Sequence kinds of ``count`` images: all ``i``, all ``v``, or alternating."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "both":
        return ["i" if n % 2 == 0 else "v" for n in range(count)]
    return [split] * count


def make_homography_set(
    image_paths: Sequence[Path],
    out_dir: Path,
    *,
    split: str = "both",
    seed: int = 0,
    max_sequences: int | None = None,
    identity: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Write one sequence per readable image into ``out_dir``; returns the sequence
    folders written and the (image, reason) of the images skipped.

    Deterministic for a ``seed`` (each sequence has its own generator, derived from
    the seed and its position). An unreadable image is skipped with its reason; an
    existing sequence folder is an error unless ``overwrite``.
    """
    from tqdm import tqdm

    from ..images import ImageDecodeError, read_image_file

    paths = list(image_paths)
    if max_sequences is not None:
        paths = paths[:max_sequences]
    if not paths:
        raise ValueError("no images to make sequences from")
    kinds = kinds_for(split, len(paths))
    taken: set[str] = set()
    names = [sequence_name(k, p, taken) for k, p in zip(kinds, paths)]
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir}: sequence folder(s) {', '.join(existing[:3])} already exist; "
            "use --overwrite to replace them"
        )
    written: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for index, (path, kind, name) in enumerate(
        tqdm(list(zip(paths, kinds, names)), desc="sequences", unit="seq", disable=not progress)
    ):
        try:
            image = as_bgr8(read_image_file(path)[0])
        except ImageDecodeError as exc:
            log.warning("skipped %s: %s", path, exc)
            skipped.append((path, str(exc)))
            continue
        rng = np.random.default_rng([seed, index])
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / "1.ppm", image)
        for k, (warped, H) in enumerate(make_sequence(image, kind, rng, identity), start=2):
            write_image(folder / f"{k}.ppm", warped)
            write_homography(folder / f"H_1_{k}", H)
        written.append(folder)
    return written, skipped


def write_image(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"OpenCV could not write {path}")


def source_images(inputs: Iterable[Path]) -> list[Path]:
    """Image files from the command line: one folder (its images, sorted) or files."""
    from ..datasets.image_files import list_images

    inputs = list(inputs)
    if len(inputs) == 1 and inputs[0].is_dir():
        return list_images(inputs[0])
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"image file(s) not found: {', '.join(missing[:5])}")
    return inputs
