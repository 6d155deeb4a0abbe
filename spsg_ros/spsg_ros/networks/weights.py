"""Weight files: where they are, how to get them, and loading them safely.

Upstream weights (magicleap/SuperGluePretrainedNetwork, non-commercial research
license) are never shipped: ``spsg-ros models download`` fetches them into
``spsg_ros/models/`` and checks their git blob id. LightGlue weights (cvg/LightGlue
releases, Apache-2.0) are fetched by ``spsg-ros models download lightglue``; no
digest of them is published, so the sha256 of the first download is recorded beside
the file and later downloads must match it (trust on first use). Files are loaded with
``torch.load(weights_only=True)`` so that no code in them runs, and checked
against the network's own state dict so that every mistake gets a message
saying what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

UPSTREAM_REPO = "magicleap/SuperGluePretrainedNetwork"
UPSTREAM_BASE_URL = f"https://github.com/{UPSTREAM_REPO}/raw/master/models/weights"

LICENSE_NOTICE = (
    "The SuperPoint and SuperGlue weights are released by Magic Leap under the "
    "'Academic or Non-Profit Organization Noncommercial Research Use Only' license "
    f"(https://github.com/{UPSTREAM_REPO}/blob/master/LICENSE). By downloading them you "
    "accept that license; they may not be used commercially. spsg_ros does not ship them."
)


LIGHTGLUE_REPO = "cvg/LightGlue"
LIGHTGLUE_BASE_URL = f"https://github.com/{LIGHTGLUE_REPO}/releases/download/v0.1_arxiv"

LIGHTGLUE_LICENSE_NOTICE = (
    f"The LightGlue weights ({LIGHTGLUE_REPO}) are released under the Apache-2.0 license "
    f"(https://github.com/{LIGHTGLUE_REPO}/blob/main/LICENSE); keep that notice when you "
    "redistribute them. The SuperPoint weights whose features superpoint_lightglue.pth "
    "matches are not Apache-2.0: they fall under Magic Leap's noncommercial license "
    f"(https://github.com/{UPSTREAM_REPO}/blob/master/LICENSE). spsg_ros does not ship either."
)


@dataclass(frozen=True)
class UpstreamWeights:
    name: str  # short name used on the command line
    filename: str
    network: str  # "superpoint" or "superglue"
    git_blob_sha1: str  # SHA-1 of b"blob <size>\0" + content


UPSTREAM_WEIGHTS = {
    "superpoint": UpstreamWeights(
        "superpoint", "superpoint_v1.pth", "superpoint", "107a444ca318d487390137d619d49f2f0a3b1ad8"
    ),
    "indoor": UpstreamWeights(
        "indoor", "superglue_indoor.pth", "superglue", "2b54532f1b7321505cac79ee3a2863ef2ab2d163"
    ),
    "outdoor": UpstreamWeights(
        "outdoor", "superglue_outdoor.pth", "superglue", "5ca3392bd5349790d7bc1c246961fc041b88c1e8"
    ),
}


@dataclass(frozen=True)
class ReleaseWeights:
    """A LightGlue release file (no published digest: trust on first use)."""

    name: str  # short name used on the command line
    filename: str
    features: str  # the features it matches


LIGHTGLUE_WEIGHTS = {
    "lightglue": ReleaseWeights("lightglue", "superpoint_lightglue.pth", "superpoint"),
    "superpoint_lightglue": ReleaseWeights(
        "superpoint_lightglue", "superpoint_lightglue.pth", "superpoint"
    ),
    "disk_lightglue": ReleaseWeights("disk_lightglue", "disk_lightglue.pth", "disk"),
}


class WeightError(RuntimeError):
    """A weight file is missing, unreadable, or does not fit the network."""


def default_weights_dir() -> Path:
    """``$SPSG_ROS_WEIGHTS_DIR``, else ``spsg_ros/models/`` of a source checkout,
    else ``~/.cache/spsg_ros/models``."""
    env = os.environ.get("SPSG_ROS_WEIGHTS_DIR")
    if env:
        return Path(env)
    source_models = Path(__file__).resolve().parents[2] / "models"
    if source_models.is_dir():
        return source_models
    return Path.home() / ".cache" / "spsg_ros" / "models"


def git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(
    spec: str | os.PathLike, network: str, weights_dir: str | os.PathLike | None = None
) -> Path:
    """Path of the weights named by ``spec``: a path, or an upstream short name
    (``superpoint``, ``indoor``, ``outdoor``; for LightGlue ``lightglue`` =
    ``superpoint_lightglue``, ``disk_lightglue``) looked up in ``weights_dir``."""
    spec_str = str(spec)
    if spec_str in LIGHTGLUE_WEIGHTS or (network == "lightglue" and spec_str in UPSTREAM_WEIGHTS):
        return _resolve_lightglue(spec_str, network, weights_dir)
    if spec_str in UPSTREAM_WEIGHTS:
        entry = UPSTREAM_WEIGHTS[spec_str]
        if entry.network != network:
            raise WeightError(f"'{spec_str}' names {entry.network} weights, not {network} weights")
        folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
        path = folder / entry.filename
        if not path.is_file():
            path = _single_candidate(folder, network, spec_str)
        if path is None:
            path = folder / entry.filename
            raise WeightError(
                f"{network} weights '{spec_str}' not found: looked for {path}. Get them with "
                f"`spsg-ros models download --weights-dir {folder}` (upstream {UPSTREAM_REPO}, "
                "non-commercial license), or pass a file path."
            )
        return path
    path = Path(spec_str).expanduser()
    if not path.is_file():
        if network == "lightglue":
            names = ", ".join(LIGHTGLUE_WEIGHTS)
            command = "spsg-ros models download lightglue"
        else:
            names = ", ".join(n for n, e in UPSTREAM_WEIGHTS.items() if e.network == network)
            command = "spsg-ros models download"
        hint = "" if path.suffix else f" (short names: {names})"
        raise WeightError(
            f"{network} weight file not found: {path}{hint}. Run `{command}` for the "
            "upstream files, or check the path."
        )
    return path


def _resolve_lightglue(name: str, network: str, weights_dir: str | os.PathLike | None) -> Path:
    if network != "lightglue":
        raise WeightError(f"'{name}' names lightglue weights, not {network} weights")
    if name not in LIGHTGLUE_WEIGHTS:
        found = UPSTREAM_WEIGHTS[name].network
        raise WeightError(
            f"'{name}' names {found} weights, not lightglue weights "
            f"(short names: {', '.join(LIGHTGLUE_WEIGHTS)})"
        )
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    path = folder / LIGHTGLUE_WEIGHTS[name].filename
    if not path.is_file():
        raise WeightError(
            f"lightglue weights '{name}' not found: looked for {path}. Get them with "
            f"`spsg-ros models download {name} --weights-dir {folder}` (upstream "
            f"{LIGHTGLUE_REPO}, Apache-2.0), or pass a file path."
        )
    return path


def _single_candidate(folder: Path, network: str, name: str) -> Path | None:
    """A folder without the upstream file name may hold exactly one ``<network>*.pth``
    (e.g. fine-tuned or test weights); use it, loudly. Several: refuse to guess."""
    candidates = sorted(folder.glob(f"{network}*.pth")) if folder.is_dir() else []
    # superpoint_lightglue.pth is a matcher, not a SuperPoint
    candidates = [p for p in candidates if "lightglue" not in p.name]
    if len(candidates) > 1:
        raise WeightError(
            f"{network} weights '{name}': {folder} has no {UPSTREAM_WEIGHTS[name].filename} "
            f"and several candidates ({', '.join(p.name for p in candidates)}); "
            "pass the file path explicitly"
        )
    if candidates:
        log.warning(
            "%s weights '%s': %s not in %s, using %s",
            network,
            name,
            UPSTREAM_WEIGHTS[name].filename,
            folder,
            candidates[0].name,
        )
        return candidates[0]
    return None


def load_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state dict without executing code from the file.

    WeightError for a file that is not a PyTorch checkpoint (damaged or the wrong
    file), holds objects other than tensors, or holds NaN or infinite values.
    """
    try:
        import torch
    except ImportError as exc:  # torch is an optional extra
        raise WeightError(
            "loading .pth weights needs PyTorch: pip install torch==2.13.0 "
            "(or use an exported ONNX/OM model with another backend)"
        ) from exc
    path = Path(path)
    check_checkpoint_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightError(_load_failure(path, exc)) from None
    if not isinstance(obj, Mapping):
        raise WeightError(f"{path} holds a {type(obj).__name__}, not a state dict")
    for nested in ("model_state_dict", "state_dict", "model"):
        if nested in obj and isinstance(obj[nested], Mapping):
            raise WeightError(
                f"{path} is a training checkpoint (key '{nested}'), not an upstream "
                "state dict: convert it with `spsg-ros models import`"
            )
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightError(f"{path} is a dict but not a state dict of tensors")
    check_finite(obj, str(path))
    return dict(obj)


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save since PyTorch 1.6
_PICKLE_PROTO = 0x80  # legacy torch.save: a pickle (protocol 2..5) of a magic number first


