"""pyperf glue for the whole-command benchmarks (start-up, health, dashboard, usage, ...).

Not a benchmark itself. The scripts import it as ``_perf``.

Each script makes one :class:`CommandBench`, a ``pyperf.Runner`` with its options
(``--fast``, ``-p``, ``-n``, ``-w``, ``-o FILE``, ``--append FILE``, ``--track-memory``
...; ``python benchmarks/bench_x.py --help``). pyperf runs every benchmark in worker
processes that start the script again (``--worker --worker-task=N``), so:

* what the master sets up (a stub LLM server, a temporary data dir, a store) reaches
  the workers through :meth:`CommandBench.share` (a hidden ``--bench-state`` option);
  workers skip the setup (:attr:`CommandBench.is_worker`);
* every benchmark gets a whole environment of its own (:func:`command_env`): the
  master puts it in ``os.environ`` while pyperf spawns that benchmark's workers,
  which inherit it (``--copy-env`` is the default here), and so do the commands
  ``bench_command`` starts.

The environment of every timed command leaves ``PYTHONDONTWRITEBYTECODE`` out and
caches bytecode in ``benchmarks/.data/pycache`` (``PYTHONPYCACHEPREFIX``), as a
user's machine caches it. A shell that sets ``PYTHONDONTWRITEBYTECODE=1`` (this
sandbox does) would otherwise make an editable install recompile every one of our
modules on each command. The checked run each script makes before its benchmarks
(:meth:`CommandBench.check`), and pyperf's warm-up value in every worker, fill the
cache.

pyperf records the machine, the date, the load average and, for commands, the
peak RSS (``command_max_rss``) of every run; what it cannot know is the ratio to a
reference measured in the same run and the targets. :func:`summary` prints those,
and :meth:`CommandBench.annotate` stores them as metadata of the benchmarks in the
``-o`` file (``python -m pyperf show -m FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyperf
from _common import DATA_DIR, REPO_ROOT, git_commit

PYCACHE = DATA_DIR / "pycache"
BYTECODE_NOTE = (
    "bytecode cached: PYTHONDONTWRITEBYTECODE unset, "
    f"PYTHONPYCACHEPREFIX={PYCACHE.relative_to(REPO_ROOT)}"
)
BENCH_API_KEY = "sk-bench-000000000000"
# What a timed command keeps of the caller's environment: the same names pyperf
# gives its workers by default. Nothing else (no assistant setting, no OTEL_*, no
# PYTHONDONTWRITEBYTECODE) leaks from the shell into a figure.
KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TEMP", "TMPDIR")
MIB = 2**20
# pyperf's launcher (pyperf/_process_time.py) forks the command: a command's peak
# RSS cannot read lower than the launcher's own, ~12 MiB. GNU time gives 8.5 MiB for
# `python -c pass`; both agree within 1% on commands above the floor.
RSS_FLOOR_MIB = 13.0


def command_env(**extra: str) -> dict[str, str]:
    """The whole environment of a timed command (or a worker): see the module doc."""
    env = {name: os.environ[name] for name in KEPT if name in os.environ}
    env.update(ASSISTANT_ENV_FILE="none", PYTHONPYCACHEPREFIX=str(PYCACHE))
    env.update(extra)
    return env


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` inside the block (what pyperf copies to workers)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def annotate_output(
    path: str | None, metadata: Mapping[str, Mapping[str, str | int | float]]
) -> None:
    """Store derived figures (ratios, targets, verdicts) as metadata of the benchmarks
    in pyperf's ``-o`` file ``path`` (nothing without one); ``metadata`` maps a
    benchmark's name to the entries to add to its runs."""
    if not path:
        return
    suite = pyperf.BenchmarkSuite.load(path)
    for name, entries in metadata.items():
        suite.get_benchmark(name).update_metadata(dict(entries))
    suite.dump(path, replace=True)


