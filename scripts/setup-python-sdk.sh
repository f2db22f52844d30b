#!/usr/bin/env bash
# Installs, idempotently, what building drivers in Python needs: PyPI `componentize-py`
# (which turns a Python app and the contract's WIT into a component) into a virtualenv of
# its own, $ASHLAR_PYTHON_SDK_VENV, by default ~/.cache/ashlar-python-sdk. Reinstalls when
# the pin below changes. Exports ASHLAR_COMPONENTIZE_PY, the componentize-py the tests
# (tests/integration/python.rs) and plugins/py-example/build.sh use.
# Sourced by scripts/test.sh.
set -euo pipefail

export ASHLAR_PYTHON_SDK_VENV="${ASHLAR_PYTHON_SDK_VENV:-$HOME/.cache/ashlar-python-sdk}"
python_sdk_requirements="componentize-py==0.25.1"
python_sdk_stamp="$ASHLAR_PYTHON_SDK_VENV/.ashlar-requirements"

if [ "$(cat "$python_sdk_stamp" 2>/dev/null)" != "$python_sdk_requirements" ]; then
    echo "setup: installing componentize-py into $ASHLAR_PYTHON_SDK_VENV" >&2
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
        "${apt_get[@]}" update -qq
        "${apt_get[@]}" install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$ASHLAR_PYTHON_SDK_VENV"
    # shellcheck disable=SC2086 # the requirements are words
    "$ASHLAR_PYTHON_SDK_VENV/bin/pip" install --quiet --disable-pip-version-check $python_sdk_requirements
    echo "$python_sdk_requirements" >"$python_sdk_stamp"
fi
export ASHLAR_COMPONENTIZE_PY="$ASHLAR_PYTHON_SDK_VENV/bin/componentize-py"