def check_checkpoint_file(path: Path) -> None:
    """WeightError unless ``path`` starts like a file torch.save writes."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise WeightError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if not head:
        raise WeightError(f"{path} is empty (0 bytes): a damaged download or copy")
    if head.startswith(_ZIP_MAGIC) or (
        len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5
    ):
        return
    raise WeightError(
        f"{path} is not a PyTorch checkpoint (neither the zip archive nor the pickle that "
        f"torch.save writes; it starts with {head!r}): the file is damaged or the wrong file"
    )


def _load_failure(path: Path, exc: Exception) -> str:
    """Why torch.load failed, without torch's advice to load with weights_only=False."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
        text = text.split("Please use", 1)[0].split("Check the documentation", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if "weights_only" not in line]
    reason = (lines[0] if lines else type(exc).__name__).rstrip(". ")
    if reason.startswith("Unsupported global"):
        return (
            f"{path} holds Python objects besides tensors ({reason}); they are not loaded "
            "because that could run code from the file. Save the state dict alone "
            "(torch.save(model.state_dict(), path)) or convert the file with "
            "`spsg-ros models import`"
        )
    if "zip archive" in reason or "central directory" in reason:
        return (
            f"{path} is a damaged PyTorch checkpoint: its zip archive is incomplete or "
            f"corrupt ({reason}); download or copy it again"
        )
    return (
        f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {reason}): "
        "the file is damaged or the wrong file"
    )


