"""A store held by another process: one documented timeout, signals act at once.

Found on a bad day: `ask` while another process held a write lock on monitoring.db
answered after 83 s and exited after 240 s (the store had its own 10 s busy timeout
times 8 retries, whatever DATABASE_BUSY_TIMEOUT said), SIGTERM and Ctrl-C were not
acted on while it waited, and the run was then missing from the runs table.

Now every open, read and write waits DATABASE_BUSY_TIMEOUT in all, in short slices
between which the process's signal handlers run; a command that cannot get the lock
gives up with one line naming the file; SIGTERM ends it within a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import installed_assistant, openai_env, run_assistant, subprocess_env
from tests.helpers.locks import held

BUSY_MS = 1000
# The bound the issue sets: the busy timeout plus 2 s, plus a process's start-up on a
# machine whose cores are all busy (generous: what this catches is a wait of minutes).
ENDS_WITHIN = BUSY_MS / 1000 + 2 + 12
# The README says within a second; a process on a busy machine may take a few more to
# write what it counted and exit. Under 5 s: a wait inside SQLite's own busy handler
# (5 s, deaf to signals) fails it, as does a signal ignored for minutes.
SIGTERM_WITHIN = 4.5


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        # The OpenAI provider: a lock meets the same pipeline under either provider,
        # and its SDK imports in 0.8 s of CPU where anthropic's takes 1.9 s.
        for name, value in openai_env(server.url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("LLM_API_KEY", "sk-test-0000000000000000")
        monkeypatch.setenv("DATABASE_BUSY_TIMEOUT", str(BUSY_MS))
        yield server


@pytest.fixture
def ready_store(answered_once: Path, stub: StubLLMServer) -> Path:
    """Both databases made and migrated by one answered question."""
    return answered_once / "monitoring.db"


@pytest.mark.parametrize("how", ["writer", "reader"])
def test_ask_gives_up_within_the_busy_timeout(ready_store: Path, how: str) -> None:
    with held(ready_store, how):
        started = time.monotonic()
        result = run_assistant("ask", "are you there?", timeout=120)
        took = time.monotonic() - started
    assert took < ENDS_WITHIN, f"took {took:.1f} s: {result.stderr}"
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert any(str(ready_store) in line and "locked" in line for line in lines), lines
    # Nothing was spent that could not be recorded: the model was never asked.
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("how", ["writer", "reader"])
@pytest.mark.parametrize(
    "command",
    [
        ["monitor", "runs", "--json"],
        ["monitor", "metrics", "--json"],
        ["monitor", "breakers", "--json"],
        ["monitor", "usage", "--json"],
        ["monitor", "alerts", "--json"],
    ],
    ids=lambda c: "-".join(c) if isinstance(c, list) else c,
)
def test_monitor_commands_give_up_within_the_busy_timeout(
    ready_store: Path, how: str, command: list[str]
) -> None:
    with held(ready_store, how):
        started = time.monotonic()
        result = run_assistant(*command, timeout=120)
        took = time.monotonic() - started
    assert took < ENDS_WITHIN, f"took {took:.1f} s: {result.stderr}"
    assert "Traceback" not in result.stderr
    if how == "reader" or result.returncode != 0:
        # An exclusive reader blocks every reader: the command says so and fails.
        assert result.returncode == 1, (result.returncode, result.stderr)
        assert "locked" in result.stderr
        assert str(ready_store) in result.stderr


WAITERS = [
    ["ask", "are you there?"],
    ["chat"],
    ["monitor", "runs"],
    ["monitor", "usage"],
    ["monitor", "health"],
    ["monitor", "alerts"],
    ["monitor", "dashboard", "--once"],
    ["db", "check"],
    ["db", "backup"],
    ["db", "vacuum"],
]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("command", WAITERS, ids="-".join)
def test_a_signal_ends_a_command_waiting_for_a_lock_at_once(
    ready_store: Path, signum: int, command: list[str]
) -> None:
    with held(ready_store, "reader"):
        _signalled_while_waiting(command, signum, ready_store)


def _signalled_while_waiting(
    command: list[str], signum: int, store: Path, settle: float = 0.3
) -> str:
    """Start ``command`` (a lock wait of a minute), signal it once it waits, and check
    that it ended within SIGTERM_WITHIN with the signal's exit code; its stderr."""
    process = subprocess.Popen(
        [installed_assistant(), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        env=subprocess_env(DATABASE_BUSY_TIMEOUT="60000"),
    )
    _wait_until_waiting(process, store, settle)
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("the command ignored the signal while waiting for a lock") from None
    took = time.monotonic() - sent
    assert took < SIGTERM_WITHIN, f"took {took:.1f} s after the signal"
    assert process.returncode == (143 if signum == signal.SIGTERM else 130), stderr
    assert "Traceback" not in stderr
    return stderr


def _wait_until_waiting(process: subprocess.Popen[str], store: Path, settle: float) -> None:
    """Until the command has the held store open (it has started and is meeting the
    lock, which it waits for a minute), then ``settle`` seconds more; was a blind 4 s."""
    fds = Path(f"/proc/{process.pid}/fd")
    deadline = time.monotonic() + 60  # start-up on a busy machine; a hang is forever
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        with contextlib.suppress(OSError):  # a descriptor closed while listed
            if any(os.readlink(fd) == str(store) for fd in fds.iterdir()):
                time.sleep(settle)  # from the first open into the wait itself
                return
        time.sleep(0.05)
    raise AssertionError(f"{process.args!r} never opened {store}")


def test_the_busy_timeout_is_the_whole_wait_in_process(tmp_path: Path) -> None:
    """One open-and-write waits DATABASE_BUSY_TIMEOUT in all, not per retry."""
    from assistant_monitoring.metrics.store import MetricsStore, StoreError

    path = tmp_path / "monitoring.db"
    MetricsStore(path).connect()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = MetricsStore(path, busy_timeout_ms=1000)
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"), store.transaction():
            pass
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert 0.9 <= took < 5, took


def _wait_for_generate(data_dir: Path, process: subprocess.Popen[str]) -> None:
    """Until the run is in its generate stage (both classifiers have logged)."""
    path = data_dir / "logs" / "assistant.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        text = path.read_text() if path.exists() else ""
        if text.count('"event":"classification"') >= 3:  # the warm-up logged two
            return
        time.sleep(0.02)
    raise AssertionError(f"the run never reached its generate stage (exit {process.poll()})")


def test_a_run_that_meets_a_lock_at_its_end_is_kept_and_recorded_later(
    data_dir: Path, ready_store: Path, stub: StubLLMServer
) -> None:
    """The lock comes after the question was asked: the answer is not thrown away, and
    neither are its run and its metrics: they wait in monitoring.db.pending/ for the
    next command, which adds them in once."""
    import json

    stub.plan.latency = 1.5
    process = subprocess.Popen(
        [installed_assistant(), "ask", "a question that meets a lock"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    _wait_for_generate(data_dir, process)
    with held(ready_store, "writer"):
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "stub model answering" in stdout
    assert "recorded by the next command" in stderr
    # The run, and what the process counted (its exit flush met the lock too).
    pending = sorted(p.name[:4] for p in (data_dir / "monitoring.db.pending").glob("*.json"))
    assert pending == ["metr", "run_"], pending

    stub.plan.latency = 0
    assert run_assistant("ask", "the next one", timeout=120).returncode == 0
    assert list((data_dir / "monitoring.db.pending").glob("*.json")) == []
    runs = json.loads(run_assistant("monitor", "runs", "--json").stdout)["runs"]
    assert [run["status"] for run in runs] == ["success"] * 3
    usage = json.loads(run_assistant("monitor", "usage", "--json").stdout)
    assert usage["totals"]["runs"] == 3, usage["totals"]
    pipeline = json.loads(run_assistant("monitor", "metrics", "--json").stdout)["pipeline"]
    assert (pipeline["runs"], pipeline["duration_seconds"]["count"]) == (3, 3), pipeline


def test_spooled_deltas_are_added_exactly_once(tmp_path: Path) -> None:
    """A kill between the merge's commit and the file's removal must not count twice;
    a file that is not one we wrote whole is left alone."""
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.registry import MetricsRegistry
    from assistant_monitoring.metrics.runtime import MetricsRuntime
    from assistant_monitoring.metrics.store import MetricsStore

    path = tmp_path / "monitoring.db"

    def counted() -> float:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            row = conn.execute(
                "SELECT t.value FROM totals t JOIN series s ON s.id = t.series_id "
                "WHERE s.family = 'assistant_pipeline_runs_total'"
            ).fetchone()
        return float(row[0]) if row else 0.0

    def flush_one() -> MetricsStore:
        instrumentation = Instrumentation(MetricsRegistry())
        instrumentation.metrics.pipeline_runs.labels("success").inc()
        store = MetricsStore(path)
        assert MetricsRuntime(instrumentation, store).flush()
        return store

    flush_one().close()
    spooler = Instrumentation(MetricsRegistry())
    spooler.metrics.pipeline_runs.labels("success").inc(5)
    store = MetricsStore(path)
    registry = spooler.registry
    first = store.spool(registry.families(), registry.take_deltas())
    spooler.metrics.pipeline_runs.labels("success").inc(7)
    second = store.spool(registry.families(), registry.take_deltas())
    store.close()
    # `second` was merged already by a process killed before it removed the file.
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, '0')", (f"pending:{second.name}",))
    foreign = first.with_name("metrics-1-000000000000.json")
    foreign.write_text('{"recorded_at": 1, "families": [')
    flush_one().close()
    assert counted() == 1 + 5 + 1
    assert not first.exists()
    assert not second.exists()
    assert foreign.with_name(foreign.name + ".bad").exists(), "not ours whole: set aside"
    flush_one().close()
    assert counted() == 1 + 5 + 1 + 1


def _run_row(store: Path, run_id: str, **changes: object) -> list[object]:
    """A pending run as the spool writes it: the table's columns, in the table's order."""
    from assistant_monitoring.runs import RunRecord

    with contextlib.closing(sqlite3.connect(store)) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(pipeline_runs)")]
    base = RunRecord(run_id, started_at=time.time() - 5, finished_at=time.time(), status="success")
    row: dict[str, object] = {
        **{name: getattr(base, name) for name in names},
        "stages": "[]",
        "classifiers": "{}",
    }
    row.update(changes)
    return [row[name] for name in names]


def test_a_bad_pending_file_is_set_aside_and_recording_goes_on(tmp_path: Path) -> None:
    """Found by a hostile try: one bad file in monitoring.db.pending/ (a dict where text
    goes, NaN, a count too big for SQLite, broken JSON in stages) stopped every run from
    being recorded, in every process, until someone deleted it."""
    import json

    from assistant_monitoring.metrics.store import MetricsStore
    from assistant_monitoring.runs import RunRecord, RunStore

    path = tmp_path / "monitoring.db"
    MetricsStore(path).connect()
    store = RunStore(path)
    folder = store.pending_dir
    folder.mkdir()
    poison = {
        "run_dict": _run_row(path, "run_dict", model={"a": 1}),
        "run_nan": _run_row(path, "run_nan", started_at=float("nan")),
        "run_huge": _run_row(path, "run_huge", input_tokens=10**30),
        "run_stages": _run_row(path, "run_stages", stages="{{{not json"),
        "run_inf": _run_row(path, "run_inf", cost_usd=1e308),
        "run_named": _run_row(path, "run_other"),
    }
    for name, row in poison.items():
        (folder / f"{name}.json").write_text(json.dumps(row))
    (folder / "run_cut.json").write_text('["run_cut", 1')
    escape = folder / "run\x1b]0;pwned\x07.json"
    escape.write_text(json.dumps(_run_row(path, "run\x1b]0;pwned\x07")))
    secret = "sk-ant-api03-" + "S" * 40
    (folder / "run_good.json").write_text(
        json.dumps(_run_row(path, "run_good", error_message=f"failed with {secret}"))
    )
    assert store.record(RunRecord("run_now", started_at=time.time(), status="success"))
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = dict(conn.execute("SELECT id, error_message FROM pipeline_runs").fetchall())
    assert set(rows) == {"run_now", "run_good"}
    assert secret not in str(rows["run_good"])
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(
        [*(f"{name}.json.bad" for name in poison), "run_cut.json.bad", escape.name]
    )


@pytest.mark.parametrize(
    "command",
    [["ask", "hi"], ["chat"], ["monitor", "alerts"], ["monitor", "health"]],
    ids="-".join,
)
def test_a_command_waits_out_a_lock_once_not_at_every_step(
    ready_store: Path, command: list[str]
) -> None:
    """Found by a hostile try: each step of a command (the first open, a breaker write,
    the run, the exit flush) waited the whole busy timeout again: 2-4x in all."""
    # Under `monitor health`'s 5 s check timeout: with a longer busy timeout the check's
    # thread still waits when the exit flush begins its own wait (noticed in issue 22,
    # not fixed: see the note).
    busy = 4000
    with held(ready_store, "reader"):
        started = time.monotonic()
        result = run_assistant(
            *command, stdin="hello\n", timeout=120, DATABASE_BUSY_TIMEOUT=str(busy)
        )
        took = time.monotonic() - started
    assert "Traceback" not in result.stderr
    # Less than two waits: the bug waited at least twice. That leaves a whole busy
    # timeout (4 s) for the process's start-up and work on a busy machine.
    assert took < 2 * busy / 1000, f"{took:.1f} s: {result.stderr}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_exit_flush_ends_cleanly_and_keeps_the_metrics(
    ready_store: Path, data_dir: Path, signum: int
) -> None:
    """Found by a hostile try: SIGTERM while the exit flush waited for a lock printed a
    traceback ('Exception ignored in atexit callback'), sometimes exited 1, and lost
    what the process had counted."""
    with held(ready_store, "writer"):  # readers go on; the exit flush must wait
        # Two seconds after its first open: its checks are done, its exit flush waits.
        stderr = _signalled_while_waiting(
            ["monitor", "health", "--json"], signum, ready_store, settle=2.0
        )
    assert "Exception ignored" not in stderr
    assert list((data_dir / "monitoring.db.pending").glob("metrics-*.json")), "metrics kept"


def test_only_a_lock_sends_metrics_to_the_pending_folder(data_dir: Path) -> None:
    """A store from a newer version (or a damaged one) is not going to take them later:
    spooling there only grew a folder by a file per command."""
    data_dir.mkdir(parents=True)
    store = data_dir / "monitoring.db"
    conn = sqlite3.connect(store, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    conn.execute("INSERT INTO schema_migrations VALUES ('m999_future', 0)")
    conn.close()
    for _ in range(2):
        run_assistant("monitor", "health", "--json", timeout=60)
    assert not (data_dir / "monitoring.db.pending").exists()


def test_db_check_shows_what_waits_and_what_was_set_aside(ready_store: Path) -> None:
    """Found by a hostile try: files left for a person were never shown to one."""
    import json

    folder = ready_store.with_name("monitoring.db.pending")
    folder.mkdir()
    (folder / "run_0123456789ab.json").write_text("[]")
    (folder / "run_junk.json.bad").write_text("junk")
    document = json.loads(run_assistant("db", "check", "--json").stdout)
    assert document["pending"]["runs"] == 1
    assert document["pending"]["set_aside"] == ["run_junk.json.bad"]
    text = run_assistant("db", "check").stdout
    assert "1 runs, 0 metric flushes" in text
    assert "run_junk.json.bad" in text
