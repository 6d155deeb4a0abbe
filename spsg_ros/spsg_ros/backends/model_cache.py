"""Exported models made on demand: when no ONNX file is given, a backend exports
one from the ``.pth`` weights into a cache folder keyed by the weights' sha256,
the architecture and the export revision, and every later run (of any backend)
reuses it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..networks import contract, lightglue_contract
from .base import BackendUnavailable

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    env = os.environ.get("SPSG_ROS_CACHE")
    return Path(env) / "onnx" if env else Path.home() / ".cache" / "spsg_ros" / "onnx"


def find_model(
    folder: Path,
    stems: Iterable[str],
    network: str,
    required: bool,
    suffixes: Iterable[str] = (".onnx",),
) -> Path | None:
    """The first ``<stem><suffix>`` present in ``folder``; none there is an error
    when ``required`` (the backend may not export one itself)."""
    stems = list(stems)
    for stem in stems:
        for suffix in suffixes:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    if required:
        raise BackendUnavailable(
            f"no {network} model in {folder} (looked for "
            f"{', '.join(s + '.onnx' for s in stems)}); run `spsg-ros export --out {folder}`"
        )
    return None


def cache_folder(
    cache_dir: Path, network: str, weights: Any, weights_dir: Any, config: Mapping[str, Any]
) -> Path:
    """``<cache_dir>/<network>-<key>`` for these weights and architecture."""
    from ..networks.weights import resolve_weights, sha256

    digest = sha256(resolve_weights(weights, network, weights_dir))
    if network == "lightglue":  # the architecture is the weights file's own
        arch: dict[str, Any] = {"lightglue_export_revision": lightglue_contract.EXPORT_REVISION}
    else:
        keys = (
            contract.SUPERGLUE_ARCH_KEYS
            if network == "superglue"
            else contract.SUPERPOINT_ARCH_KEYS
        )
        arch = {k: config[k] for k in keys}
    arch["export_revision"] = contract.EXPORT_REVISION  # new graphs -> new cache entries
    key = hashlib.sha256((digest + json.dumps(arch, sort_keys=True)).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"{network}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def export_once(folder: Path, stem: str, network: str, export: Callable[[Path], None]) -> Path:
    """``folder/<stem>.onnx``, exported by ``export(path)`` unless already there.

    The model is written beside and moved into place (model first, sidecar last),
    so a concurrent process never reads a half-written model.
    """
    target = folder / f"{stem}.onnx"
    if target.is_file() and contract.sidecar_path(target).is_file():
        return target
    try:
        from ..networks.onnx_export import ExportError
    except ImportError as exc:  # torch / onnx missing
        raise BackendUnavailable(
            f"cannot export the {network} model here ({exc}); pass an exported "
            "model or --onnx-dir with models from `spsg-ros export`"
        ) from exc
    log.info("exporting %s to %s (once; later runs reuse it)", network, target)
    tmp = folder / f".tmp-{os.getpid()}-{threading.get_ident()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        export(tmp / target.name)
        os.replace(tmp / target.name, target)
        os.replace(contract.sidecar_path(tmp / target.name), contract.sidecar_path(target))
    except ExportError as exc:
        raise BackendUnavailable(
            f"no exported {network} model given and it cannot be exported "
            f"here: {exc}. Pass --onnx-dir with models from `spsg-ros export`"
        ) from exc
    finally:
        for leftover in tmp.glob("*"):
            leftover.unlink()
        tmp.rmdir()
    return target


def export_folder_once(
    folder: Path, name: str, network: str, export: Callable[[Path], None]
) -> Path:
    """``folder/<name>/``, a folder of models (the LightGlue stages and their
    ``manifest.json``) exported by ``export(path)`` unless already there; written
    beside and renamed into place, so a concurrent process never reads half of it."""
    target = folder / name
    if (target / lightglue_contract.MANIFEST).is_file():
        return target
    try:
        from ..networks.onnx_export import ExportError
    except ImportError as exc:  # torch / onnx missing
        raise BackendUnavailable(
            f"cannot export the {network} models here ({exc}); pass --onnx-dir with models "
            "from `spsg-ros export`"
        ) from exc
    log.info("exporting %s to %s (once; later runs reuse it)", network, target)
    tmp = folder / f".tmp-{os.getpid()}-{threading.get_ident()}-{name}"
    try:
        export(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process got there first
            if not (target / lightglue_contract.MANIFEST).is_file():
                raise
    except ExportError as exc:
        raise BackendUnavailable(
            f"no exported {network} models given and they cannot be exported here: {exc}. "
            "Pass --onnx-dir with models from `spsg-ros export`"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
