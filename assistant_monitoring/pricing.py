"""Price table: US dollars per million tokens, per model, overridable by the user.

Prices change; the built-in table is a convenience, not a bill. Override or extend
it with a JSON file named by ``MONITOR_PRICES_FILE``::

    {"version": 1,
     "my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.1,
                  "cache_write": 1.25, "cache_write_1h": 2.0}}

``version`` is optional (1 is the only version so far); a file that says a later
one is refused, since it may mean something this code would misread.

A model with no price is *unpriced*: its tokens are counted, its cost is not, and
reports say "unpriced" rather than showing $0.

The token types are ours, one meaning each whatever the provider (see
:func:`ModelPrice.cost`): ``input`` is input read at the full price (Anthropic's
``input_tokens``; OpenAI's ``prompt_tokens`` minus ``cached_tokens``), ``cache_read``
and the two cache-write tiers are the rest of the input, and ``output`` holds every
generated token, reasoning included (``reasoning`` is only how many of them were).

Every priced run records :attr:`PriceTable.version`, a digest of the whole table in
effect, so ``monitor usage --reprice`` can tell which runs were priced with another.

The file is checked whole when the settings are loaded (so ``config check`` and every
command refuse a bad one before doing anything), by :func:`read_price_file`:

- it must be a regular file (``stat``, which follows symbolic links but never opens:
  opening a FIFO for reading blocks, and a device such as ``/dev/zero`` never ends);
- of at most :data:`MAX_PRICE_FILE_BYTES`, checked before reading and again by the
  read itself, so a file that grows in between is not read past the cap;
- UTF-8 JSON holding an object of models, each with numeric ``input`` and ``output``
  and only the five known price names;
- every price from 0 to :data:`MAX_PRICE_USD_PER_MTOK`. Why a cap: a price that is
  not finite (``Infinity``, ``NaN``, ``1e400``) or so large that tokens times price
  overflows (``1e308``) would store ``inf`` or ``NULL`` costs, and the usage rollup
  (``cost_usd NOT NULL``) would refuse them halfway through a write. The costliest
  list price today is $600 per million tokens; the cap leaves room for 16 times that
  and keeps SQLite's largest token count times the cap, summed over more runs than a
  file can hold, well within a float.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import stat
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from assistant_monitoring.errors import UsageError, shown

MAX_PRICE_FILE_BYTES = 1024 * 1024
MAX_PRICE_USD_PER_MTOK = 10_000.0
PRICE_FILE_VERSION = 1
PRICE_NAMES = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens of each type."""

    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0  # 5-minute cache writes
    cache_write_1h: float = 0.0

    def cost(
        self,
        *,
        input: int,
        output: int,
        cache_read: int = 0,
        cache_write: int = 0,
        cache_write_1h: int = 0,
        reasoning: int = 0,
    ) -> float:
        """The cost in USD of one request's tokens.

        Each token is priced once: ``input`` excludes the cached tokens, and
        ``reasoning`` is ignored because those tokens are already in ``output``.
        """
        del reasoning  # part of output, priced there
        return (
            input * self.input
            + output * self.output
            + cache_read * self.cache_read
            + cache_write * self.cache_write
            + cache_write_1h * self.cache_write_1h
        ) / 1_000_000

    def cache_savings(
        self, *, cache_read: int = 0, cache_write: int = 0, cache_write_1h: int = 0
    ) -> float:
        """What the cached tokens would have cost as plain input, minus what they cost.

        Net of the write premium, so caching that never paid off shows as negative.
        """
        return (
            cache_read * (self.input - self.cache_read)
            + cache_write * (self.input - self.cache_write)
            + cache_write_1h * (self.input - self.cache_write_1h)
        ) / 1_000_000


def _anthropic(input_price: float, output_price: float) -> ModelPrice:
    # Anthropic: cache reads at 0.1x, 5-minute cache writes at 1.25x and 1-hour cache
    # writes at 2x the input price.
    return ModelPrice(
        input_price, output_price, input_price * 0.1, input_price * 1.25, input_price * 2.0
    )


def _openai(input_price: float, output_price: float, cached: float) -> ModelPrice:
    # OpenAI caches automatically and does not charge for writing the cache.
    return ModelPrice(input_price, output_price, cached, 0.0, 0.0)


