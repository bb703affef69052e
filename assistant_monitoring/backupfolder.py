"""What a backup folder is, what its manifest may say, and when it can be trusted.

A backup is a folder ``assistant-backup-YYYYmmddTHHMMSSZ`` (``-N`` added when a
second one is made in the same second) holding ``assistant.db``, ``monitoring.db``,
``manifest.json`` and ``.made-by-assistant`` (the mark ``db backup`` writes first,
so that what a killed run leaves is known as its own). Whatever reads a folder reads
it as something an attacker or a disk may have changed:

* ``manifest.json`` is read only if it is a regular file of at most 1 MiB (a FIFO
  would block, a 1 GB file would fill memory), and only if every field has its
  type and range;
* a file it names must be a plain name inside the folder (no ``/``, no ``..``, not
  absolute) and a regular file there (no symlink out); each role once, each name
  once, the name the role's database always has;
* each file must have its recorded size and sha256, pass ``PRAGMA integrity_check``
  (read as ``immutable``: exactly the bytes that would be restored), hold the
  tables of its role (swapped files are caught even with a manifest to match), and
  record no migration this version does not know (a newer schema).

**Ours.** Pruning deletes only folders :func:`ours` recognises: the exact name
pattern, a real directory, a valid manifest that names this very folder (a copy or
a rename is not ours) and nothing in it but what a backup holds. Format 1
manifests (written before the name was recorded) count when the name pattern and
contents fit.
"""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant_monitoring.durable import CappedReadError, read_capped, sha256_of, what_is
from assistant_monitoring.errors import MonitoringError, shown
from assistant_monitoring.sqlitefile import open_immutable

PREFIX = "assistant-backup-"
MANIFEST = "manifest.json"
MARK = ".made-by-assistant"
MADE_BY = "assistant db backup"
FORMAT = 2
MANIFEST_CAP_BYTES = 1 << 20
# The file name each role always has inside a backup.
FILE_NAMES = {"conversations": "assistant.db", "metrics": "monitoring.db"}
# Tables a database of each role has from its first migration on: swapped files fail.
SIGNATURES = {
    "conversations": ("conversations", "messages"),
    "metrics": ("families", "series", "samples"),
}
WHAT = {"conversations": "conversations database", "metrics": "metrics store"}
_STAMP = r"\d{8}T\d{6}Z(?:-\d+)?"
NAME_PATTERN = re.compile(rf"{re.escape(PREFIX)}({_STAMP})")
# What a run in progress (.partial) or a removal in progress (.deleting) is called.
LEFTOVER_PATTERN = re.compile(rf"\.{re.escape(PREFIX)}{_STAMP}\.(partial|deleting)")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BackupError(MonitoringError):
    """A backup could not be made, verified or restored (exit 1)."""

    exit_code = 1


@dataclass
class FileEntry:
    """One database in a backup."""

    role: str
    name: str
    bytes: int
    sha256: str
    migrations: list[str]
    rows: dict[str, int]
    check: str = ""  # what was checked on the copy before it was recorded ("quick_check ok")


@dataclass
class Manifest:
    """What ``manifest.json`` says."""

    format: int
    version: str
    created_at: str
    files: list[FileEntry] = field(default_factory=list)
    made_by: str = MADE_BY
    name: str = ""  # the folder's own name when it was made (format 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "made_by": self.made_by,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "files": [asdict(entry) for entry in self.files],
        }

    def encode(self) -> bytes:
        return (json.dumps(self.as_json(), indent=2) + "\n").encode()


def sort_key(folder: Path) -> tuple[str, int]:
    """Backups in time order: the stamp, then the number added within one second."""
    match = NAME_PATTERN.fullmatch(folder.name)
    stamp = match.group(1) if match else folder.name
    base, _, number = stamp.partition("-")
    return base, int(number or 1)


def is_leftover_name(name: str) -> bool:
    """Whether ``name`` is what an unfinished backup or removal is called."""
    return LEFTOVER_PATTERN.fullmatch(name) is not None


# -- reading a manifest ------------------------------------------------------------------


