"""What OTLP export costs an ``assistant ask``, and that it never waits on a collector.

Setup: the stub LLM server (``assistant.stubllm.StubLLMServer``, no added latency)
and, for the reachable case, a local OTLP/HTTP receiver that decodes every request
with the official protobuf messages (``tests/helpers/otlp.py``), both in this process
on 127.0.0.1. Every command runs with ``ASSISTANT_ENV_FILE=none``, a temporary
``ASSISTANT_DATA_DIR``, the stub and nothing else of the caller's environment but
``PATH``, ``HOME`` and the locale; bytecode is cached (``PYTHONDONTWRITEBYTECODE``
unset, ``PYTHONPYCACHEPREFIX=benchmarks/.data/pycache``; see ``_perf.py``).

The installed ``assistant ask hello`` as a subprocess, with pyperf's
``Runner.bench_command`` (wall time, stdout to /dev/null; by default 3 worker
processes x (1 warm-up + 3 values) per case, one case after the other; each case
first runs once, checked):

* no ``OTEL_*`` variable: the reference;
* all three signals (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_LOGS_EXPORTER=otlp``) to
  the receiver (reachable);
* the same to a loopback port where nothing listens (refused);
* the same to a port that accepts connections and never answers (blackholed: what
  a firewall dropping packets, or a hung collector, does).

Then the exit alone, in-process (``Runner.bench_time_func`` in workers whose
environment names the case's endpoint): a run's spans, log lines and metrics are
made untimed, then ``OtelExport.shutdown()`` with the default 50 ms budget is timed.
Whether everything was sent in time is checked once per case in this process.
With ``--unbounded``, one exit per unreachable case with no budget (the exporter's
own timeout, ~10 s each; a single run, outside pyperf).

Target: unreachable (refused, blackholed) adds < 100 ms to ``ask`` against the
reachable case (medians), and the slowest exit of an unreachable case is < 100 ms
past the reachable exit's median. The cost of OTLP export itself (the SDK's import
and set-up) is the reachable row against the reference, shown, not a target.

Run: ``.venv/bin/python benchmarks/bench_otel.py [--unbounded] [pyperf options: --fast,
-p N, -n N, -o FILE ...]``. About 2 minutes.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import tempfile
import time
from pathlib import Path

from _common import ASSISTANT, REPO_ROOT, LoadWatch
from _perf import (
    BENCH_API_KEY,
    CommandBench,
    Target,
    command_env,
    environment,
    machine,
    median,
    summary,
    verdict,
)

TARGET_ADDED_S = 0.100
EXIT_BUDGET_MS = 50  # the default MONITOR_OTEL_EXIT_TIMEOUT_MS
REFERENCE = "ask, no OTEL_* variables (reference)"
REACHABLE = "ask, OTLP, collector reachable"
REFUSED = "ask, OTLP, connection refused"
BLACKHOLED = "ask, OTLP, blackholed"
CASES = (REACHABLE, REFUSED, BLACKHOLED)
ASK = [str(ASSISTANT), "ask", "hello"]


def exit_name(case: str) -> str:
    return "exit (shutdown), " + case.removeprefix("ask, OTLP, ")


@functools.cache
def quiet() -> None:
    """The exits leave threads retrying an unreachable collector (as a process leaves
    them at exit); their complaints are not the benchmark's output."""
    from loguru import logger

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    logger.remove()


def one_export(exit_timeout_ms: int) -> tuple[float, bool]:
    """In-process, with the endpoint of the environment: a run's worth of spans,
    metrics and logs, then the exit's shutdown (timed)."""
    from loguru import logger

    from assistant_monitoring.metrics import LlmAttempt
    from assistant_monitoring.otel import make_export, requested_signals
    from assistant_monitoring.otel.resource import build_resource
    from assistant_monitoring.tracing import span

    quiet()
    export = make_export(
        requested_signals(), build_resource("bench"), exit_timeout_ms=exit_timeout_ms
    )
    assert export.tracer is not None
    assert export.metrics is not None
    with span(export.tracer, "assistant run"):
        for stage in ("context", "classify", "generate", "persist"):
            with span(export.tracer, f"stage {stage}"):
                logger.info(f"stage {stage}")
                if stage == "generate":
                    with span(export.tracer, "chat claude-haiku-4-5", kind="client"):
                        pass
    attempt = LlmAttempt("anthropic", "claude-haiku-4-5", "127.0.0.1", 8089, duration=0.05)
    attempt.tokens = {"input": 10, "output": 20}
    export.metrics.on_attempt(attempt)
    started = time.perf_counter()
    finished = export.shutdown()
    return time.perf_counter() - started, finished


