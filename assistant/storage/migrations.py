"""Named, ordered, idempotent migrations of the assistant database.

Add a migration by appending ``Migration("m00N_what", (...statements...))``; never
edit one that has shipped. Each runs in its own transaction and is recorded in
``schema_migrations``, so running ``assistant db migrate`` twice does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema change."""

    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "m001_initial",
        (
            """CREATE TABLE conversations (
                id TEXT PRIMARY KEY,
                title TEXT NOT NULL,
                model TEXT NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            """CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
                role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
                content TEXT NOT NULL,
                created_at REAL NOT NULL,
                model TEXT,
                input_tokens INTEGER NOT NULL DEFAULT 0,
                output_tokens INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at)",
        ),
    ),
    Migration(
        "m002_cache_tokens",
        (
            "ALTER TABLE messages ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE messages ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        "m003_conversations_by_time",
        # For retention (DATABASE_RETENTION_DAYS): the idle conversations, found fast.
        ("CREATE INDEX conversations_by_updated ON conversations (updated_at)",),
    ),
)
