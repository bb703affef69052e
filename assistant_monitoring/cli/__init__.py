"""Typer command groups owned by the toolkit: ``monitor`` and ``config``."""
