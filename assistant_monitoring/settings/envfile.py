"""A strict parser for ``.env`` files.

We parse these ourselves rather than through python-dotenv because dotenv skips a
malformed line with a warning; a typo in a production profile must instead stop the
command with the file name, the line number and what is wrong.

Accepted syntax, one assignment a line::

    # a comment
    KEY=value               # unquoted; an inline comment needs a space or tab before '#'
    export KEY=value        # shell-compatible prefix
    KEY="value with \\n escapes"
    KEY='literal value'
    KEY=                    # empty: the setting keeps its default

Lines end at ``\n``, ``\r\n`` or ``\r`` only, as in the user's editor. A leading UTF-8
byte order mark is skipped (Windows editors write one). When a key appears twice the
last assignment wins, as when a shell sources the file. NUL characters are refused:
environment variables cannot hold them, and they mean a binary or UTF-16 file.
"""

from __future__ import annotations

import codecs
import os
import re

from assistant_monitoring.errors import ProfileError, shown

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Not str.splitlines(): it also breaks at \x0c, \x85, \u2028..., which would cut quoted
# values in two and number lines differently from the user's editor.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_EXPORT = re.compile(r"export[ \t]+")
_INLINE_COMMENT = re.compile(r"[ \t]#")
_BOM = "\ufeff"
_DOUBLE_QUOTE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
# Names whose value is a credential: ours (LLM_API_KEY, MONITOR_TOKEN), the SDKs'
# (ANTHROPIC_API_KEY), OpenTelemetry's header lists, and HTTP headers written as lines.
_SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_HEADERS")
_SECRET_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "cookie")
# The name a malformed line starts with: "LLM_API_KEY sk-...", "MONITOR_TOKEN: ...".
_LEADING_NAME = re.compile(r"(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_-]*)")


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Return the assignments of ``path`` in file order.

    Raises :class:`ProfileError` when the file cannot be read or a line is malformed.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ProfileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ProfileError(f"{path}: is a directory, expected a .env file") from None
    except PermissionError:
        raise ProfileError(
            f"{path}: cannot read the file (permission denied): fix its permissions"
        ) from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the file ({exc.strerror})") from None
    if _looks_like_utf16(data):
        raise ProfileError(f"{path}: is UTF-16 text: save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_env_text(text, source=str(path))


def _looks_like_utf16(data: bytes) -> bool:
    # Windows PowerShell's "> .env" and Notepad's "Unicode" write UTF-16; without a BOM
    # the tell is a NUL byte beside every ASCII character.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    head = data[:64]
    return len(head) >= 2 and (not any(head[1::2]) or not any(head[0::2]))


def parse_env_text(text: str, *, source: str = "<env>") -> dict[str, str]:
    """Parse ``.env`` text; ``source`` names the file in error messages."""
    values: dict[str, str] = {}
    text = text.removeprefix(_BOM)
    for number, raw_line in enumerate(_LINE_BREAK.split(text), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        if "\x00" in line:
            raise ProfileError(f"{where}: a NUL character (is this a text file? save it as UTF-8)")
        export = _EXPORT.match(line)
        if export:
            line = line[export.end() :]
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep:
            raise ProfileError(f"{where}: expected KEY=VALUE, got '{_shown_line(raw_line)}'")
        if not _KEY.match(key):
            raise ProfileError(
                f"{where}: '{_shown_line(key)}' is not a valid variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
        values[key] = _parse_value(rest, where, secret=_is_secret_name(key))
        _register(key, values[key])
    return values


def _is_secret_name(name: str) -> bool:
    return name.upper().endswith(_SECRET_SUFFIXES) or name.lower() in _SECRET_HEADERS


def _register_now(key: str, value: str) -> None:
    from assistant_monitoring.redact import (
        register_header_secrets,
        register_secret,
        register_url_secrets,
    )

    if key.upper().endswith("_HEADERS"):
        register_header_secrets(value)
    elif _is_secret_name(key):
        register_secret(value)
    elif key.upper().endswith(("_URL", "_ENDPOINT")):
        register_url_secrets(value)


def _register(key: str, value: str) -> None:
    """Make a secret of this file known at once: a malformed line further down may
    quote it (``LLM_MODEL claude sk-...``), before the loader registers the rest.

    Only a value that can hold one imports the redaction rules (~3 ms of regular
    expressions): the statusline reads these files on every prompt."""
    if not value:
        return
    if key.upper().endswith(("_URL", "_ENDPOINT")):
        if "@" in value:  # a URL holds a secret only in its userinfo
            _register_now(key, value)
    elif _is_secret_name(key) or key.upper().endswith("_HEADERS"):
        _register_now(key, value)


def _shown_line(text: str) -> str:
    """A malformed line as an error quotes it: a secret's name without its value."""
    match = _LEADING_NAME.match(text.strip())
    if match and _is_secret_name(match.group(1)):
        # "LLM_API_KEY sk-...", "MONITOR_TOKEN: ...": the name says what is wrong.
        return f"{match.group(1)} ********"
    return _shorten(text)


def _parse_value(raw: str, where: str, *, secret: bool = False) -> str:
    rest = raw.strip()
    if not rest:
        return ""
    quote = rest[0]
    if quote not in "\"'":
        # An unquoted value ends at an inline comment (whitespace then '#'), like in a
        # shell; searched in the unstripped text so that "KEY= # note" is empty.
        return _INLINE_COMMENT.split(raw, maxsplit=1)[0].strip()
    closing = _find_closing_quote(rest, quote)
    if closing < 0:
        raise ProfileError(f"{where}: unterminated {quote} quote (values must fit on one line)")
    trailing = rest[closing + 1 :].strip()
    if trailing and not trailing.startswith("#"):
        # After a stray quote in a key, the trailing text is the key's own tail.
        quoted = "********" if secret else _shorten(trailing)
        raise ProfileError(f"{where}: unexpected text after the closing quote: '{quoted}'")
    body = rest[1:closing]
    return _unescape(body) if quote == '"' else body


def _find_closing_quote(rest: str, quote: str) -> int:
    index = 1
    while index < len(rest):
        char = rest[index]
        if char == "\\" and quote == '"':
            index += 2
            continue
        if char == quote:
            return index
        index += 1
    return -1


def _unescape(body: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            out.append(_DOUBLE_QUOTE_ESCAPES.get(nxt, "\\" + nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _shorten(text: str, limit: int = 40) -> str:
    # A malformed line may hold a key ("LLM_API_KEY sk-..."): never echo it.
    from assistant_monitoring.redact import redact_text  # only on the error path

    return shown(redact_text(text.strip()), limit)
