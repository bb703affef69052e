"""The command-line AI assistant, instrumented by :mod:`assistant_monitoring`."""

# One version for the distribution; it lives in the toolkit (which we depend on).
from assistant_monitoring import __version__

__all__ = ["__version__"]