def check_finite(state: Mapping[str, Any], source: str) -> None:
    """WeightError naming the tensors of ``state`` that hold NaN or infinite values."""
    import torch

    bad = []
    for name, tensor in state.items():
        if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()):
            continue
        finite = torch.isfinite(tensor)
        if bool(finite.all()):
            continue
        nan = int(torch.isnan(tensor).sum())
        inf = int(tensor.numel() - int(finite.sum()) - nan)
        counts = [f"{nan} NaN" if nan else "", f"{inf} inf" if inf else ""]
        bad.append(f"{name} ({', '.join(c for c in counts if c)})")
    if bad:
        raise WeightError(
            f"{source} holds NaN or infinite values in {len(bad)} tensor(s): {_short(bad)}. "
            "The file is damaged or the weights diverged: download or export them again"
        )


def _identify(keys: set[str]) -> str | None:
    lightglue_prefixes = ("self_attn.", "cross_attn.", "transformers.", "log_assignment.")
    if any(k.startswith(lightglue_prefixes) for k in keys):
        return "lightglue"
    if any(k.startswith(("kenc.", "gnn.")) or k == "bin_score" for k in keys):
        return "superglue"
    if any(k.startswith(("conv1a.", "convPa.", "convDa.")) for k in keys):
        return "superpoint"
    return None


def check_state_dict(
    state: Mapping[str, Any], expected: Mapping[str, Any], network: str, source: str
) -> None:
    """Raise WeightError naming missing/unexpected keys and wrong shapes."""
    found = _identify(set(state))
    if found is not None and found != network:
        option = f"--{found}-weights"
        raise WeightError(
            f"{source} holds {found} weights but was given as {network} weights; "
            f"pass it with {option}"
        )
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if wrong:
        problems.append(f"wrong shapes ({'; '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''})")
    if problems:
        keys = _ARCHITECTURE_KEYS.get(network, "descriptor_dim")
        raise WeightError(
            f"{source} does not fit the {network} network: "
            + ", ".join(problems)
            + f". Check the file and the network configuration ({keys})."
        )


_ARCHITECTURE_KEYS = {
    "superglue": "descriptor_dim, keypoint_encoder, GNN_layers",
    "superpoint": "descriptor_dim",
    "lightglue": "input_dim, descriptor_dim, n_layers, num_heads, add_scale_ori",
}


def _short(keys: list[str]) -> str:
    return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")


