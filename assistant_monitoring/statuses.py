"""How a run, a stage and an LLM call ended: one vocabulary for metrics, runs and logs.

String enums: a member is the ``str`` it stands for, so it goes into SQLite, JSON,
metric labels and log lines as that text, and text read back compares equal to it.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A pipeline run's status, as ``monitor runs`` shows it."""

    RUNNING = "running"  # recorded at the start; a process killed outright leaves it
    SUCCESS = "success"
    FAILURE = "failure"
    INTERRUPTED = "interrupted"  # SIGTERM or Ctrl-C: not a failure of anything
    ABANDONED = "abandoned"  # running for longer than any run can take (read, not stored)


# How a run or a stage ends (the statuses of assistant_pipeline_runs_total).
FINAL_STATUSES = (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.INTERRUPTED)


class LlmStatus(StrEnum):
    """How one LLM call ended (assistant_llm_requests_total's status)."""

    SUCCESS = "success"
    ERROR = "error"
    REJECTED = "rejected"  # the provider refused the request (4xx): not its failure
    CIRCUIT_OPEN = "circuit_open"  # refused by the breaker, never sent
    INTERRUPTED = "interrupted"
