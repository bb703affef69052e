"""MONITOR_PRICES_FILE on a bad day: what is not a file, too big, half-written, from the
future, or holds a price that would make a stored figure non-finite.

Each is refused when the settings are loaded: ``config check`` says so (exit 2, the
settings error format) and every command that would price anything fails fast with
the same line, before opening what is not a regular file and before reading more
than the cap. The commands that could hang or eat the machine's memory (a FIFO,
``/dev/zero``) run as subprocesses with a memory limit and a timeout, so a
regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.errors import UsageError
from assistant_monitoring.pricing import ModelPrice, PriceTable, load_price_file
from tests.conftest import installed_assistant, run_main, subprocess_env

# The documented limits (README, MONITOR_PRICES_FILE): a contract, so written out here.
MAX_PRICE_FILE_BYTES = 1024 * 1024
MAX_PRICE_USD_PER_MTOK = 10_000.0


def test_the_limits_are_the_documented_ones() -> None:
    from assistant_monitoring import pricing

    assert getattr(pricing, "MAX_PRICE_FILE_BYTES", None) == MAX_PRICE_FILE_BYTES
    assert getattr(pricing, "MAX_PRICE_USD_PER_MTOK", None) == MAX_PRICE_USD_PER_MTOK


# -- files that are not price files ------------------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "prices.fifo"
    os.mkfifo(path)
    return path


def _loop(tmp_path: Path) -> Path:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.symlink_to(second)
    second.symlink_to(first)
    return first


def _dangling(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.symlink_to(tmp_path / "gone.json")
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "prices.d"
    path.mkdir()
    return path


def _huge(tmp_path: Path) -> Path:
    # Sparse: 34 MiB on the file system's word, no disk used.
    path = tmp_path / "prices.json"
    with path.open("wb") as file:
        file.truncate(34 * 1024 * 1024)
    return path


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nowhere.json"


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "device": (lambda _: Path("/dev/zero"), "is a character device, not a regular file"),
    "fifo": (_fifo, "is a named pipe (FIFO), not a regular file"),
    "directory": (_directory, "is a directory, not a regular file"),
    "symlink loop": (_loop, "is a loop of symbolic links"),
    "dangling symlink": (_dangling, "is a symbolic link to a missing file"),
    "too big": (_huge, "is 35,651,584 bytes; a price file may be at most 1,048,576 bytes (1 MiB)"),
    "missing": (_missing, "does not exist"),
}


def _problem_line(err: str) -> str:
    (line,) = [line.strip() for line in err.splitlines() if "MONITOR_PRICES_FILE" in line]
    return line


@pytest.mark.parametrize("kind", BAD_FILES)
def test_config_check_refuses_what_is_not_a_price_file(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make, problem = BAD_FILES[kind]
    path = make(tmp_path)
    monkeypatch.setenv("MONITOR_PRICES_FILE", str(path))
    code, out, err = run_main(capsys, "config", "check")
    assert code == 2, (out, err)
    assert _problem_line(err) == f"MONITOR_PRICES_FILE: {problem} (got '{path}')"
    assert "Traceback" not in err
    code, out, _ = run_main(capsys, "config", "check", "--json")
    assert code == 2
    assert json.loads(out)["problems"] == [f"MONITOR_PRICES_FILE: {problem} (got '{path}')"]


def _limited() -> None:
    # Before the fix /dev/zero was read to the end: let that be a MemoryError in this
    # child, not the shared machine's memory.
    limit = 1024 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run_limited(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_assistant(), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=60,  # a FIFO opened for reading blocks forever: this is "never"
        check=False,
        preexec_fn=_limited,
    )


@pytest.mark.parametrize("kind", ["device", "fifo", "too big", "symlink loop"])
def test_every_command_that_prices_fails_fast_with_the_same_line(kind: str, tmp_path: Path) -> None:
    make, problem = BAD_FILES[kind]
    path = make(tmp_path)
    line = f"MONITOR_PRICES_FILE: {problem} (got '{path}')"
    with StubLLMServer() as stub:
        env = {
            "MONITOR_PRICES_FILE": str(path),
            "LLM_BASE_URL": stub.url,
            "LLM_API_KEY": "sk-test-key-0000000000000000",
        }
        for args in (("ask", "hello"), ("monitor", "usage"), ("monitor", "metrics")):
            result = _run_limited(*args, **env)
            assert result.returncode == 2, (args, result.stderr)
            assert _problem_line(result.stderr) == line, (args, result.stderr)
            assert "Traceback" not in result.stderr
        assert stub.requests == [], "refused before any call to the model"


def test_the_cap_holds_on_the_read_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that grows between the size check and the read is not read past the cap."""
    path = tmp_path / "prices.json"
    path.write_text('{"m": {"input": 1, "output": 2}}')
    real_open = os.open
    reads: list[int] = []

    def growing_open(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(name) == path:
            # Another process appends after our stat(), before our read.
            with path.open("a") as file:
                file.write(" " * (3 * MAX_PRICE_FILE_BYTES))
        fd = real_open(name, flags, *args, **kwargs)
        reads.append(fd)
        return fd

    monkeypatch.setattr(os, "open", growing_open)
    with pytest.raises(UsageError, match="a price file may be at most 1,048,576 bytes"):
        load_price_file(path)
    assert reads, "read through os.open, so the growth happened after the size check"


# -- numbers -------------------------------------------------------------------------


ABSURD = {
    "1e308": "1e308",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "NaN": "NaN",
    "1e400 (inf once parsed)": "1e400",
    "negative": "-1",
    "10^12": "1000000000000",
    "just above the cap": str(MAX_PRICE_USD_PER_MTOK + 0.5),
    "huge integer": "9" * 400,
    "a string": '"3"',
    "a boolean": "true",
    "null": "null",
}


@pytest.mark.parametrize("literal", ABSURD.values(), ids=list(ABSURD))
def test_absurd_prices_are_refused_at_load(
    literal: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"claude-sonnet-4-5": {"input": ' + literal + ', "output": 15}}')
    with pytest.raises(UsageError) as raised:
        load_price_file(path)
    message = str(raised.value)
    assert message.startswith("MONITOR_PRICES_FILE: 'claude-sonnet-4-5' input: ")
    assert message.endswith(f"(got '{path}')")
    assert "\n" not in message
    monkeypatch.setenv("MONITOR_PRICES_FILE", str(path))
    code, _, err = run_main(capsys, "config", "check")
    assert code == 2
    assert _problem_line(err) == message


def test_ask_with_an_infinite_price_refuses_before_calling_the_model(tmp_path: Path) -> None:
    """It printed "$nan" and stored a NULL cost; now the price never gets that far."""
    path = tmp_path / "prices.json"
    path.write_text('{"claude-haiku-4-5": {"input": Infinity, "output": 5}}')
    with StubLLMServer() as stub:
        result = _run_limited(
            "ask",
            "hello",
            MONITOR_PRICES_FILE=str(path),
            LLM_MODEL="claude-haiku-4-5",
            LLM_BASE_URL=stub.url,
            LLM_API_KEY="sk-test-key-0000000000000000",
        )
        assert stub.requests == []
    assert result.returncode == 2, result.stderr
    assert "nan" not in result.stdout.lower()
    assert _problem_line(result.stderr) == (
        "MONITOR_PRICES_FILE: 'claude-haiku-4-5' input: must be a number from 0 to 10000 "
        f"USD per million tokens, not Infinity (got '{path}')"
    )


@pytest.mark.parametrize("price", [0, 0.0, 1e-9, 3, MAX_PRICE_USD_PER_MTOK])
def test_zero_and_prices_up_to_the_cap_are_valid(price: float, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"m": {"input": price, "output": price, "cache_read": price}}))
    assert load_price_file(path)["m"].output == price


