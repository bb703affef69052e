"""Price table: US dollars per million tokens, per model, overridable by the user.

Prices change; the built-in table is a convenience, not a bill. Override or extend
it with a JSON file named by ``MONITOR_PRICES_FILE``::

    {"my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.1,
                  "cache_write": 1.25, "cache_write_1h": 2.0}}

A model with no price is *unpriced*: its tokens are counted, its cost is not, and
reports say "unpriced" rather than showing $0.

The token types are ours, one meaning each whatever the provider (see
:func:`ModelPrice.cost`): ``input`` is input read at the full price (Anthropic's
``input_tokens``; OpenAI's ``prompt_tokens`` minus ``cached_tokens``), ``cache_read``
and the two cache-write tiers are the rest of the input, and ``output`` holds every
generated token, reasoning included (``reasoning`` is only how many of them were).

Every priced run records :attr:`PriceTable.version`, a digest of the whole table in
effect, so ``monitor usage --reprice`` can tell which runs were priced with another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import astuple, dataclass
from pathlib import Path

from assistant_monitoring.errors import UsageError


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


def load_price_file(path: Path) -> dict[str, ModelPrice]:
    """Read a JSON price file; raise UsageError naming what is wrong."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"MONITOR_PRICES_FILE: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"MONITOR_PRICES_FILE: cannot read {path} as JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UsageError(f"MONITOR_PRICES_FILE: {path} must hold an object of model prices")
    prices: dict[str, ModelPrice] = {}
    for model, entry in document.items():
        try:
            input_price = float(entry["input"])
            prices[model] = ModelPrice(
                input=input_price,
                output=float(entry["output"]),
                cache_read=float(entry.get("cache_read", 0.0)),
                cache_write=float(entry.get("cache_write", 0.0)),
                # Only Anthropic has 1-hour writes; its rule (2x input) is the default.
                cache_write_1h=float(entry.get("cache_write_1h", input_price * 2.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UsageError(
                f"MONITOR_PRICES_FILE: {model!r} needs numeric 'input' and 'output' prices "
                "(USD per million tokens)"
            ) from None
        if any(not value >= 0 for value in astuple(prices[model])):  # NaN is not >= 0
            raise UsageError(f"MONITOR_PRICES_FILE: {model!r} has a negative or NaN price")
    return prices
