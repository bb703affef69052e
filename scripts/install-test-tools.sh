#!/usr/bin/env bash
# Install the external tools the test suite drives for real (from Debian's packages).
# Safe to re-run: installs only what is missing. Needs root or sudo for apt-get.
#   lnav: checks the shipped log format against real files.
#   prometheus (for promtool): checks our exposition text and, later, rules and scrapes.
#   tmux: runs the live dashboard in a real terminal and captures the screen.
#   chromium: loads the web dashboard headless (console errors, a screenshot).
#   stress-ng: keeps every core busy beside the suite (scripts/test.sh --busy).
set -euo pipefail
cd "$(dirname "$0")/.."

# pm2 (npm), into .tools/ of the repository: the deploy tests drive it for real.
if ! command -v pm2 >/dev/null 2>&1 && [ ! -x .tools/node_modules/.bin/pm2 ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "==> installing pm2 into .tools (npm)"
        npm install --prefix .tools --no-audit --no-fund --silent pm2 >/dev/null
    else
        echo "warning: no npm: pm2 cannot be installed; the deploy tests will skip" >&2
    fi
fi

APT_PACKAGES=()
command -v lnav >/dev/null 2>&1 || APT_PACKAGES+=(lnav)
command -v promtool >/dev/null 2>&1 || APT_PACKAGES+=(prometheus)
command -v tmux >/dev/null 2>&1 || APT_PACKAGES+=(tmux)
command -v chromium >/dev/null 2>&1 || APT_PACKAGES+=(chromium)
command -v stress-ng >/dev/null 2>&1 || APT_PACKAGES+=(stress-ng)

if [ ${#APT_PACKAGES[@]} -eq 0 ]; then
    echo "==> test tools present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "warning: cannot install ${APT_PACKAGES[*]} (not root, no sudo); tests that need them will skip" >&2
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: no apt-get: install ${APT_PACKAGES[*]} yourself; tests that need them will skip" >&2
    exit 0
fi
echo "==> installing ${APT_PACKAGES[*]} (apt-get)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
