"""Conversations and messages: what the pipeline reads and writes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from assistant.errors import ConversationNotFound
from assistant.storage.database import Database
from assistant_monitoring.killpoints import reached


@dataclass(frozen=True)
class StoredMessage:
    """A message of a conversation."""

    id: str
    conversation_id: str
    role: str
    content: str
    created_at: float
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Conversation:
    """A conversation's header."""

    id: str
    title: str
    model: str
    created_at: float
    updated_at: float


def new_id(prefix: str) -> str:
    """A short, sortable-enough unique id: ``c_3f9a1b2c4d5e``."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class ConversationRepository:
    """Reads and atomic writes of conversations."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, conversation_id: str) -> Conversation:
        """A conversation by id; ConversationNotFound when there is none."""
        rows = await self.db.execute(
            "SELECT id, title, model, created_at, updated_at FROM conversations WHERE id = ?",
            (conversation_id,),
        )
        if not rows:
            raise ConversationNotFound(
                f"no conversation '{conversation_id}': list them with `assistant monitor runs` "
                "or start a new one without --conversation"
            )
        return Conversation(*rows[0])

    async def recent_messages(self, conversation_id: str, limit: int = 20) -> list[StoredMessage]:
        """The last ``limit`` messages, oldest first."""
        rows = await self.db.execute(
            "SELECT id, conversation_id, role, content, created_at, model, input_tokens, "
            "output_tokens FROM messages WHERE conversation_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (conversation_id, limit),
        )
        return [StoredMessage(*row) for row in reversed(rows)]

    async def save_exchange(
        self,
        *,
        conversation_id: str,
        is_new: bool,
        model: str,
        user: StoredMessage,
        answer: StoredMessage,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """Store the question and its answer (and a new conversation) in one transaction."""
        now = time.time()
        async with self.db.transaction() as conn:
            if is_new:
                title = (
                    user.content.strip().splitlines()[0][:80]
                    if user.content.strip()
                    else "untitled"
                )
                await conn.execute(
                    "INSERT INTO conversations (id, title, model, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (conversation_id, title, model, now, now),
                )
            else:
                await conn.execute(
                    "UPDATE conversations SET updated_at = ?, model = ? WHERE id = ?",
                    (now, model, conversation_id),
                )
            await conn.executemany(
                "INSERT INTO messages (id, conversation_id, role, content, created_at, model, "
                "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        user.id,
                        conversation_id,
                        "user",
                        user.content,
                        user.created_at,
                        None,
                        0,
                        0,
                        0,
                        0,
                    ),
                    (
                        answer.id,
                        conversation_id,
                        "assistant",
                        answer.content,
                        answer.created_at,
                        model,
                        answer.input_tokens,
                        answer.output_tokens,
                        cache_read_tokens,
                        cache_write_tokens,
                    ),
                ],
            )

    async def prune(self, idle_since: float, *, budget: float = 0.1, batch: int = 500) -> int:
        """Delete conversations not updated since ``idle_since``, with their messages.

        In batches, each a short write transaction, until none is left or ``budget``
        seconds have gone (an ``ask`` never lingers on a backlog: the next one goes
        on). Returns the conversations deleted.
        """
        deadline = time.monotonic() + budget
        deleted = 0
        while True:
            async with self.db.transaction() as conn:
                ids = await conn.execute(
                    "SELECT id FROM conversations WHERE updated_at < ? LIMIT ?",
                    (idle_since, batch),
                )
                if ids:
                    marks = ",".join("?" * len(ids))
                    values = [row[0] for row in ids]
                    # messages first: the same transaction, whatever foreign_keys says
                    await conn.execute(
                        f"DELETE FROM messages WHERE conversation_id IN ({marks})", values
                    )
                    reached("conversations.deleting")  # a kill here: the batch rolls back
                    await conn.execute(f"DELETE FROM conversations WHERE id IN ({marks})", values)
            reached("conversations.deleted")
            deleted += len(ids)
            if len(ids) < batch or time.monotonic() >= deadline:
                return deleted

    async def count(self) -> tuple[int, int]:
        """(conversations, messages) stored."""
        conversations = await self.db.execute("SELECT count(*) FROM conversations")
        messages = await self.db.execute("SELECT count(*) FROM messages")
        return int(conversations[0][0]), int(messages[0][0])
