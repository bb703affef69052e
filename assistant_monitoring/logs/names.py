"""File names of the logs (a module of its own: readers need them without loguru)."""

LOG_FILE_NAME = "assistant.jsonl"
ERROR_FILE_NAME = "error.jsonl"
