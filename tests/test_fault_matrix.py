"""Every command against every way its files can be broken: one test per cell.

The operator's bad day, as a table (../shared/BAD-DAY.md): a damaged conversations
database (junk, cut in half, zero bytes), a damaged metrics store, either one held
by another process past every timeout (an exclusive reader: nobody may even read),
a FIFO, a device or a symlink loop where either file should be, either one written
by a newer version, a data directory that is missing or is a file, a log directory
nobody may write, a log file that is a directory. Each command, in each of those,
must:

* exit within a minute: a hang is forever (a leaked non-daemon thread once kept
  `db status` alive forever; a lock holder once kept `ask` for four minutes), and a
  cell that waits a second for a lock may take several on a machine whose cores are
  all busy (a 10 s bound failed a chat cell that way);
* say what is wrong in a few lines on stderr, with no traceback and nothing
  "unexpected";
* exit with the code the README documents for that situation;
* leave the damaged file's bytes exactly as they were.

The cells run as the installed CLI in subprocesses, a fault's row at a time with
several at once (a row is one pytest-xdist group); each test then checks one cell,
so a failure names its cell.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import HEALTHY_THRESHOLDS, REPO_ROOT, installed_assistant, openai_env
from tests.helpers.locks import held
from tests.helpers.readonly import read_only_argv

SECONDS = 60
# What a held file may add to a command's time: its one wait of DATABASE_BUSY_TIMEOUT
# (1 s in those cells) and slack for load; a private 5 s timeout, or a wait per step,
# adds 10 s or more.
LOCKED_AT_MOST_SECONDS = 1 + 5
# The first cell of a row runs the whole row: 22 processes, two at a time.
pytestmark = pytest.mark.timeout(900)
MAX_STDERR_LINES = 5
_SETTING_PREFIXES = ("LLM_", "DATABASE_", "LOG_", "MONITOR", "ENABLE_", "ASSISTANT_", "HEALTH_")

# -- the commands -----------------------------------------------------------------------

COMMANDS: dict[str, list[str]] = {
    "ask": ["ask", "hello there"],
    "chat": ["chat"],
    "db-migrate": ["db", "migrate"],
    "db-status": ["db", "status", "--json"],
    "config-check": ["config", "check"],
    "health": ["monitor", "health", "--json"],
    "metrics": ["monitor", "metrics", "--json"],
    "metrics-prometheus": ["monitor", "metrics", "--format", "prometheus"],
    "runs": ["monitor", "runs", "--json"],
    "runs-show": ["monitor", "runs", "show", "{run_id}"],
    "logs": ["monitor", "logs", "--json"],
    "logs-errors": ["monitor", "logs", "--level", "error"],
    "breakers": ["monitor", "breakers", "--json"],
    "alerts": ["monitor", "alerts", "--json"],
    "usage": ["monitor", "usage", "--json"],
    "statusline": ["monitor", "statusline"],
    "dashboard": ["monitor", "dashboard", "--once"],
    "config-show": ["config", "show", "--json"],
    "db-check": ["db", "check", "--json"],
    "db-backup": ["db", "backup", "{root}/backups"],
    "db-vacuum": ["db", "vacuum"],
    "serve": ["monitor", "serve", "--port", "{port}"],
}
STDIN = {"chat": "hello there\n"}
# What runs the pipeline (and so needs the stub LLM), what opens the logs for writing.
ASKING = {"ask", "chat"}

# -- the faults -------------------------------------------------------------------------


@dataclass
class Cell:
    """One command in one fault, prepared in its own directory."""

    command: str
    fault: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    damaged: Path | None = None
    read_only: Path | None = None
    held: Path | None = None  # held by another process while the command runs

    @property
    def data(self) -> Path:
        return self.root / "data"


def _truncate(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def _junk(path: Path) -> None:
    path.write_bytes(os.urandom(32768))


def _damage(name: str, how: Callable[[Path], None]) -> Callable[[Cell], None]:
    def apply(cell: Cell) -> None:
        path = cell.data / name
        how(path)
        cell.damaged = path

    return apply


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _replace(name: str, how: Callable[[Path], None]) -> Callable[[Cell], None]:
    """Put something that is no database file where ``name`` should be."""

    def apply(cell: Cell) -> None:
        path = cell.data / name
        path.unlink()
        how(path)
        cell.damaged = path

    return apply


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path)


def _newer(name: str) -> Callable[[Cell], None]:
    """A database a newer assistant migrated: a migration this version does not know."""

    def apply(cell: Cell) -> None:
        path = cell.data / name
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('m999_future', 0)")
        # Out of WAL mode: a command that switched it back before refusing would
        # change the header's bytes, and the digest check would see it.
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        for leftover in cell.data.glob("*.db-*"):
            leftover.unlink()
        cell.damaged = path

    return apply


def _held(name: str) -> Callable[[Cell], None]:
    def apply(cell: Cell) -> None:
        cell.held = cell.data / name
        cell.damaged = cell.held
        # Short, so that waiting it out fits the cell's bound with room to spare.
        cell.env["DATABASE_BUSY_TIMEOUT"] = "1000"

    return apply


def _data_dir_missing(cell: Cell) -> None:
    shutil.rmtree(cell.data)


def _data_dir_is_file(cell: Cell) -> None:
    shutil.rmtree(cell.data)
    cell.data.write_text("not a directory\n")
    cell.damaged = cell.data


def _log_dir_unwritable(cell: Cell) -> None:
    cell.read_only = cell.data / "logs"


def _log_file_is_a_directory(cell: Cell) -> None:
    path = cell.data / "logs" / "assistant.jsonl"
    path.unlink()
    path.mkdir()
    (path / "keep").write_text("x")


FAULTS: dict[str, Callable[[Cell], None]] = {
    "none": lambda cell: None,  # the control row: what each command does when all is well
    "app-db-junk": _damage("assistant.db", _junk),
    "app-db-truncated": _damage("assistant.db", _truncate),
    "app-db-empty": _damage("assistant.db", _empty),
    "app-db-locked": _held("assistant.db"),
    "app-db-fifo": _replace("assistant.db", _fifo),
    "app-db-device": _replace("assistant.db", _device),
    "app-db-symlink-loop": _replace("assistant.db", _symlink_loop),
    "app-db-newer": _newer("assistant.db"),
    "store-junk": _damage("monitoring.db", _junk),
    "store-truncated": _damage("monitoring.db", _truncate),
    "store-locked": _held("monitoring.db"),
    "store-fifo": _replace("monitoring.db", _fifo),
    "store-device": _replace("monitoring.db", _device),
    "store-symlink-loop": _replace("monitoring.db", _symlink_loop),
    "store-newer": _newer("monitoring.db"),
    "data-dir-missing": _data_dir_missing,
    "data-dir-is-file": _data_dir_is_file,
    "log-dir-unwritable": _log_dir_unwritable,
    "log-file-is-a-directory": _log_file_is_a_directory,
}

# -- what each cell must exit with (the README's exit codes) ------------------------------
# 0 ok; 1 ran and found a problem; 2 invalid usage or settings (health: unhealthy);
# 3 health had no verdict; serve stopped by SIGTERM exits 0 (it stopped as asked).

_READERS_OF_THE_STORE = ("metrics", "metrics-prometheus", "runs", "runs-show", "breakers", "usage")
# (`config check` only logs its verdict when it can: it checks settings, not the disk.)
_WRITERS_OF_LOGS = ("ask", "chat", "db-migrate", "health", "alerts", "serve")


_MAINTAINERS = ("db-check", "db-backup", "db-vacuum")  # they open both databases


def expected_exit(command: str, fault: str) -> int:
    """The documented exit code of ``command`` in ``fault``."""
    if command == "statusline":
        return 0  # in a prompt: the line, or "?" when the store cannot be read at once
    if command in _MAINTAINERS and fault.startswith(("app-db-", "store-")):
        return 1  # refused, with the file named; nothing changed
    if command in ("db-check", "db-backup") and fault == "data-dir-missing":
        return 1  # nothing there: a problem to a check, nothing to back up
    if command == "serve":
        return (
            2
            if fault in ("data-dir-is-file", "log-dir-unwritable", "log-file-is-a-directory")
            else 0
        )
    if fault == "data-dir-is-file":
        return 3 if command == "health" else 2  # the settings name an impossible path
    if fault in ("log-dir-unwritable", "log-file-is-a-directory"):
        if command in _WRITERS_OF_LOGS:
            return 3 if command == "health" else 2  # LOG_DIR cannot be used
        if command == "logs" and fault == "log-file-is-a-directory":
            return 1  # the log to read is not a file
        return 0
    if fault.startswith("app-db-"):
        if command in ("ask", "chat", "db-migrate", "db-status"):
            return 1  # one line: the database is damaged, restore it or move it aside
        if command == "health":
            return 2  # unhealthy: the database check says why
        return 0
    if fault.startswith("store-"):
        if fault == "store-locked" and command in ASKING:
            return 1  # not answered: its run and cost could not be recorded
        if command in (*_READERS_OF_THE_STORE, "alerts", "dashboard"):
            return 1  # one line: the store is damaged
        if command == "health":
            return 2  # unhealthy: the breakers' shared state cannot be read
        return 0  # the assistant answers anyway, warning once that it is not recording
    if fault == "data-dir-missing":
        if command == "runs-show":
            return 2  # no such run (nothing was recorded yet)
        if command == "health":
            return 1  # degraded: the database is not created yet
        return 0
    return 0


# -- running the cells --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _base_env(stub_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SETTING_PREFIXES) and k not in ("ANTHROPIC_API_KEY", "NO_COLOR")
    }
    env.update(
        ASSISTANT_ENV="test",
        ASSISTANT_CONFIG_DIR=str(REPO_ROOT),
        # The OpenAI provider: a fault in a file meets the same pipeline under either
        # provider (tests/test_assistant_e2e.py runs both), and the openai SDK imports
        # in 0.8 s of CPU where anthropic's takes 1.9 s: 40 asking cells, 45 s saved.
        **openai_env(stub_url),
        LLM_API_KEY="sk-test-0000000000000000",
        LLM_MAX_RETRIES="0",
        MONITOR_FLUSH_INTERVAL="1",
        **HEALTHY_THRESHOLDS,
    )
    return env


@dataclass
class Outcome:
    """What one cell did."""

    argv: list[str]
    code: int | None
    seconds: float
    stdout: str
    stderr: str
    digest_before: str | None
    digest_after: str | None
    http: dict[str, int] = field(default_factory=dict)
    pending: bool = False  # it left monitoring.db.pending/ behind


def _digest(path: Path | None) -> str | None:
    if path is None or not os.path.lexists(path):
        return None
    if path.is_symlink():
        return f"symlink to {os.readlink(path)}"
    if path.is_dir():
        return "directory"
    if not path.is_file():
        return "not a regular file"  # a FIFO: reading it would block
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def _serve(argv: list[str], cell: Cell, port: int) -> tuple[int | None, str, str, dict[str, int]]:
    process = subprocess.Popen(
        argv,
        env=cell.env,
        cwd=cell.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    http: dict[str, int] = {}
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                http["/live"] = _get(f"http://127.0.0.1:{port}/live")
                break
            except OSError:
                time.sleep(0.1)
        if process.poll() is None and "/live" in http:
            for path in ("/ready", "/health", "/api/runs", "/metrics"):
                http[path] = _get(f"http://127.0.0.1:{port}{path}")
            process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=SECONDS)
        return process.returncode, stdout, stderr, http
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return None, stdout, stderr, http


def _run(cell: Cell, run_id: str) -> Outcome:
    port = _free_port()
    argv = [
        installed_assistant(),
        *(a.format(run_id=run_id, port=port, root=cell.root) for a in COMMANDS[cell.command]),
    ]
    if cell.read_only is not None:
        argv = read_only_argv(cell.read_only, argv)
    with held(cell.held) if cell.held is not None else contextlib.nullcontext():
        return _run_held(cell, argv, port)


def _run_held(cell: Cell, argv: list[str], port: int) -> Outcome:
    before = _digest(cell.damaged)
    started = time.monotonic()
    http: dict[str, int] = {}
    if cell.command == "serve":
        code, stdout, stderr, http = _serve(argv, cell, port)
    else:
        try:
            result = subprocess.run(
                argv,
                env=cell.env,
                cwd=cell.root,
                input=STDIN.get(cell.command, ""),
                capture_output=True,
                text=True,
                timeout=SECONDS,
                check=False,
            )
            code, stdout, stderr = result.returncode, result.stdout, result.stderr
        except subprocess.TimeoutExpired as expired:
            code = None
            stdout = str(expired.stdout or "")
            stderr = str(expired.stderr or "")
    seconds = time.monotonic() - started
    pending = (cell.data / "monitoring.db.pending").exists()
    return Outcome(
        argv, code, seconds, stdout, stderr, before, _digest(cell.damaged), http, pending
    )


def _template(root: Path, stub: StubLLMServer) -> tuple[Path, str]:
    """A data directory as real use leaves it: a conversation, runs, metrics, logs."""
    data = root / "data"
    root.mkdir(parents=True)
    env = _base_env(stub.url)
    env["ASSISTANT_DATA_DIR"] = str(data)
    for question in ("first question", "second question"):
        subprocess.run(
            [installed_assistant(), "ask", question],
            env=env,
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        )
    # Enough pages that cutting a file in half cuts into its tables.
    with sqlite3.connect(data / "assistant.db") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS padding (x TEXT)")
        conn.executemany("INSERT INTO padding VALUES (?)", [("p" * 500,)] * 400)
    conn.close()
    with sqlite3.connect(data / "monitoring.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (run_id,) = conn.execute("SELECT id FROM pipeline_runs LIMIT 1").fetchone()
        conn.execute("CREATE TABLE IF NOT EXISTS padding (x TEXT)")
        conn.executemany("INSERT INTO padding VALUES (?)", [("p" * 500,)] * 400)
    conn.close()
    for leftover in data.glob("*.db-*"):
        leftover.unlink()
    return data, str(run_id)


class Matrix:
    """The table's cells, run a fault's row at a time the first time a test asks.

    A row (every command in one fault, as many at once as there are cores) is the
    unit pytest-xdist hands a worker (each row is an xdist_group), so both cores
    share the table; each cell's test then checks what its command did."""

    def __init__(self, base: Path, stub: StubLLMServer) -> None:
        self.base = base
        self.stub = stub
        self.template, self.run_id = _template(base / "template", stub)
        self.outcomes: dict[tuple[str, str], Outcome] = {}
        self.report: list[dict[str, object]] = []

    def outcome(self, command: str, fault: str) -> Outcome:
        if (command, fault) not in self.outcomes:
            self._run_row(fault)
        return self.outcomes[command, fault]

    def _run_row(self, fault: str) -> None:
        cells = []
        for command in COMMANDS:
            root = self.base / f"{command}--{fault}"
            shutil.copytree(self.template.parent, root)
            cell = Cell(command, fault, root, env=_base_env(self.stub.url))
            cell.env["ASSISTANT_DATA_DIR"] = str(cell.data)
            FAULTS[fault](cell)
            cells.append(cell)
        # As many at once as there are cores: more only makes each cell slower.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = list(pool.map(lambda cell: _run(cell, self.run_id), cells))
        for cell, result in zip(cells, results, strict=True):
            self.outcomes[cell.command, cell.fault] = result
        self._write_report(cells, results)

    def _write_report(self, cells: list[Cell], results: list[Outcome]) -> None:
        """The table so far, for reading the messages side by side (one file per
        pytest-xdist worker: ASSISTANT_FAULT_MATRIX_REPORT with the worker's name)."""
        report = os.environ.get("ASSISTANT_FAULT_MATRIX_REPORT")
        if not report:
            return
        self.report += [
            {
                "command": c.command,
                "fault": c.fault,
                "code": r.code,
                "seconds": round(r.seconds, 2),
                "stderr": r.stderr.strip().splitlines(),
                "http": r.http,
            }
            for c, r in zip(cells, results, strict=True)
        ]
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        path = Path(report)
        if worker:
            path = path.with_name(f"{path.stem}-{worker}{path.suffix}")
        path.write_text(json.dumps(self.report, indent=1))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    """The stub LLM and the template data directory, shared by every row."""
    with StubLLMServer() as stub:
        yield Matrix(tmp_path_factory.mktemp("faults"), stub)


