#!/usr/bin/env bash
# Build a release: clean, lint (ruff), type-check (mypy), test (pytest), then the
# wheel and sdist in dist/, with dist/VERSION (version, git commit, build time).
# Stops at the first failing step. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh

step() { echo "==> $*"; }
step "clean"
rm -rf dist build ./*.egg-info
ensure_venv "[dev]"
step "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
step "mypy"
"$VENV/bin/mypy"
step "pytest"
"$VENV/bin/pytest" "$@"
step "wheel and sdist"
"$PY" -m build --outdir dist . >/dev/null
version="$("$PY" -c 'import assistant_monitoring; print(assistant_monitoring.__version__)')"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
printf 'version=%s\ncommit=%s\nbuilt=%s\n' "$version" "$commit" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > dist/VERSION
ls -1 dist