# Public list prices (USD per million tokens) as of late 2025.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": _anthropic(5.0, 25.0),
    "claude-opus-4-1": _anthropic(15.0, 75.0),
    "claude-sonnet-4-5": _anthropic(3.0, 15.0),
    "claude-sonnet-4": _anthropic(3.0, 15.0),
    "claude-haiku-4-5": _anthropic(1.0, 5.0),
    "gpt-5": _openai(1.25, 10.0, 0.125),
    "gpt-5-mini": _openai(0.25, 2.0, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "gpt-4.1": _openai(2.0, 8.0, 0.5),
    "gpt-4.1-mini": _openai(0.4, 1.6, 0.1),
    "gpt-4o": _openai(2.5, 10.0, 1.25),
    "gpt-4o-mini": _openai(0.15, 0.6, 0.075),
}


class PriceTable:
    """Look up a model's price: exact name first, then the longest matching prefix
    (so ``claude-sonnet-4-5-20250929`` is priced as ``claude-sonnet-4-5``)."""

    def __init__(self, prices: dict[str, ModelPrice] | None = None) -> None:
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._by_length = sorted(self.prices, key=len, reverse=True)
        canonical = json.dumps(
            {name: astuple(price) for name, price in sorted(self.prices.items())}
        )
        # Recorded with every priced run: any change of any price changes it.
        self.version = "p-" + hashlib.sha256(canonical.encode()).hexdigest()[:10]

    def price(self, model: str) -> ModelPrice | None:
        """The model's price, or None when it is unpriced."""
        found = self.prices.get(model)
        if found is not None:
            return found
        for name in self._by_length:
            if model.startswith(name + "-"):
                return self.prices[name]
        return None

    def knows(self, model: str) -> bool:
        """Whether ``model`` is in the table by name, or as a dated release of one.

        Stricter than :meth:`price` (which prices any ``<name>-...``): this decides
        whether a name typed on the command line may become a metric label.
        """
        if model in self.prices:
            return True
        base, _, suffix = model.rpartition("-")
        return base in self.prices and (
            suffix == "latest" or (len(suffix) == 8 and suffix.isascii() and suffix.isdigit())
        )

    @classmethod
    def with_overrides(cls, path: Path | None) -> PriceTable:
        """The built-in table updated with the user's file (if any)."""
        prices = dict(DEFAULT_PRICES)
        if path is not None:
            prices.update(load_price_file(path))
        return cls(prices)


class PriceFileProblem(ValueError):
    """What is wrong with a price file, worded to follow ``MONITOR_PRICES_FILE: ``.

    A ValueError, so the settings model's validator reports it as the field's
    problem (``MONITOR_PRICES_FILE: problem (got 'path')``) with no wrapping.
    """


def load_price_file(path: Path) -> dict[str, ModelPrice]:
    """Read a price file (see the module's notes); raise UsageError in one line,
    ``MONITOR_PRICES_FILE: problem (got 'path')``, as the settings check words it."""
    try:
        return read_price_file(path)
    except PriceFileProblem as problem:
        raise UsageError(f"MONITOR_PRICES_FILE: {problem} (got '{path}')") from None


def read_price_file(path: Path) -> dict[str, ModelPrice]:
    """The prices a file holds; :class:`PriceFileProblem` saying what is wrong."""
    return _prices(_parse(_read_capped(path)))


def _read_capped(path: Path) -> bytes:
    try:
        found = os.stat(path)  # follows symlinks, and never opens (a FIFO would block)
    except FileNotFoundError:
        if os.path.islink(path):
            raise PriceFileProblem("is a symbolic link to a missing file") from None
        raise PriceFileProblem("does not exist") from None
    except OSError as exc:
        raise PriceFileProblem(_os_problem(exc)) from None
    _require_regular(found.st_mode)
    if found.st_size > MAX_PRICE_FILE_BYTES:
        raise PriceFileProblem(f"is {found.st_size:,} bytes; {_CAP}")
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO since the stat, the open
        # returns at once and the fstat below refuses it, instead of blocking.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PriceFileProblem(_os_problem(exc)) from None
    try:
        _require_regular(os.fstat(fd).st_mode)
        chunks: list[bytes] = []
        left = MAX_PRICE_FILE_BYTES + 1  # one byte more tells "too big" from "just fits"
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise PriceFileProblem(_os_problem(exc)) from None
    finally:
        os.close(fd)
    if left <= 0:
        raise PriceFileProblem(f"grew past {MAX_PRICE_FILE_BYTES:,} bytes as it was read; {_CAP}")
    return b"".join(chunks)


