"""Lazy re-exports for package ``__init__`` modules (start-up stays cheap)."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: see assistant_monitoring/__init__.py
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def resolve_export(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str], name: str
) -> Any:
    """Import ``name`` from its module on first use and cache it in ``namespace``.

    Call it from the package's module-level ``__getattr__``.
    """
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
