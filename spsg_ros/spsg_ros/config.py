"""Plain default-config dicts merged with user config, with validation.

Every network and pipeline stage owns a ``DEFAULT_CONFIG`` dict; users pass a
partial dict and get the merged copy back. Unknown keys and wrongly typed
values fail at construction, naming the parameter.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping


class ConfigError(ValueError):
    """A configuration value is unknown or out of range; the message names it."""


def merge_config(
    defaults: Mapping[str, Any], user: Mapping[str, Any] | None, section: str
) -> dict[str, Any]:
    """Return ``defaults`` updated by ``user``; reject keys the section does not know."""
    merged = dict(defaults)
    for key, value in (user or {}).items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"{section}: unknown parameter '{key}' (known: {known})")
        merged[key] = value
    return merged


def check(
    section: str, name: str, value: Any, predicate: Callable[[Any], bool], expectation: str
) -> None:
    """Raise ConfigError ``section.name = value: expected ...`` unless predicate holds."""
    try:
        ok = bool(predicate(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{section}.{name} = {value!r}: expected {expectation}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
