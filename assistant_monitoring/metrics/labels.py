"""Where label values may come from: closed sets and names the code defines, never input.

A label value becomes a time series in every process's store and in Prometheus, so
user text in one (a prompt word, a typed key, a conversation id) is both a leak and
a cardinality bomb. Every label of the assistant's families has a rule here; the
registry records a value that breaks its rule under ``__invalid__`` instead (and
counts it), so a mistake in the code cannot leak either.

The CLI's error context is the command path the CLI defines (``cli:monitor.metrics``),
found by walking the command tree: only names of commands can come out, whatever the
arguments say.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

LabelRule = Callable[[str], bool]
INVALID_VALUE = "__invalid__"
# The model label of a call whose model is neither configured nor priced, until the
# provider answers: `--model <anything>` must not become a series of its own.
UNVERIFIED_MODEL = "unverified"


def one_of(*values: str) -> LabelRule:
    """A closed set of values."""
    allowed = frozenset(values)
    return allowed.__contains__


def matching(pattern: str) -> LabelRule:
    """Values the code makes up from its own names (the whole value must match)."""
    compiled = re.compile(pattern)

    def rule(value: str) -> bool:
        return compiled.fullmatch(value) is not None

    return rule


# A name defined in code: a stage, a classifier, a health check, an operation.
CODE_NAME = matching(r"[a-z][a-z0-9_]{0,39}")
# An exception's class name.
ERROR_TYPE = matching(r"[A-Za-z_][A-Za-z0-9_]{0,79}")
# Where an error happened: `cli`, `cli:monitor.metrics`, `llm:anthropic`, `db:select`,
# or a bare name (`generate`).
ERROR_CONTEXT = matching(
    r"cli(:[a-z][a-z0-9_-]{0,30}(\.[a-z][a-z0-9_-]{0,30}){0,3})?"
    r"|[a-z][a-z0-9_]{1,11}(:[a-z][a-z0-9_.-]{0,39})?"
)
# A circuit breaker's service: `database`, `llm:anthropic`.
SERVICE = matching(r"[a-z][a-z0-9_]{0,30}(:[a-z][a-z0-9_.-]{0,30})?")
# A model name as providers spell them (`claude-sonnet-4-5-20250929`, `gpt-4.1`,
# `meta-llama/Llama-3.1-8B`, `llama3:8b`): no spaces, quotes or control characters.
MODEL = matching(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")


def command_context(root: Any, args: Sequence[str]) -> str:
    """``cli:monitor.metrics`` for ``monitor metrics --period 1h``; ``cli`` when unknown.

    ``root`` is the click command tree. Only words that name a sub-command of the
    group reached so far are taken, so no argument, option value or prompt can ever
    appear in the result.
    """
    names: list[str] = []
    current = root
    skip_next = False
    for arg in args:
        commands = getattr(current, "commands", None)
        if not isinstance(commands, dict):
            break  # a leaf command: everything after it is its arguments
        if skip_next:
            skip_next = False
            continue
        if arg.startswith("-"):
            skip_next = "=" not in arg and _takes_value(current, arg)
            continue
        sub = commands.get(arg)
        if sub is None:
            break  # not a command name: stop rather than guess
        names.append(arg)
        current = sub
    return "cli:" + ".".join(names) if names else "cli"


def _takes_value(command: Any, option: str) -> bool:
    """Whether ``option`` of a group is followed by its value (``-e production``)."""
    for param in getattr(command, "params", ()):
        if option in getattr(param, "opts", ()) or option in getattr(param, "secondary_opts", ()):
            return not getattr(param, "is_flag", False) and getattr(param, "nargs", 1) != 0
    return False
