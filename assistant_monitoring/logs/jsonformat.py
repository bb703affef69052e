"""Turn a loguru record into one flat JSON line.

The shape is what hl, lnav and jq read without configuration::

    {"ts":"2026-11-23T13:40:01.123456Z","level":"INFO","msg":"...","logger":"assistant.pipeline",
     "service":"assistant","environment":"production","version":"0.1.0","pid":4242,
     "conversation_id":"c1","message_id":"m7","exception":"Traceback ..."}

Every line costs this function, so it avoids loguru's ``serialize=True`` (which
builds a nested record and serialises it twice over) and caches the parts that do
not change: the static fields, and the timestamp's date-and-seconds prefix.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any

from assistant_monitoring.redact import redact_text

RESERVED_FIELDS = frozenset(
    {
        "ts",
        "level",
        "msg",
        "logger",
        "service",
        "environment",
        "version",
        "pid",
        "exception",
        "exc_type",
    }
)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class JsonLineFormatter:
    """Format loguru records as redacted JSON lines (bytes, newline-terminated)."""

    def __init__(self, *, service: str, environment: str, version: str) -> None:
        self._static = {
            "service": service,
            "environment": environment,
            "version": version,
        }
        self._second = -1
        self._second_prefix = ""

    def _timestamp(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._second_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micros = int((epoch - second) * 1_000_000)
        return f"{self._second_prefix}.{micros:06d}Z"

    def format(self, record: Mapping[str, Any]) -> bytes:
        """Return the JSON line for ``record`` with secrets redacted."""
        data: dict[str, Any] = {
            "ts": self._timestamp(record["time"].timestamp()),
            "level": record["level"].name,
            "msg": record["message"],
            "logger": record["name"],
        }
        data.update(self._static)
        data["pid"] = os.getpid()  # per line: correct in a forked child too
        extra = record["extra"]
        if extra:
            for key, value in extra.items():
                if key.startswith("_"):
                    continue  # routing flags for the sinks, not context
                data[f"extra_{key}" if key in RESERVED_FIELDS else key] = value
        exception = record["exception"]
        if exception is not None:
            data["exception"] = "".join(
                traceback.format_exception(exception.type, exception.value, exception.traceback)
            ).rstrip()
            data["exc_type"] = exception.type.__name__ if exception.type else None
        return (redact_text(_encode(data)) + "\n").encode("utf-8")
