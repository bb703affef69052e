"""A test hook: the process kills itself at a named step of a multi-step operation.

Multi-step operations (retention, backup, restore, repricing) must leave the old
state or the new one whatever step a SIGKILL lands on (../shared/BAD-DAY.md). The
tests prove it by looping over the steps: with ``ASSISTANT_TEST_KILL_AT=NAME:K`` in
the environment, the K-th time the process reaches :func:`reached` ``(NAME)`` it
sends itself SIGKILL (or the signal named by a third part: ``NAME:K:TERM``).

Without the variable this is one dictionary look-up: nothing else happens.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "reached"]

ENV = "ASSISTANT_TEST_KILL_AT"
_counts: dict[str, int] = {}


def reached(name: str) -> None:
    """Mark that the operation is at step ``name``; die here if the test said so."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, rest = wanted.partition(":")
    if target != name:
        return
    count_text, _, signal_name = rest.partition(":")
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(count_text or "1"):
        signum = getattr(signal, f"SIG{signal_name.upper()}") if signal_name else signal.SIGKILL
        os.kill(os.getpid(), signum)