def read_manifest(folder: Path) -> Manifest:
    """The manifest of ``folder``, once its size and every field's shape are right."""
    path = folder / MANIFEST
    try:
        data = read_capped(path, MANIFEST_CAP_BYTES)
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a backup: it has no {MANIFEST}") from None
    except CappedReadError as error:
        raise BackupError(f"{path} {error}: the backup is damaged or not one of ours") from None
    except OSError as error:
        raise BackupError(f"{path} cannot be read ({error.strerror})") from None
    try:
        document = json.loads(data)
        return _manifest_from(document)
    except RecursionError:
        raise BackupError(
            f"{path} cannot be used: it is nested too deeply to be a manifest "
            "(the backup is damaged or not one of ours)"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(
            f"{path} is not a valid manifest ({error}): the backup is damaged"
        ) from None


def _manifest_from(document: Any) -> Manifest:
    if not isinstance(document, dict):
        raise TypeError("not an object")
    form = _typed(document, "format", int)
    if form > FORMAT:
        # Read no further: a newer format may mean anything by its fields.
        version = document.get("version")
        return Manifest(form, version if isinstance(version, str) else "?", "", [])
    if form < 1:
        raise ValueError(f"format {form}")
    manifest = Manifest(
        form,
        _typed(document, "version", str),
        _typed(document, "created_at", str),
        [_entry_from(entry) for entry in _typed(document, "files", list)],
    )
    if form >= 2:
        manifest.made_by = _typed(document, "made_by", str)
        manifest.name = _typed(document, "name", str)
        if manifest.made_by != MADE_BY:
            raise ValueError(f"made_by is {manifest.made_by!r}")
    if not manifest.files:
        raise ValueError("it lists no file")
    return manifest


def _entry_from(entry: Any) -> FileEntry:
    if not isinstance(entry, dict):
        raise TypeError("a file entry is not an object")
    size = _typed(entry, "bytes", int)
    digest = _typed(entry, "sha256", str)
    migrations = _typed(entry, "migrations", list)
    rows = _typed(entry, "rows", dict)
    if size < 0:
        raise ValueError(f"bytes is {size}")
    if not _SHA256.fullmatch(digest):
        raise ValueError(f"sha256 {digest!r} is not 64 hex digits")
    if not all(isinstance(name, str) for name in migrations):
        raise TypeError("migrations must be names")
    if not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in rows.items()
    ):
        raise TypeError("rows must be counts per table")
    check = entry.get("check", "")
    return FileEntry(
        _typed(entry, "role", str),
        _typed(entry, "name", str),
        size,
        digest,
        list(migrations),
        dict(rows),
        check if isinstance(check, str) else "",
    )


def _typed(document: dict[str, Any], key: str, kind: type) -> Any:
    value = document[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key} must be {kind.__name__}, not {type(value).__name__}")
    return value


# -- trusting a folder ---------------------------------------------------------------------


def ours(folder: Path) -> Manifest | None:
    """The manifest of ``folder`` when this tool made it and it is still as made, else None.

    Cheap (no sha256, no integrity check): it decides what pruning may delete.
    """
    if NAME_PATTERN.fullmatch(folder.name) is None or folder.is_symlink() or not folder.is_dir():
        return None
    try:
        manifest = read_manifest(folder)
    except BackupError:
        return None
    if manifest.format > FORMAT or (manifest.format >= 2 and manifest.name != folder.name):
        return None  # renamed, copied, or from a newer version: not ours to delete
    if any(entry.name not in FILE_NAMES.values() for entry in manifest.files):
        return None
    expected = {MANIFEST, MARK, *(entry.name for entry in manifest.files)}
    try:
        present = {entry.name for entry in folder.iterdir()}
    except OSError:
        return None
    if not present <= expected:
        return None  # something was added: someone keeps it for a reason
    for entry in manifest.files:
        try:
            if not stat.S_ISREG((folder / entry.name).lstat().st_mode):
                return None  # a directory or a link where a database should be: not as made
        except OSError:
            return None
    return manifest


def check_entries(folder: Path, manifest: Manifest) -> None:
    """Names, roles and file kinds of the manifest's entries (no file is read)."""
    seen_roles: set[str] = set()
    seen_names: set[str] = set()
    for entry in manifest.files:
        if entry.role not in FILE_NAMES:
            raise BackupError(
                f"{folder} holds a database this version does not know ({entry.role}): "
                "upgrade assistant to restore it"
            )
        if entry.role in seen_roles:
            raise BackupError(
                f"{folder / MANIFEST} names the {WHAT[entry.role]} ({entry.role}) twice: "
                "the backup is damaged"
            )
        name = entry.name
        if not name or name in (".", "..") or "/" in name or "\\" in name or name in seen_names:
            raise BackupError(
                f"{folder / MANIFEST} names a file that is not inside the backup folder "
                f"({name!r}): every file must be a plain name inside it"
            )
        if name != FILE_NAMES[entry.role]:
            raise BackupError(
                f"{folder / MANIFEST} gives the {entry.role} role to {name} "
                f"(it is always {FILE_NAMES[entry.role]}): the roles are swapped or the "
                "backup is damaged"
            )
        seen_roles.add(entry.role)
        seen_names.add(name)
        path = folder / name
        try:
            odd = what_is(path)
        except FileNotFoundError:
            raise BackupError(f"{folder} is incomplete: {name} is missing") from None
        if odd is not None:
            raise BackupError(
                f"{path} is {odd}, not a regular file: a backup holds its files themselves"
            )


