#!/usr/bin/env bash
# The whole test suite: install the project with its dev tools into .venv, install the
# external tools the tests drive, then ruff, mypy and pytest. The README's test command;
# .ci/run runs it too. Extra arguments go to pytest (scripts/test.sh -k logs -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh

ensure_venv "[dev]"
scripts/install-test-tools.sh

echo "==> ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "==> mypy"
"$VENV/bin/mypy"
echo "==> pytest"
# pytest exits 5 when it collected no test: that fails this script, as it should.
"$VENV/bin/pytest" "$@"