class CommandBench:
    """The script's ``pyperf.Runner``, its arguments parsed, and what the master shares."""

    def __init__(
        self,
        doc: str,
        *,
        processes: int,
        values: int,
        warmups: int = 1,
        loops: int = 1,
        add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        def forward(cmd: list[str], args: argparse.Namespace) -> None:
            cmd.extend(("--bench-state", args.bench_state))

        # loops=1: a command takes milliseconds at least; no calibration run needed.
        self.runner = pyperf.Runner(
            processes=processes,
            values=values,
            warmups=warmups,
            loops=loops,
            add_cmdline_args=forward,
        )
        parser = self.runner.argparser
        parser.description = doc.split("\n\n", maxsplit=1)[0]
        parser.add_argument("--bench-state", default="{}", help=argparse.SUPPRESS)
        parser.set_defaults(copy_env=True)
        if add_arguments is not None:
            add_arguments(parser)
        self.args = self.runner.parse_args()
        self.is_worker: bool = bool(self.args.worker)
        self.state: dict[str, Any] = json.loads(self.args.bench_state)
        self.runner.metadata.update(self.state.get("metadata", {}))
        self.results: dict[str, pyperf.Benchmark] = {}
        if not self.is_worker:
            self.share()

    def share(self, **state: Any) -> None:
        """Master only, before the first benchmark: ``state`` (JSON) for the workers."""
        self.state.update(state)
        self.state.setdefault(
            "metadata", {"bench_commit": git_commit(), "bench_bytecode": BYTECODE_NOTE}
        )
        self.runner.metadata.update(self.state["metadata"])
        self.args.bench_state = json.dumps(self.state)

    def _keep(self, name: str, bench: pyperf.Benchmark | None) -> None:
        if bench is not None and not self.is_worker:
            self.results[name] = bench

    def command(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        """``Runner.bench_command`` with ``env`` as the command's whole environment."""
        if self.is_worker:  # the master gave this worker its environment
            self._keep(name, self.runner.bench_command(name, list(argv)))
            return
        with environment(env):
            self._keep(name, self.runner.bench_command(name, list(argv)))

    def time_func(
        self,
        name: str,
        time_func: Callable[[int], float],
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``Runner.bench_time_func`` in workers started with ``env`` (default
        :func:`command_env`)."""
        if self.is_worker:
            self._keep(name, self.runner.bench_time_func(name, time_func))
            return
        with environment(command_env() if env is None else env):
            self._keep(name, self.runner.bench_time_func(name, time_func))

    def func(
        self, name: str, func: Callable[[], object], env: Mapping[str, str] | None = None
    ) -> None:
        """``Runner.bench_func``, as :meth:`time_func`."""
        if self.is_worker:
            self._keep(name, self.runner.bench_func(name, func))
            return
        with environment(command_env() if env is None else env):
            self._keep(name, self.runner.bench_func(name, func))

    @staticmethod
    def check(
        argv: Sequence[str], env: Mapping[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """One untimed run (output captured), which must exit 0; it also caches bytecode."""
        done = subprocess.run(
            list(argv), env=dict(env), capture_output=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-800:]}"
            )
        return done

    def annotate(self, metadata: Mapping[str, Mapping[str, str | int | float]]) -> None:
        """Store ratios, targets and verdicts as metadata of the benchmarks in ``-o``."""
        annotate_output(self.args.output, metadata)


# -- reading results ---------------------------------------------------------------------


def median(bench: pyperf.Benchmark) -> float:
    """The figure every ratio uses: the median of the values (seconds, or bytes)."""
    return float(bench.median())


def ratio(bench: pyperf.Benchmark, reference: pyperf.Benchmark) -> float:
    return median(bench) / median(reference)


def peak_rss_mib(bench: pyperf.Benchmark) -> float | None:
    """The largest ``command_max_rss`` of the runs of a ``bench_command``, in MiB."""
    values = [run.get_metadata().get("command_max_rss") for run in bench.get_runs()]
    measured = [int(v) for v in values if v]
    return max(measured) / MIB if measured else None


def load_range(benches: Sequence[pyperf.Benchmark]) -> tuple[float, float] | None:
    """The lowest and highest 1-minute load average pyperf recorded over the runs."""
    loads = [
        float(run.get_metadata()["load_avg_1min"])
        for bench in benches
        for run in bench.get_runs()
        if "load_avg_1min" in run.get_metadata()
    ]
    return (min(loads), max(loads)) if loads else None


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


@dataclass(frozen=True)
class Target:
    """A target on one benchmark, and whether its figures meet it."""

    text: str
    met: bool


def machine(benches: Sequence[pyperf.Benchmark]) -> str:
    """Two lines from pyperf's metadata: CPU, date, load, commit; how bytecode was cached."""
    meta = benches[0].get_metadata()
    dates = [d for d in (bench.get_dates() for bench in benches) if d is not None]
    when = (
        f"{min(d[0] for d in dates):%Y-%m-%d %H:%M} to {max(d[1] for d in dates):%H:%M}"
        if dates
        else "?"
    )
    loads = load_range(benches)
    load = f"load average (1 min) {loads[0]:.2f} to {loads[1]:.2f}" if loads else "load ?"
    return (
        f"machine: {meta.get('cpu_count', '?')} CPUs, {meta.get('cpu_model_name', '?')}, "
        f"Python {platform.python_version()}, pyperf {pyperf.__version__}; {when} "
        f"(local time); {load}; commit {meta.get('bench_commit', '?')}\n"
        f"{meta.get('bench_bytecode', '')}"
    )


def summary(
    results: Mapping[str, pyperf.Benchmark],
    reference: str,
    targets: Mapping[str, Target] | None = None,
    *,
    title: str = "",
) -> dict[str, dict[str, str | int | float]]:
    """Print each benchmark's median, MAD, ratio to ``reference``, peak RSS and target.

    Returns the derived figures per benchmark, for :meth:`CommandBench.annotate`.
    """
    targets = targets or {}
    ref = results[reference]
    ref_head = f"x {reference}" if len(reference) <= 24 else "x ref"
    rows = [["benchmark", "median", "+- MAD", ref_head, "peak RSS", "target"]]
    derived: dict[str, dict[str, str | int | float]] = {}
    floor = False
    for name, bench in results.items():
        rss = peak_rss_mib(bench)
        floor = floor or (rss is not None and rss < RSS_FLOOR_MIB)
        target = targets.get(name)
        rows.append(
            [
                name,
                bench.format_value(median(bench)),
                bench.format_value(bench.median_abs_dev()),
                f"{ratio(bench, ref):.2f}x",
                "-" if rss is None else f"{rss:.1f} MiB" + ("*" if rss < RSS_FLOOR_MIB else ""),
                f"{target.text}: {verdict(target.met)}" if target else "",
            ]
        )
        entry: dict[str, str | int | float] = {
            "bench_median": median(bench),
            "bench_reference": reference,
            "bench_ratio": round(ratio(bench, ref), 3),
        }
        if target:
            entry["bench_target"] = target.text
            entry["bench_verdict"] = verdict(target.met)
        derived[name] = entry
    if title:
        print(f"\n{title}")
    if ref_head == "x ref":
        print(f"ref: {reference}")
    if all(row[4] == "-" for row in rows[1:]):
        rows = [row[:4] + row[5:] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)),
        ]
        print("  ".join([*cells, row[-1]]).rstrip())
    if floor:
        print(f"* pyperf's launcher's own floor (~{RSS_FLOOR_MIB:.0f} MiB): the command used less")
    return derived


def spread(values: Sequence[float]) -> str:
    """``median (min to max)`` of plain numbers, for what is not a pyperf benchmark."""
    return f"{statistics.median(values):.1f} ({min(values):.1f} to {max(values):.1f})"