CELLS = [(command, fault) for fault in FAULTS for command in COMMANDS]


@pytest.mark.parametrize(
    "cell",
    [pytest.param((c, f), id=f"{c}--{f}", marks=pytest.mark.xdist_group(f)) for c, f in CELLS],
)
def test_cell(cell: tuple[str, str], matrix: Matrix) -> None:
    command, fault = cell
    if fault == "log-dir-unwritable" and os.geteuid() == 0 and shutil.which("unshare") is None:
        pytest.skip("a read-only directory as root needs unshare (util-linux)")
    outcome = matrix.outcome(command, fault)
    story = f"{' '.join(outcome.argv[-6:])}\n--- stderr ---\n{outcome.stderr}"
    assert outcome.code is not None, f"did not exit within {SECONDS} s: {story}"
    if fault.endswith("-locked"):
        # It waits the busy timeout (1 s) once: not a private timeout of its own, not
        # once per step. Measured against the same command in the "none" row, run on
        # this worker under the same load, so a busy machine does not trip it.
        calm = matrix.outcome(command, "none")
        assert outcome.seconds < calm.seconds + LOCKED_AT_MOST_SECONDS, (
            f"{outcome.seconds:.1f} s against {calm.seconds:.1f} s unlocked: {story}"
        )
    assert "Traceback" not in outcome.stderr, story
    assert "unexpected" not in outcome.stderr, story
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) <= MAX_STDERR_LINES, story
    assert outcome.code == expected_exit(command, fault), story
    assert outcome.digest_after == outcome.digest_before, f"the damaged file changed: {story}"
    # What waits there is for a store that is only locked: a damaged or newer one
    # would never take it.
    assert not outcome.pending or fault == "store-locked", story
    if fault != "none" and outcome.code != 0:
        # (db check's report, which says it, is its output: on stdout)
        assert lines or (command == "db-check" and outcome.stdout.strip()), (
            f"a failure says why: {story}"
        )
    if command == "serve" and outcome.code == 0:
        assert outcome.http["/live"] == 200, outcome.http
        broken = fault.startswith(("app-db-", "store-"))
        assert outcome.http["/ready"] == (503 if broken else 200), outcome.http
        store_broken = fault.startswith("store-")
        assert outcome.http["/api/runs"] == (503 if store_broken else 200), outcome.http
        assert outcome.http["/metrics"] == (503 if store_broken else 200), outcome.http
    if command in ASKING and expected_exit(command, fault) == 0:
        assert "stub model answering" in outcome.stdout, story


@pytest.mark.xdist_group("none")
def test_a_row_stays_on_one_worker(request: pytest.FixtureRequest) -> None:
    """Under ``--dist loadgroup`` (scripts/test.sh) a row is one xdist group.

    pytest-xdist marks a grouped test by appending ``@group`` to its node id, which
    pytest 9.2 no longer lets it do (pytest-dev/pytest-xdist#1386): the rows were
    then shared out cell by cell and every row ran on both workers, twice the work,
    with nothing failing. pyproject.toml pins pytest below 9.2 until xdist copes.
    """
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not under pytest-xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("@none"), (
        f"{request.node.nodeid}: --dist loadgroup did not group it; install the pytest "
        "that pyproject.toml's dev extra pins (pytest-dev/pytest-xdist#1386)"
    )


def test_every_cell_is_in_the_table() -> None:
    assert len(CELLS) == len(COMMANDS) * len(FAULTS)
    for command, fault in CELLS:
        assert expected_exit(command, fault) in (0, 1, 2, 3)
    assert json.dumps(sorted(FAULTS))  # the fault names are the README's
