"""Which migrations each watched database may have: what "newer than this version" means.

The toolkit watches the application's conversations database without importing the
application (the dependency points the other way), so the application registers
what it knows at start-up (``assistant/cli.py``), lazily: a loader that is called
only by a check that needs it. Unregistered, a database's schema is not judged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["known_migrations", "newer_migrations", "register_migrations"]

_LOADERS: dict[str, Callable[[], Iterable[str]]] = {}


def register_migrations(role: str, loader: Callable[[], Iterable[str]]) -> None:
    """Say where the names of ``role``'s known migrations come from (``"conversations"``)."""
    _LOADERS[role] = loader


def known_migrations(role: str) -> frozenset[str] | None:
    """The migrations this version knows for ``role``, or None when nobody said."""
    loader = _LOADERS.get(role)
    return None if loader is None else frozenset(loader())


def newer_migrations(role: str, applied: Iterable[str]) -> list[str]:
    """The applied migrations this version does not know: the database is from a newer one."""
    known = known_migrations(role)
    return [] if known is None else sorted(set(applied) - known)
