# Sourced by the scripts: find Python >= 3.11 and make the project's virtualenv.
# Sets PY (the venv's python) and VENV.

find_python() {
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

ensure_venv() {  # ensure_venv EXTRAS  (e.g. "" or "[dev]")
    VENV="${VENV:-$PWD/.venv}"
    if [ ! -x "$VENV/bin/python" ]; then
        local base
        base="$(find_python)"
        echo "==> creating $VENV with $("$base" --version)"
        "$base" -m venv "$VENV"
    fi
    PY="$VENV/bin/python"
    echo "==> installing the project${1:+ with $1} into $VENV"
    # Output filtered: this machine's pip config names a local index that may be absent.
    local status
    set +e
    "$PY" -m pip install --quiet --disable-pip-version-check -e ".$1" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory"
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "error: installing the project failed (pip exit $status); see the output above" >&2
        return 1
    fi
    "$PY" -c 'import assistant' # fail here, loudly, if the install did not work
}
