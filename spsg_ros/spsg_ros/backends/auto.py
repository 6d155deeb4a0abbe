"""``auto`` backend: the first backend of a preference order that can run here.

The order comes from the ``backend_preference`` option (CLI
``--backend-preference``, comma-separated), else ``$SPSG_ROS_BACKEND_PREFERENCE``,
else :data:`DEFAULT_PREFERENCE` for the device. Each candidate is built with the
options it takes (an option that no candidate takes is a
:class:`BackendOptionError` before any is tried); one that raises
:class:`BackendUnavailable` (runtime not installed, no device, no model) is
skipped with a log line saying why; other
errors (a bad weight file, a wrong configuration) propagate, since every
candidate would hit them. The chosen backend is logged with its
:meth:`Backend.describe` (backend, device, provider) and returned as is, with
``auto_attempts`` recording what was tried.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from .base import Backend, BackendUnavailable, available_backend_names, register_backend

log = logging.getLogger(__name__)

#: tried in this order when nothing is configured; "cuda" devices prefer the GPU paths
DEFAULT_PREFERENCE = ("ascend", "onnxruntime", "openvino", "torch")
DEFAULT_PREFERENCE_CUDA = ("onnxruntime", "torch")


def preference_order(
    preference: Sequence[str] | str | None = None, device: str = "cpu"
) -> list[str]:
    if preference is None:
        preference = os.environ.get("SPSG_ROS_BACKEND_PREFERENCE") or None
    if isinstance(preference, str):
        preference = [p.strip() for p in preference.split(",") if p.strip()]
    if not preference:
        preference = (
            DEFAULT_PREFERENCE_CUDA if str(device).startswith("cuda") else DEFAULT_PREFERENCE
        )
    order = [p for p in preference if p != "auto"]
    unknown = [p for p in order if p not in available_backend_names()]
    if unknown:
        raise BackendUnavailable(
            f"backend preference names unknown backend(s) {', '.join(unknown)} "
            f"(known: {', '.join(n for n in available_backend_names() if n != 'auto')})"
        )
    return order


def create_auto_backend(
    backend_preference: Sequence[str] | str | None = None, device: str = "cpu", **options: Any
) -> Backend:
    """Build the first available backend of the preference order, passing each
    candidate only the options it takes."""
    from .base import BackendOptionError, backend_option_names, create_backend

    order = preference_order(backend_preference, device)
    accepted = {name: backend_option_names(name) for name in order}

    def takes(name: str, key: str) -> bool:
        return accepted[name] is None or key in accepted[name]

    unknown = [key for key in options if not any(takes(name, key) for name in order)]
    if unknown:
        valid = {"backend_preference", "device"}.union(*(a for a in accepted.values() if a))
        raise BackendOptionError(
            "auto",
            unknown,
            valid,
            f" (no backend of {', '.join(order)} takes {'them' if len(unknown) > 1 else 'it'})",
        )
    attempts: list[tuple[str, str]] = []
    for name in order:
        kwargs = {
            key: value for key, value in dict(options, device=device).items() if takes(name, key)
        }
        left_out = sorted(set(options) - set(kwargs))
        if left_out:
            log.debug("auto: backend '%s' does not take %s", name, ", ".join(left_out))
        try:
            backend = create_backend(name, **kwargs)
        except BackendUnavailable as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.info("auto: backend '%s' unavailable: %s", name, reason)
            attempts.append((name, reason))
            continue
        attempts.append((name, "selected"))
        backend.auto_attempts = attempts
        log.info("auto: running backend '%s': %s", name, backend.describe())
        return backend
    tried = "; ".join(f"{n}: {r}" for n, r in attempts)
    raise BackendUnavailable(f"auto: no backend of {', '.join(order)} can run here ({tried})")


register_backend("auto", create_auto_backend)
