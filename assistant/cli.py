"""The ``assistant`` command: global options, sub-command groups, and error handling.

Start-up time matters (people run this in loops and scripts): this module imports
only typer and our own light modules. Anything heavy (pydantic, loguru, rich, the
LLM SDKs) is imported inside the command that needs it.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer

from assistant import __version__, cli_chat, cli_db, cli_dev
from assistant_monitoring.cli import config_cmd, monitor
from assistant_monitoring.cli.state import current_state, reset_state
from assistant_monitoring.schemas import register_migrations

_EPILOG = (
    "Exit codes: 0 ok; 1 the command found a problem or failed unexpectedly; "
    "2 invalid usage or settings; 3 a check could not run; 130 interrupted (Ctrl-C); "
    "143 terminated (SIGTERM)."
)

app = typer.Typer(
    name="assistant",
    help="A command-line AI assistant, and the toolkit that watches it.",
    epilog=_EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # locals can hold API keys
    add_completion=False,
)


def _conversation_migrations() -> list[str]:
    from assistant.storage.migrations import MIGRATIONS

    return [migration.name for migration in MIGRATIONS]


# What `monitor health` and /ready call "newer than this version" (they cannot import us).
register_migrations("conversations", _conversation_migrations)

app.command("ask")(cli_chat.ask)
app.command("chat")(cli_chat.chat)
app.add_typer(monitor.app, name="monitor")
app.add_typer(cli_db.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(cli_dev.app, name="dev")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"assistant {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    profile: str | None = typer.Option(
        None,
        "--profile",
        "-e",
        help="Profile: development, staging, production or test "
        "(default: ASSISTANT_ENV, else development).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    no_color: bool = typer.Option(False, "--no-color", help="No colors (NO_COLOR works too)."),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """A command-line AI assistant, and the toolkit that watches it.

    Settings come from .env.<profile> and the environment; see `assistant config show`.
    """
    reset_state(profile=profile, debug=debug, no_color=no_color)


def _report(message: str, *, color: bool) -> None:
    # The last sink of every error: a message quoting an argument, a URL or an SDK's
    # text is masked here whatever built it.
    prefix = "\x1b[31merror:\x1b[0m" if color else "error:"
    sys.stderr.write(f"{prefix} {_redacted(message)}\n")


# ``command`` is click's Command: typer's vendored copy or click itself, by version,
# with no one public name for both.
def _invoke(command: Any, args: list[str]) -> NoReturn:
    """Run ``command`` as click's standalone mode does, with usage errors redacted.

    Standalone mode prints a usage error itself, quoting the arguments it did not
    expect: ``assistant ask a b sk-...`` echoed the pasted key. So run it
    non-standalone and print the error through its ``show(file=...)`` into a buffer
    that goes through the shared redaction rule. Everything else is what standalone
    mode does: ``Exit`` (Ctrl-C included, as 130) comes back as its code, ``Abort``
    prints "Aborted!" and exits 1. typer.TyperException is the public base of the
    click errors typer ships (typer 0.24+ carries click inside itself).
    """
    try:
        result = command.main(args=args, prog_name="assistant", standalone_mode=False)
    except typer.TyperException as error:
        buffer = io.StringIO()
        show = getattr(error, "show", None)  # every click error has it; the base not
        if show is not None:
            show(file=buffer)
        else:
            buffer.write(f"Error: {error.format_message()}\n")
        sys.stderr.write(_redacted(buffer.getvalue()))
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        sys.exit(1)
    # An Exit's code (the commands themselves return None); standalone mode exits 0
    # after a command that returned, and callers (tests in-process) rely on it.
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)


def _redacted(text: str) -> str:
    """``text`` with key-shaped words and this profile's secrets masked.

    An error may come before the command loaded the settings (a usage error, a bad
    ``--since``): load them now, only on this path, so the configured key is known;
    settings that do not load have still registered what the environment holds.
    """
    import contextlib

    from assistant_monitoring.redact import redact_text

    with contextlib.suppress(Exception):
        current_state().load()
    return redact_text(text)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the app, turn errors into one line and an exit code.

    Ctrl-C exits 130 and SIGTERM 143, after the same cleanup as a normal exit
    (metrics flushed, logs closed).
    """
    from assistant_monitoring.errorhandling import handle_uncaught, install_signal_handlers
    from assistant_monitoring.stopping import closers

    args = list(sys.argv[1:] if argv is None else argv)
    # No loguru default sink: until a command configures logging, log lines go nowhere
    # rather than to stderr with loguru's "diagnose" variable dumps (which can hold keys).
    os.environ.setdefault("LOGURU_AUTOINIT", "False")
    install_signal_handlers()
    command = typer.main.get_command(app)
    try:
        _invoke(command, args)
    except Exception as error:
        state = current_state()
        debug = state.debug or "--debug" in args
        from assistant_monitoring.metrics.labels import command_context

        # The command path the CLI defines (cli:monitor.metrics), never the arguments:
        # it becomes a metric label, and arguments hold prompts and typed keys.
        context = command_context(command, args)
        handled = handle_uncaught(error, context=context, debug=debug)
        if debug:
            import traceback

            # Exception messages and reprs quote what they were given (a URL, an SDK
            # answer): the traceback goes through the same rule as every other line.
            sys.stderr.write(_redacted(traceback.format_exc()))
        _report(handled.message, color=state.color is not False and sys.stderr.isatty())
        state.close()
        sys.exit(handled.exit_code)
    finally:
        try:
            # The last metrics flush, here rather than at interpreter exit: a signal
            # while it waits for a lock then ends the process as a signal should
            # (143, 130), not with "Exception ignored in atexit callback".
            for close in closers():
                close()
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        finally:
            current_state().close()
