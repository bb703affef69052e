"""The ``assistant`` script's entry point: the fast paths first, then the full CLI.

``monitor statusline`` runs on every shell prompt; importing typer and the CLI's
modules alone takes longer than its whole budget (60 ms), so it is answered here,
before they are imported, whenever :func:`fast_main` can (see its docstring).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line in ``sys.argv``."""
    if "statusline" in sys.argv[2:5]:
        from assistant_monitoring.statusline import fast_main

        code = fast_main(sys.argv[1:])
        if code is not None:
            raise SystemExit(code)
    from assistant.cli import main as cli_main

    cli_main()
