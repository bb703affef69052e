"""pyperf glue for the in-process benchmarks (log line, log reading, metrics, pipeline).

Not a benchmark itself. The scripts import it as ``_perf_inprocess``.

pyperf's ``Runner`` runs each benchmark in worker processes that start the script
again (``--worker --worker-task=N``): everything at module level and before the
``bench_*`` calls runs in every worker, so expensive setup is done once by the
master (:func:`is_master`) and cached on disk, or lazily inside the timed function.
pyperf records the machine (CPU, Python, load average, date) in its JSON (``-o``);
what it cannot know is the ratio to a reference measured in the same run, the
targets, and how busy the other processes of this shared machine were. Those are
printed by the scripts (:func:`ratio`, :func:`verdict`) and, with ``-o``, stored
as metadata of the benchmarks they judge (:func:`annotate`; ``python -m pyperf
show -m FILE`` shows them).
"""

from __future__ import annotations

import argparse
import os
import timeit
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyperf
from _common import DATA_DIR, LoadWatch, git_commit
from _perf import annotate_output, machine

# Bytecode of the workers and of the commands they time, out of the source tree:
# pyperf gives workers a clean environment (no PYTHONDONTWRITEBYTECODE), as a
# user's shell would, so they cache bytecode; this keeps it out of the checkout.
PYCACHE = DATA_DIR / "pycache"

MetadataValue = str | int | float


def make_runner(
    doc: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    *,
    forward: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    **defaults: Any,
) -> pyperf.Runner:
    """The one ``pyperf.Runner`` of a script, its arguments parsed.

    ``add_arguments`` adds the script's own options to pyperf's; those named in
    ``forward`` (option strings, e.g. ``"--size-mib"``) are passed on to the
    workers. ``environ`` is set in the master and inherited by the workers (and so
    by the commands ``bench_command`` starts), on top of pyperf's clean environment.
    ``defaults`` are ``Runner``'s own (``processes=``, ``values=``, ``min_time=``...).
    """

    def add_cmdline_args(cmd: list[str], args: argparse.Namespace) -> None:
        for option in forward:
            action = _action(runner.argparser, option)
            value = getattr(args, action.dest)
            if isinstance(action, argparse._StoreTrueAction):
                if value:
                    cmd.append(option)
            elif value is not None:
                cmd.extend((option, str(value)))

    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args, **defaults)
    runner.argparser.description = doc.split("\n\n", maxsplit=1)[0]
    if add_arguments is not None:
        add_arguments(runner.argparser)
    args = runner.parse_args()
    if not args.worker:
        env = {"PYTHONPYCACHEPREFIX": str(PYCACHE), **(environ or {})}
        os.environ.update(env)
        args.inherit_environ = [*(args.inherit_environ or []), *env]
    return runner


def _action(parser: argparse.ArgumentParser, option: str) -> argparse.Action:
    for action in parser._actions:
        if option in action.option_strings:
            return action
    raise KeyError(option)


def is_master(runner: pyperf.Runner) -> bool:
    """True in the process the user started, False in pyperf's workers."""
    return not runner.args.worker


def done(benches: Mapping[str, pyperf.Benchmark | None]) -> dict[str, pyperf.Benchmark]:
    """The benchmarks of a finished run (in the master every ``bench_*`` returns one)."""
    result = {name: bench for name, bench in benches.items() if bench is not None}
    if len(result) != len(benches):
        missing = sorted(set(benches) - set(result))
        raise RuntimeError(f"no result for {missing}")
    return result


def median(bench: pyperf.Benchmark) -> float:
    """The figure every ratio uses: the median of pyperf's values, in seconds (as
    ``_perf.median`` for the whole-command benchmarks: robust to a neighbour's burst)."""
    return float(bench.median())


def ratio(bench: pyperf.Benchmark, reference: pyperf.Benchmark) -> float:
    return median(bench) / median(reference)


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def annotate(runner: pyperf.Runner, metadata: Mapping[str, Mapping[str, MetadataValue]]) -> None:
    """Store derived figures (ratios, targets, verdicts) as benchmark metadata in ``-o``."""
    annotate_output(runner.args.output, metadata)


class Load:
    """How much CPU other processes used during the run (``_common.LoadWatch``).

    pyperf records the load average, which counts its own workers; this counts
    only the others. Printed at the end, and stored with ``-o`` (``other_load``,
    with the commit measured, ``bench_commit``).
    """

    def __init__(self) -> None:
        self._watch = LoadWatch()
        self.commit = git_commit()

    def metadata(self) -> dict[str, MetadataValue]:
        report = self._watch.report()
        return {
            "other_load": report["other_load"],
            "other_cpu_s": report["other_cpu_s"],
            "bench_commit": self.commit,
        }

    def describe(self) -> str:
        return self._watch.describe()

    def machine(self, benches: Sequence[pyperf.Benchmark]) -> str:
        """One line from pyperf's metadata: CPUs, CPU, Python, dates, load average; commit."""
        line = machine([*benches]).split("\n", maxsplit=1)[0]
        return line.replace("commit ?", f"commit {self.commit}")


def time_calls(loops: int, make: Callable[[], Callable[[], object]]) -> float:
    """A ``bench_time_func`` time function: ``loops`` calls of ``make()``'s callable.

    ``make`` builds what is called (cache it, e.g. ``functools.cache``, so that it is
    built once per worker, outside the timing); ``timeit`` turns the collector off
    while it times, as pyperf's own ``timeit`` does.
    """
    return timeit.Timer(make()).timeit(loops)