def load_superpoint(
    spec: str | os.PathLike = "superpoint",
    config: Mapping[str, Any] | None = None,
    weights_dir: str | os.PathLike | None = None,
):
    """A SuperPoint in eval mode with the given weights (strict)."""
    from .superpoint import SuperPoint

    path = resolve_weights(spec, "superpoint", weights_dir)
    model = SuperPoint(config)
    state = load_state_dict(path)
    check_state_dict(state, model.state_dict(), "superpoint", str(path))
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_superglue(
    spec: str | os.PathLike = "indoor",
    config: Mapping[str, Any] | None = None,
    weights_dir: str | os.PathLike | None = None,
):
    """A SuperGlue in eval mode with the given weights (strict)."""
    from .superglue import SuperGlue

    path = resolve_weights(spec, "superglue", weights_dir)
    model = SuperGlue(config)
    state = load_state_dict(path)
    check_state_dict(state, model.state_dict(), "superglue", str(path))
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_lightglue(
    spec: str | os.PathLike = "lightglue",
    config: Mapping[str, Any] | None = None,
    weights_dir: str | os.PathLike | None = None,
):
    """A LightGlue in eval mode with the given weights, every tensor accounted for.

    The architecture (``input_dim``: 256 for SuperPoint, 128 for DISK and others;
    ``n_layers``; ``add_scale_ori``) is read from the checkpoint; ``config`` sets the
    rest (``depth_confidence``, ``width_confidence``, ``filter_threshold``,
    ``pruning_rule``, ...) and may restate, but not contradict, the architecture.
    Both upstream namings load (release files and upstream's module ``state_dict()``);
    the unused ``log_assignment.{i}.r`` scalars of the release files are the only
    keys left out. Missing, unexpected or misshapen tensors: WeightError naming them.
    """
    from .lightglue import LightGlue, config_from_state_dict, release_state_dict

    path = resolve_weights(spec, "lightglue", weights_dir)
    raw = load_state_dict(path)
    found = _identify(set(raw))
    if found is not None and found != "lightglue":
        check_state_dict(raw, {}, "lightglue", str(path))  # names the right option
    state, unused = release_state_dict(raw)
    implied = config_from_state_dict(state)
    user = dict(config or {})
    clashes = [
        f"{key} {user[key]!r} (the file has {implied[key]!r})"
        for key in implied
        if key in user and user[key] != implied[key]
    ]
    if clashes:
        raise WeightError(
            f"{path} does not fit the requested lightglue configuration: {', '.join(clashes)}"
            + (
                f"; it matches {implied['input_dim']}-D descriptors"
                if "input_dim" in implied
                else ""
            )
        )
    model = LightGlue({**implied, **user})
    check_state_dict(state, model.state_dict(), "lightglue", str(path))
    model.load_state_dict(state, strict=True)
    n_layers = model.config["n_layers"]
    for key in unused:
        tensor = raw[key]
        if key == "confidence_thresholds":
            if tuple(tensor.shape) != (n_layers,):
                raise WeightError(
                    f"{path}: confidence_thresholds has shape {tuple(tensor.shape)}, "
                    f"expected ({n_layers},)"
                )
            model.confidence_thresholds.copy_(tensor)  # upstream loads the stored values
        elif tuple(tensor.shape) != (1,) or int(key.split(".")[1]) >= n_layers:
            raise WeightError(f"{path}: unexpected key {key} {tuple(tensor.shape)}")
    return model.eval()


@dataclass(frozen=True)
class DownloadedWeights:
    path: Path
    sha256: str
    first_use: bool  # True: this digest was recorded now (nothing to compare with)
    record: Path  # the file holding the recorded digest


def lightglue_digest_record(path: Path) -> Path:
    """``<file>.sha256`` beside the weights: ``<hex>  <file name>`` as sha256sum writes."""
    return path.with_name(path.name + ".sha256")


def _recorded_digest(record: Path) -> str | None:
    try:
        text = record.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WeightError(f"{record} cannot be read: {exc.strerror or exc}") from None
    if not text or len(text[0]) != 64 or any(c not in "0123456789abcdef" for c in text[0]):
        raise WeightError(
            f"{record} does not hold a sha256 digest: delete it to record the next download"
        )
    return text[0]


