"""Conversation storage: SQLite through aiosqlite, with migrations."""

from assistant.storage.database import Database, operation_of
from assistant.storage.migrations import MIGRATIONS, Migration
from assistant.storage.repository import Conversation, ConversationRepository, StoredMessage, new_id

__all__ = [
    "MIGRATIONS",
    "Conversation",
    "ConversationRepository",
    "Database",
    "Migration",
    "StoredMessage",
    "new_id",
    "operation_of",
]
