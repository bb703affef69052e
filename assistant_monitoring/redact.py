"""Secret redaction shared by every log sink and every error message.

Two layers:

* patterns that look like credentials whatever their origin: ``sk-...`` keys
  (OpenAI ``sk-proj-...``, Anthropic ``sk-ant-...``), ``Bearer`` tokens, and
  ``x-api-key``/``api_key=`` assignments;
* the exact secrets configured in the running profile (``LLM_API_KEY``,
  ``MONITOR_TOKEN``...), registered with :func:`register_secret`, so a key in a
  format we do not know is still never printed.

The fast path matters: every log line goes through :func:`redact_text`, so the
combined pattern is compiled once and a line with nothing to hide costs one regex scan.
"""

from __future__ import annotations

import re
import threading

MASK = "[REDACTED]"

# Secrets shorter than this are not registered: masking "abc" everywhere would
# mangle ordinary text and a real credential is never that short.
_MIN_SECRET_LENGTH = 8

_PATTERNS = [
    # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-api03-...
    r"\bsk-[A-Za-z0-9_\-]{16,}",
    # Authorization headers and bearer tokens.
    r"(?<=bearer )[A-Za-z0-9_\-\.=~+/]{8,}",
    # key=value / "key": "value" assignments of obvious secret names.
    r"(?<=api[_-]key[=:] )[^\s\"',;]{8,}",
    r"(?<=api[_-]key=)[^\s\"',;&]{8,}",
    r"(?<=x-api-key: )[^\s\"',;]{8,}",
]

_lock = threading.Lock()
_registered: set[str] = set()
_registered_list: tuple[str, ...] = ()
_pattern = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def _compile(secrets: set[str]) -> re.Pattern[str]:
    # Longest first so a secret that contains another is masked whole.
    literal = [re.escape(s) for s in sorted(secrets, key=len, reverse=True)]
    return re.compile("|".join([*literal, *(f"(?:{p})" for p in _PATTERNS)]), re.IGNORECASE)


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` wherever it appears from now on (process-wide)."""
    global _pattern, _registered_list
    if not secret or len(secret) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if secret in _registered:
            return
        _registered.add(secret)
        _registered_list = tuple(_registered)
        _pattern = _compile(_registered)


def clear_registered_secrets() -> None:
    """Forget the registered secrets (tests, and a settings reload)."""
    global _pattern, _registered_list
    with _lock:
        _registered.clear()
        _registered_list = ()
        _pattern = _compile(_registered)


# Every pattern above needs one of these (lower-cased) markers, so a line without any
# of them (most lines) skips the regex, which costs ~14 us on a typical log line.
_MARKERS = ("sk-", "bearer ", "api-key", "api_key")


def redact_text(text: str) -> str:
    """Return ``text`` with every known or credential-shaped secret replaced by MASK."""
    lowered = text.lower()
    if not any(marker in lowered for marker in _MARKERS) and not any(
        secret in text for secret in _registered_list
    ):
        return text
    return _pattern.sub(MASK, text)


def mask_secret(value: str | None) -> str:
    """How a secret value is shown in ``config show``: set or not, never its content."""
    if not value:
        return "(not set)"
    return "********"
