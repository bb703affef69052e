#!/usr/bin/env bash
# Deploy the assistant's monitor with pm2, only when it is healthy.
#
#   scripts/deploy.sh [ENV] [--strict] [--dry-run]      ENV: development|staging|production
#
# Steps: validate .env.ENV (`assistant config check`), migrate the database, run the
# health checks (abort on failure: unhealthy fails; degraded fails too with --strict),
# `pm2 start ecosystem.config.js --env ENV` (or reload when it runs already), then wait
# for the started server's /health and roll back (stop it) when it does not answer.
# Exit codes: 0 deployed, 1 a step failed (nothing left running), 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

ENV_NAME="production"
STRICT=0
DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --strict) STRICT=1 ;;
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $arg (see --help)" >&2; exit 2 ;;
        *) ENV_NAME="$arg" ;;
    esac
done
case "$ENV_NAME" in
    development|staging|production) ;;
    *) echo "error: unknown environment '$ENV_NAME': use development, staging or production" >&2; exit 2 ;;
esac
if [ ! -f ".env.$ENV_NAME" ]; then
    echo "error: .env.$ENV_NAME not found in $PWD: create it from the template" >&2
    exit 2
fi
ASSISTANT="${ASSISTANT:-$PWD/.venv/bin/assistant}"
if [ ! -x "$ASSISTANT" ]; then
    echo "error: $ASSISTANT not found: install first (scripts/demo.sh or pip install -e .)" >&2
    exit 2
fi
PM2="${PM2:-$(command -v pm2 || true)}"
[ -n "$PM2" ] || PM2="$PWD/.tools/node_modules/.bin/pm2"
if [ ! -x "$PM2" ]; then
    echo "error: pm2 not found: npm install -g pm2 (or scripts/install-test-tools.sh)" >&2
    exit 2
fi
HEALTH_TIMEOUT="${DEPLOY_HEALTH_TIMEOUT:-30}"
APP="assistant-monitor"
assistant() { "$ASSISTANT" -e "$ENV_NAME" --no-color "$@"; }

step() { echo "==> $*"; }
run() {
    if [ "$DRY_RUN" = 1 ]; then echo "    would run: $*"; else "$@"; fi
}

step "1/5 validate .env.$ENV_NAME"
run assistant config check
step "2/5 migrate the database"
run assistant db migrate
step "3/5 health checks$([ "$STRICT" = 1 ] && echo ' (strict: degraded fails)')"
fail_on=$([ "$STRICT" = 1 ] && echo degraded || echo unhealthy)
if ! run assistant monitor health --fail-on "$fail_on"; then
    echo "Health checks failed, aborting deployment" >&2
    exit 1
fi
step "4/5 pm2: start $APP (--env $ENV_NAME)"
run mkdir -p logs  # pm2 writes the app's stdout and stderr there
if [ "$DRY_RUN" = 0 ] && "$PM2" describe "$APP" >/dev/null 2>&1; then
    run "$PM2" reload ecosystem.config.js --env "$ENV_NAME" --update-env
else
    run "$PM2" start ecosystem.config.js --env "$ENV_NAME" --update-env
fi
port="$(assistant config show --json | "$PWD/.venv/bin/python" -c \
    'import json, sys; print(json.load(sys.stdin)["settings"]["MONITOR_PORT"]["value"])')"
step "5/5 wait for http://127.0.0.1:$port/health (up to ${HEALTH_TIMEOUT}s)"
if [ "$DRY_RUN" = 1 ]; then
    echo "    would poll http://127.0.0.1:$port/health"
    exit 0
fi
if ! "$PWD/.venv/bin/python" - "$port" "$HEALTH_TIMEOUT" <<'PY'; then
import sys, time, urllib.error, urllib.request
port, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            sys.exit(0)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 503:
            print("    /health answers 503 (unhealthy)", file=sys.stderr)
            sys.exit(1)
    except OSError:
        pass
    time.sleep(0.5)
print(f"    no answer from /health within {timeout:g}s", file=sys.stderr)
sys.exit(1)
PY
    echo "error: the deployed monitor is not healthy: rolling back (pm2 stop $APP)" >&2
    "$PM2" stop "$APP" >/dev/null 2>&1 || true
    exit 1
fi
echo "deployed: $APP (profile $ENV_NAME) answers on http://127.0.0.1:$port/health"
