"""The deploy configs give `monitor serve` the limits it needs (issue 21).

Read, not run: the systemd unit, pm2's ecosystem file, the Dockerfile and compose.yaml
each carry the open-file limit (or the connection count it is computed from) and a
memory ceiling above what the server is documented to use.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from assistant_monitoring.server.app import RSS_CEILING_MIB
from assistant_monitoring.server.guard import descriptors_needed
from tests.conftest import REPO_ROOT

DEFAULT_MAX_CONNECTIONS = 512


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=Value`` lines of a systemd unit (every value of a repeated key)."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def unit_max_connections(settings: dict[str, list[str]]) -> int:
    for value in settings.get("Environment", []):
        name, _, number = value.partition("=")
        if name == "MONITOR_MAX_CONNECTIONS":
            return int(number)
    return DEFAULT_MAX_CONNECTIONS


def test_the_systemd_unit_raises_the_file_limit_past_what_serve_needs() -> None:
    settings = unit_settings(REPO_ROOT / "deploy" / "systemd" / "assistant-monitor.service")
    assert "LimitNOFILE" in settings, "without it systemd gives a soft limit of 1024"
    limit = int(settings["LimitNOFILE"][-1].split(":")[0])
    assert limit >= descriptors_needed(unit_max_connections(settings))


def test_compose_gives_the_container_the_file_limit_serve_needs() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    nofile = compose["services"]["assistant"]["ulimits"]["nofile"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    match = re.search(r"MONITOR_MAX_CONNECTIONS=(\d+)", dockerfile)
    assert match, "the image says how many connections it holds"
    needed = descriptors_needed(int(match.group(1)))
    assert nofile["soft"] >= needed
    assert nofile["hard"] >= nofile["soft"]


def test_pm2_instances_ask_for_what_the_hard_limit_allows() -> None:
    # pm2 has no per-app ulimit: each instance raises its own soft limit (tested in
    # test_serve_limits.py); the file says how many connections it will hold.
    text = (REPO_ROOT / "ecosystem.config.js").read_text()
    match = re.search(r'MONITOR_MAX_CONNECTIONS: "(\d+)"', text)
    assert match
    assert descriptors_needed(int(match.group(1))) <= 4096, "fits a common hard limit"


def _mib(text: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"K": 1 / 1024, "M": 1, "G": 1024, "": 1 / 1024 / 1024}[unit]


def test_memory_ceilings_are_above_what_serve_is_documented_to_use() -> None:
    settings = unit_settings(REPO_ROOT / "deploy" / "systemd" / "assistant-monitor.service")
    assert _mib(settings["MemoryMax"][-1]) >= RSS_CEILING_MIB
    text = (REPO_ROOT / "ecosystem.config.js").read_text()
    match = re.search(r'max_memory_restart: "([^"]+)"', text)
    assert match
    assert _mib(match.group(1)) >= RSS_CEILING_MIB
