#!/usr/bin/env bash
# Installs, idempotently, a real Image service for the image tests and the image bench:
# PyPI `glance` 33 and `gunicorn` (standalone glance-api refuses to run; the tests serve
# `glance.wsgi.api:application` with gunicorn) into a virtualenv of their own,
# $ASHLAR_GLANCE_VENV, by default ~/.cache/ashlar-glance. Reinstalls when the pins below
# change. About 40 s on these machines.
# Sourced by scripts/test.sh.
set -euo pipefail

export ASHLAR_GLANCE_VENV="${ASHLAR_GLANCE_VENV:-$HOME/.cache/ashlar-glance}"
glance_requirements="glance>=33,<34 gunicorn>=23"
glance_stamp="$ASHLAR_GLANCE_VENV/.ashlar-requirements"

if [ "$(cat "$glance_stamp" 2>/dev/null)" != "$glance_requirements" ]; then
    echo "setup: installing Glance and gunicorn into $ASHLAR_GLANCE_VENV" >&2
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
        "${apt_get[@]}" update -qq
        "${apt_get[@]}" install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$ASHLAR_GLANCE_VENV"
    # shellcheck disable=SC2086 # the requirements are words
    "$ASHLAR_GLANCE_VENV/bin/pip" install --quiet --disable-pip-version-check $glance_requirements
    echo "$glance_requirements" >"$glance_stamp"
fi