def exit_time(loops: int) -> float:
    return sum(one_export(EXIT_BUDGET_MS)[0] for _ in range(loops))


def run_benchmarks(bench: CommandBench, envs: dict[str, dict[str, str]]) -> None:
    """The same calls, in the same order, in the master and in every worker."""
    for name in (REFERENCE, *CASES):
        bench.command(name, ASK, envs.get(name, {}))
    for case in CASES:
        bench.time_func(exit_name(case), exit_time, envs.get(case, {}))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unbounded",
        action="store_true",
        help="also time one exit with no budget (the exporter's own timeout: ~10 s each)",
    )


def main() -> None:
    bench = CommandBench(__doc__, processes=3, values=3, add_arguments=add_arguments)
    if bench.is_worker:
        run_benchmarks(bench, {})
        return
    args = bench.args

    sys.path.insert(0, str(REPO_ROOT))
    from assistant.stubllm import StubLLMServer
    from tests.helpers.otlp import Blackhole, OtlpReceiver, refused_url

    watch = LoadWatch()
    receiver, blackhole = OtlpReceiver(), Blackhole()
    with StubLLMServer() as stub, tempfile.TemporaryDirectory() as tmp:
        base = command_env(
            ASSISTANT_DATA_DIR=str(Path(tmp)),
            LLM_BASE_URL=stub.url,
            LLM_API_KEY=BENCH_API_KEY,
            LLM_MAX_RETRIES="0",
        )
        endpoints = {REACHABLE: receiver.url, REFUSED: refused_url(), BLACKHOLED: blackhole.url}
        envs = {REFERENCE: base}
        for case, endpoint in endpoints.items():
            envs[case] = {
                **base,
                "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            }
        for env in envs.values():
            bench.check(ASK, env)  # exits 0, and fills the bytecode cache
        sent_in_time = {}
        for case in CASES:
            with environment(envs[case]):
                sent_in_time[case] = one_export(EXIT_BUDGET_MS)[1]
        run_benchmarks(bench, envs)
        received = len(receiver.received.traces), len(receiver.received.logs)
        unbounded = {}
        if args.unbounded:
            for case in (REFUSED, BLACKHOLED):
                with environment(envs[case]):
                    unbounded[case] = one_export(60_000)[0]
    receiver.close()
    blackhole.close()

    results = bench.results
    reachable = median(results[REACHABLE])
    worst = max(median(results[REFUSED]), median(results[BLACKHOLED]))
    added = worst - reachable
    exit_reachable = median(results[exit_name(REACHABLE)])
    exit_worst = max(results[exit_name(case)].percentile(100) for case in (REFUSED, BLACKHOLED))
    exit_added = exit_worst - exit_reachable
    met = added < TARGET_ADDED_S and exit_added < TARGET_ADDED_S
    print()
    print(machine(list(results.values())))
    print(f"receiver got {received[0]} trace and {received[1]} log requests")
    asks = {name: results[name] for name in (REFERENCE, *CASES)}
    target = Target(
        f"unreachable adds < {TARGET_ADDED_S * 1000:.0f} ms ({added * 1000:+.0f} ms)", met
    )
    derived = summary(asks, REFERENCE, {BLACKHOLED: target}, title="assistant ask hello")
    for name in (REFUSED, BLACKHOLED):
        print(f"  {name}: {(median(results[name]) - reachable) * 1000:+.0f} ms vs reachable")
    exits = {exit_name(case): results[exit_name(case)] for case in CASES}
    derived |= summary(
        exits,
        exit_name(REACHABLE),
        title=f"the exit alone, in-process ({EXIT_BUDGET_MS} ms budget)",
    )
    for case in CASES:
        worst_exit = results[exit_name(case)].percentile(100)
        print(
            f"  {exit_name(case)}: slowest {worst_exit * 1000:.1f} ms; everything sent in "
            f"time when checked: {'yes' if sent_in_time[case] else 'no'}"
        )
    for case, seconds in unbounded.items():
        print(f"  {exit_name(case)}, no budget (1 run): {seconds * 1000:.0f} ms")
    bench.annotate(derived)
    print(f"\n{watch.describe()}")
    print(
        f"unreachable collector adds {added * 1000:.0f} ms to ask (medians), and at most "
        f"{exit_added * 1000:.0f} ms at exit (slowest exit vs the reachable median) "
        f"(target < {TARGET_ADDED_S * 1000:.0f} ms): {verdict(met)}"
    )


if __name__ == "__main__":
    main()
