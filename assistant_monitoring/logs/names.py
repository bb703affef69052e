"""File names of the logs (a module of its own: readers need them without loguru)."""

LOG_FILE_NAME = "assistant.jsonl"
ERROR_FILE_NAME = "error.jsonl"
# Bound to a record that goes to the files only, never the terminal (the CLI prints
# its own one-line summary of what the record says).
FILE_ONLY = "_file_only"
