#!/usr/bin/env bash
# The main job, on embedded defaults: install the assistant into .venv, start the
# bundled stub LLM server (some latency, a small error rate), send a few dozen
# messages through the real pipeline and the real anthropic SDK, then show what the
# toolkit saw: `monitor health`, `monitor metrics --period 1h`, `monitor runs`.
# Nothing outside this machine is needed. Data goes to ./.demo (ASSISTANT_DATA_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh

ensure_venv ""
assistant="$VENV/bin/assistant"
export ASSISTANT_DATA_DIR="${ASSISTANT_DATA_DIR:-$PWD/.demo}"
mkdir -p "$ASSISTANT_DATA_DIR"
export LLM_PROVIDER=anthropic LLM_MODEL=claude-haiku-4-5 LLM_API_KEY=sk-demo-not-a-real-key

port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$assistant" dev stub-llm --port "$port" --latency 0.05 --error-rate 0.05 >"$ASSISTANT_DATA_DIR/stub-llm.log" 2>&1 &
stub_pid=$!
trap 'kill "$stub_pid" 2>/dev/null || true' EXIT
export LLM_BASE_URL="http://127.0.0.1:$port"
"$PY" - "$LLM_BASE_URL" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/_stub/stats", timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the stub LLM server did not start: see .demo/stub-llm.log")
PY
echo "==> stub LLM server on $LLM_BASE_URL (50 ms latency, 5% of requests answered 500)"

show() { echo; echo "\$ assistant $*"; "$assistant" "$@"; }

show db migrate
for question in "What is a circuit breaker?" "Write a Python function that retries a call" \
                "Summarize what WAL mode does in SQLite" "hello!"; do
    show ask "$question"
done

echo
echo "\$ assistant chat   (24 messages from a script, one process)"
for n in $(seq 1 24); do
    case $((n % 4)) in
        0) echo "How do I read the p95 latency of stage $n?" ;;
        1) echo "list the open circuit breakers for service $n" ;;
        2) echo "def handler_$n(event): return event  # is this right?" ;;
        3) echo "thanks, that helps ($n)" ;;
    esac
done | "$assistant" chat --no-stream >/dev/null

echo
echo "\$ assistant monitor health"
"$assistant" monitor health || echo "(exit code $?: 1 degraded, 2 unhealthy; the stub fails 5% of requests on purpose)"
show monitor metrics --period 1h
show monitor runs --limit 5
show monitor statusline
show monitor usage --since today
echo
echo "Next: $assistant --help   (the data of this demo is in $ASSISTANT_DATA_DIR)"
