"""Dockerfile and compose file: no Docker engine runs here, so check what can be checked."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO_ROOT


def test_compose_references_existing_files() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    assert set(compose["services"]) == {
        *("assistant", "prometheus", "alertmanager", "grafana"),
        *("otel-collector", "jaeger", "loki"),  # --profile otel
    }
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{source} is missing"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) == 2
    assert re.search(r"^USER assistant$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert "assistant monitor health" in text.replace('", "', " ")
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (REPO_ROOT / copied).exists(), copied


def test_docker_compose_config_when_available() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("no docker compose plugin here (the parse test above covers the file)")
    result = subprocess.run(
        [docker, "compose", "-f", str(REPO_ROOT / "compose.yaml"), "config", "--quiet"],
        env={"MONITOR_TOKEN": "x", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
