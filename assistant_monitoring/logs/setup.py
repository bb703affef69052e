"""Configure loguru from a profile: console (human), JSON-lines file, error-only file.

``configure_logging`` is called once per process by the CLI (and by anything that
embeds the toolkit). It replaces loguru's default handler, so calling it twice (a
test, a settings reload) leaves exactly one set of sinks.

Sinks, all redacting secrets:

* console: human, coloured by level, to stderr, at ``LOG_CONSOLE_LEVEL``
  (``--debug`` lowers it to DEBUG);
* ``<LOG_DIR>/assistant.jsonl``: every line at ``LOG_LEVEL`` and above;
* ``<LOG_DIR>/error.jsonl``: ERROR and above, kept apart so the failures of a week
  survive the rotation of a busy info log.

The standard library's ``logging`` (httpx, anthropic, openai, asyncio) is routed
into loguru so their warnings land in the same files.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from assistant_monitoring.errors import LogDirectoryError
from assistant_monitoring.logs.jsonformat import JsonLineFormatter
from assistant_monitoring.logs.names import ERROR_FILE_NAME, FILE_ONLY, LOG_FILE_NAME
from assistant_monitoring.logs.render import DIM, RESET, level_color
from assistant_monitoring.logs.writer import RotatingFileWriter
from assistant_monitoring.redact import redact_text

SERVICE_NAME = "assistant"

# Chatty libraries that log every request at DEBUG; their warnings still come through.
_QUIET_LIBRARIES = (
    "httpx",
    "httpcore",
    "httpx2",
    "httpcore2",
    "anthropic",
    "openai",
    "asyncio",
    "aiosqlite",
)


@dataclass
class LoggingHandle:
    """What :func:`configure_logging` set up, so callers can close and inspect it."""

    log_file: Path | None
    error_file: Path | None
    writers: list[RotatingFileWriter] = field(default_factory=list)
    handler_ids: list[int] = field(default_factory=list)

    def close(self) -> None:
        """Remove our sinks and close the files."""
        for handler_id in self.handler_ids:
            with contextlib.suppress(ValueError):  # already removed by someone else
                logger.remove(handler_id)
        for writer in self.writers:
            writer.close()
        self.handler_ids.clear()


class _InterceptHandler(logging.Handler):
    """Forward stdlib logging records to loguru (the recipe from loguru's README)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        fields: dict[str, Any] = {"stdlib_logger": record.name}
        if record.name.startswith("opentelemetry"):
            # A collector that is down makes the exporter warn every few seconds:
            # for the files, not for the terminal of someone chatting.
            fields[FILE_ONLY] = True
        logger.opt(depth=6, exception=record.exc_info).bind(**fields).log(
            level, record.getMessage()
        )


def _for_console(record: Any) -> bool:
    # Lines bound with FILE_ONLY (the CLI's uncaught-error record, whose one-line
    # summary the CLI prints itself) go to the files only.
    return not record["extra"].get(FILE_ONLY)


def _empty_format(_record: Any) -> str:
    # Our sinks render the record themselves; an empty template keeps loguru from
    # formatting a message nobody reads.
    return ""


_MACHINE_IDS = frozenset({"trace_id", "span_id"})


def render_console_line(record: Mapping[str, Any], *, color: bool, tracebacks: bool = True) -> str:
    """The human form of a record: time, level, logger, message, context, exception.

    ``tracebacks=False`` leaves the traceback to the log file (it is there either way):
    on a terminal it is shown only with ``--debug``.
    """
    level = record["level"].name
    time_text = record["time"].strftime("%H:%M:%S.%f")[:-3]
    # Only the identifiers: the structured fields (stages, durations) are for the
    # JSON file, and would drown the message on a terminal. So are the trace ids
    # (48 hex digits on every line inside a run, for machines).
    context = " ".join(
        f"{key}={value}"
        for key, value in record["extra"].items()
        if key.endswith("_id") and key not in _MACHINE_IDS
    )
    text = record["message"]
    if color:
        name = record["name"]
        shown_level = f"{level_color(level)}{level:<8}{RESET}"
        line = f"{DIM}{time_text}{RESET} {shown_level} {DIM}{name}{RESET} {text}"
        if context:
            line += f" {DIM}{context}{RESET}"
    else:
        line = f"{time_text} {level:<8} {record['name']} {text}"
        if context:
            line += f" {context}"
    exception = record["exception"]
    if exception is not None and tracebacks:
        import traceback

        line += (
            "\n"
            + "".join(
                traceback.format_exception(exception.type, exception.value, exception.traceback)
            ).rstrip()
        )
    return redact_text(line) + "\n"


def configure_logging(
    *,
    log_dir: Path | None,
    level: str,
    console_level: str,
    environment: str,
    version: str,
    max_bytes: int,
    max_files: int,
    color: bool | None = None,
    stream: TextIO | None = None,
) -> LoggingHandle:
    """Install the console and file sinks; ``log_dir=None`` means console only.

    Raises :class:`LogDirectoryError` when ``log_dir`` cannot be created or written.
    """
    logger.remove()
    out = stream if stream is not None else sys.stderr
    use_color = out.isatty() if color is None else color

    tracebacks = console_level.upper() in ("TRACE", "DEBUG")

    def console_sink(message: Any) -> None:
        out.write(render_console_line(message.record, color=use_color, tracebacks=tracebacks))

    handle = LoggingHandle(log_file=None, error_file=None)
    handle.handler_ids.append(
        logger.add(
            console_sink,
            level=console_level,
            format=_empty_format,
            colorize=False,
            filter=_for_console,
        )
    )
    if log_dir is not None:
        formatter = JsonLineFormatter(
            service=SERVICE_NAME, environment=environment, version=version
        )
        try:
            main = RotatingFileWriter(
                log_dir / LOG_FILE_NAME, max_bytes=max_bytes, max_files=max_files
            )
            errors = RotatingFileWriter(
                log_dir / ERROR_FILE_NAME, max_bytes=max_bytes, max_files=max_files
            )
        except OSError as exc:
            handle.close()
            target = exc.filename or log_dir
            fix = (
                "move that directory aside, or set LOG_DIR to another directory"
                if isinstance(exc, IsADirectoryError)
                else "set LOG_DIR or ASSISTANT_DATA_DIR to a writable directory"
            )
            raise LogDirectoryError(
                f"LOG_DIR: cannot write logs to {target} ({exc.strerror or exc}): {fix}"
            ) from None
        handle.writers += [main, errors]
        handle.log_file, handle.error_file = main.path, errors.path
        handle.handler_ids.append(
            logger.add(
                lambda message: main.write(formatter.format(message.record)),
                level=level,
                format=_empty_format,
                colorize=False,
                catch=True,
            )
        )
        handle.handler_ids.append(
            logger.add(
                lambda message: errors.write(formatter.format(message.record)),
                level="ERROR",
                format=_empty_format,
                colorize=False,
                catch=True,
            )
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handle


def configure_from_settings(
    settings: Any, *, debug: bool = False, color: bool | None = None, files: bool = True
) -> LoggingHandle:
    """Configure logging from a :class:`~assistant_monitoring.settings.Settings`."""
    from assistant_monitoring import __version__

    log = settings.logging
    return configure_logging(
        log_dir=settings.log_dir if files else None,
        level=log.level,
        console_level="DEBUG" if debug else log.console_level,
        environment=settings.profile,
        version=__version__,
        max_bytes=log.max_bytes,
        max_files=log.max_files,
        color=color,
    )