def test_the_cap_keeps_every_stored_figure_finite() -> None:
    """The largest price times the most tokens SQLite can hold, summed over as many
    runs as a store can hold, is still a finite number of dollars."""
    most = ModelPrice(*(MAX_PRICE_USD_PER_MTOK,) * 5)
    tokens = 2**63 - 1  # SQLite's largest integer
    cost = most.cost(
        input=tokens, output=tokens, cache_read=tokens, cache_write=tokens, cache_write_1h=tokens
    )
    assert math.isfinite(cost)
    assert math.isfinite(cost * 2**64), "summed over more runs than a file can hold"
    assert math.isfinite(most.cache_savings(cache_read=tokens, cache_write=tokens))


# -- shape: half-written, from the future, typos ------------------------------------


GOOD = json.dumps(
    {"version": 1, "my-model": {"input": 1.0, "output": 2.0}, "gpt-4.1": {"input": 2, "output": 8}},
    indent=2,
)


def test_a_good_file_with_its_version_loads(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(GOOD)
    prices = load_price_file(path)
    assert set(prices) == {"my-model", "gpt-4.1"}
    assert PriceTable.with_overrides(path).price("my-model") == ModelPrice(1.0, 2.0, 0.0, 0.0, 2.0)


@pytest.mark.parametrize("cut", [1, 20, len(GOOD) // 2, len(GOOD) - 1])
def test_half_written_json_names_the_position(
    cut: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(GOOD[:cut])
    monkeypatch.setenv("MONITOR_PRICES_FILE", str(path))
    code, _, err = run_main(capsys, "config", "check")
    assert code == 2
    line = _problem_line(err)
    assert line.startswith("MONITOR_PRICES_FILE: is not valid JSON (")
    assert re.search(r" at line \d+, column \d+\)", line), line
    assert line.endswith(f"(got '{path}')")


SHAPES = {
    "from the future": (
        '{"version": 2, "m": {"input": 1, "output": 2}}',
        "is price file version 2; this assistant reads version 1 (upgrade the assistant)",
    ),
    "a version that is no number": ('{"version": "1"}', "'version' must be 1"),
    "not an object": ("[1, 2]", "must hold a JSON object of model prices"),
    "an entry that is no object": (
        '{"m": 3}',
        '\'m\' must be an object such as {"input": 3, "output": 15}',
    ),
    "a typo in a price name": (
        '{"m": {"input": 1, "output": 2, "cache_raed": 1}}',
        "'m' has an unknown price 'cache_raed' "
        "(known: input, output, cache_read, cache_write, cache_write_1h)",
    ),
    "no output price": (
        '{"m": {"input": 1}}',
        "'m' needs 'input' and 'output' prices (USD per million tokens)",
    ),
    "a model twice": (
        '{"m": {"input": 1, "output": 2}, "m": {"input": 9, "output": 9}}',
        "'m' appears twice",
    ),
    "an empty model name": ('{"": {"input": 1, "output": 2}}', "a model name must not be empty"),
    "deeply nested": ("[" * 100_000, "is nested too deeply"),
    "not UTF-8": ('{"m\xff": {}}', "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", SHAPES, ids=list(SHAPES))
def test_bad_shapes_are_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, problem = SHAPES[case]
    path = tmp_path / "prices.json"
    path.write_bytes(text.encode("latin-1"))
    monkeypatch.setenv("MONITOR_PRICES_FILE", str(path))
    code, _, err = run_main(capsys, "config", "check")
    assert code == 2, err
    line = _problem_line(err)
    assert line.startswith(f"MONITOR_PRICES_FILE: {problem}"), line
    assert line.endswith(f"(got '{path}')")
    assert "Traceback" not in err
