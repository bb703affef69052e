#!/usr/bin/env bash
# The main job, on embedded defaults: install the assistant into .venv and show what
# it knows about itself: the validated profile, its settings, and its own log.
# Data goes to ./.demo unless ASSISTANT_DATA_DIR says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh

ensure_venv ""
export ASSISTANT_DATA_DIR="${ASSISTANT_DATA_DIR:-$PWD/.demo}"
assistant="$VENV/bin/assistant"

echo
echo "\$ assistant config check"
"$assistant" config check
echo
echo "\$ assistant config show"
"$assistant" config show
echo
echo "\$ assistant monitor logs -n 10"
"$assistant" monitor logs -n 10
echo
echo "Next: $assistant --help"