_CAP = f"a price file may be at most {MAX_PRICE_FILE_BYTES:,} bytes (1 MiB)"
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _require_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "an unusual kind of file")
    raise PriceFileProblem(f"is {kind}, not a regular file")


def _os_problem(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "is a loop of symbolic links"
    if error.errno == errno.ENOTDIR:
        return "cannot be reached: a folder in the path is a file"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read: permission denied"
    return f"cannot be read: {error.strerror or error}"


def _parse(data: bytes) -> Any:
    try:
        text = data.decode("utf-8-sig")  # a BOM, as some editors write, is harmless
    except UnicodeDecodeError as exc:
        raise PriceFileProblem(f"is not UTF-8 text (byte {exc.start + 1})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except PriceFileProblem:
        raise
    except json.JSONDecodeError as exc:
        raise PriceFileProblem(
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise PriceFileProblem("is nested too deeply to be a price file") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise PriceFileProblem(f"is not valid JSON ({exc})") from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys: a price edited in one copy and read
    # from the other is a silent wrong bill.
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise PriceFileProblem(f"'{shown(key)}' appears twice")
        found[key] = value
    return found


def _prices(document: Any) -> dict[str, ModelPrice]:
    if not isinstance(document, dict):
        raise PriceFileProblem(
            'must hold a JSON object of model prices, such as {"my-model": {"input": 3, '
            '"output": 15}}'
        )
    entries = dict(document)
    version = entries.pop("version", PRICE_FILE_VERSION)
    if type(version) is int and version > PRICE_FILE_VERSION:
        raise PriceFileProblem(
            f"is price file version {version}; this assistant reads version "
            f"{PRICE_FILE_VERSION} (upgrade the assistant)"
        )
    if type(version) is not int or version != PRICE_FILE_VERSION:
        raise PriceFileProblem(f"'version' must be {PRICE_FILE_VERSION}")
    return {model: _model_price(model, entry) for model, entry in entries.items()}


def _model_price(model: str, entry: Any) -> ModelPrice:
    if not model.strip():
        raise PriceFileProblem("a model name must not be empty")
    name = f"'{shown(model)}'"
    if not isinstance(entry, dict):
        raise PriceFileProblem(f'{name} must be an object such as {{"input": 3, "output": 15}}')
    unknown = [key for key in entry if key not in PRICE_NAMES]
    if unknown:
        raise PriceFileProblem(
            f"{name} has an unknown price '{shown(unknown[0])}' (known: {', '.join(PRICE_NAMES)})"
        )
    if "input" not in entry or "output" not in entry:
        raise PriceFileProblem(f"{name} needs 'input' and 'output' prices (USD per million tokens)")
    values = {key: _price(name, key, value) for key, value in entry.items()}
    # Only Anthropic has 1-hour writes; its rule (2x input) is the default.
    values.setdefault("cache_write_1h", values["input"] * 2.0)
    return ModelPrice(**values)


def _price(name: str, key: str, value: Any) -> float:
    expected = f"must be a number from 0 to {MAX_PRICE_USD_PER_MTOK:g} USD per million tokens"
    # bool is an int to Python, and "3" is a float to float(): both are mistakes here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = _JSON_KINDS.get(type(value), "null")
        raise PriceFileProblem(f"{name} {key}: {expected}, not {kind}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not (math.isfinite(number) and 0 <= number <= MAX_PRICE_USD_PER_MTOK):
        raise PriceFileProblem(f"{name} {key}: {expected}, not {_spelled(value, number)}")
    return number


_JSON_KINDS = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}


def _spelled(value: int | float, number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if isinstance(value, int):
        return shown(str(value))
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return f"{number:g}"
