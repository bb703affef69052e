"""A context manager that works with ``with`` and ``async with`` alike."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self


class AsyncFromSync:
    """Give a class with ``__enter__``/``__exit__`` the async protocol too.

    The enter and exit work is quick and never awaits (reading a clock, updating a
    breaker's state), so the async versions simply call the sync ones.
    """

    __slots__ = ()

    def __enter__(self) -> Self:  # pragma: no cover - every user defines its own
        raise NotImplementedError

    def __exit__(self, *exc: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