def check_sha256(path: Path, entry: FileEntry) -> None:
    """The file's size and sha256 are what its entry says."""
    if path.stat().st_size != entry.bytes or sha256_of(path) != entry.sha256:
        raise BackupError(
            f"{path} does not match the manifest (sha256 differs): the backup was altered "
            "or damaged"
        )


def check_file(
    folder: Path, entry: FileEntry, known: frozenset[str] | None, *, quick: bool = False
) -> None:
    """One file's size, sha256, integrity, tables and schema, against its entry."""
    path = folder / entry.name
    check_sha256(path, entry)
    problem, tables, applied = inspect_copy(path, quick=quick)
    if problem is not None:
        raise BackupError(f"{path} fails its integrity check ({problem})")
    # A database with no table at all was never migrated: the normal open migrates it.
    missing = [t for t in SIGNATURES[entry.role] if t not in tables] if tables else []
    if missing:
        other = next(
            (role for role, names in SIGNATURES.items() if all(t in tables for t in names)),
            None,
        )
        holds = f"it holds the {WHAT[other]}'s tables" if other else f"it lacks {missing[0]}"
        raise BackupError(
            f"{path} is not a {WHAT[entry.role]} ({holds}): the manifest's roles are swapped "
            "or the backup is damaged"
        )
    newer = sorted(set(applied) - known) if known is not None else []
    if newer:
        raise BackupError(
            f"{path} comes from a newer version of assistant (migrations "
            f"{', '.join(newer)}): upgrade assistant to restore it"
        )


def inspect_copy(path: Path, *, quick: bool) -> tuple[str | None, set[str], list[str]]:
    """(problem or None, table names, applied migrations) of a self-contained copy.

    Read as ``immutable``: only the file's own bytes count, never a ``-wal`` or
    ``-journal`` someone put beside it, since those are not what would be restored.
    """
    try:
        conn = open_immutable(path)
    except sqlite3.Error as error:
        return str(error), set(), []
    try:
        pragma = "quick_check" if quick else "integrity_check"
        results = [row[0] for row in conn.execute(f"PRAGMA {pragma}(5)")]
        if results != ["ok"]:
            return "; ".join(results), set(), []
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        applied = (
            [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]
            if "schema_migrations" in tables
            else []
        )
        return None, tables, applied
    except sqlite3.Error as error:
        return str(error), set(), []
    finally:
        conn.close()


def verify(folder: Path, *, known: dict[str, frozenset[str] | None] | None = None) -> Manifest:
    """The manifest of ``folder``, once everything in it was checked (see the module doc).

    ``known``: the migrations this version knows per role (a newer schema is refused);
    by default as :func:`assistant_monitoring.inventory.known_migrations` says.
    """
    if is_leftover_name(folder.name) or folder.name.endswith(".partial"):
        raise BackupError(
            f"{folder} is not a finished backup (one cut off, or being removed): "
            "choose another (`ls` the backup folder)"
        )
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a backup folder (make one with `assistant db backup`)")
    return verify_contents(folder, known=known)


def verify_contents(
    folder: Path, *, known: dict[str, frozenset[str] | None] | None = None
) -> Manifest:
    """:func:`verify` without the check of the folder's name."""
    manifest = read_manifest(folder)
    if manifest.format > FORMAT:
        raise BackupError(
            f"{folder} was made by a newer assistant ({shown(manifest.version)}): upgrade to "
            "restore it"
        )
    check_entries(folder, manifest)
    if known is None:
        from assistant_monitoring.inventory import known_migrations

        known = {entry.role: known_migrations(entry.role) for entry in manifest.files}
    for entry in manifest.files:
        check_file(folder, entry, known.get(entry.role))
    return manifest
