#!/usr/bin/env bash
# Installs, idempotently, the OpenStack clients the integration tests drive (the openstack
# CLI, openstacksdk, python-cinderclient) and tempest.lib (whose strict response schemas
# check every view) into a virtualenv the tests own: $ASHLAR_VENV, by default
# ~/.cache/ashlar-venv. Reinstalls when tests/clients/requirements.txt changes.
# Sourced by scripts/test.sh.
set -euo pipefail

export ASHLAR_VENV="${ASHLAR_VENV:-$HOME/.cache/ashlar-venv}"
clients_requirements="$(pwd)/tests/clients/requirements.txt"
clients_stamp="$ASHLAR_VENV/.ashlar-requirements"

if ! cmp -s "$clients_requirements" "$clients_stamp" 2>/dev/null; then
    echo "setup: installing the OpenStack clients and tempest into $ASHLAR_VENV" >&2
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
        "${apt_get[@]}" update -qq
        "${apt_get[@]}" install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$ASHLAR_VENV"
    "$ASHLAR_VENV/bin/pip" install --quiet --disable-pip-version-check \
        -r "$clients_requirements"
    cp "$clients_requirements" "$clients_stamp"
fi
