#!/usr/bin/env bash
# The test suite: install the project with its dev tools into .venv, install the
# external tools the tests drive, then ruff, mypy and pytest on every core.
# The README's test command; .ci/run runs it with the slow tests included.
#
#   scripts/test.sh               everything but the tests marked slow (see BENCHMARKS.md)
#   scripts/test.sh --slow        everything, slow soaks included (what CI runs)
#   scripts/test.sh --busy        with `stress-ng --cpu N` (N = cores) beside it all:
#                                 the suite must pass on a machine that is busy
#   scripts/test.sh -k logs -x    other arguments go to pytest
#
# ASSISTANT_SLOW_TESTS=1 is the same as --slow (.ci/run sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh

PYTEST_ARGS=()
SLOW="${ASSISTANT_SLOW_TESTS:-0}"
BUSY=0
PARALLEL=(-n auto --dist loadgroup)
for arg in "$@"; do
    case "$arg" in
        --slow) SLOW=1 ;;
        --busy) BUSY=1 ;;
        *)
            # The user chose the workers, or something xdist cannot do (--pdb, -s).
            case "$arg" in -n | -n* | --numprocesses* | no:xdist | --pdb | -s) PARALLEL=() ;; esac
            PYTEST_ARGS+=("$arg")
            ;;
    esac
done

ensure_venv "[dev]"
scripts/install-test-tools.sh

echo "==> ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "==> mypy"
"$VENV/bin/mypy"
echo "==> import layers (lint-imports; the contracts are in pyproject.toml)"
"$VENV/bin/lint-imports" --no-cache --no-logo
# The tests start the installed CLI hundreds of times. A shell that sets
# PYTHONDONTWRITEBYTECODE=1 would have each of those recompile every module of the
# project (~0.1 s each); a user's machine caches bytecode, so the suite does too.
PYTHONDONTWRITEBYTECODE= "$PY" -m compileall -q assistant assistant_monitoring tests >/dev/null
echo "==> pytest"
# Both cores (pytest-xdist), a test at a time to whichever worker is free; tests that
# share an expensive fixture are an xdist_group (a fault matrix row). The slow marker:
# pyproject.toml.
MARKERS=()
if [ "$SLOW" != "1" ]; then
    MARKERS=(-m "not slow")
    echo "    (slow tests left out: scripts/test.sh --slow runs them, as CI does)"
fi
if [ "$BUSY" = "1" ]; then
    command -v stress-ng >/dev/null 2>&1 || { echo "error: --busy needs stress-ng (scripts/install-test-tools.sh)" >&2; exit 2; }
    CORES="$(nproc)"
    echo "    (stress-ng --cpu $CORES beside the suite)"
    # Ended by the trap below; the timeout is for a script killed with SIGKILL.
    stress-ng --cpu "$CORES" --timeout 3h --quiet &
    STRESS_PID=$!
    trap 'kill "$STRESS_PID" 2>/dev/null || true' EXIT
fi
# pytest exits 5 when it collected no test: that fails this script, as it should.
# A -m of your own replaces "not slow" (pytest keeps the last -m).
"$VENV/bin/pytest" "${PARALLEL[@]}" "${MARKERS[@]}" "${PYTEST_ARGS[@]}"
