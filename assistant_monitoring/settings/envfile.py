"""A strict parser for ``.env`` files.

We parse these ourselves rather than through python-dotenv because dotenv skips a
malformed line with a warning; a typo in a production profile must instead stop the
command with the file name, the line number and what is wrong.

Accepted syntax, one assignment a line::

    # a comment
    KEY=value               # unquoted; an inline comment needs a space before '#'
    export KEY=value        # shell-compatible prefix
    KEY="value with \\n escapes"
    KEY='literal value'
    KEY=                    # empty: the setting keeps its default
"""

from __future__ import annotations

import re
from pathlib import Path

from assistant_monitoring.errors import ProfileError
from assistant_monitoring.redact import redact_text

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DOUBLE_QUOTE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def read_env_file(path: Path) -> dict[str, str]:
    """Return the assignments of ``path`` in file order.

    Raises :class:`ProfileError` when the file cannot be read or a line is malformed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ProfileError(f"{path}: is a directory, expected a .env file") from None
    except PermissionError:
        raise ProfileError(
            f"{path}: cannot read the file (permission denied): fix its permissions"
        ) from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the file ({exc.strerror})") from None
    return parse_env_text(text, source=str(path))


def parse_env_text(text: str, *, source: str = "<env>") -> dict[str, str]:
    """Parse ``.env`` text; ``source`` names the file in error messages."""
    values: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        where = f"{source}:{number}"
        if not sep:
            raise ProfileError(f"{where}: expected KEY=VALUE, got '{_shorten(raw_line)}'")
        if not _KEY.match(key):
            raise ProfileError(
                f"{where}: '{_shorten(key)}' is not a valid variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
        values[key] = _parse_value(rest.strip(), where)
    return values


def _parse_value(rest: str, where: str) -> str:
    if not rest:
        return ""
    quote = rest[0]
    if quote not in "\"'":
        # An unquoted value ends at an inline comment (" #"), like in a shell.
        comment = rest.find(" #")
        return (rest if comment < 0 else rest[:comment]).rstrip()
    closing = _find_closing_quote(rest, quote)
    if closing < 0:
        raise ProfileError(f"{where}: unterminated {quote} quote (values must fit on one line)")
    trailing = rest[closing + 1 :].strip()
    if trailing and not trailing.startswith("#"):
        raise ProfileError(f"{where}: unexpected text after the closing quote: '{trailing}'")
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
    text = redact_text(text.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."
