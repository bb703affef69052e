"""``python -m assistant`` runs the same command as the ``assistant`` script."""

from assistant.launcher import main

main()
