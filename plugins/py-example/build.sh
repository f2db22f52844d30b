#!/usr/bin/env bash
# Builds the Python volume driver into build/py-example.wasm: componentize-py wraps app.py
# and the Python SDK (sdk/python) against the contract's WIT, then `ashlar plugin stamp`
# records the contract version in the component.
#
#   COMPONENTIZE_PY  componentize-py to use (default: $ASHLAR_COMPONENTIZE_PY, which
#                    scripts/setup-python-sdk.sh exports, else the one on PATH)
#   ASHLAR           the ashlar binary that stamps it (default: the one on PATH)
#   OUT              where the component goes (default: build/py-example.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# The contract this driver is built against: the WIT folder and the stamped version.
CONTRACT="${CONTRACT:-0.3.0}"

componentize_py="${COMPONENTIZE_PY:-${ASHLAR_COMPONENTIZE_PY:-componentize-py}}"
ashlar="${ASHLAR:-ashlar}"
out="${OUT:-$here/build/py-example.wasm}"
mkdir -p "$(dirname "$out")"
# componentize-py writes __pycache__ beside the sources it reads: give it copies, so the
# checkout stays as it is.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$here/app.py" "$stage/"
cp -r "$root/sdk/python/ashlar_sdk" "$stage/"
"$componentize_py" -q -d "$root/wit/since_v$CONTRACT" -w volume-driver componentize \
    -p "$stage" app -o "$out.$$.tmp"
"$ashlar" plugin stamp "$out.$$.tmp" --contract "$CONTRACT"
mv "$out.$$.tmp" "$out"
cp "$here/plugin.toml" "${out%.wasm}.toml"
echo "built $out (contract $CONTRACT)" >&2