def download_lightglue(
    names: list[str] | None = None,
    weights_dir: str | os.PathLike | None = None,
    base_url: str = LIGHTGLUE_BASE_URL,
    force: bool = False,
    progress: bool = True,
) -> dict[str, DownloadedWeights]:
    """Fetch LightGlue release weights into ``weights_dir`` (default: ``lightglue``,
    i.e. ``superpoint_lightglue.pth``), trusting the first download.

    Upstream publishes no digest. The first file fetched (or found already in place)
    has its sha256 written to ``<file>.sha256``; a later download, or a file already
    present, whose sha256 differs is refused (WeightError, the new file deleted).
    Every download must also load as a LightGlue checkpoint. ``base_url`` may be a
    ``file://`` URL of a local mirror (used by the tests).
    """
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, DownloadedWeights] = {}
    for name in names or ["lightglue"]:
        if name not in LIGHTGLUE_WEIGHTS:
            raise WeightError(
                f"unknown lightglue weights '{name}' (choose from {', '.join(LIGHTGLUE_WEIGHTS)})"
            )
        entry = LIGHTGLUE_WEIGHTS[name]
        target = folder / entry.filename
        record = lightglue_digest_record(target)
        recorded = _recorded_digest(record)
        if target.is_file() and not force:
            digest = sha256(target)
            if recorded is not None and digest != recorded:
                raise WeightError(
                    f"{target} has sha256 {digest}, but {recorded} was recorded in {record} "
                    "when it was first downloaded: the file changed. Download it again with "
                    "--force, or delete both files"
                )
            if recorded is None:
                _write_record(record, digest, entry.filename)
            result[name] = DownloadedWeights(target, digest, recorded is None, record)
            continue
        url = f"{base_url.rstrip('/')}/{entry.filename}"
        tmp_path = _download_part(url, folder, progress)
        try:
            digest = sha256(tmp_path)
            if recorded is not None and digest != recorded:
                raise WeightError(
                    f"{url} has sha256 {digest}, but {recorded} was recorded in {record} on "
                    "the first download: the download is corrupt or the file changed upstream "
                    "(delete the record to trust the new file)"
                )
            _check_lightglue_download(tmp_path, url)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        shutil.move(str(tmp_path), target)
        if recorded is None:
            _write_record(record, digest, entry.filename)
        result[name] = DownloadedWeights(target, digest, recorded is None, record)
    return result


def _write_record(record: Path, digest: str, filename: str) -> None:
    record.write_text(f"{digest}  {filename}\n", encoding="utf-8")


def _check_lightglue_download(path: Path, url: str) -> None:
    """WeightError unless ``path`` loads as a LightGlue (the header only without torch)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        try:
            check_checkpoint_file(path)
        except WeightError as exc:
            raise WeightError(f"{url}: {exc}") from None
        return
    try:
        load_lightglue(path)
    except WeightError as exc:
        raise WeightError(f"{url} is not a LightGlue checkpoint: {exc}") from None


def download_weights(
    names: list[str] | None = None,
    weights_dir: str | os.PathLike | None = None,
    base_url: str = UPSTREAM_BASE_URL,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Fetch upstream weights, verify their git blob id, store them in ``weights_dir``.

    ``base_url`` may be a ``file://`` URL of a local mirror (used by the tests).
    Returns name -> path. A file whose digest does not match is deleted and
    reported; files already present and valid are kept.
    """
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    result = {}
    for name in names or list(UPSTREAM_WEIGHTS):
        if name not in UPSTREAM_WEIGHTS:
            raise WeightError(
                f"unknown weights '{name}' (choose from {', '.join(UPSTREAM_WEIGHTS)})"
            )
        entry = UPSTREAM_WEIGHTS[name]
        target = folder / entry.filename
        if target.is_file() and not force and git_blob_sha1(target) == entry.git_blob_sha1:
            result[name] = target
            continue
        url = f"{base_url.rstrip('/')}/{entry.filename}"
        tmp_path = _download_part(url, folder, progress)
        digest = git_blob_sha1(tmp_path)
        if digest != entry.git_blob_sha1:
            tmp_path.unlink(missing_ok=True)
            raise WeightError(
                f"{url} has git blob id {digest}, expected {entry.git_blob_sha1}: "
                "the download is corrupt or not the upstream file"
            )
        shutil.move(str(tmp_path), target)
        result[name] = target
    return result


def _download_part(url: str, folder: Path, progress: bool) -> Path:
    """``url`` downloaded into a ``.part`` file in ``folder`` (removed again on failure)."""
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            _fetch(url, tmp, progress)
        except Exception as exc:
            tmp.close()
            tmp_path.unlink(missing_ok=True)
            raise WeightError(
                f"could not download {url}: {exc}. Download it by hand into "
                f"{folder} or pass the file path."
            ) from exc
    return tmp_path


def _fetch(url: str, out, progress: bool) -> None:
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1])
        for chunk in iter(lambda: response.read(1 << 16), b""):
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
