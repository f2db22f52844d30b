#!/usr/bin/env bash
# Builds {{name}} into build/{{name}}.wasm: componentize-py wraps app.py and Ashlar's
# Python SDK against the contract's WIT, then `ashlar plugin stamp` records the contract
# version in the component (a component without it does not load).
#
#   COMPONENTIZE_PY  componentize-py to use (default: $ASHLAR_COMPONENTIZE_PY, else the one
#                    on PATH; `pip install componentize-py==0.25.1` installs it)
#   ASHLAR           the ashlar binary that stamps it (default: the one on PATH, else the
#                    one that made this project)
#   ASHLAR_SDK       the sdk/ directory of an Ashlar checkout: its python/ is the SDK, its
#                    ../wit/ the contract (default: the checkout that made this project)
#   OUT              where the component goes (default: build/{{name}}.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# The contract this driver is built against: the WIT folder and the stamped version.
CONTRACT="${CONTRACT:-{{contract}}}"

sdk="${ASHLAR_SDK:-{{sdk}}}"
componentize_py="${COMPONENTIZE_PY:-${ASHLAR_COMPONENTIZE_PY:-componentize-py}}"
ashlar="${ASHLAR:-$(command -v ashlar || echo "{{ashlar}}")}"
out="${OUT:-$here/build/{{name}}.wasm}"
mkdir -p "$(dirname "$out")"
# componentize-py writes __pycache__ beside the sources it reads: it reads a copy of the
# SDK, so the Ashlar checkout stays as it is.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -r "$sdk/python/ashlar_sdk" "$stage/"
"$componentize_py" -q -d "$sdk/../wit/since_v$CONTRACT" -w {{world}} componentize \
    -p "$here" -p "$stage" app -o "$out.$$.tmp"
"$ashlar" plugin stamp "$out.$$.tmp" --contract "$CONTRACT"
mv "$out.$$.tmp" "$out"
echo "built $out (contract $CONTRACT)" >&2
