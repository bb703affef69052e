"""Secret redaction shared by every log sink and every error message.

Two layers:

* patterns that look like credentials whatever their origin: ``sk-...`` keys
  (OpenAI ``sk-proj-...``, Anthropic ``sk-ant-...``), ``Bearer`` tokens, and
  ``x-api-key``/``api_key=`` assignments;
* the exact secrets configured in the running profile (``LLM_API_KEY``,
  ``MONITOR_TOKEN``, the password of a URL setting, the values of OTLP header
  variables...), registered with :func:`register_secret`, so a key in a format we do
  not know is still never printed.

URL userinfo is a third kind: the password of ``scheme://user:password@host`` is shown
as ``***`` (``http://user:***@host``), so the URL stays readable and still says
which user it logs in as, whatever the password's length or shape.

:func:`redact_configured` applies the registered secrets only. It is for the user's
own text (a conversation), where key-shaped text may be what they are talking about
(an example key in code) but the key this profile really uses never belongs.

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

# scheme://user:password@ -- the user part stops at the first ':' (RFC 3986 puts no
# ':' in a user name), the password at the '@'; neither crosses '/', '?', '#' or a
# space, so an '@' further in a path (https://host/a@b) or an e-mail address is left.
URL_PASSWORD_MASK = "***"
_USERINFO = r"(?<=://)(?P<url_user>[^\s/@:?#]*):(?P<url_password>[^\s/@?#]+)@"
_userinfo = re.compile(_USERINFO)

_lock = threading.Lock()
_registered: set[str] = set()
_registered_list: tuple[str, ...] = ()


def _compile(secrets: set[str]) -> re.Pattern[str]:
    # Longest first so a secret that contains another is masked whole. The userinfo
    # rule starts at the user name, left of its password: it wins over a registered
    # password there, and keeps the URL's shape.
    literal = [re.escape(s) for s in sorted(secrets, key=len, reverse=True)]
    alternatives = [*literal, *(f"(?:{p})" for p in _PATTERNS), _USERINFO]
    return re.compile("|".join(alternatives), re.IGNORECASE)


def _compile_literal(secrets: set[str]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    literal = [re.escape(s) for s in sorted(secrets, key=len, reverse=True)]
    return re.compile("|".join(literal))


_pattern = _compile(_registered)
_literal: re.Pattern[str] | None = None


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` wherever it appears from now on (process-wide)."""
    global _pattern, _literal, _registered_list
    if not secret or len(secret) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if secret in _registered:
            return
        _registered.add(secret)
        _registered_list = tuple(_registered)
        _pattern = _compile(_registered)
        _literal = _compile_literal(_registered)


def register_url_secrets(url: str | None) -> None:
    """Register the password of ``url``'s userinfo, as written and percent-decoded
    (the SDKs decode it before they send it, and an error may quote either form)."""
    password = url_password(url)
    if password:
        from urllib.parse import unquote

        register_secret(password)
        register_secret(unquote(password))


def register_header_secrets(value: str | None) -> None:
    """Register the values of a ``key=value,key2=value2`` header list (the
    ``OTEL_EXPORTER_OTLP_HEADERS`` format, values percent-encoded): each is a
    credential (``authorization=Bearer ...``, ``x-api-key=...``) or harmless to mask."""
    if not value:
        return
    from urllib.parse import unquote

    for pair in value.split(","):
        _name, equals, raw = pair.partition("=")
        if equals:
            decoded = unquote(raw.strip())
            register_secret(decoded)
            # "Bearer abc..." is sent whole, but the token alone is what leaks.
            register_secret(decoded.split(" ", 1)[-1])
            register_secret(raw.strip())


def clear_registered_secrets() -> None:
    """Forget the registered secrets (tests, and a settings reload)."""
    global _pattern, _literal, _registered_list
    with _lock:
        _registered.clear()
        _registered_list = ()
        _pattern = _compile(_registered)
        _literal = None


# Every pattern above needs one of these (lower-cased) markers, so a line without any
# of them (most lines) skips the regex, which costs ~14 us on a typical log line. The
# userinfo rule alone needs "://" and "@": a URL without them (an HTTP request's log
# line) costs nothing more, one with them only the small userinfo regex.
_MARKERS = ("sk-", "bearer ", "api-key", "api_key")


def _replace(match: re.Match[str]) -> str:
    user = match.group("url_user")
    if user is not None:  # the userinfo rule: keep the user and the URL's shape
        return f"{user}:{URL_PASSWORD_MASK}@"
    return MASK


def redact_text(text: str) -> str:
    """Return ``text`` with every known or credential-shaped secret replaced by MASK
    (and a URL's password by ``***``)."""
    lowered = text.lower()
    if any(marker in lowered for marker in _MARKERS) or any(
        secret in text for secret in _registered_list
    ):
        return _pattern.sub(_replace, text)
    if "@" in text and "://" in text:
        return mask_url(text)
    return text


def redact_configured(text: str) -> str:
    """Return ``text`` with only the registered secrets replaced by MASK.

    For the user's own text (conversations): their words stay as written, key-shaped
    examples included, but never the credentials this profile is configured with.
    """
    literal = _literal
    if literal is None or not any(secret in text for secret in _registered_list):
        return text
    return literal.sub(MASK, text)


def holds_secret(text: str) -> bool:
    """Whether :func:`redact_text` would change ``text``: a value that should never be
    a name, an id or a label (a key pasted as ``--model``)."""
    return redact_text(text) != text


def url_password(url: str | None) -> str | None:
    """The password in ``url``'s userinfo, or None."""
    if not url:
        return None
    match = _userinfo.search(url)
    return match.group("url_password") if match else None


def mask_url(url: str) -> str:
    """``url`` with its userinfo password shown as ``***`` (``http://user:***@host``)."""
    return _userinfo.sub(lambda m: f"{m.group('url_user')}:{URL_PASSWORD_MASK}@", url)


def mask_secret(value: str | None) -> str:
    """How a secret value is shown in ``config show``: set or not, never its content."""
    if not value:
        return "(not set)"
    return "********"
